"""``hdr-distill bench``: student vs teachers, same process settings, same thread count, same run.

For each image size (a sweep from 0.25 to 12 MP, including 1080p and 12 MP) every method runs on the same
input: warm-up, then the median (and min) of repeated runs, the methods alternating in bursts of 5 calls so
that a change in machine state during the run affects all of them alike. Teachers run through their NumPy entry point
(``apply_np``) where they have one, so that no torch<->numpy conversion is charged to them; the student runs
through its torch path and its fused path (``students.fused.FastStudent``). Peak memory is measured in a
fresh subprocess per (method, size) as the growth of peak RSS (VmHWM, reset just before the call) over the
process's RSS just before the call, with the input already in memory: i.e. the memory the method itself needs,
its output included.

bench.json's ``teacher_identity`` maps each timed teacher to ``teacher_identity(teacher)``, the dict a checkpoint
records of the teacher it learned from: ``hdr-distill report`` picks its own teacher's rows by that identity.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from distill.core.atomic import atomic_savefig, atomic_write_json, atomic_write_text
from distill.core.protocols import teacher_identity

log = logging.getLogger(__name__)
# `teachers=[name, ...]` are conf/teacher/<name>.yaml here; bench.json records what each one is (its identity).
CONF_TEACHERS = Path(__file__).resolve().parents[2] / "conf" / "teacher"
NAMED_SIZES = {"1080p": (1080, 1920), "12MP": (3000, 4000)}


def size_of(spec) -> tuple[int, int]:
    """'1080p' / '12MP' / a megapixel count (4:3) -> (H, W)."""
    if isinstance(spec, str) and spec in NAMED_SIZES:
        return NAMED_SIZES[spec]
    mp = float(spec)
    w = 2 * round((mp * 1e6 * 4 / 3) ** 0.5 / 2)  # even sides: Bayer-based teachers need them
    return 2 * round(mp * 1e6 / w / 2), w


def size_label(spec) -> str:
    return spec if isinstance(spec, str) and spec in NAMED_SIZES else f"{float(spec):g}MP"


def test_image(h: int, w: int, space: str, seed: int = 0) -> np.ndarray:
    """A natural image (astronaut, tiled/resized) in the given colour space, [H,W,3] float32."""
    import cv2
    from skimage import data

    from distill.core.color import srgb_to_linear

    img = srgb_to_linear(data.astronaut().astype(np.float32) / 255.0)
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    if space == "srgb":
        from distill.core.color import linear_to_srgb

        return np.ascontiguousarray(linear_to_srgb(img))
    if space == "hdr":
        from distill.data.hdr_synth import synthesize_hdr

        return np.ascontiguousarray(synthesize_hdr(img, seed=seed), dtype=np.float32)
    return np.ascontiguousarray(img, dtype=np.float32)


def load_teacher(name: str):
    from hydra.utils import instantiate

    return instantiate(_teacher_config(name))


def _teacher_config(name: str, seen: tuple = ()):
    """``conf/teacher/<name>.yaml`` with its defaults list applied (a teacher that extends another one, e.g.
    ``durand_robust`` on ``durand``), as Hydra composes it inside the group."""
    path = CONF_TEACHERS / f"{name}.yaml"
    if not path.exists() or name in seen:
        known = ", ".join(sorted(p.stem for p in CONF_TEACHERS.glob("*.yaml")))
        why = "defaults loop" if name in seen else "unknown teacher"
        raise ValueError(f"bench: {why} '{name}' (known: {known})")
    from omegaconf import OmegaConf

    own = OmegaConf.load(path)
    defaults = list(own.pop("defaults", None) or ["_self_"])
    if "_self_" not in defaults:
        defaults.append("_self_")
    parts = [own if d == "_self_" else _teacher_config(str(d), seen + (name,)) for d in defaults]
    return OmegaConf.merge(*parts)


def teacher_callable(teacher, img: np.ndarray) -> Callable[[], Any]:
    """The teacher's own work on ``img``, minus any input synthesis (e.g. a burst is made once, up front)."""
    if hasattr(teacher, "bench_callable"):
        return teacher.bench_callable(img)
    if hasattr(teacher, "apply_np"):
        return lambda: teacher.apply_np(img)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].contiguous()
    return lambda: teacher(x)


