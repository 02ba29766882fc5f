"""Pictures for the fidelity report: error heat maps, side-by-side panels, training curves, worst crops.

Figures are drawn with matplotlib's object API on an Agg canvas (no pyplot, no global backend switch), so
they work headless and in threads and never change a user's interactive backend.

Example:
    >>> err = np.zeros((40, 60), np.float32); err[10, 50] = 5.0
    >>> worst_crop(err, 16, mode="peak")
    (2, 42, 18, 58)
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from distill.core.atomic import atomic_savefig

# Perceptually uniform, readable in grey print; dark = no error.
HEAT_CMAP = "inferno"
# Longest figure side in inches at DPI: keeps 12 MP inputs to ~1 MP PNGs.
MAX_INCHES = 10.0
DPI = 100


def _save(fig: Figure, path: str | Path) -> Path:
    FigureCanvasAgg(fig)
    return atomic_savefig(fig, path, dpi=DPI)


def _as_rgb(img: Any, name: str) -> np.ndarray:
    """One display image as float [H,W,3] in [0,1] (numpy channels-last or torch [3,H,W]/[1,3,H,W])."""
    from distill.eval.metrics import as_images

    arr = as_images(img, name)
    if arr.shape[0] != 1:
        raise ValueError(f"{name}: expected one image, got a batch of {arr.shape[0]}")
    return np.clip(arr[0], 0.0, 1.0)


def _as_err(err: Any, name: str = "err") -> np.ndarray:
    e = np.asarray(err, dtype=np.float32)
    if e.ndim != 2 or e.size == 0:
        raise ValueError(f"{name}: expected a per-pixel error map [H,W], got shape {e.shape}")
    if not np.isfinite(e).all():
        raise ValueError(f"{name}: contains NaN or Inf values")
    return e


def _heat(ax, fig: Figure, err: np.ndarray, vmax: float, label: str) -> None:
    """Heat map on ``ax`` with a colour bar whose label states the units and the fixed scale."""
    im = ax.imshow(err, cmap=HEAT_CMAP, vmin=0.0, vmax=vmax, interpolation="nearest")
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    # Units and the fixed scale on separate short lines, so the label fits beside any panel height.
    lines = [label, f"scale 0 to {vmax:g}"]
    above = float((err > vmax).mean() * 100)
    if above > 0:
        lines.append(f"{above:.1f}% of pixels above, shown as max" if above >= 0.1 else
                     "<0.1% of pixels above, shown as max")
    cb.set_label("\n".join(lines))


def error_heatmap_png(err: Any, path: str | Path, vmax: float, label: str, title: str | None = None) -> Path:
    """Write a per-pixel error map as a heat map with a colour bar and its stated, fixed scale.

    Args:
        err: error map [H,W] (e.g. ``metrics.error_map``), values >= 0.
        path: output PNG path (parent folders are created).
        vmax: top of the colour scale. Use the same value for every image of a report so that colours
            compare across images; values above it saturate, and the colour bar says how many do.
        label: what the values are, with units (e.g. ``"CIEDE2000 (dE00)"``).
        title: optional title above the map.

    Returns:
        The path written.
    """
    e = _as_err(err)
    if not vmax > 0:
        raise ValueError(f"vmax must be positive, got {vmax}")
    h, w = e.shape
    scale = MAX_INCHES / max(h, w)
    fig = Figure(figsize=(max(w * scale + 1.6, 4.0), max(h * scale, 3.0)), layout="constrained")
    ax = fig.add_subplot()
    _heat(ax, fig, e, vmax, label)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return _save(fig, path)


def side_by_side_png(panels: Sequence[tuple], path: str | Path, suptitle: str | None = None) -> Path:
    """Write images in one row, each with its title.

    Args:
        panels: ``(title, img)`` with an RGB image (numpy [H,W,3] or torch [3,H,W], values clipped to
            [0,1] for display), or ``(title, err, vmax, label)`` with an error map [H,W] drawn as a heat map
            with its colour bar (for the "input | teacher | student | error" rows).
        path: output PNG path.
        suptitle: optional line above the row.

    Returns:
        The path written.
    """
    if len(panels) == 0:
        raise ValueError("side_by_side_png: panels is empty")
    prepared = []
    for i, p in enumerate(panels):
        if len(p) == 2:
            prepared.append((str(p[0]), _as_rgb(p[1], f"panels[{i}] ('{p[0]}')"), None))
        elif len(p) == 4:
            prepared.append((str(p[0]), _as_err(p[1], f"panels[{i}] ('{p[0]}')"), (float(p[2]), str(p[3]))))
        else:
            raise ValueError(f"panels[{i}]: expected (title, img) or (title, err, vmax, label), got {len(p)} items")
    h = max(im.shape[0] for _, im, _ in prepared)
    panel_in = min(4.0, MAX_INCHES * 1.6 / len(prepared))  # per-panel width in inches
    aspect = h / max(im.shape[1] for _, im, _ in prepared)
    fig = Figure(figsize=(panel_in * len(prepared) * 1.08, panel_in * aspect + 0.8), layout="constrained")
    axes = fig.subplots(1, len(prepared), squeeze=False)[0]
    for ax, (title, im, heat) in zip(axes, prepared):
        if heat is None:
            ax.imshow(im, interpolation="nearest")
        else:
            _heat(ax, fig, im, heat[0], heat[1])
        ax.set_title(title)
        ax.set_axis_off()
    if suptitle:
        fig.suptitle(suptitle)
    return _save(fig, path)


def _num(v: Any) -> float | None:
    """CSV cell -> float, or None for an empty / missing / non-finite cell."""
    if v is None or (isinstance(v, str) and v.strip() == ""):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def curves_png(csv_rows: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Training loss and validation PSNR against step, side by side.

    Args:
        csv_rows: rows of the training history (``csv.DictReader`` of ``history.csv``: ``step``, ``loss``,
            ``val_psnr``; cells may be strings, empty cells are skipped).
        path: output PNG path.

    Returns:
        The path written.
    """
    rows = list(csv_rows)
    if not rows:
        raise ValueError("curves_png: csv_rows is empty (no training history)")
    if any("step" not in r for r in rows):
        raise ValueError("curves_png: every row needs a 'step' column")
    loss = [(float(r["step"]), _num(r.get("loss"))) for r in rows]
    loss = [(s, v) for s, v in loss if v is not None]
    val = [(float(r["step"]), _num(r.get("val_psnr"))) for r in rows]
    val = [(s, v) for s, v in val if v is not None]

    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax_loss, ax_val = fig.subplots(1, 2)
    if loss:
        ax_loss.plot(*zip(*loss), lw=1.2)
        if all(v > 0 for _, v in loss):
            ax_loss.set_yscale("log")
    else:
        ax_loss.text(0.5, 0.5, "no loss recorded", ha="center", va="center", transform=ax_loss.transAxes)
    ax_loss.set(xlabel="step", ylabel="L2 loss", title="Training loss")
    ax_loss.grid(alpha=0.3)
    if val:
        ax_val.plot(*zip(*val), marker="o", ms=3, lw=1.2, color="tab:green")
    else:
        ax_val.text(0.5, 0.5, "no validation recorded", ha="center", va="center", transform=ax_val.transAxes)
    ax_val.set(xlabel="step", ylabel="PSNR (dB)", title="Validation PSNR (held-out images)")
    ax_val.grid(alpha=0.3)
    return _save(fig, path)


