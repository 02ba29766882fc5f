"""``hdr-distill report``: how close and how fast a trained student is, as numbers, pictures and PASS/FAIL lines.

    hdr-distill report checkpoint=outputs/train/<run>/checkpoints/last.pt [images=photos/val] [bench=.../bench.json]

Stages:
  1. load the checkpoint, rebuild its teacher (checked against the identity the checkpoint recorded) and its
     student (the fused C++ path, ``students.fused.FastStudent``, when it is available);
  2. held-out images: the checkpoint's ``config.data.val`` source (for the embedded set: the photos excluded
     from training) or ``images=`` (a folder, a file or a list of them), shrunk to ``max_side``;
  3. each image through the teacher and the student (``distill.data.pairs.image_pair``: the whole image, in the
     teacher's input space); both outputs made display-referred (sRGB-encoded, clipped to [0, 1]); metrics
     from ``distill.eval.metrics`` (PSNR, SSIM, CIEDE2000 mean and p95, LPIPS when its weights are present);
  4. pictures for the worst, median and best image (input | teacher | student | error heat map, and a zoomed
     crop where the error is largest), training curves, the speed table from ``bench``;
  5. gates (e.g. mean PSNR >= 33 dB, speed-up >= 10x) as PASS / FAIL / NOT MEASURED lines;
  6. ``report.html``, ``summary.json``, ``per_image.csv`` and ``figures/*.png``, written in a temp folder and
     moved into place file by file (``report.html`` last), so a reader never sees a half-written report.

``run_report(...)`` is the plain function; ``run(cfg)`` is the Hydra entry point (conf/report.yaml).
"""
from __future__ import annotations

import csv
import datetime as _dt
import html
import json
import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from distill.eval import metrics as M
from distill.eval import plots as P
from distill.train.checkpoint import build_student, build_teacher, check_teacher, file_sha256, load_checkpoint
from distill.core.color import linear_to_srgb
from distill.core.io import downscale_max_side
from distill.data.pairs import image_pair
from distill.core.protocols import teacher_identity

log = logging.getLogger(__name__)

FORMAT = "hdr-distill-report/1"
DEFAULT_GATES = {"psnr_min": 33.0, "psnr_worst_min": None, "speedup_min": 10.0}
CSV_FIELDS = ["index", "name", "height", "width", *M.METRICS]
DISPLAY_STATEMENT = (
    "All metrics compare display-referred images: the teacher's and the student's outputs sRGB-encoded "
    "(outputs in linear space are encoded with the sRGB curve; HDR outputs are first divided by the "
    "teacher output's maximum) and clipped to [0, 1], i.e. what a screen shows. PSNR pools the three RGB "
    "channels with peak 1: 10 log10(1 / MSE)."
)
INF_NOTE = 'Infinite PSNR (student identical to teacher) is written as the string "inf" in summary.json and per_image.csv.'
HEAT_LABEL = "CIEDE2000 (dE00)"


class ReportError(RuntimeError):
    """A report that cannot be made: bad arguments or inputs (the message names them)."""


# ---------------------------------------------------------------------------------------------------------
# Display-referred images
# ---------------------------------------------------------------------------------------------------------


def _hwc(t: torch.Tensor) -> np.ndarray:
    """[1,3,H,W] or [3,H,W] tensor -> float32 numpy [H,W,3]."""
    if t.ndim == 4:
        t = t[0]
    return np.ascontiguousarray(t.detach().to("cpu", torch.float32).permute(1, 2, 0).numpy())


def display_output(img: np.ndarray, space: str, peak: float | None = None) -> np.ndarray:
    """A teacher/student output [H,W,3] in ``space`` -> display-referred sRGB [H,W,3] in [0, 1].

    Args:
        img: output in the teacher's ``output_space``.
        space: ``"srgb"`` (clipped), ``"linear"`` (sRGB-encoded) or ``"hdr"`` (divided by ``peak``, then
            sRGB-encoded).
        peak: for ``"hdr"``: the scale both images share (the teacher output's maximum).
    """
    if space == "srgb":
        return np.clip(img, 0.0, 1.0).astype(np.float32)
    if space == "linear":
        return linear_to_srgb(img)
    if space == "hdr":
        if not peak or peak <= 0:
            raise ValueError("display_output: 'hdr' output needs a positive peak (the teacher output's maximum)")
        return linear_to_srgb(img / np.float32(peak))
    raise ValueError(f"display_output: unknown colour space '{space}' (expected srgb, linear or hdr)")


def display_input(x: np.ndarray, space: str) -> np.ndarray:
    """The student's input [H,W,3] in the teacher's ``input_space``, as a picture in [0, 1].

    HDR inputs are exposed so that the 99.5th percentile is white, then sRGB-encoded (for looking only).
    """
    if space == "srgb":
        return np.clip(x, 0.0, 1.0).astype(np.float32)
    if space == "linear":
        return linear_to_srgb(x)
    if space == "hdr":
        white = float(np.percentile(x, 99.5))
        return linear_to_srgb(x / np.float32(white if white > 0 else 1.0))
    raise ValueError(f"display_input: unknown colour space '{space}'")


# ---------------------------------------------------------------------------------------------------------
# Models and images
# ---------------------------------------------------------------------------------------------------------


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


def evaluate_image(teacher, student_fn, linear: np.ndarray, lpips_metric: M.LPIPSMetric | None):
    """One held-out image through teacher and student.

    Returns:
        (metric row, arrays) with arrays = ``{"input", "teacher", "student"}`` display images [H,W,3] and
        ``"error"``, the CIEDE2000 map [H,W]. The row equals ``metrics.compute_all(student, teacher)``
        (computed from the same error map rather than converting to Lab twice).
    """
    x, y = image_pair(teacher, linear)  # [1,3,H,W] each, in the teacher's spaces
    s = student_fn(x)
    y_np, s_np = _hwc(y), _hwc(s)
    out_space = teacher.output_space
    peak = float(y_np.max()) if out_space == "hdr" else None
    t_disp = display_output(y_np, out_space, peak)
    s_disp = display_output(s_np, out_space, peak)
    err = M.ciede2000_map(s_disp, t_disp)  # [H,W]
    de = err.astype(np.float64)
    row = {
        "psnr": M.psnr(s_disp, t_disp),
        "ssim": M.ssim(s_disp, t_disp),
        "ciede2000_mean": float(de.mean()),
        "ciede2000_p95": float(np.percentile(de, 95)),
        "lpips": lpips_metric(s_disp, t_disp) if lpips_metric is not None else None,
    }
    x_disp = display_input(_hwc(x), teacher.input_space)
    row["psnr_input"] = M.psnr(x_disp, t_disp) if x_disp.shape == t_disp.shape else None
    arrays = {"input": x_disp, "teacher": t_disp, "student": s_disp, "error": err}
    return row, arrays


