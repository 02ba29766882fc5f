"""Report stage 1, collect: arguments checked, the checkpoint, its teacher and student, the held-out images,
bench.json, the training history and the machine."""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from distill.core.io import downscale_max_side
from distill.core.protocols import teacher_identity
from distill.eval import metrics as M
from distill.train.checkpoint import build_student, build_teacher, check_teacher, file_sha256, load_checkpoint

DEFAULT_GATES = {"psnr_min": 33.0, "psnr_worst_min": None, "speedup_min": 10.0}


class ReportError(RuntimeError):
    """A report that cannot be made: bad arguments or inputs (the message names them)."""


@dataclass
class Collected:
    """Everything the later stages read; nothing here has been run through teacher or student yet."""

    ckpt: dict[str, Any]
    ckpt_path: Path
    sha256: str
    teacher: Any
    model: torch.nn.Module
    student_fn: Callable[[torch.Tensor], torch.Tensor]
    engine: str
    identity: dict[str, Any]
    bench: tuple[dict[str, Any], Path] | None
    source: Sequence
    source_desc: str
    max_side: int | None
    lpips_metric: M.LPIPSMetric | None
    lpips_status: str
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image, problem): unreadable, left out

    def image(self, i: int) -> tuple[str, np.ndarray]:
        """(name, linear [H,W,3]) of held-out image ``i``, shrunk to ``max_side``."""
        item = self.source[i]
        lin = downscale_max_side(item.linear, int(self.max_side) if self.max_side else None)
        if min(lin.shape[:2]) < M.SSIM_MIN_SIZE:
            raise ReportError(f"image '{item.name}' is {lin.shape[1]}x{lin.shape[0]}: smaller than SSIM's "
                              f"{M.SSIM_MIN_SIZE}x{M.SSIM_MIN_SIZE} window")
        return item.name, lin


def check_args(max_side, crop_size, bench, run_bench, heat_vmax) -> None:
    """Bad arguments fail here, before any work."""
    if max_side is not None and int(max_side) < M.SSIM_MIN_SIZE:
        raise ReportError(f"max_side must be at least {M.SSIM_MIN_SIZE} (SSIM's window) or null, got {max_side}")
    if int(crop_size) < 8:
        raise ReportError(f"crop_size must be at least 8 pixels, got {crop_size}")
    if bench is not None and run_bench:
        raise ReportError("pass either bench=<bench.json> or run_bench=true, not both")
    if heat_vmax not in (None, "auto"):
        try:
            ok = float(heat_vmax) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ReportError(f"heat_vmax must be a positive number (dE00) or 'auto', got {heat_vmax!r}")


def collect(ckpt_path: Path, images: Any, max_side: int | None, bench: str | os.PathLike | None, lpips: bool,
            lpips_metric: M.LPIPSMetric | None) -> Collected:
    ckpt = load_checkpoint(ckpt_path)
    sha = file_sha256(ckpt_path)
    teacher, model, student_fn, engine = load_models(ckpt)
    bench_data = load_bench(bench) if bench is not None else None
    source, source_desc = held_out_source(ckpt, images)
    if len(source) == 0:
        raise ReportError(f"no held-out images in {source_desc}")
    if lpips_metric is None:
        lpips_metric = M.LPIPSMetric() if lpips else None
    lpips_status = lpips_metric.status if lpips_metric is not None else "LPIPS not computed: disabled (lpips=false)"
    return Collected(ckpt, ckpt_path, sha, teacher, model, student_fn, engine, teacher_identity(teacher), bench_data,
                     source, source_desc, max_side, lpips_metric, lpips_status)


