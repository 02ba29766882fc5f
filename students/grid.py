"""Bilateral-grid operations as pure functions: guide -> slice -> apply (HDRNet, Gharbi et al. 2017).

Conventions (shared with the fused inference path in students/fused.py, which must agree numerically):

* A grid is ``[B, 12, D, Gh, Gw]``: 12 affine coefficients (3 output rows x 4: r, g, b weights, then bias),
  ``D`` intensity bins, ``Gh x Gw`` spatial cells.
* Cells are *centred*: pixel ``(i, j)`` of an ``H x W`` image sits at grid coordinates
  ``gx = (j + 0.5) * Gw / W - 0.5``, ``gy = (i + 0.5) * Gh / H - 0.5`` and intensity coordinate
  ``gz = g * D - 0.5`` for guide value ``g`` in [0, 1]. Coordinates outside ``[0, G-1]`` are clamped to the
  border (this is ``grid_sample(align_corners=False, padding_mode="border")``).
* Interpolation is trilinear in (gx, gy, gz).
* The guide is ``clamp(sum_c mix_c * curve_c((ccm @ rgb + ccm_bias)_c) + mix_bias, 0, 1)`` where each
  ``curve_c(v) = sum_k slope_ck * relu(v - shift_ck)`` is piecewise linear with K knots.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

N_COEFFS = 12  # 3x4 affine transform per cell


def guide_map(
    x: torch.Tensor,
    ccm: torch.Tensor,
    ccm_bias: torch.Tensor,
    shifts: torch.Tensor,
    slopes: torch.Tensor,
    mix: torch.Tensor,
    mix_bias: torch.Tensor,
) -> torch.Tensor:
    """Per-pixel guidance intensity in [0, 1].

    Args:
        x: image ``[B, 3, H, W]``.
        ccm: ``[3, 3]`` colour transform; ccm_bias: ``[3]``.
        shifts, slopes: ``[3, K]`` knot positions and slopes of the per-channel piecewise-linear curves.
        mix: ``[3]`` channel weights; mix_bias: ``[]`` or ``[1]``.

    Returns:
        guide ``[B, H, W]``.
    """
    v = torch.einsum("ij,bjhw->bihw", ccm, x) + ccm_bias.view(1, 3, 1, 1)  # [B,3,H,W]
    curves = torch.zeros_like(v)
    # A loop over knots keeps memory at one image, not K images (this also runs at 12 MP).
    for k in range(shifts.shape[1]):
        curves = curves + slopes[:, k].view(1, 3, 1, 1) * F.relu(v - shifts[:, k].view(1, 3, 1, 1))
    g = (curves * mix.view(1, 3, 1, 1)).sum(1) + mix_bias.reshape(())
    return g.clamp(0.0, 1.0)


def _axis(coord: torch.Tensor, size: int):
    """Clamped cell-centred coordinate -> (lower index, upper index, fraction)."""
    c = coord.clamp(0, size - 1)
    i0 = c.detach().floor().clamp(max=size - 1)
    frac = c - i0
    i0 = i0.long()
    return i0, (i0 + 1).clamp(max=size - 1), frac


def slice_grid(grid: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
    """Trilinear slicing: each pixel reads the grid at its (x, y) position and its guide intensity.

    Same sampling as ``F.grid_sample(grid, coords, align_corners=False, padding_mode="border")`` with
    coords = (x, y, z) (tested against it), but written as nested lerps ``a + w * (b - a)`` so that a grid
    whose cells are all equal returns that value exactly (an identity grid is an exact identity).

    Args:
        grid: ``[B, C, D, Gh, Gw]``.
        guide: ``[B, H, W]`` in [0, 1].

    Returns:
        per-pixel coefficients ``[B, C, H, W]``.
    """
    if grid.ndim != 5:
        raise ValueError(f"slice_grid: grid must be [B,C,D,Gh,Gw], got {tuple(grid.shape)}")
    if guide.ndim != 3 or guide.shape[0] != grid.shape[0]:
        raise ValueError(f"slice_grid: guide must be [B,H,W] with B={grid.shape[0]}, got {tuple(guide.shape)}")
    b, c, d, gh, gw = grid.shape
    _, h, w = guide.shape
    dt, dev = grid.dtype, grid.device
    # Pixel centres in grid-cell units; (x, y) depend only on the column / row.
    x0, x1, fx = _axis((torch.arange(w, dtype=dt, device=dev) + 0.5) * (gw / w) - 0.5, gw)  # [W]
    y0, y1, fy = _axis((torch.arange(h, dtype=dt, device=dev) + 0.5) * (gh / h) - 0.5, gh)  # [H]
    z0, z1, fz = _axis(guide.to(dt) * d - 0.5, d)  # [B,H,W]
    flat = grid.reshape(b, c, d * gh * gw)

    def corner(z, yy, xx):  # -> [B,C,H,W]
        idx = (z * gh + yy.view(1, h, 1)) * gw + xx.view(1, 1, w)  # [B,H,W]
        return torch.gather(flat, 2, idx.reshape(b, 1, h * w).expand(b, c, h * w)).view(b, c, h, w)

    def lerp(a, bb, t):
        return a + t * (bb - a)

    wx, wy, wz = fx.view(1, 1, 1, w), fy.view(1, 1, h, 1), fz.unsqueeze(1)
    out = []
    for z in (z0, z1):
        top = lerp(corner(z, y0, x0), corner(z, y0, x1), wx)
        bot = lerp(corner(z, y1, x0), corner(z, y1, x1), wx)
        out.append(lerp(top, bot, wy))
    return lerp(out[0], out[1], wz)


def apply_coeffs(coeffs: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-pixel affine colour transform: ``out_c = sum_j A[c, j] * x_j + A[c, 3]``.

    Args:
        coeffs: ``[B, 12, H, W]`` (row-major 3x4).
        x: ``[B, 3, H, W]``.
    """
    b, _, h, w = coeffs.shape
    a = coeffs.view(b, 3, 4, h, w)
    return (a[:, :, :3] * x.unsqueeze(1)).sum(2) + a[:, :, 3]


def identity_grid(batch: int, depth: int, gh: int, gw: int, dtype=torch.float32) -> torch.Tensor:
    """A grid whose every cell is the identity affine transform (output == input)."""
    g = torch.zeros(batch, 3, 4, depth, gh, gw, dtype=dtype)
    for c in range(3):
        g[:, c, c] = 1.0
    return g.view(batch, N_COEFFS, depth, gh, gw)


def lowres_copy(x: torch.Tensor, size: int) -> torch.Tensor:
    """Area-averaged ``size x size`` copy of ``x`` (what the coefficient network sees)."""
    if x.shape[-2:] == (size, size):
        return x
    if x.shape[-2] >= size and x.shape[-1] >= size:
        return F.interpolate(x, size=(size, size), mode="area")
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
