"""Wall time of the local Laplacian teacher (fast mode) at 1080p and 12 MP, K = 8 / 16 / 32, on 2 threads.

Input: scikit-image's astronaut photo resized (cubic) to 1920x1080 and 4000x3000, sRGB float32 [H,W,3] for
the detail preset, and a synthetic 12-stop HDR version of it (linear photo times a horizontal exposure ramp)
for the tone preset. Times are the median of ``--repeats`` runs after one warm-up (numba's JIT cache is
loaded or compiled in the warm-up). Two figures per row:

* ``filter``: ``llf_fast`` on the luminance channel alone (the algorithm: remap + pyramids + collapse);
* ``teacher``: ``LocalLaplacian.apply_np`` on the RGB image (validation, luminance, filter, colour ratios,
  clipping; the log domain adds log/exp, the white-point percentile and the sRGB encoding).

Threads: numba (the kernels), OpenCV (pyramids of the guide and the collapse) and torch are all set to
``--threads`` (default 2). Numbers are noisy on a shared machine: compare rows from one run.

Usage:
    python -m benchmarks.bench_local_laplacian [--repeats 5] [--sizes 1080p 12mp] [--K 8 16 32] [--threads 2]

(before: ``PYTHONPATH=. python benchmarks/bench_local_laplacian.py ...``, the same flags)
"""
from __future__ import annotations

import math
import platform

import cv2
import numba
import numpy as np
import torch

from benchmarks._cli import parser
from distill.core.color import LUMA, srgb_to_linear
from distill.eval.bench import time_it
from teachers.local_laplacian import LocalLaplacian, llf_fast


SIZES = {"1080p": (1080, 1920), "12mp": (3000, 4000)}
DETAIL = dict(sigma_r=0.2, alpha=0.25, beta=1.0, noise_level=0.02)  # conf/teacher/local_laplacian.yaml
TONE = dict(sigma_r=math.log(2.5), alpha=1.0, beta=0.3, noise_level=0.0, domain="log")  # ..._tone.yaml


def make_images(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    from skimage import data

    srgb = cv2.resize(data.astronaut(), (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255
    srgb = np.clip(srgb, 0, 1)
    ramp = np.exp2(np.linspace(-6, 6, w, dtype=np.float32))[None, :, None]
    return srgb, (srgb_to_linear(srgb) * ramp).astype(np.float32)


def median_time(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` runs after one warm-up (distill.eval.bench's timer)."""
    return time_it(fn, repeats, warmup=1, budget_s=float("inf"))["median_ms"] / 1e3


def main(argv: list[str] | None = None) -> None:
    ap = parser("benchmarks.bench_local_laplacian", __doc__)
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per row after one warm-up (median)")
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES), help="image sizes")
    ap.add_argument("--K", nargs="+", type=int, default=[8, 16, 32], help="intensity samples of the fast algorithm")
    ap.add_argument("--threads", type=int, default=2, help="numba, OpenCV and torch threads")
    args = ap.parse_args(argv)
    numba.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    torch.set_num_threads(args.threads)
    print(
        f"numba {numba.__version__} threads={numba.get_num_threads()} ({numba.threading_layer()} layer after "
        f"first run), OpenCV {cv2.__version__} threads={cv2.getNumThreads()}, torch threads="
        f"{torch.get_num_threads()}, {platform.processor() or platform.machine()}, {numba.config.NUMBA_NUM_THREADS}"
        f" cores visible; median of {args.repeats} after one warm-up"
    )
    print(f"{'size':6s} {'preset':7s} {'K':>3s} {'filter (Y)':>11s} {'teacher (RGB)':>14s}")
    for size in args.sizes:
        h, w = SIZES[size]
        srgb, hdr = make_images(h, w)
        lum = np.ascontiguousarray(srgb @ np.asarray(LUMA, np.float32))
        for preset, params, img in (("detail", DETAIL, srgb), ("tone", TONE, hdr)):
            for k in args.K:
                chan = lum if preset == "detail" else np.log(np.maximum(hdr @ np.asarray(LUMA, np.float32), 1e-6))
                kw = {key: val for key, val in params.items() if key != "domain"}
                t_filter = median_time(lambda: llf_fast(chan, **kw, K=k), args.repeats)
                teacher = LocalLaplacian(**params, K=k)
                t_teacher = median_time(lambda: teacher.apply_np(img), args.repeats)
                print(f"{size:6s} {preset:7s} {k:3d} {t_filter * 1e3:9.1f}ms {t_teacher * 1e3:12.1f}ms", flush=True)


if __name__ == "__main__":
    main()