def load_models(ckpt: dict[str, Any]) -> tuple[Any, torch.nn.Module, Callable[[torch.Tensor], torch.Tensor], str]:
    """(teacher, student module, student function on [1,3,H,W], engine name) from a loaded checkpoint."""
    if "config" not in ckpt or "teacher" not in ckpt["config"] or "student" not in ckpt["config"]:
        raise ReportError(f"checkpoint {ckpt.get('path')} has no resolved config (teacher/student): cannot rebuild them")
    teacher = build_teacher(ckpt)
    # The config must rebuild the very teacher the student learned from.
    check_teacher(ckpt, teacher_identity(teacher))
    model = build_student(ckpt)
    try:
        from students.fused import FastStudent
        from students.hdrnet import HDRNet

        if isinstance(model, HDRNet):
            fast = FastStudent(model)
            return teacher, model, lambda x: fast(x.contiguous()), fast.engine
    except ImportError:  # pragma: no cover - the students package ships with the project
        pass

    def torch_path(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    return teacher, model, torch_path, "torch"


def held_out_source(ckpt: dict[str, Any], images: Any) -> tuple[Sequence, str]:
    """(source, one-line description): ``images`` if given, else the checkpoint's ``config.data.val``."""
    from distill.data.sources import make_source

    if images is None or images == "":
        spec = (ckpt.get("config") or {}).get("data", {}).get("val")
        if not spec:
            raise ReportError(
                f"checkpoint {ckpt.get('path')} records no held-out source (config.data.val); pass images=<folder>"
            )
        src = make_source(dict(spec))
        names = list(getattr(src, "names", []))
        what = f"checkpoint's held-out set (config.data.val: {spec.get('_target_', '?').rsplit('.', 1)[-1]}"
        return src, what + (f": {', '.join(names[:8])}{' ...' if len(names) > 8 else ''})" if names else ")")
    if not isinstance(images, (str, os.PathLike)):
        images = [str(p) for p in images]
        if not images:
            raise ReportError("images: the list of files/folders is empty")
    src = make_source(images)  # FolderSource: a missing path or an empty folder raises, naming it
    return src, f"images={images if isinstance(images, (str, os.PathLike)) else ', '.join(images)}"


def load_bench(path: str | os.PathLike) -> tuple[dict[str, Any], Path]:
    """Read bench.json (or the bench.json inside a folder)."""
    p = Path(path)
    if p.is_dir():
        p = p / "bench.json"
    if not p.is_file():
        raise ReportError(f"bench: {p} not found (pass the bench.json written by `hdr-distill bench`)")
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise ReportError(f"bench: cannot read {p}: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise ReportError(f"bench: {p} has no 'results' list (not a bench.json from `hdr-distill bench`)")
    return data, p


def training_info(ckpt: Mapping[str, Any], ckpt_path: Path) -> tuple[list[dict], dict[str, Any]]:
    """(history rows, training summary) from the checkpoint's run folder, else from the checkpoint itself."""
    info: dict[str, Any] = {"step": ckpt.get("step")}
    # hdr-distill train writes <run>/checkpoints/last.pt; a checkpoint copied elsewhere has no run folder.
    run_dir = ckpt_path.resolve().parent.parent if ckpt_path.resolve().parent.name == "checkpoints" else None
    summary = run_dir / "summary.json" if run_dir else None
    if summary is not None and summary.is_file():
        try:
            s = json.loads(summary.read_text())
            info.update({k: s[k] for k in ("val_psnr_db", "wall_time_s", "val_images", "device", "threads") if k in s})
        except (OSError, ValueError):
            pass
    hist = run_dir / "history.csv" if run_dir else None
    if hist is not None and hist.is_file():
        with open(hist, newline="") as f:
            rows = list(csv.DictReader(f))
        info["history_from"] = str(hist)
    else:
        rows = list(ckpt.get("history") or [])
        info["history_from"] = "checkpoint"
    return rows, info


def machine() -> dict[str, Any]:
    from distill.eval.bench import machine_info

    info = machine_info(torch.get_num_threads())
    info["numpy"] = np.__version__
    try:  # timings on a busy machine are slow: say how busy it was
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    return info
