"""Throughput of deployment and of training at scale: `apply`, teacher pairs/s per DataLoader worker, DDP steps/s.

    .venv/bin/python -m benchmarks.bench_apply [--threads 2] [--sections apply pairs train] [--json out.json]

(before: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_apply.py ...``, the same flags)

Sections:
  apply  ``distill.deploy.apply.apply_files`` over folders of 8-bit PNG and JPEG photos (astronaut, resized) at
         1080p and 12 MP: end to end (read + student + write, I/O overlapped in background threads) in
         images/s and MP/s, and the student alone (FastStudent: C++ low-res copy, network, fused pass).
         The model is the paper-sized HDRNet with perturbed weights (a trained one costs the same).
  onnx   (opt-in) the exported ONNX student in onnxruntime vs the torch path at 1080p and 12 MP, float32.
  pairs  training pairs/s from the local Laplacian teacher (conf/teacher/local_laplacian.yaml, 256x256
         crops of the embedded photos, as conf/data/embedded.yaml) through the training DataLoader with
         0 (in process, --threads threads), 1 and 2 workers (1 thread each); the first 2 batches (worker
         start, numba cache load) are not timed, nor are batches that may have been prefetched before timing.
  train  training steps/s with 1 and 2 processes (torchrun, gloo, CPU) on the same global batch, as
         PROCESSESxTHREADS layouts (1x1, 1x2, 2x1):
         gamma teacher (cheap, so the student's forward/backward and the gradient all-reduce dominate),
         paper-sized HDRNet, batch 4 of 256x256 crops, no validation.

Numbers are noisy: this machine is shared (other jobs run beside it), so compare rows of one run, not
runs of different days, and read the ratios rather than the absolute values.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from benchmarks._cli import parser
from benchmarks.bench_student import perturbed_model  # same perturbed paper-sized student

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"1080p": (1080, 1920), "12MP": (3000, 4000)}


def photo(h: int, w: int) -> np.ndarray:
    """A natural photo at h x w, RGB uint8 (PNG/JPEG cost depends on content; noise would be unfair)."""
    from skimage import data

    return cv2.resize(data.astronaut(), (w, h), interpolation=cv2.INTER_CUBIC)


# -- apply ----------------------------------------------------------------------------------------------------
def bench_apply(threads: int, counts: dict[str, int]) -> list[dict]:
    from distill.deploy.apply import StudentRunner, apply_files

    runner = StudentRunner(perturbed_model(), device="cpu", threads=threads)
    runner(photo(512, 512))  # warm-up: library load, first network call
    rows = []
    for size, (h, w) in SIZES.items():
        img = photo(h, w)[:, :, ::-1]
        for ext in (".png", ".jpg"):
            with tempfile.TemporaryDirectory() as d:
                src, out = Path(d) / "in", Path(d) / "out"
                src.mkdir()
                files = []
                for i in range(counts[size]):
                    f = src / f"img{i}{ext}"
                    cv2.imwrite(str(f), np.roll(img, 37 * i, axis=1))
                    files.append(f)
                outs = [out / f.name for f in files]
                res = apply_files(runner, files, outs, "srgb", "srgb", progress=False)
                if res.failed:
                    raise RuntimeError(f"apply failed: {res.failed}")
                tp = res.throughput()
                rows.append({"size": size, "format": ext[1:], "images": len(files), "engine": res.engine,
                             **{k: round(v, 3) for k, v in tp.items()},
                             "ms_per_image": round(1e3 * res.wall_s / len(files), 1),
                             "student_ms_per_image": round(1e3 * res.student_s / len(files), 1)})
                print(f"apply {size:>5} {ext[1:]:>4}: {tp['images_per_s']:6.2f} images/s {tp['mp_per_s']:6.1f} MP/s "
                      f"end to end ({rows[-1]['ms_per_image']} ms/image); student alone "
                      f"{rows[-1]['student_ms_per_image']} ms/image, {tp['student_mp_per_s']:.1f} MP/s", flush=True)
    return rows


# -- onnx -----------------------------------------------------------------------------------------------------
def bench_onnx(threads: int, reps: int = 3) -> list[dict]:
    """The exported ONNX student under onnxruntime (CPU) vs HDRNet.forward, float32 [1,3,H,W]."""
    import onnxruntime as ort

    from distill.deploy.export import export_onnx

    model = perturbed_model()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        path = export_onnx(model, Path(d) / "student.onnx")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        for size, (h, w) in SIZES.items():
            x = (photo(h, w).astype(np.float32) / 255).transpose(2, 0, 1)[None].copy()
            ts = []
            for _ in range(reps):
                t0 = time.perf_counter()
                y = sess.run(None, {sess.get_inputs()[0].name: x})[0]
                ts.append(time.perf_counter() - t0)
            with torch.inference_mode():
                t0 = time.perf_counter()
                ref = model(torch.from_numpy(x)).numpy()
                t_torch = time.perf_counter() - t0
            rows.append({"size": size, "onnxruntime_ms_min": round(1e3 * min(ts)), "torch_ms": round(1e3 * t_torch),
                         "max_abs_diff": float(np.abs(y - ref).max())})
            print(f"onnx {size:>5}: onnxruntime {rows[-1]['onnxruntime_ms_min']} ms (min of {reps}), torch path "
                  f"{rows[-1]['torch_ms']} ms, max |onnx - torch| {rows[-1]['max_abs_diff']:.1e}", flush=True)
    return rows


# -- pairs ----------------------------------------------------------------------------------------------------
def bench_pairs(workers: list[int], batches: int, warm_batches: int, batch_size: int = 4) -> list[dict]:
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    from torch.utils.data import DataLoader

    from distill.data.pairs import PairDataset, StepBatchSampler, worker_init

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["teacher=local_laplacian"])
    teacher = instantiate(cfg.teacher)
    pc = OmegaConf.to_container(cfg.data.pairs, resolve=True)
    pc["cache_dir"] = None  # measure the teacher, not the cache
    dataset = PairDataset(instantiate(cfg.data.train), teacher, seed=0, **pc)
    rows = []
    for nw in workers:
        total = warm_batches + batches
        sampler = StepBatchSampler(len(dataset), batch_size, seed=nw, start_step=0, total_steps=total)
        loader = DataLoader(dataset, batch_sampler=sampler, num_workers=nw, worker_init_fn=worker_init if nw else None,
                            prefetch_factor=1 if nw else None, multiprocessing_context="spawn" if nw else None)
        t_start = time.perf_counter()
        for i, _ in enumerate(loader):
            if i + 1 == warm_batches:
                t0 = time.perf_counter()
        dt = time.perf_counter() - t0
        # When timing starts, up to `nw` batches (prefetch_factor 1) may already be finished and waiting:
        # count only the batches the workers surely produced inside the timed window (a lower bound).
        pairs_s = (batches - nw) * batch_size / dt
        rows.append({"workers": nw, "pairs_per_s": round(pairs_s, 3), "batches_timed": batches,
                     "batch_size": batch_size, "crop": pc["crop_size"], "startup_s": round(t0 - t_start, 1)})
        print(f"pairs local_laplacian {pc['crop_size']}x{pc['crop_size']}, {nw} DataLoader worker(s): "
              f"{pairs_s:.2f} pairs/s (first {warm_batches} batch(es), {t0 - t_start:.1f} s, not timed)", flush=True)
    return rows


# -- train ----------------------------------------------------------------------------------------------------
def bench_train(layouts: list[str], steps: int) -> list[dict]:
    rows = []
    for layout in layouts:
        n, threads = (int(v) for v in layout.split("x"))
        with tempfile.TemporaryDirectory() as d:
            args = ["teacher=gamma", "student=hdrnet", "~data.val", f"train.steps={steps}", "train.batch_size=4",
                    "train.num_workers=0", "train.progress=false", "train.validate_teacher=false",
                    f"train.log_every={steps}", f"train.ckpt_every={10 * steps}", "data.pairs.crop_size=256",
                    "device=cpu", f"hydra.run.dir={d}"]
            env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
            cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={n}", "-m", "distill.cli",
                   "train", *args]
            t0 = time.perf_counter()
            p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
            if p.returncode != 0:
                raise RuntimeError(f"torchrun with {n} process(es) failed:\n{p.stderr[-3000:]}")
            s = json.loads((Path(d) / "summary.json").read_text())
        sps = s["trained_steps_this_run"] / s["wall_time_s"]
        rows.append({"processes": n, "steps_per_s": round(sps, 3), "steps": steps, "global_batch": 4,
                     "threads_per_process": int(env["OMP_NUM_THREADS"]), "loop_s": s["wall_time_s"],
                     "total_s": round(time.perf_counter() - t0, 1)})
        print(f"train {n} process(es) x {rows[-1]['threads_per_process']} thread(s), global batch 4 @256: "
              f"{sps:.2f} steps/s ({s['wall_time_s']:.1f} s loop, {rows[-1]['total_s']} s with start-up)", flush=True)
    return rows


def main(argv=None) -> int:
    ap = parser("benchmarks.bench_apply", __doc__)
    ap.add_argument("--threads", type=int, default=2, help="torch / OpenMP / OpenCV threads for apply")
    ap.add_argument("--sections", nargs="+", default=["apply", "pairs", "train"],
                    choices=["apply", "onnx", "pairs", "train"], help="onnx (slow: seconds per image) is opt-in")
    ap.add_argument("--images", type=int, nargs=2, default=[8, 3], metavar=("N_1080P", "N_12MP"),
                    help="images per folder for apply at 1080p and at 12 MP")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="DataLoader worker counts for pairs")
    ap.add_argument("--batches", type=int, default=10, help="timed batches of 4 pairs per worker count")
    ap.add_argument("--layouts", nargs="+", default=["1x1", "1x2", "2x1"],
                    help="training layouts PROCESSESxTHREADS")
    ap.add_argument("--steps", type=int, default=20, help="training steps per layout")
    ap.add_argument("--json", type=Path, default=None, help="write all rows to this JSON file")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    cv2.setNumThreads(a.threads)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{a.threads} threads; shared machine: numbers are noisy", flush=True)
    out: dict = {"threads": a.threads, "cores": os.cpu_count()}
    if "apply" in a.sections:
        out["apply"] = bench_apply(a.threads, {"1080p": a.images[0], "12MP": a.images[1]})
    if "onnx" in a.sections:
        out["onnx"] = bench_onnx(a.threads)
    if "pairs" in a.sections:
        out["pairs"] = bench_pairs(a.workers, a.batches, warm_batches=2)
    if "train" in a.sections:
        out["train"] = bench_train(a.layouts, a.steps)
    if a.json:
        a.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
