"""Report stage 3, pick examples: which images are shown (worst, median, best by PSNR), which crop of each
(where the error is largest), the heat-map scale, and their figures."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from distill.eval import plots as P
from distill.eval.report_collect import Collected
from distill.eval.report_format import fmt, same
from distill.eval.report_measure import evaluate_image

HEAT_LABEL = "CIEDE2000 (dE00)"


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


def examples(c: Collected, rows: list[dict[str, Any]], stats: Mapping[str, Any], heat_vmax: float | str | None,
             crop_size: int, folder: Path) -> tuple[list[dict[str, Any]], list[str], float]:
    """Figures of the picked images in ``folder``: (example entries, notes, heat-map top in dE00).

    The chosen images are run again (teachers are deterministic; checked) rather than keeping every image's
    outputs in memory.
    """
    notes, chosen = [], []
    for idx, labels in pick_examples(stats.get("psnr", {})):
        name, lin = c.image(rows[idx]["index"])  # rows leave out unreadable images: the source's own index
        row, arrays = evaluate_image(c.teacher, c.student_fn, lin, None)
        if not same(row["psnr"], rows[idx]["psnr"]):
            notes.append(f"'{name}': the second run gave PSNR {fmt('psnr', row['psnr'])} dB, not "
                         f"{fmt('psnr', rows[idx]['psnr'])} dB (non-deterministic teacher?); pictures show the second run")
        chosen.append((idx, labels, arrays))
    if heat_vmax in (None, "auto"):
        vmax = nice_ceil(max(float(np.percentile(a["error"], 99)) for _, _, a in chosen))
    else:
        vmax = float(heat_vmax)
    input_title = "HDR input, exposed for display" if c.teacher.input_space == "hdr" else "input"
    out = []
    for idx, labels, arrays in chosen:
        label = "+".join(labels)
        files = example_figures(arrays, label, rows[idx], vmax, int(crop_size), folder, input_title)
        out.append({"labels": labels, "index": idx, "name": rows[idx]["name"], **files})
    return out, notes, vmax