def load_student(checkpoint: str | None, encoding: str):
    from students.hdrnet import HDRNet

    if checkpoint:
        from distill.train.checkpoint import build_student, load_checkpoint

        return build_student(load_checkpoint(checkpoint))
    # Timing does not depend on the weights; an untrained student of the paper's size is the same cost.
    return HDRNet(input_encoding=encoding).eval()


def student_callables(model, img: np.ndarray, reuse_output: bool = True) -> dict[str, Callable[[], Any]]:
    """Torch path and fused path on ``img``. ``reuse_output``: the fused path writes into one preallocated
    buffer, as a video pipeline would (timing); off for memory measurement, so the output is counted."""
    out: dict[str, Callable[[], Any]] = {}
    x = torch.from_numpy(img).permute(2, 0, 1)[None].contiguous()

    def torch_path():
        with torch.inference_mode():
            return model(x)

    out["student (torch)"] = torch_path
    try:
        from students.fused import FastStudent

        fast = FastStudent(model)
        buf = np.empty_like(img) if reuse_output else None
        out[f"student ({fast.engine})"] = lambda: fast(img, out=buf)
    except Exception as e:  # reported, not hidden: the table will lack the fused row
        log.warning("fused student unavailable: %s", e)
    return out


def time_it(fn: Callable[[], Any], repeats: int, warmup: int, budget_s: float) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    times = []
    t_start = time.perf_counter()
    for i in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        if i >= 2 and time.perf_counter() - t_start > budget_s:
            break  # slow methods: at least 3 runs, then stop at the time budget
    return {"median_ms": 1e3 * statistics.median(times), "min_ms": 1e3 * min(times), "runs": len(times)}