# ---------------------------------------------------------------------------------------------------------
# Pictures
# ---------------------------------------------------------------------------------------------------------


def pick_examples(stats: Mapping[str, Any]) -> list[tuple[int, list[str]]]:
    """Row indices of the worst, median and best image by PSNR, merged where they coincide."""
    picks: dict[int, list[str]] = {}
    for label in ("worst", "median", "best"):
        i = stats.get(f"{label}_index")
        if i is not None:
            picks.setdefault(int(i), []).append(label)
    return list(picks.items())


def nice_ceil(v: float, floor: float = 1.0) -> float:
    """Smallest value of the 1-2-5 series >= v (and >= floor): a round top for the heat-map scale."""
    v = max(float(v), floor)
    e = 10.0 ** math.floor(math.log10(v))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * e >= v * (1 - 1e-9):
            return float(m * e)
    return float(10 * e)  # pragma: no cover


def _box(img: np.ndarray, box: tuple[int, int, int, int], color=(0.0, 1.0, 1.0)) -> np.ndarray:
    """Copy of ``img`` with the outline of ``box`` (y0, x0, y1, x1) drawn in ``color``."""
    out = img.copy()
    y0, x0, y1, x1 = box
    t = max(2, round(max(img.shape[:2]) / 300))
    c = np.asarray(color, np.float32)
    out[y0:y1, x0:min(x0 + t, x1)] = c
    out[y0:y1, max(x1 - t, x0):x1] = c
    out[y0:min(y0 + t, y1), x0:x1] = c
    out[max(y1 - t, y0):y1, x0:x1] = c
    return out


def example_figures(arrays: dict[str, np.ndarray], label: str, row: dict, vmax: float, crop: int,
                    folder: Path, input_title: str = "input") -> dict[str, Any]:
    """Full-image row and zoomed-crop row for one example image; returns file names and the crop box."""
    err = arrays["error"]
    box = P.worst_crop(err, crop, mode="mean")
    y0, x0, y1, x1 = box
    shown = label.replace("+", " / ")
    title = (f"{shown}: {row['name']}  ({row['width']}x{row['height']})   PSNR {fmt('psnr', row['psnr'])} dB,  "
             f"mean dE00 {fmt('ciede2000_mean', row['ciede2000_mean'])}")
    full = P.side_by_side_png(
        [(f"{input_title} (box: largest error)", _box(arrays["input"], box)), ("teacher", arrays["teacher"]),
         ("student", arrays["student"]), ("error", err, vmax, HEAT_LABEL)],
        folder / f"{label}.png", suptitle=title)
    sl = (slice(y0, y1), slice(x0, x1))
    zoom = P.side_by_side_png(
        [("teacher (crop)", arrays["teacher"][sl]), ("student (crop)", arrays["student"][sl]),
         ("error (crop)", err[sl], vmax, HEAT_LABEL)],
        folder / f"{label}_crop.png",
        suptitle=f"{shown}: {y1 - y0}x{x1 - x0} px crop at x={x0}, y={y0}, where the mean error is largest")
    return {"full": f"figures/{full.name}", "crop": f"figures/{zoom.name}", "crop_box": list(box)}


# ---------------------------------------------------------------------------------------------------------
# Speed (from hdr-distill bench, or a short bench run here)
# ---------------------------------------------------------------------------------------------------------


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


def _bench_teacher(bench: dict[str, Any], ckpt: dict[str, Any]) -> tuple[str | None, str]:
    """Which timed teacher is the checkpoint's: (method name or None, how it was matched)."""
    from omegaconf import OmegaConf

    from distill.eval.bench import CONF_TEACHERS, load_teacher

    mine = ckpt.get("teacher", {})
    methods = list(dict.fromkeys(r["method"] for r in bench["results"] if not r["method"].startswith("student")))
    known = bench.get("teacher_identity", {})  # written by short_bench: method -> identity
    for m in methods:
        if known.get(m) == mine:
            return m, "the checkpoint's own teacher, same parameters"
    target = ((ckpt.get("config") or {}).get("teacher") or {}).get("_target_")
    same_kind = []
    for m in methods:
        path = CONF_TEACHERS / f"{m}.yaml"
        if m in known or not path.exists() or OmegaConf.load(path).get("_target_") != target:
            continue
        try:
            ident = teacher_identity(load_teacher(m))
        except Exception as e:  # a teacher that cannot be built here cannot be matched
            log.warning("bench: cannot rebuild teacher '%s' to compare: %s", m, e)
            continue
        if ident == mine:
            return m, f"conf/teacher/{m}.yaml: same teacher and parameters as the checkpoint"
        same_kind.append((m, ident))
    if same_kind:
        m, ident = same_kind[0]
        diff = [k for k in sorted(set(ident.get("params", {})) | set(mine.get("params", {})))
                if ident.get("params", {}).get(k) != mine.get("params", {}).get(k)]
        return m, (f"conf/teacher/{m}.yaml: same operator, but its parameters differ from the checkpoint's "
                   f"({', '.join(diff) or 'colour spaces'}); the speed-up is for the bench's settings")
    return None, f"bench timed {', '.join(methods) or 'no teachers'}; none is the checkpoint's teacher '{mine.get('name')}'"


