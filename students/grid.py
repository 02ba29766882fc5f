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


def _trilinear(grid: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
    """Sample ``grid [B,C,D,Gh,Gw]`` at cell coordinates; ``xs``, ``ys`` and ``guide`` broadcast to ``[B,*S]``.

    Nested lerps ``a + w * (b - a)``: a grid whose cells are all equal returns that value exactly.
    Returns ``[B, C, *S]``.
    """
    b, c, d, gh, gw = grid.shape
    x0, x1, fx = _axis(xs, gw)
    y0, y1, fy = _axis(ys, gh)
    z0, z1, fz = _axis(guide.to(grid.dtype) * d - 0.5, d)  # [B,*S]
    shape = z0.shape
    flat = grid.reshape(b, c, d * gh * gw)

    def corner(z, yy, xx):  # -> [B,C,*S]
        idx = ((z * gh + yy) * gw + xx).expand(shape).reshape(b, 1, -1)
        return torch.gather(flat, 2, idx.expand(b, c, idx.shape[-1])).view(b, c, *shape[1:])

    def lerp(a, bb, t):
        return a + t.unsqueeze(1) * (bb - a)

    out = []
    for z in (z0, z1):
        top = lerp(corner(z, y0, x0), corner(z, y0, x1), fx)
        bot = lerp(corner(z, y1, x0), corner(z, y1, x1), fx)
        out.append(lerp(top, bot, fy))
    return lerp(out[0], out[1], fz)


def _check(grid: torch.Tensor, guide: torch.Tensor, what: str) -> None:
    if grid.ndim != 5:
        raise ValueError(f"{what}: grid must be [B,C,D,Gh,Gw], got {tuple(grid.shape)}")
    if guide.shape[0] != grid.shape[0]:
        raise ValueError(f"{what}: guide must be [B,...] with B={grid.shape[0]}, got {tuple(guide.shape)}")


def slice_grid(grid: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
    """Trilinear slicing: each pixel reads the grid at its (x, y) position and its guide intensity.

    Same sampling as ``F.grid_sample(grid, coords, align_corners=False, padding_mode="border")`` with
    coords = (x, y, z) (tested against it), written as nested lerps so that an identity grid is an exact
    identity.

    Args:
        grid: ``[B, C, D, Gh, Gw]``.
        guide: ``[B, H, W]`` in [0, 1].

    Returns:
        per-pixel coefficients ``[B, C, H, W]``.
    """
    if guide.ndim != 3:
        raise ValueError(f"slice_grid: guide must be [B,H,W], got {tuple(guide.shape)}")
    _check(grid, guide, "slice_grid")
    _, _, _, gh, gw = grid.shape
    _, h, w = guide.shape
    dt, dev = grid.dtype, grid.device
    # Pixel centres in grid-cell units; (x, y) depend only on the column / row.
    xs = ((torch.arange(w, dtype=dt, device=dev) + 0.5) * (gw / w) - 0.5).view(1, 1, w)
    ys = ((torch.arange(h, dtype=dt, device=dev) + 0.5) * (gh / h) - 0.5).view(1, h, 1)
    return _trilinear(grid, xs, ys, guide)


def slice_points(grid: torch.Tensor, guide: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                 height: int, width: int) -> torch.Tensor:
    """Slicing at a subset of pixels: ``rows``, ``cols`` and ``guide`` are ``[B, N]`` for an image of
    ``height x width``. Equals ``slice_grid`` read at those pixels; training uses it to compute the loss on
    a random sample of pixels. Returns ``[B, C, N]``.
    """
    if guide.ndim != 2 or rows.shape != guide.shape or cols.shape != guide.shape:
        raise ValueError("slice_points: guide, rows and cols must all be [B,N]")
    _check(grid, guide, "slice_points")
    _, _, _, gh, gw = grid.shape
    xs = (cols.to(grid.dtype) + 0.5) * (gw / width) - 0.5
    ys = (rows.to(grid.dtype) + 0.5) * (gh / height) - 0.5
    return _trilinear(grid, xs, ys, guide)


def apply_coeffs(coeffs: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-pixel affine colour transform: ``out_c = sum_j A[c, j] * x_j + A[c, 3]``.

    Args:
        coeffs: ``[B, 12, *S]`` (row-major 3x4), e.g. ``S = (H, W)`` or ``(N,)``.
        x: ``[B, 3, *S]``.
    """
    b, _, *rest = coeffs.shape
    a = coeffs.view(b, 3, 4, *rest)
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