def time_interleaved(methods: dict[str, Callable[[], Any]], repeats: int, warmup: int,
                     budget_s: float, burst: int = 5) -> dict[str, dict[str, float]]:
    """Time several methods in alternating bursts: each round runs every method still going ``burst``
    times back to back, then moves to the next method.

    Timing one method's block after another lets a drift in machine state (another process, clocks) land
    on one method only; alternating spreads it over all of them, so their ratio is fair. Bursts keep each
    method warm, as a pipeline calling it frame after frame would: only a burst's first call follows
    another method's (cold caches, sleeping threads). That call stays in the sample (one in ``burst``), and
    the median is robust to it, though not blind: it is charged to every method alike. A method leaves after
    ``repeats`` runs, or after ``budget_s`` of its own time once it has 3 runs.
    """
    for fn in methods.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {m: [] for m in methods}
    active = list(methods)
    while active:
        for m in list(active):
            for _ in range(max(1, burst)):
                t = time.perf_counter()
                methods[m]()
                times[m].append(time.perf_counter() - t)
                ts = times[m]
                if len(ts) >= repeats or (len(ts) >= 3 and sum(ts) > budget_s):
                    active.remove(m)
                    break
    return {m: {"median_ms": 1e3 * statistics.median(ts), "min_ms": 1e3 * min(ts), "runs": len(ts)}
            for m, ts in times.items()}


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _reset_peak_rss() -> bool:
    """Linux: writing 5 to clear_refs resets VmHWM (the peak RSS) to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _memory_worker(method: str, spec: str, checkpoint: str | None, threads: int) -> None:
    """Subprocess body: set up one method at one size, report max-RSS growth of a single call."""
    torch.set_num_threads(threads)
    h, w = size_of(spec)
    if method.startswith("student"):
        model = load_student(checkpoint or None, "none")
        img = test_image(h, w, "srgb")
        fn = student_callables(model, img, reuse_output=False)[method]
    else:
        teacher = load_teacher(method)
        img = test_image(h, w, teacher.input_space)
        fn = teacher_callable(teacher, img)
    base = _rss_mb()
    reset = _reset_peak_rss()  # so set-up (e.g. burst synthesis) does not count as the method's peak
    fn()
    peak = _peak_rss_mb() if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mb": peak, "base_mb": base, "input_mb": img.nbytes / 2**20, "peak_reset": reset}))


def measure_memory(method: str, spec: str, checkpoint: str | None, threads: int) -> dict | None:
    cmd = [sys.executable, "-m", "distill.eval.bench", "--memory", method, str(spec), checkpoint or "", str(threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
        res = json.loads(r.stdout.strip().splitlines()[-1])
        res["extra_mb"] = max(0.0, res["peak_mb"] - res["base_mb"])
        return res
    except Exception as e:
        log.warning("memory measurement failed for %s at %s: %s", method, spec, e)
        return None


def machine_info(threads: int) -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": threads, "torch": torch.__version__,
            "python": platform.python_version()}


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for m in sorted({r["method"] for r in results}):
        pts = sorted((r["megapixels"], r["median_ms"]) for r in results if r["method"] == m)
        style = "-o" if m.startswith("student") else "--s"
        ax.loglog(*zip(*pts), style, label=m)
    ax.set(xlabel="megapixels", ylabel="median time (ms)", title="Student vs teachers (lower is better)")
    ax.grid(which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)


def table(results: list[dict], memory: dict) -> str:
    lines = [f"{'size':>8} {'method':<28} {'median ms':>10} {'min ms':>9} {'runs':>4} {'vs student':>11} {'mem MB':>8}"]
    for lab in dict.fromkeys(r["size"] for r in results):
        rows = [r for r in results if r["size"] == lab]
        fast = [r for r in rows if r["method"].startswith("student (fused")]
        ref = fast[0]["median_ms"] if fast else None
        for r in rows:
            ratio = f"{r['median_ms'] / ref:10.1f}x" if ref else "          -"
            mem = memory.get(f"{r['method']}@{lab}")
            mem_s = f"{mem['extra_mb']:8.0f}" if mem else "       -"
            lines.append(f"{lab:>8} {r['method']:<28} {r['median_ms']:10.1f} {r['min_ms']:9.1f} {r['runs']:4d} {ratio} {mem_s}")
    return "\n".join(lines)


def run(cfg) -> dict:
    """Hydra entry point (conf/bench.yaml)."""
    from omegaconf import OmegaConf

    threads = int(cfg.threads)
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import cv2

        cv2.setNumThreads(threads)
    except Exception:
        pass
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = cfg.get("checkpoint") or None
    model = load_student(checkpoint, "none")
    teachers = {name: load_teacher(name) for name in cfg.teachers}
    results = []
    sizes = list(OmegaConf.to_container(cfg.sizes, resolve=True))
    for spec in sizes:
        h, w = size_of(spec)
        lab = size_label(spec)
        img = test_image(h, w, "srgb")
        methods = dict(student_callables(model, img))
        if not cfg.get("torch_student_max_mp") or h * w / 1e6 > float(cfg.torch_student_max_mp):
            methods.pop("student (torch)", None)
        limits = cfg.get("teacher_max_mp") or {}
        for name, t in teachers.items():
            if name in limits and h * w / 1e6 > float(limits[name]):
                print(f"  {lab:>8} {name:<28} skipped (teacher_max_mp.{name}={limits[name]})", flush=True)
                continue
            timg = img if t.input_space == "srgb" else test_image(h, w, t.input_space)
            methods[name] = teacher_callable(t, timg)
        timed = time_interleaved(methods, int(cfg.repeats), int(cfg.warmup), float(cfg.budget_s))
        for m, r in timed.items():
            r.update(method=m, size=lab, height=h, width=w, megapixels=h * w / 1e6)
            results.append(r)
            print(f"  {lab:>8} {m:<28} {r['median_ms']:9.1f} ms (min {r['min_ms']:.1f}, {r['runs']} runs)", flush=True)
    memory = {}
    if cfg.memory:
        for spec in cfg.memory_sizes:
            lab = size_label(spec)
            for m in {r["method"] for r in results if r["size"] == lab}:
                res = measure_memory(m, spec, checkpoint, threads)
                if res:
                    memory[f"{m}@{lab}"] = res
    # The identity a checkpoint records of its teacher: report matches its teacher's rows by it.
    identities = {name: teacher_identity(t) for name, t in teachers.items()}
    report = {"machine": machine_info(threads), "results": results, "memory": memory, "teacher_identity": identities,
              "memory_method": "peak RSS growth of one call in a fresh subprocess, input already allocated, "
                                "output included",
              "checkpoint": checkpoint}
    atomic_write_json(out_dir / "bench.json", report)
    plot(results, out_dir / "bench.png")
    txt = table(results, memory)
    atomic_write_text(out_dir / "bench.txt", txt + "\n")
    print(f"\n{txt}\n\nthreads={threads}; wrote {out_dir / 'bench.json'} and {out_dir / 'bench.png'}")
    return report


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--memory":
    _memory_worker(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