def speed_summary(bench: dict[str, Any], ckpt: dict[str, Any], source: str) -> dict[str, Any]:
    """Teacher vs fastest student per image size, and the speed-ups, from a bench.json dict."""
    method, match = _bench_teacher(bench, ckpt)
    results = bench["results"]
    rows = []
    for size in dict.fromkeys(r["size"] for r in results):
        at = [r for r in results if r["size"] == size]
        students = [r for r in at if r["method"].startswith("student")]
        teach = [r for r in at if r["method"] == method]
        if not students or not teach:
            continue
        best = min(students, key=lambda r: r["median_ms"])
        t = teach[0]
        mem = bench.get("memory") or {}
        extra = {f"{who}_extra_mb": mem[k]["extra_mb"] for who, k in (("teacher", f"{method}@{size}"),
                                                                      ("student", f"{best['method']}@{size}"))
                 if isinstance(mem.get(k), dict) and "extra_mb" in mem[k]}
        rows.append({"size": size, "megapixels": best.get("megapixels"), "teacher_ms": t["median_ms"],
                     "student_method": best["method"], "student_ms": best["median_ms"],
                     "speedup": t["median_ms"] / best["median_ms"], **extra})
    headline = next((r for r in rows if r["size"] == "1080p"), rows[-1] if rows else None)
    return {
        "source": source, "teacher_method": method, "match": match, "rows": rows,
        "min_speedup": min((r["speedup"] for r in rows), default=None),
        "headline": {"size": headline["size"], "speedup": headline["speedup"]} if headline else None,
        "machine": bench.get("machine"), "results": results, "memory_method": bench.get("memory_method"),
    }


def short_bench(teacher, model: torch.nn.Module, size: str = "1080p", repeats: int = 5, warmup: int = 1,
                budget_s: float = 5.0) -> dict[str, Any]:
    """A short ``hdr-distill bench`` of this checkpoint's teacher against its student at one size.

    Same functions as ``distill.eval.bench`` (same timing rules); the plain torch student is left out (it is the
    slow training path, ~1 s at 1080p). Returns a dict in bench.json's format.
    """
    from distill.eval import bench as B

    h, w = B.size_of(size)
    lab = B.size_label(size)
    img = B.test_image(h, w, teacher.input_space)
    methods = {k: v for k, v in B.student_callables(model, img).items() if k != "student (torch)"}
    if not methods:  # not an HDRNet: FastStudent refused it; time the torch path instead
        methods = B.student_callables(model, img)
    name = teacher_identity(teacher)["name"]
    methods[name] = B.teacher_callable(teacher, img)
    results = []
    for m, r in B.time_interleaved(methods, repeats, warmup, budget_s).items():
        r.update(method=m, size=lab, height=h, width=w, megapixels=h * w / 1e6)
        results.append(r)
    return {"machine": B.machine_info(torch.get_num_threads()), "results": results, "memory": {},
            "teacher_identity": {name: teacher_identity(teacher)}}


# ---------------------------------------------------------------------------------------------------------
# Gates
# ---------------------------------------------------------------------------------------------------------


