"""Report pictures: files exist with the expected pixels, and the worst crop is where the error is."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from distill.eval import plots as P


def _png(path):
    img = imread(path)  # [H,W,4] float in [0,1]
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    return img


def test_error_heatmap_png(tmp_path):
    err = np.zeros((60, 90), np.float32)
    err[20:30, 40:60] = 3.0
    out = P.error_heatmap_png(err, tmp_path / "sub" / "heat.png", vmax=5.0, label="CIEDE2000 (dE00)")
    img = _png(out)
    # Landscape map -> landscape figure, and it is not a blank canvas (map + colour bar drawn).
    assert img.shape[1] > img.shape[0]
    assert img[..., :3].std() > 0.05
    with pytest.raises(ValueError, match="vmax"):
        P.error_heatmap_png(err, tmp_path / "x.png", vmax=0, label="x")
    with pytest.raises(ValueError, match=r"\[H,W\]"):
        P.error_heatmap_png(np.zeros((4, 4, 3)), tmp_path / "x.png", vmax=1, label="x")


def test_heat_scale_is_stated_on_colour_bar():
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    err = np.array([[0.0, 1.0], [2.0, 8.0]], np.float32)
    P._heat(ax, fig, err, vmax=4.0, label="dE00")
    cbar_ax = [a for a in fig.axes if a is not ax][0]
    text = cbar_ax.get_ylabel()
    assert "dE00" in text and "0 to 4" in text and "25.0% of pixels above" in text
    assert ax.images[0].get_clim() == (0.0, 4.0)


def test_side_by_side_png(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.random((40, 50, 3)).astype(np.float32)
    t = torch.from_numpy(rgb).permute(2, 0, 1)  # torch [3,H,W] accepted too
    err = rng.random((40, 50)).astype(np.float32)
    out = P.side_by_side_png(
        [("input", rgb), ("teacher", t), ("student", rgb * 0.9), ("error", err, 1.0, "dE00")],
        tmp_path / "row.png", suptitle="worst image",
    )
    img = _png(out)
    assert img.shape[1] > 2 * img.shape[0]  # four panels in one row
    with pytest.raises(ValueError, match="empty"):
        P.side_by_side_png([], tmp_path / "y.png")
    with pytest.raises(ValueError, match=r"panels\[0\]"):
        P.side_by_side_png([("bad", rgb[..., :2])], tmp_path / "y.png")


def test_curves_png_reads_csv_rows(tmp_path):
    text = "step,loss,val_psnr,pairs_per_s,elapsed_s\n1,0.5,,10,1\n2,0.25,21.5,10,2\n3,0.1,,10,3\n4,0.05,30.2,10,4\n"
    rows = list(csv.DictReader(io.StringIO(text)))
    out = P.curves_png(rows, tmp_path / "curves.png")
    img = _png(out)
    assert img.shape[0] > 100 and img.shape[1] > 2 * img.shape[0]
    # No validation at all still draws (with a note), empty history is an error.
    P.curves_png([{"step": 1, "loss": 0.3}], tmp_path / "c2.png")
    with pytest.raises(ValueError, match="empty"):
        P.curves_png([], tmp_path / "c3.png")


def _brute_force_best(err, size):
    h, w = err.shape
    best, box = -1.0, None
    for y in range(h - size + 1):
        for x in range(w - size + 1):
            s = err[y:y + size, x:x + size].sum()
            if s > best:
                best, box = s, (y, x, y + size, x + size)
    return best, box


def test_worst_crop_mean_is_the_largest_window():
    rng = np.random.default_rng(1)
    err = rng.random((23, 31)).astype(np.float32)
    best, _ = _brute_force_best(err.astype(np.float64), 7)
    y0, x0, y1, x1 = P.worst_crop(err, 7)
    assert (y1 - y0, x1 - x0) == (7, 7)
    assert err[y0:y1, x0:x1].astype(np.float64).sum() == pytest.approx(best, rel=1e-9)


def test_worst_crop_contains_argmax():
    # A smooth error blob: both modes put its peak inside the crop.
    yy, xx = np.mgrid[0:80, 0:120]
    err = np.exp(-((yy - 61) ** 2 + (xx - 17) ** 2) / 50.0).astype(np.float32)
    py, px = np.unravel_index(err.argmax(), err.shape)
    for mode in ("mean", "peak"):
        y0, x0, y1, x1 = P.worst_crop(err, 16, mode=mode)
        assert y0 <= py < y1 and x0 <= px < x1 and (y1 - y0, x1 - x0) == (16, 16)
    # "peak" always contains the single largest error, even near a border and in noise.
    rng = np.random.default_rng(2)
    for _ in range(20):
        err = rng.random((30, 40)).astype(np.float32)
        py, px = np.unravel_index(err.argmax(), err.shape)
        y0, x0, y1, x1 = P.worst_crop(err, 9, mode="peak")
        assert y0 <= py < y1 and x0 <= px < x1
        assert 0 <= y0 and y1 <= 30 and 0 <= x0 and x1 <= 40


def test_worst_crop_edge_cases():
    err = np.zeros((5, 8), np.float32)
    assert P.worst_crop(err, 64) == (0, 0, 5, 8)  # clamped to the image
    with pytest.raises(ValueError, match="size"):
        P.worst_crop(err, 0)
    with pytest.raises(ValueError, match="unknown mode"):
        P.worst_crop(err, 2, mode="max")
