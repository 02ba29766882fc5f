"""A Durand-Dorsey student against the teacher's own fast mode: which is closer to the exact teacher, and faster?

The exact teacher (``work_sigma_px=None``) filters at full resolution and takes seconds at 1080p; its fast mode
(``work_sigma_px=N``) filters an area-downsampled log luminance and upsamples the base (joint bilateral), so
it is the cheapest implementation of the same operator that we have. This script answers the question a user
asks before adopting a student: is it better than just running the fast teacher?

  fidelity  PSNR against the exact teacher on the checkpoint's held-out images, at native size (as training
            scores them): the student (``FastStudent``) and the fast teacher for each ``work_sigma_px``
  speed     medians at 1080p and 12 MP on a synthetic HDR scene (``bench_tonemap.make_scene``), student and
            fast teachers timed in alternating bursts (``distill.eval.bench.time_interleaved``), 2 threads

    python -m benchmarks.durand_student_vs_fast_teacher <checkpoint> [--work 2,4,8] [--sizes 1080p,12mp]

(before: ``PYTHONPATH=. python benchmarks/durand_student_vs_fast_teacher.py <checkpoint> work=2,4,8
sizes=1080p,12mp``: each ``key=value`` is now ``--key value``)
"""
from __future__ import annotations

import copy
import sys

import cv2
import numpy as np
import torch
from hydra.utils import instantiate

from benchmarks._cli import comma_list, parser, refuse_old_keys
from benchmarks.bench_tonemap import SIZES, make_scene
from distill.eval.bench import time_interleaved
from distill.eval.metrics import psnr
from distill.train.checkpoint import build_student, build_teacher, load_checkpoint
from distill.train.loop import make_val_pairs
from students.fused import FastStudent

THREADS = 2


def fast_teacher(ckpt: dict, work_sigma_px: float):
    cfg = copy.deepcopy(ckpt["config"]["teacher"])
    if "work_sigma_px" not in cfg:
        raise SystemExit(f"the checkpoint's teacher ({cfg.get('_target_')}) has no work_sigma_px: not Durand-Dorsey")
    cfg["work_sigma_px"] = work_sigma_px
    return instantiate(cfg)


def main(argv: list[str] | None = None) -> int:
    ap = parser("benchmarks.durand_student_vs_fast_teacher", __doc__)
    ap.add_argument("checkpoint", help="a trained Durand-Dorsey student (runs/<run>/checkpoints/last.pt)")
    ap.add_argument("--work", type=comma_list(float), default="2,4,8",
                    help="the fast teacher's work_sigma_px values to compare, comma-separated")
    ap.add_argument("--sizes", type=comma_list(str.lower), default="1080p,12mp",
                    help=f"timed sizes, comma-separated, of {', '.join(SIZES)}")
    args, extra = ap.parse_known_args(argv)
    refuse_old_keys(ap, [args.checkpoint, *extra], {"work": "--work {value}", "sizes": "--sizes {value}"})
    if extra:
        ap.error(f"unrecognized arguments: {' '.join(extra)}")
    if unknown := [s for s in args.sizes if s not in SIZES]:
        ap.error(f"--sizes: unknown {', '.join(unknown)} (choose from {', '.join(SIZES)})")
    works, sizes = args.work, args.sizes
    ckpt = load_checkpoint(args.checkpoint)
    student, teacher = build_student(ckpt).eval(), build_teacher(ckpt)
    fast = FastStudent(student, threads=THREADS)
    fasts = {w: fast_teacher(ckpt, w) for w in works}
    data = ckpt["config"]["data"]
    print(f"{args.checkpoint}  (student engine: {fast.engine})")
    print("fidelity: PSNR against the exact teacher, held-out images at native size")
    rows = {"student": []} | {f"teacher work_sigma_px={w:g}": [] for w in works}
    for name, x, y in make_val_pairs(teacher, instantiate(data["val"]), data.get("val_max_side")):
        y = y.clamp(0, 1)
        img = x[0].permute(1, 2, 0).contiguous().numpy()
        got = {"student": torch.from_numpy(fast(img)).permute(2, 0, 1)[None]}
        for w, t in fasts.items():
            got[f"teacher work_sigma_px={w:g}"] = torch.from_numpy(t.apply_np(img)).permute(2, 0, 1)[None]
        for k, p in got.items():
            rows[k].append(psnr(p.clamp(0, 1), y))
        print(f"  {name:14s} " + "  ".join(f"{k} {rows[k][-1]:.2f}" for k in rows))
    print("  mean           " + "  ".join(f"{k} {np.mean(v):.2f}" for k, v in rows.items()))
    print(f"speed: medians, {THREADS} threads, alternating bursts")
    for size in sizes:
        h, w = SIZES[size]
        scene = np.ascontiguousarray(make_scene(h, w), dtype=np.float32)
        out = np.empty_like(scene)
        methods = {"student": lambda: fast(scene, out=out)}
        for wk, t in fasts.items():
            methods[f"teacher work_sigma_px={wk:g}"] = (lambda t=t: t.apply_np(scene))
        res = time_interleaved(methods, repeats=15, warmup=2, budget_s=8.0)
        s = res["student"]["median_ms"]
        for k, r in res.items():
            print(f"  {size:6s} {k:26s} {r['median_ms']:8.1f} ms  (min {r['min_ms']:.1f}, {r['runs']} runs; "
                  f"{r['median_ms'] / s:5.2f}x the student)")
    return 0


if __name__ == "__main__":
    torch.set_num_threads(THREADS)
    cv2.setNumThreads(THREADS)
    sys.exit(main())
