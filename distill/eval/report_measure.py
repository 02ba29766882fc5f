"""Report stage 2, measure: every held-out image through teacher and student, metrics per image, and the
gates (thresholds, plus the check that the numbers are not those of a trivial teacher/student pair)."""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch

from distill.core.color import linear_to_srgb
from distill.core.io import ImageError
from distill.data.pairs import image_pair
from distill.eval import metrics as M
from distill.eval.report_collect import DEFAULT_GATES, Collected, ReportError
from distill.eval.report_format import fmt

IDENTITY_GATE = "not_identity"


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


def measure(c: Collected, progress: bool = True) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(per-image rows, ``metrics.summarize`` of them) over every held-out image."""
    rows: list[dict[str, Any]] = []
    n = len(c.source)
    for i in range(n):
        try:
            name, lin = c.image(i)
        except (ImageError, ReportError, OSError) as e:  # a bad file is named, counted and left out
            files = getattr(c.source, "files", None)
            c.skipped.append((str(files[i]) if files is not None and i < len(files) else f"image {i}", str(e)))
            if progress:
                print(f"  [{i + 1}/{n}] skipped: {e}", flush=True)
            continue
        row, _ = evaluate_image(c.teacher, c.student_fn, lin, c.lpips_metric)
        rows.append({"index": i, "name": name, "height": lin.shape[0], "width": lin.shape[1], **row})
        if progress:
            print(f"  [{i + 1}/{n}] {name:<28} PSNR {fmt('psnr', row['psnr']):>6} dB  "
                  f"SSIM {fmt('ssim', row['ssim'])}  dE00 {fmt('ciede2000_mean', row['ciede2000_mean'])}", flush=True)
    if not rows:
        raise ReportError(f"none of the {n} held-out images could be read; first problem: {c.skipped[0][1]}")
    return rows, M.summarize([{k: r[k] for k in M.METRICS} for r in rows])


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


def identity_gate(rows: list[Mapping[str, Any]]) -> dict[str, Any] | None:
    """A FAIL row when every image's PSNR is inf, else None.

    A learned approximation is never bit-exact on every image; when it is, the pair was trivial (the teacher
    returns its input, or edits it in place so that the input seen is already the output) and the PSNR
    gates would PASS on nothing.
    """
    psnrs = [r.get("psnr") for r in rows]
    if not psnrs or any(v is None or not math.isinf(v) or v < 0 for v in psnrs):
        return None
    inputs = [r.get("psnr_input") for r in rows]
    if all(v is not None and math.isinf(v) and v > 0 for v in inputs):
        text = ("PSNR is inf on every image, and so is the do-nothing baseline: the student's output equals the "
                "teacher's input. The teacher is the identity here (or edits its input in place); nothing was "
                "distilled and the PSNR gates mean nothing")
    else:
        text = ("PSNR is inf on every image: the student's output equals the teacher's bit for bit, which a "
                "learned student never does; the teacher is trivial (e.g. the identity in the student's own "
                "space), so the PSNR gates mean nothing")
    return {"gate": IDENTITY_GATE, "what": "student differs from a trivial copy", "value": None, "threshold": None,
            "status": "FAIL", "text": text}