def evaluate_gates(stats: Mapping[str, Any], speed: Mapping[str, Any] | None,
                   gates: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """PASS / FAIL / NOT MEASURED for each configured threshold (a None threshold is skipped).

    Gates: ``psnr_min`` (mean PSNR, dB), ``psnr_worst_min`` (worst image's PSNR, dB), ``speedup_min``
    (teacher time / student time, the smallest over the bench's image sizes).
    """
    gates = dict(DEFAULT_GATES if gates is None else gates)
    unknown = set(gates) - set(DEFAULT_GATES)
    if unknown:
        raise ReportError(f"gates: unknown gate(s) {sorted(unknown)} (known: {sorted(DEFAULT_GATES)})")
    out = []
    psnr = stats.get("psnr", {})
    for key, what, value in (("psnr_min", "mean PSNR", psnr.get("mean")),
                             ("psnr_worst_min", "worst-image PSNR", psnr.get("worst"))):
        thr = gates.get(key)
        if thr is None:
            continue
        thr = float(thr)
        ok = value is not None and value >= thr
        out.append({"gate": key, "what": what, "value": value, "threshold": thr, "status": "PASS" if ok else "FAIL",
                    "text": f"{what} {fmt('psnr', value)} dB {'>=' if ok else '<'} {thr:g} dB"})
    thr = gates.get("speedup_min")
    if thr is not None:
        thr = float(thr)
        v = speed.get("min_speedup") if speed else None
        if v is None:
            why = speed["match"] if speed else "no bench data: pass bench=<bench.json> or run_bench=true"
            out.append({"gate": "speedup_min", "what": "speed-up", "value": None, "threshold": thr,
                        "status": "NOT MEASURED", "text": f"speed-up >= {thr:g}x: not measured ({why})"})
        else:
            ok = v >= thr
            sizes = ", ".join(r["size"] for r in speed["rows"])
            out.append({"gate": "speedup_min", "what": "speed-up", "value": v, "threshold": thr,
                        "status": "PASS" if ok else "FAIL",
                        "text": f"speed-up {v:.1f}x {'>=' if ok else '<'} {thr:g}x (smallest over {sizes})"})
    return out


# ---------------------------------------------------------------------------------------------------------
# Writing: JSON-safe values, CSV, atomic placement
# ---------------------------------------------------------------------------------------------------------

_DIGITS = {"psnr": 2, "ssim": 4, "ciede2000_mean": 2, "ciede2000_p95": 2, "lpips": 4, "speedup": 1, "ms": 1, "mp": 2, "mb": 0}


def fmt(kind: str, v: Any) -> str:
    """How the report prints a value of ``kind`` (a metric name, ``"speedup"`` or ``"ms"``)."""
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    v = float(v)
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if kind == "g":
        return f"{v:g}"
    return f"{v:.{_DIGITS.get(kind, 3)}f}"


def json_safe(obj: Any) -> Any:
    """Replace non-finite floats so the JSON is valid: inf -> "inf", -inf -> "-inf", NaN -> None."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.generic,)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else json_safe(r.get(k))) for k in CSV_FIELDS})


def publish(staging: Path, out_dir: Path) -> None:
    """Move the finished report from ``staging`` into ``out_dir``.

    A fresh ``out_dir`` is one atomic rename. An existing one (Hydra's run folder, or an older report) gets
    each file by ``os.replace`` (atomic per file): figures first, then the CSV and summary.json, and
    report.html last, so the HTML never refers to a file that is not there yet.
    """
    if not out_dir.exists():
        try:
            os.rename(staging, out_dir)
            return
        except OSError:
            pass  # created meanwhile: fall back to per-file moves
    out_dir.mkdir(parents=True, exist_ok=True)
    files = sorted((p for p in staging.rglob("*") if p.is_file()),
                   key=lambda p: (p.name == "report.html", p.name == "summary.json", p.parent == staging, str(p)))
    for p in files:
        dest = out_dir / p.relative_to(staging)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(p, dest)
    shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------
# Training history
# ---------------------------------------------------------------------------------------------------------


def training_info(ckpt: dict[str, Any], ckpt_path: Path) -> tuple[list[dict], dict[str, Any]]:
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


# ---------------------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------------------


def run_report(ckpt_path: str | os.PathLike, out_dir: str | os.PathLike, images: Any = None,
               max_side: int | None = 1024, bench: str | os.PathLike | None = None,
               gates: Mapping[str, Any] | None = None, lpips: bool = True, *, run_bench: bool = False,
               bench_size: str = "1080p", heat_vmax: float | str = "auto", crop_size: int = 128,
               lpips_metric: M.LPIPSMetric | None = None, progress: bool = True) -> dict[str, Any]:
    """Write a fidelity report for a checkpoint into ``out_dir`` and return its summary.

    Args:
        ckpt_path: a checkpoint written by ``hdr-distill train``.
        out_dir: report folder (created; existing files of the same names are replaced).
        images: None for the checkpoint's held-out set (``config.data.val``), or a folder / file / list.
        max_side: longest image side; larger images are shrunk (area) first. None: full size.
        bench: a bench.json from ``hdr-distill bench`` (or its folder) for the speed table and gate.
        gates: ``{"psnr_min", "psnr_worst_min", "speedup_min"}`` thresholds (None values are skipped);
            None: ``DEFAULT_GATES``.
        lpips: compute LPIPS (AlexNet) when its weights are in the torch hub cache.
        run_bench: time this checkpoint's teacher against its student at ``bench_size`` here (short run).
        heat_vmax: top of the error heat-map scale in dE00, or "auto" (the largest 99th percentile of the
            example images' error, rounded up to 1-2-5; at least 1, about one just-noticeable difference).
        crop_size: side of the zoomed crops, pixels.
        lpips_metric: an ``LPIPSMetric`` to use instead of building one (tests: a random backbone).
        progress: print one line per image.

    Returns:
        The summary (as written to summary.json, before inf is made JSON-safe) plus ``"out_dir"``.

    Raises:
        CheckpointError: the checkpoint is missing or unreadable (the message names it).
        FileNotFoundError: an image path does not exist or a folder holds no images (named).
        ReportError: other bad arguments.
    """
    t_start = time.perf_counter()
    ckpt_path, out_dir = Path(ckpt_path), Path(out_dir)
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
    gates_cfg = dict(DEFAULT_GATES if gates is None else gates)
    evaluate_gates({}, None, gates_cfg)  # unknown gate names fail now, not after the work

    # Stage 1: checkpoint, teacher, student.
    ckpt = load_checkpoint(ckpt_path)
    sha = file_sha256(ckpt_path)
    teacher, model, student_fn, engine = load_models(ckpt)
    identity = teacher_identity(teacher)
    bench_data = load_bench(bench) if bench is not None else None

    # Stage 2: held-out images.
    source, source_desc = held_out_source(ckpt, images)
    if len(source) == 0:
        raise ReportError(f"no held-out images in {source_desc}")
    if lpips_metric is None:
        lpips_metric = M.LPIPSMetric() if lpips else None
    lpips_status = lpips_metric.status if lpips_metric is not None else "LPIPS not computed: disabled (lpips=false)"

    # Stage 3: every image through teacher and student, metrics per image.
    def linear_of(i: int):
        item = source[i]
        lin = downscale_max_side(item.linear, int(max_side) if max_side else None)
        if min(lin.shape[:2]) < M.SSIM_MIN_SIZE:
            raise ReportError(f"image '{item.name}' is {lin.shape[1]}x{lin.shape[0]}: smaller than SSIM's "
                              f"{M.SSIM_MIN_SIZE}x{M.SSIM_MIN_SIZE} window")
        return item.name, lin

    rows: list[dict[str, Any]] = []
    for i in range(len(source)):
        name, lin = linear_of(i)
        row, _ = evaluate_image(teacher, student_fn, lin, lpips_metric)
        rows.append({"index": i, "name": name, "height": lin.shape[0], "width": lin.shape[1], **row})
        if progress:
            print(f"  [{i + 1}/{len(source)}] {name:<28} PSNR {fmt('psnr', row['psnr']):>6} dB  "
                  f"SSIM {fmt('ssim', row['ssim'])}  dE00 {fmt('ciede2000_mean', row['ciede2000_mean'])}", flush=True)
    stats = M.summarize([{k: r[k] for k in M.METRICS} for r in rows])

    # Stage 4: speed (bench.json, or a short bench here).
    speed = None
    if bench_data is not None:
        speed = speed_summary(bench_data[0], ckpt, str(bench_data[1]))
    elif run_bench:
        if progress:
            print(f"  timing teacher vs student at {bench_size} ...", flush=True)
        speed = speed_summary(short_bench(teacher, model, bench_size), ckpt, f"a short bench in this run ({bench_size})")

    gate_rows = evaluate_gates(stats, speed, gates_cfg)
    passed = all(g["status"] != "FAIL" for g in gate_rows)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        figs = staging / "figures"
        figs.mkdir()
        # Stage 5: pictures. The chosen images are run again (teachers are deterministic; checked) rather
        # than keeping every image's outputs in memory.
        examples, notes = [], []
        chosen = []
        for idx, labels in pick_examples(stats.get("psnr", {})):
            name, lin = linear_of(idx)
            row, arrays = evaluate_image(teacher, student_fn, lin, None)
            if not _same(row["psnr"], rows[idx]["psnr"]):
                notes.append(f"'{name}': the second run gave PSNR {fmt('psnr', row['psnr'])} dB, not "
                             f"{fmt('psnr', rows[idx]['psnr'])} dB (non-deterministic teacher?); pictures show the second run")
            chosen.append((idx, labels, arrays))
        if heat_vmax in (None, "auto"):
            vmax = nice_ceil(max(float(np.percentile(a["error"], 99)) for _, _, a in chosen))
        else:
            vmax = float(heat_vmax)
        for idx, labels, arrays in chosen:
            label = "+".join(labels)
            files = example_figures(arrays, label, rows[idx], vmax, int(crop_size), figs,
                                    "HDR input, exposed for display" if teacher.input_space == "hdr" else "input")
            examples.append({"labels": labels, "index": idx, "name": rows[idx]["name"], **files})
        del chosen
        bars = P.metric_bars_png([r["name"] for r in rows], [r["psnr"] for r in rows], figs / "psnr_per_image.png",
                                 xlabel="PSNR (dB), display-referred", threshold=gates_cfg.get("psnr_min"),
                                 higher_better=True)
        history, train_info = training_info(ckpt, ckpt_path)
        curves = None
        if history:
            curves = P.curves_png(history, figs / "curves.png")
        bench_png = None
        if speed is not None:
            if speed["rows"]:
                P.speed_png(speed["rows"], figs / "speed.png", teacher=f"teacher ({speed['teacher_method']})")
                bench_png = "figures/speed.png"

        # Stage 6: tables and files.
        worst_i = stats.get("psnr", {}).get("worst_index")
        summary = {
            "format": FORMAT,
            "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "headline": {
                "psnr_mean": stats["psnr"]["mean"], "psnr_worst": stats["psnr"]["worst"],
                "psnr_worst_image": rows[worst_i]["name"] if worst_i is not None else None,
                "speedup": speed["headline"]["speedup"] if speed and speed["headline"] else None,
                "speedup_size": speed["headline"]["size"] if speed and speed["headline"] else None,
            },
            "gates": gate_rows, "passed": passed,
            "metrics": stats,
            "metric_definitions": {k: v[2] for k, v in M.METRICS.items()},
            "display_referred": DISPLAY_STATEMENT,
            "lpips": {"available": bool(lpips_metric is not None and lpips_metric.available),
                      "meaningful": bool(lpips_metric is not None and lpips_metric.available and lpips_metric.meaningful),
                      "status": lpips_status, "how_to_enable": M.lpips_weights_help("alex")},
            "images": {"source": source_desc, "count": len(rows), "max_side": max_side},
            "per_image": rows,
            "per_image_csv": "per_image.csv",
            "examples": examples, "heat_map": {"metric": HEAT_LABEL, "vmax": vmax, "vmin": 0.0},
            "speed": None if speed is None else {k: v for k, v in speed.items() if k != "results"},
            "checkpoint": {"path": str(ckpt_path), "sha256": sha, "step": ckpt.get("step")},
            "teacher": identity,
            "student": {"config": (ckpt.get("config") or {}).get("student"), "engine": engine,
                        "parameters": int(sum(p.numel() for p in model.parameters()))},
            "training": {**train_info, "curves": "figures/curves.png" if curves else None},
            "machine": _machine(),
            "notes": notes,
            "json_notes": INF_NOTE,
            "wall_time_s": None,
        }
        summary["wall_time_s"] = round(time.perf_counter() - t_start, 2)
        figures = {"bars": "figures/" + bars.name, "bench": bench_png}
        write_csv(rows, staging / "per_image.csv")
        (staging / "summary.json").write_text(json.dumps(json_safe(summary), indent=2, allow_nan=False))
        (staging / "report.html").write_text(render_html(json_safe(summary), figures), encoding="utf-8")
        publish(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    print(f"report: {out_dir / 'report.html'}  ({'all gates pass' if passed else 'GATE FAILED'})", flush=True)
    return {**summary, "out_dir": str(out_dir)}


def _same(a: float, b: float) -> bool:
    return a == b or (math.isfinite(a) and math.isfinite(b) and abs(a - b) < 1e-4)


def _machine() -> dict[str, Any]:
    from distill.eval.bench import machine_info

    info = machine_info(torch.get_num_threads())
    info["numpy"] = np.__version__
    try:  # timings on a busy machine are slow: say how busy it was
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    return info


# ---------------------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------------------

CSS = """
* { box-sizing: border-box; }
body { margin: 0; background: #f4f5f7; color: #1f2430; line-height: 1.45;
  font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "DejaVu Sans", Arial, sans-serif; }
header { background: #1f2430; color: #fff; padding: 22px 40px 18px; }
header h1 { margin: 0 0 4px; font-size: 26px; font-weight: 650; }
header h1 code { font-size: inherit; background: #343b4a; padding: 0 8px; border-radius: 5px; }
header .sub { color: #c5cad3; font-size: 14px; }
main { padding: 8px 40px 40px; max-width: 1800px; }
h2 { font-size: 20px; margin: 34px 0 10px; padding-bottom: 6px; border-bottom: 2px solid #dde1e6; }
.cards { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 18px; margin-top: 22px; }
.card { background: #fff; border-radius: 10px; padding: 18px 22px; box-shadow: 0 1px 3px rgba(0,0,0,.08);
  border-top: 6px solid #8c959f; }
.card.pass { border-top-color: #1a7f37; } .card.fail { border-top-color: #cf222e; }
.card .label { font-size: 13px; text-transform: uppercase; letter-spacing: .07em; color: #5b6475; font-weight: 600; }
.card .big { font-size: 60px; font-weight: 700; line-height: 1.1; margin: 6px 0 2px; font-variant-numeric: tabular-nums; }
.card .big .unit { font-size: 26px; font-weight: 600; color: #5b6475; margin-left: 6px; }
.card.pass .big { color: #1a7f37; } .card.fail .big { color: #cf222e; }
.card .big.na { font-size: 34px; color: #8c959f; padding: 14px 0 8px; }
.card .sub { font-size: 14px; color: #5b6475; }
.minor { display: flex; flex-wrap: wrap; gap: 10px 34px; margin: 16px 2px 0; font-size: 15px; color: #3b4252; }
.minor b { font-size: 19px; color: #1f2430; font-variant-numeric: tabular-nums; }
.gates { margin-top: 8px; }
.gate { display: flex; align-items: center; gap: 16px; background: #fff; border-radius: 8px; padding: 10px 16px;
  margin: 8px 0; font-size: 18px; box-shadow: 0 1px 2px rgba(0,0,0,.06); }
.badge { display: inline-block; min-width: 150px; text-align: center; color: #fff; font-weight: 700;
  border-radius: 6px; padding: 4px 10px; font-size: 17px; letter-spacing: .04em; }
.badge.PASS { background: #1a7f37; } .badge.FAIL { background: #cf222e; } .badge.NA { background: #8c959f; }
.verdict { font-size: 15px; color: #5b6475; margin: 4px 2px; }
figure { margin: 14px 0 26px; background: #fff; border-radius: 8px; padding: 12px; box-shadow: 0 1px 2px rgba(0,0,0,.06); }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figure img.crop { max-width: min(100%, 1000px); }
figcaption { font-size: 14px; color: #5b6475; margin-top: 6px; }
.example h3 { margin: 22px 0 4px; font-size: 17px; }
.tag { display: inline-block; font-size: 12px; font-weight: 700; text-transform: uppercase; letter-spacing: .06em;
  border-radius: 4px; padding: 2px 7px; margin-right: 6px; color: #fff; background: #5b6475; }
.tag.worst { background: #cf222e; } .tag.median { background: #9a6700; } .tag.best { background: #1a7f37; }
table { border-collapse: collapse; background: #fff; font-size: 14px; margin: 8px 0 18px; box-shadow: 0 1px 2px rgba(0,0,0,.06); }
th, td { padding: 6px 12px; border-bottom: 1px solid #e4e7eb; text-align: right; font-variant-numeric: tabular-nums; }
th { background: #eef0f3; font-weight: 650; }
td.l, th.l { text-align: left; }
tr.hi td { background: #fff8e1; }
.note { background: #fff; border-left: 5px solid #9a6700; padding: 8px 14px; margin: 10px 0; font-size: 14px; }
.kv { width: 100%; table-layout: fixed; }
.kv td { text-align: left; overflow-wrap: anywhere; vertical-align: top; }
.kv td:first-child { color: #5b6475; width: 34%; }
code, pre { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13px; }
pre { background: #fff; padding: 10px 14px; border-radius: 6px; overflow-x: auto; margin: 6px 0; }
.two { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 22px; }
.verdict-pill { float: right; margin-top: 4px; font-size: 18px; font-weight: 700; padding: 6px 16px; border-radius: 8px; }
.verdict-pill.PASS { background: #1a7f37; } .verdict-pill.FAIL { background: #cf222e; } .verdict-pill.NA { background: #5b6475; }
@media (max-width: 1100px) { .cards, .two { grid-template-columns: 1fr; } }
"""


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _num(key: str, value: Any, kind: str) -> str:
    """A number as it appears in summary.json: ``data-key`` is its path there (tests compare the two)."""
    return f'<span class="num" data-key="{_e(key)}" data-value="{_e(json.dumps(value))}">{_e(fmt(kind, value))}</span>'


def _metric_value(s: Mapping[str, Any], key: str) -> Any:
    """Walk a dotted path in the summary ("metrics.psnr.mean", "per_image.3.ssim")."""
    cur: Any = s
    for part in key.split("."):
        cur = cur[int(part)] if isinstance(cur, list) else cur[part]
    return cur


def _gate_status(s: Mapping[str, Any], gate: str) -> str:
    g = next((g for g in s["gates"] if g["gate"] == gate), None)
    return "" if g is None or g["status"] == "NOT MEASURED" else g["status"].lower()


def _baseline(stats: Mapping[str, Any]) -> str:
    """'; doing nothing: X dB' so that a PSNR reads against what the student had to add."""
    mean = (stats.get("psnr_input") or {}).get("mean")
    if mean is None:
        return ""
    return f'; doing nothing (input as output): {_num("metrics.psnr_input.mean", mean, "psnr")} dB'


def render_html(s: Mapping[str, Any], figures: Mapping[str, str | None]) -> str:
    """The report page: headline numbers, gates, pictures, then tables. ``s`` is the JSON-safe summary."""
    t, head, stats = s["teacher"], s["headline"], s["metrics"]
    parts: list[str] = []
    add = parts.append
    add(f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>hdr-distill report: {_e(t['name'])}</title><style>{CSS}</style></head><body>")
    add(f"<header>{_verdict_pill(s['gates'])}")
    add(f"<h1>Fidelity report: student of <code>{_e(t['name'])}</code></h1>"
        f"<div class=\"sub\">{s['images']['count']} held-out image(s) &middot; {_e(s['images']['source'])} &middot; "
        f"checkpoint step {_e(s['checkpoint']['step'])} &middot; {_e(s['created'])}</div></header><main>")

    # Headline: mean PSNR, worst PSNR, speed-up.
    add('<div class="cards">')
    add(f'<div class="card {_gate_status(s, "psnr_min")}"><div class="label">Mean PSNR</div>'
        f'<div class="big">{_num("headline.psnr_mean", head["psnr_mean"], "psnr")}<span class="unit">dB</span></div>'
        f'<div class="sub">student vs teacher, display-referred, {s["images"]["count"]} image(s)'
        f'{_baseline(stats)}</div></div>')
    add(f'<div class="card {_gate_status(s, "psnr_worst_min")}"><div class="label">Worst PSNR</div>'
        f'<div class="big">{_num("headline.psnr_worst", head["psnr_worst"], "psnr")}<span class="unit">dB</span></div>'
        f'<div class="sub">on {_e(head["psnr_worst_image"])}</div></div>')
    if head["speedup"] is not None:
        sp = s["speed"]
        add(f'<div class="card {_gate_status(s, "speedup_min")}"><div class="label">Speed-up at {_e(head["speedup_size"])}</div>'
            f'<div class="big">{_num("headline.speedup", head["speedup"], "speedup")}<span class="unit">&times;</span></div>'
            f'<div class="sub">teacher time / student time (medians); {len(sp["rows"])} size(s), see Speed</div></div>')
    else:
        add('<div class="card"><div class="label">Speed-up</div><div class="big na">not measured</div>'
            '<div class="sub">pass bench=&lt;bench.json&gt; or run_bench=true</div></div>')
    add("</div>")
    minor = [("SSIM mean", "metrics.ssim.mean", "ssim", ""), ("dE00 mean", "metrics.ciede2000_mean.mean", "ciede2000_mean", ""),
             ("dE00 p95 (mean over images)", "metrics.ciede2000_p95.mean", "ciede2000_p95", "")]
    add('<div class="minor">')
    for label, key, kind, _ in minor:
        add(f"<span>{_e(label)} <b>{_num(key, _metric_value(s, key), kind)}</b></span>")
    if s["lpips"]["available"] and "lpips" in stats and stats["lpips"]["mean"] is not None:
        warn = "" if s["lpips"]["meaningful"] else " (random backbone: meaningless)"
        add(f"<span>LPIPS mean <b>{_num('metrics.lpips.mean', stats['lpips']['mean'], 'lpips')}</b>{_e(warn)}</span>")
    else:
        add("<span>LPIPS <b>not computed</b> (see below)</span>")
    add("</div>")

    # Gates.
    add("<h2>Gates</h2><div class=\"gates\">")
    if not s["gates"]:
        add('<p class="verdict">No gates configured.</p>')
    for g in s["gates"]:
        cls = "NA" if g["status"] == "NOT MEASURED" else g["status"]
        add(f'<div class="gate"><span class="badge {cls}">{_e(g["status"])}</span><span>{_e(g["text"])}</span></div>')
    verdict = "All gates pass." if s["passed"] else "At least one gate FAILS."
    add(f'<p class="verdict">{verdict} (fail_on_gate=true makes <code>hdr-distill report</code> exit with status 1 on a failure.)</p></div>')
    for n in s["notes"]:
        add(f'<div class="note">{_e(n)}</div>')

    # Pictures.
    hm = s["heat_map"]
    add("<h2>Worst, median and best image</h2>")
    add(f'<p class="verdict">Chosen by PSNR. Each row: the student\'s input | the teacher\'s output | the student\'s '
        f'output | per-pixel error, {_e(hm["metric"])}, on one fixed scale for the whole report: 0 (black) to '
        f'{_num("heat_map.vmax", hm["vmax"], "g")} (white-yellow; 1 is about one just-noticeable difference). '
        f'Below each row: the crop where the mean error is largest (cyan box), enlarged.</p>')
    for ex in s["examples"]:
        tags = "".join(f'<span class="tag {lab}">{_e(lab)}</span>' for lab in ex["labels"])
        i = ex["index"]
        add(f'<div class="example"><h3>{tags}{_e(ex["name"])} &mdash; PSNR '
            f'{_num(f"per_image.{i}.psnr", s["per_image"][i]["psnr"], "psnr")} dB, SSIM '
            f'{_num(f"per_image.{i}.ssim", s["per_image"][i]["ssim"], "ssim")}, mean dE00 '
            f'{_num(f"per_image.{i}.ciede2000_mean", s["per_image"][i]["ciede2000_mean"], "ciede2000_mean")}</h3>')
        add(f'<figure><img src="{_e(ex["full"])}" alt="input, teacher, student, error for {_e(ex["name"])}"></figure>')
        add(f'<figure><img class="crop" src="{_e(ex["crop"])}" alt="largest-error crop of {_e(ex["name"])}"></figure></div>')

    # Tables.
    add("<h2>Metrics over all images</h2>")
    add('<table><tr><th class="l">metric</th><th>mean</th><th>median</th><th>worst</th><th>best</th>'
        '<th class="l">worst image</th><th class="l">definition</th></tr>')
    for m, (_, unit, desc) in M.METRICS.items():
        st = stats.get(m)
        if st is None:
            continue
        if st["n"] == 0:
            add(f'<tr><td class="l">{_e(m)}</td><td colspan="5" class="l">not computed</td><td class="l">{_e(desc)}</td></tr>')
            continue
        cells = "".join(f"<td>{_num(f'metrics.{m}.{k}', st[k], m)}</td>" for k in ("mean", "median", "worst", "best"))
        wn = s["per_image"][st["worst_index"]]["name"]
        add(f'<tr><td class="l">{_e(m)}{f" ({_e(unit)})" if unit else ""}</td>{cells}<td class="l">{_e(wn)}</td>'
            f'<td class="l">{_e(desc)}</td></tr>')
    add("</table>")
    add(f'<p class="verdict">{_e(s["display_referred"])} {_e(s["json_notes"])}</p>')
    add(f'<div class="note"><b>LPIPS:</b> {_e(s["lpips"]["status"])}</div>')
    if not s["lpips"]["available"]:
        add(f"<pre>{_e(s['lpips']['how_to_enable'])}</pre>")

    add("<h2>Per image</h2>")
    if figures.get("bars"):
        add(f'<figure><img src="{_e(figures["bars"])}" alt="PSNR per image"></figure>')
    add(f'<p class="verdict">Sorted worst first; all rows are in <a href="{_e(s["per_image_csv"])}">'
        f'{_e(s["per_image_csv"])}</a>. Highlighted: the images shown above.</p>')
    shown = {ex["index"] for ex in s["examples"]}
    order = sorted(range(len(s["per_image"])), key=lambda i: _sort_key(s["per_image"][i]["psnr"]))
    add('<table><tr><th class="l">image</th><th>size</th><th>PSNR (dB)</th><th>SSIM</th><th>dE00 mean</th>'
        '<th>dE00 p95</th><th>LPIPS</th></tr>')
    limit = 300
    for i in order[:limit]:
        r = s["per_image"][i]
        cells = "".join(f"<td>{_num(f'per_image.{i}.{m}', r[m], m)}</td>" for m in M.METRICS)
        add(f'<tr class="{"hi" if i in shown else ""}"><td class="l">{_e(r["name"])}</td>'
            f'<td>{r["width"]}&times;{r["height"]}</td>{cells}</tr>')
    add("</table>")
    if len(order) > limit:
        add(f'<p class="verdict">{len(order) - limit} more rows in the CSV.</p>')

    add("<h2>Speed</h2>")
    sp = s["speed"]
    if sp is None:
        add('<p class="verdict">Not measured: pass <code>bench=&lt;path to bench.json&gt;</code> (from '
            '<code>hdr-distill bench checkpoint=...</code>) or <code>run_bench=true</code>.</p>')
    else:
        mach = sp.get("machine") or {}
        add(f'<p class="verdict">From {_e(sp["source"])}. Teacher: <code>{_e(sp["teacher_method"])}</code> '
            f'({_e(sp["match"])}). Median wall time per image; {_e(mach.get("threads", "?"))} threads on '
            f'{_e(mach.get("cpu", "?"))}.{_load_note(s["machine"], sp["source"])}</p>')
        if sp["rows"]:
            mem = any("teacher_extra_mb" in r or "student_extra_mb" in r for r in sp["rows"])
            add('<table><tr><th class="l">size</th><th>megapixels</th><th>teacher (ms)</th><th class="l">student</th>'
                '<th>student (ms)</th><th>speed-up</th>'
                + ('<th>teacher memory (MB)</th><th>student memory (MB)</th>' if mem else "") + "</tr>")
            for k, r in enumerate(sp["rows"]):
                mem_cells = "".join(
                    f'<td>{_num(f"speed.rows.{k}.{who}_extra_mb", r[f"{who}_extra_mb"], "mb")}</td>'
                    if f"{who}_extra_mb" in r else "<td>n/a</td>" for who in ("teacher", "student")) if mem else ""
                add(f'<tr><td class="l">{_e(r["size"])}</td><td>{fmt("mp", r["megapixels"])}</td>'
                    f'<td>{_num(f"speed.rows.{k}.teacher_ms", r["teacher_ms"], "ms")}</td><td class="l">{_e(r["student_method"])}</td>'
                    f'<td>{_num(f"speed.rows.{k}.student_ms", r["student_ms"], "ms")}</td>'
                    f'<td>{_num(f"speed.rows.{k}.speedup", r["speedup"], "speedup")}&times;</td>{mem_cells}</tr>')
            add("</table>")
            if mem:
                add(f'<p class="verdict">Memory: {_e(sp.get("memory_method") or "peak memory growth of one call")}.</p>')
        if figures.get("bench"):
            add(f'<figure><img src="{_e(figures["bench"])}" alt="teacher vs student time" style="max-width:900px"></figure>')

    add("<h2>Training</h2>")
    tr = s["training"]
    if tr.get("curves"):
        add(f'<figure><img src="{_e(tr["curves"])}" alt="training curves"></figure>')
    else:
        add('<p class="verdict">No training history in the checkpoint or its run folder.</p>')

    add("<h2>What was compared</h2><div class=\"two\"><div>")
    ck, st_ = s["checkpoint"], s["student"]
    kv = [("teacher", t["name"]), ("teacher spaces", f"{t['input_space']} in, {t['output_space']} out"),
          ("checkpoint", ck["path"]), ("sha256", ck["sha256"]), ("step", ck["step"]),
          ("held-out val PSNR at training end",
           f"{tr['val_psnr_db']} dB (training run's summary.json)" if tr.get("val_psnr_db") is not None else "n/a"),
          ("student engine", st_["engine"]), ("student parameters", f"{st_['parameters']:,}"),
          ("images", s["images"]["source"]), ("max side", s["images"]["max_side"]),
          ("report wall time", f"{s['wall_time_s']} s")]
    add('<table class="kv">' + "".join(f"<tr><td>{_e(k)}</td><td><code>{_e(v)}</code></td></tr>" for k, v in kv) + "</table>")
    mach = s["machine"]
    add('<table class="kv">' + "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in
                                       (("CPU", mach.get("cpu")), ("cores", mach.get("cores")),
                                        ("threads", mach.get("threads")), ("torch", mach.get("torch")),
                                        ("load average (1 min) at the end", mach.get("load_average_1min")),
                                        ("numpy", mach.get("numpy")), ("python", mach.get("python")))) + "</table>")
    add("</div><div>")
    add(f"<b>Teacher parameters</b><pre>{_e(json.dumps(t['params'], indent=2))}</pre>")
    add(f"<b>Student config</b><pre>{_e(json.dumps(st_['config'], indent=2))}</pre>")
    add("</div></div>")
    add('<p class="verdict">Files: <a href="summary.json">summary.json</a> (all numbers), '
        '<a href="per_image.csv">per_image.csv</a>, figures/.</p>')
    add("</main></body></html>\n")
    return "\n".join(parts)


def _load_note(machine: Mapping[str, Any], source: str) -> str:
    """A warning when this run timed things on a machine busier than its cores."""
    load, cores = machine.get("load_average_1min"), machine.get("cores")
    if not source.startswith("a short bench in this run") or load is None or not cores or load <= cores:
        return ""
    return (f" <b>Caution:</b> the load average was {load:g} on {cores} cores during this run; other work "
            "slowed these timings (rerun on an idle machine).")


def _verdict_pill(gates: Sequence[Mapping[str, Any]]) -> str:
    status = [g["status"] for g in gates]
    n_fail, n_na = status.count("FAIL"), status.count("NOT MEASURED")
    if n_fail:
        cls, text = "FAIL", f"{n_fail} GATE{'S' if n_fail > 1 else ''} FAILED"
    elif not status or n_na == len(status):
        cls, text = "NA", "NO GATE MEASURED"
    else:
        cls, text = "PASS", "GATES PASS" + (f" ({n_na} not measured)" if n_na else "")
    return f'<span class="verdict-pill {cls}">{text}</span>'


def _sort_key(v: Any) -> float:
    if v == "inf":
        return math.inf
    return -math.inf if v is None else float(v)


# ---------------------------------------------------------------------------------------------------------
# Hydra entry point
# ---------------------------------------------------------------------------------------------------------


def run(cfg) -> dict[str, Any]:
    """``hdr-distill report`` (conf/report.yaml). Exits with status 1 when a gate fails and ``fail_on_gate``."""
    from omegaconf import OmegaConf

    from distill.train.checkpoint import CheckpointError
    from distill.core.io import ImageError

    c = OmegaConf.to_container(cfg, resolve=True)
    if c.get("threads"):
        torch.set_num_threads(int(c["threads"]))
    try:
        summary = run_report(
            c["checkpoint"], c["out_dir"], images=c.get("images"), max_side=c.get("max_side"),
            bench=c.get("bench"), gates=c.get("gates"), lpips=bool(c.get("lpips", True)),
            run_bench=bool(c.get("run_bench", False)), bench_size=str(c.get("bench_size", "1080p")),
            heat_vmax=c.get("heat_vmax", "auto"), crop_size=int(c.get("crop_size", 128)))
    except (CheckpointError, ReportError, FileNotFoundError, ImageError) as e:
        # A clear one-line message and a non-zero exit, not a traceback.
        raise SystemExit(f"hdr-distill report: error: {e}") from None
    for g in summary["gates"]:
        print(f"  {g['status']:<12} {g['text']}")
    if c.get("fail_on_gate") and not summary["passed"]:
        raise SystemExit(1)
    return summary
