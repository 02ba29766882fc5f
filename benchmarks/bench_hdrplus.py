"""Time the HDR+ teacher per burst at 1080p-equivalent and 12 MP raw sizes; median and peak memory.

Each size runs in its own subprocess so that its peak RSS (``resource.getrusage(...).ru_maxrss``) belongs
to that size alone. Burst synthesis is timed separately from the pipeline (align + merge + finish), and
the first (warm-up) run, which includes numba's cache load / compile, is not counted.

    .venv/bin/python -m benchmarks.bench_hdrplus                 # 1080p and 12 MP, 8 frames
    .venv/bin/python -m benchmarks.bench_hdrplus --sizes 1920x1080 --repeats 5 --threads 2

(before: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_hdrplus.py ...``, the same flags)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._cli import parser

ROOT = Path(__file__).resolve().parent.parent  # the children run `-m benchmarks.bench_hdrplus` from here


def child(width: int, height: int, frames: int, repeats: int, threads: int) -> dict:
    import resource

    import cv2
    import numpy as np
    from skimage import data

    from distill.core.color import srgb_to_linear
    from teachers.hdrplus import HdrPlus
    from teachers.hdrplus.align import align_burst, bin_grey
    from teachers.hdrplus.finish import finish
    from teachers.hdrplus.merge import from_planes, merge_planes, pad_planes, to_planes

    cv2.setNumThreads(threads)
    # a natural scene at the target size (coffee, resized), linear
    scene = cv2.resize(data.coffee(), (width, height), interpolation=cv2.INTER_CUBIC)
    scene = np.ascontiguousarray(srgb_to_linear(scene.astype(np.float32) / 255))
    teacher = HdrPlus(n_frames=frames)
    t0 = time.perf_counter()
    burst = teacher.synthesize(scene)
    synth_s = time.perf_counter() - t0

    def run_stages() -> dict:
        # the same steps as HdrPlus.process_burst, timed one by one
        t = [time.perf_counter()]
        norm = burst.normalized()
        planes = to_planes(norm)
        padded, (top, _, left, _) = pad_planes(planes, 16)
        disp = align_burst(bin_grey(padded), burst.ref_index, teacher.align_params)
        t.append(time.perf_counter())
        merged = merge_planes(padded, disp, burst.ref_index, burst.noise_model, 16,
                              teacher.temporal_factor, teacher.spatial_factor, workers=threads)
        h, w = planes.shape[-2:]
        bayer = from_planes(merged[:, top : top + h, left : left + w])
        t.append(time.perf_counter())
        finish(bayer, burst.cfa_pattern, burst.wb_gains, burst.rgb_from_cam(), teacher.finish_params)
        t.append(time.perf_counter())
        return {"align_s": t[1] - t[0], "merge_s": t[2] - t[1], "finish_s": t[3] - t[2], "total_s": t[3] - t[0]}

    run_stages()  # warm-up
    runs = [run_stages() for _ in range(repeats)]
    med = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    return {
        "raw_size": f"{width}x{height}",
        "megapixels": round(width * height / 1e6, 2),
        "frames": frames,
        "threads": threads,
        "repeats": repeats,
        "synthesis_s": synth_s,
        **{f"median_{k}": v for k, v in med.items()},
        "all_total_s": [r["total_s"] for r in runs],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv: list[str] | None = None) -> None:
    ap = parser("benchmarks.bench_hdrplus", __doc__)
    ap.add_argument("--sizes", nargs="+", default=["1920x1080", "4000x3000"], help="raw WxH (even)")
    ap.add_argument("--frames", type=int, default=8, help="frames per burst")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per size after one warm-up")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="numba / OpenMP / OpenCV threads and merge workers (default: the cores, here %(default)s)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        w, h = (int(v) for v in args.child.split("x"))
        print(json.dumps(child(w, h, args.frames, args.repeats, args.threads)))
        return
    env = dict(os.environ, NUMBA_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    for size in args.sizes:
        cmd = [sys.executable, "-m", "benchmarks.bench_hdrplus", "--child", size, "--frames", str(args.frames),
               "--repeats", str(args.repeats), "--threads", str(args.threads)]
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"bench_hdrplus: {size} failed:\n{out.stderr}")
        res = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps(res))
        print(
            f"{res['raw_size']} raw ({res['megapixels']} MP), {res['frames']} frames, {res['threads']} threads: "
            f"median {res['median_total_s']:.2f} s per burst (align {res['median_align_s']:.2f}, "
            f"merge {res['median_merge_s']:.2f}, finish {res['median_finish_s']:.2f}), "
            f"peak RSS {res['peak_rss_mb']:.0f} MB; synthesis {res['synthesis_s']:.2f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