def worst_crop(err: Any, size: int, mode: str = "mean") -> tuple[int, int, int, int]:
    """Box ``(y0, x0, y1, x1)`` (half-open) of the ``size`` x ``size`` crop where the error is largest.

    Args:
        err: error map [H,W].
        size: crop side in pixels; clamped to the image (a small image gives the whole image).
        mode: ``"mean"``: the window with the largest total error (robust to a single hot pixel; found
            exactly with an integral image); ``"peak"``: the window centred on the largest single error
            (shifted to stay inside the image), which always contains that pixel.

    Returns:
        ``(y0, x0, y1, x1)`` with ``y1 - y0 == min(size, H)`` and ``x1 - x0 == min(size, W)``;
        index as ``img[y0:y1, x0:x1]``.
    """
    e = _as_err(err)
    if int(size) != size or size < 1:
        raise ValueError(f"worst_crop: size must be a positive integer, got {size}")
    h, w = e.shape
    ch, cw = min(int(size), h), min(int(size), w)
    if mode == "peak":
        py, px = np.unravel_index(int(np.argmax(e)), e.shape)
        y0 = int(np.clip(py - ch // 2, 0, h - ch))
        x0 = int(np.clip(px - cw // 2, 0, w - cw))
    elif mode == "mean":
        # Integral image: window sums for every top-left corner in O(H W).
        s = np.zeros((h + 1, w + 1), np.float64)
        s[1:, 1:] = e.astype(np.float64).cumsum(0).cumsum(1)
        win = s[ch:, cw:] - s[:-ch, cw:] - s[ch:, :-cw] + s[:-ch, :-cw]  # [H-ch+1, W-cw+1]
        y0, x0 = (int(v) for v in np.unravel_index(int(np.argmax(win)), win.shape))
    else:
        raise ValueError(f"worst_crop: unknown mode '{mode}' (expected 'mean' or 'peak')")
    return y0, x0, y0 + ch, x0 + cw


def metric_bars_png(names: Sequence[str], values: Sequence[float | None], path: str | Path, xlabel: str,
                    threshold: float | None = None, higher_better: bool = True, max_bars: int = 60) -> Path:
    """One metric per image as horizontal bars, worst at the top, with an optional threshold line.

    Args:
        names: image names.
        values: one value per image (None: not computed, left out; inf: drawn at the plot's right edge and
            labelled "inf").
        path: output PNG path.
        xlabel: what the values are, with units.
        threshold: draw a dashed line here (e.g. the PSNR gate); bars on the wrong side are red.
        higher_better: whether larger values are better (decides "worst" and the colours).
        max_bars: more images than this: a histogram instead of bars.

    Returns:
        The path written.
    """
    if len(names) != len(values):
        raise ValueError(f"metric_bars_png: {len(names)} names but {len(values)} values")
    pairs = [(str(n), float(v)) for n, v in zip(names, values) if v is not None]
    if not pairs:
        raise ValueError("metric_bars_png: no values to plot")
    if any(math.isnan(v) for _, v in pairs):
        raise ValueError("metric_bars_png: values contain NaN")
    finite = [v for _, v in pairs if math.isfinite(v)]
    top = max(finite + ([threshold] if threshold is not None else []), default=1.0)
    lo = min(finite + ([threshold] if threshold is not None else []), default=0.0)
    span = max(top - lo, abs(top) * 0.05, 1e-6)
    right = top + 0.08 * span  # where an infinite value is drawn

    def bad(v: float) -> bool:
        return threshold is not None and (v < threshold if higher_better else v > threshold)

    if len(pairs) > max_bars:
        fig = Figure(figsize=(10, 3.6), layout="constrained")
        ax = fig.add_subplot()
        ax.hist([min(v, right) for _, v in pairs], bins=30, color="tab:blue")
        ax.set(xlabel=xlabel, ylabel="images", title=f"{len(pairs)} images")
    else:
        pairs.sort(key=lambda p: p[1], reverse=not higher_better)  # worst first
        fig = Figure(figsize=(10, 0.9 + 0.32 * len(pairs)), layout="constrained")
        ax = fig.add_subplot()
        ys = np.arange(len(pairs))[::-1]  # worst at the top
        shown = [min(v, right) for _, v in pairs]
        colors = ["tab:red" if bad(v) else "tab:green" if threshold is not None else "tab:blue" for _, v in pairs]
        base = lo - 0.15 * span if higher_better else 0.0
        ax.barh(ys, [s - base for s in shown], left=base, color=colors, height=0.7)
        for y, (_, v), s in zip(ys, pairs, shown):
            ax.text(s, y, f" {v:.2f}" if math.isfinite(v) else " inf", va="center", fontsize=9)
        ax.set_yticks(ys, [n for n, _ in pairs], fontsize=9)
        ax.set_xlim(base, right + 0.12 * span)
        ax.set_xlabel(xlabel)
    if threshold is not None:
        ax.axvline(threshold, ls="--", color="black", lw=1.2, label=f"gate {threshold:g}")
        ax.legend(loc="lower right", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def speed_png(rows: Sequence[Mapping[str, Any]], path: str | Path, teacher: str = "teacher") -> Path:
    """Teacher vs student median time per image size: paired horizontal bars on a log axis, speed-up labelled.

    Args:
        rows: one per image size: ``{"size", "teacher_ms", "student_ms"}`` (e.g. the report's speed rows).
        path: output PNG path.
        teacher: the teacher's name for the legend.

    Returns:
        The path written.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("speed_png: rows is empty (no timings)")
    for i, r in enumerate(rows):
        for k in ("size", "teacher_ms", "student_ms"):
            if k not in r:
                raise ValueError(f"speed_png: rows[{i}] lacks '{k}'")
        if not (r["teacher_ms"] > 0 and r["student_ms"] > 0):
            raise ValueError(f"speed_png: rows[{i}] times must be positive, got {r['teacher_ms']}, {r['student_ms']}")
    fig = Figure(figsize=(8.5, 1.2 + 0.9 * len(rows)), layout="constrained")
    ax = fig.add_subplot()
    ys = np.arange(len(rows))[::-1] * 1.0  # first size at the top
    h = 0.36
    t_ms = [float(r["teacher_ms"]) for r in rows]
    s_ms = [float(r["student_ms"]) for r in rows]
    ax.barh(ys + h / 2, t_ms, height=h, color="tab:gray", label=teacher)
    ax.barh(ys - h / 2, s_ms, height=h, color="tab:blue", label="student")
    ax.set_xscale("log")
    for y, t, s in zip(ys, t_ms, s_ms):
        ax.text(t, y + h / 2, f" {t:.1f} ms", va="center", fontsize=9)
        ratio = f"{t / s:.1f}x faster" if t >= s else f"{s / t:.1f}x slower"
        ax.text(s, y - h / 2, f" {s:.1f} ms  ({ratio})", va="center", fontsize=9, fontweight="bold")
    lo, hi = min(s_ms + t_ms), max(s_ms + t_ms)
    ax.set_xlim(lo / 2, hi * 6)  # room for the labels right of the longest bar
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))  # labels inside a single decade too
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 100, not 10^2
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks(ys, [str(r["size"]) for r in rows])
    ax.set_xlabel("median time per image (ms, log scale; lower is better)")
    ax.legend(loc="lower right", fontsize=9)
    ax.grid(axis="x", which="both", alpha=0.3)
    return _save(fig, path)
