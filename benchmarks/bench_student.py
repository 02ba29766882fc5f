"""Time the HDRNet student's inference paths on the CPU, step by step, at 1080p and 12 MP.

    .venv/bin/python -m benchmarks.bench_student [--threads 2] [--reps 30] [--json out.json]

(before: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_student.py ...``, the same flags)

Rows (each: min and median of repeated runs after warm-up, wall clock, same process and threads):
  memory floor        np.copyto of the float32 HWC image (read + write once, one thread)
  torch path          HDRNet.forward under inference_mode (float32 [1,3,H,W]; few reps: it is slow)
  lowres copy torch   students.grid.lowres_copy (F.interpolate area) of the CHW tensor
  lowres copy C++     students.fused.area_downsample, float32 HWC and uint8 HWC
  lowres network      HDRNet.coefficients on [1,3,256,256], inference_mode, contiguous vs channels_last
  fused slice+apply   students.fused.fused_slice_apply (guide + slice + apply), per input format
  FastStudent         end to end (low-res copy + network + fused pass), output buffer reused

The model is an untrained HDRNet with every parameter perturbed (so that all 16 curve knots are live and
the grid is not the identity): its cost equals a trained model's. Timing on a shared machine is noisy:
read the minimum as "what the code can do" and the median as "what it did here".
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time

import numpy as np
import torch

from benchmarks._cli import parser
from students import fused
from students.grid import lowres_copy
from students.hdrnet import HDRNet

SIZES = {"1080p": (1080, 1920), "12MP": (3000, 4000)}


def timeit(fn, reps: int, warmup: int = 2) -> tuple[float, float]:
    """(min, median) wall time in ms."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1e3 * min(ts), 1e3 * float(np.median(ts))


def perturbed_model(seed: int = 0) -> HDRNet:
    torch.manual_seed(seed)
    m = HDRNet()
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.add_(torch.randn_like(p) * (0.05 if "to_grid" in name else 0.02))
    return m.eval()


def main(argv=None) -> int:
    ap = parser("benchmarks.bench_student", __doc__)
    ap.add_argument("--threads", type=int, default=2, help="torch and OpenMP threads")
    ap.add_argument("--reps", type=int, default=30, help="repetitions of the fast rows")
    ap.add_argument("--torch-reps", type=int, default=3, help="repetitions of the (slow) torch path")
    ap.add_argument("--sizes", default="1080p,12MP", help="comma list of 1080p, 12MP")
    ap.add_argument("--skip-torch", action="store_true", help="skip the slow torch-path rows")
    ap.add_argument("--json", help="write the rows to this JSON file")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    model = perturbed_model()
    fast = fused.FastStudent(model, threads=args.threads)
    fast_cf = fused.FastStudent(model, threads=args.threads, channels_last=False)
    print(f"engine {fast.engine}; threads: torch {torch.get_num_threads()}, OpenMP {args.threads}; "
          f"cpu {platform.processor() or platform.machine()} x{os.cpu_count()}; load avg {os.getloadavg()[0]:.1f}")
    rows = []

    def row(size, name, fn, reps):
        lo, med = timeit(fn, reps)
        rows.append({"size": size, "step": name, "min_ms": round(lo, 3), "median_ms": round(med, 3), "reps": reps})
        print(f"  {size:6s} {name:44s} min {lo:9.2f} ms   median {med:9.2f} ms", flush=True)

    grid = fast.coefficients(torch.rand(1, 3, 256, 256).contiguous(memory_format=torch.channels_last))
    low = np.empty((256, 256, 3), np.float32)
    low_t = torch.rand(1, 3, 256, 256)
    low_cl = low_t.contiguous(memory_format=torch.channels_last)
    row("256²", "lowres network, contiguous", lambda: fast_cf.coefficients(low_t), args.reps)
    row("256²", "lowres network, channels_last", lambda: fast.coefficients(low_cl), args.reps)

    for size in args.sizes.split(","):
        h, w = SIZES[size]
        rng = np.random.default_rng(0)
        img = rng.random((h, w, 3), dtype=np.float32)
        img8 = (img * 255).astype(np.uint8)
        chw = torch.from_numpy(img).permute(2, 0, 1).contiguous()
        out, out8, out_chw = np.empty_like(img), np.empty_like(img8), torch.empty_like(chw)
        reps = args.reps if size == "1080p" else max(5, args.reps // 3)

        row(size, "memory floor: np.copyto f32 HWC", lambda: np.copyto(out, img), reps)
        row(size, "lowres copy, torch area (lowres_copy)", lambda: lowres_copy(chw[None], 256), reps)
        row(size, "lowres copy, C++ area f32 HWC", lambda: fused.area_downsample(img, 256, out=low, threads=args.threads), reps)
        row(size, "lowres copy, C++ area u8 HWC", lambda: fused.area_downsample(img8, 256, out=low, threads=args.threads), reps)
        gp = fast.guide
        for name, src, dst, layout in [("f32 HWC", img, out, "hwc"), ("u8 HWC", img8, out8, "hwc"),
                                       ("f32 CHW", chw, out_chw, "chw")]:
            row(size, f"fused slice+apply, {name}",
                lambda: fused.fused_slice_apply(src, grid, gp, out=dst, layout=layout, threads=args.threads), reps)
        row(size, "fused slice+apply, f32 HWC, 1 thread",
            lambda: fused.fused_slice_apply(img, grid, gp, out=out, threads=1), reps)
        row(size, "FastStudent end to end, f32 HWC", lambda: fast(img, out=out), reps)
        row(size, "FastStudent end to end, u8 HWC", lambda: fast(img8, out=out8), reps)
        row(size, "FastStudent end to end, torch [1,3,H,W]", lambda: fast(chw[None], out=out_chw[None]), reps)
        if not args.skip_torch:
            def torch_path():
                with torch.inference_mode():
                    model(chw[None])
            row(size, "torch path: HDRNet.forward (inference_mode)", torch_path, args.torch_reps)

    print("\n| size | step | min ms | median ms |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['step']} | {r['min_ms']:.2f} | {r['median_ms']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"engine": fast.engine, "threads": args.threads, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
