"""Wall time of the tone-mapping teachers at 1080p and 12 MP (median of repeats), OpenCV on 2 threads.

Input: a synthetic HDR scene (distill.data.hdr_synth, seed 0) made from scikit-image's coffee photo resized to
1920x1080 and 4000x3000, float32 [H,W,3]. Each teacher is timed through ``apply_np`` (the whole contract:
validation, normalisation, black point, operator, encoding); for the OpenCV operators the bare OpenCV call on
the prepared input is timed too, so the wrapper's own cost is visible.

Durand-Dorsey is timed in both modes: exact (``work_sigma_px=None``: cv2.bilateralFilter at full resolution,
sigma = 2 % of the longer side, i.e. 38 px at 1080p and 80 px at 12 MP; cost grows with sigma^2, so it is
run once, and at 12 MP only with --durand-exact-12mp, several minutes) and approximate (``work_sigma_px=4``).

Usage:
    python -m benchmarks.bench_tonemap [--repeats 5] [--sizes 1080p 12mp] [--durand-exact-12mp]

(before: ``PYTHONPATH=. python benchmarks/bench_tonemap.py ...``, the same flags)
"""
from __future__ import annotations

import platform
import time

import cv2
import numpy as np

from benchmarks._cli import parser
from distill.core.color import srgb_to_linear
from distill.data.hdr_synth import dynamic_range_stops, synthesize_hdr
from distill.eval.bench import time_it
from teachers.tonemap import Drago, DurandDorsey, Mantiuk, Reinhard, _black_point, prepare_hdr


SIZES = {"1080p": (1080, 1920), "12mp": (3000, 4000)}
THREADS = 2


def make_scene(h: int, w: int) -> np.ndarray:
    from skimage import data

    photo = cv2.resize(data.coffee(), (w, h), interpolation=cv2.INTER_CUBIC)
    return synthesize_hdr(srgb_to_linear(np.clip(photo / 255.0, 0, 1)), seed=0)


def median_time(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` runs after one warm-up (distill.eval.bench's timer)."""
    return time_it(fn, repeats, warmup=1, budget_s=float("inf"))["median_ms"] / 1e3


def main(argv: list[str] | None = None) -> None:
    ap = parser("benchmarks.bench_tonemap", __doc__)
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per row after one warm-up (median)")
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES), help="image sizes")
    ap.add_argument("--durand-exact-12mp", action="store_true", help="also time exact Durand at 12 MP (minutes)")
    args = ap.parse_args(argv)
    cv2.setNumThreads(THREADS)
    print(f"OpenCV {cv2.__version__}, cv2.setNumThreads({THREADS}), numpy single-threaded, "
          f"{platform.processor() or platform.machine()}; median of {args.repeats} after one warm-up")
    print(f"{'size':6s} {'teacher':24s} {'apply_np':>10s} {'opencv op':>10s}")
    for size in args.sizes:
        h, w = SIZES[size]
        img = make_scene(h, w)
        print(f"# {size}: {w}x{h}, synthetic HDR, {dynamic_range_stops(img):.1f} stops")
        for teacher in (Reinhard(), Drago(), Mantiuk()):
            t_all = median_time(lambda: teacher.apply_np(img), args.repeats)
            x = _black_point(prepare_hdr(img, "bench"), teacher.floor)
            t_op = median_time(lambda: teacher._operator(1.0).process(x), args.repeats)
            print(f"{size:6s} {teacher.name:24s} {t_all * 1e3:8.0f}ms {t_op * 1e3:8.0f}ms")
        fast = DurandDorsey(work_sigma_px=4.0)
        t_fast = median_time(lambda: fast.apply_np(img), args.repeats)
        print(f"{size:6s} {'durand (work_sigma_px=4)':24s} {t_fast * 1e3:8.0f}ms {'':>10s}")
        if size == "1080p" or args.durand_exact_12mp:
            exact = DurandDorsey()
            t = time.perf_counter()
            exact.apply_np(img)
            t_exact = time.perf_counter() - t
            print(f"{size:6s} {'durand (exact, 1 run)':24s} {t_exact * 1e3:8.0f}ms {'':>10s}")


if __name__ == "__main__":
    main()
