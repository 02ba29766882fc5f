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
* ``bilateral_base`` (splat, blur, slice) is the same grid used as a fast bilateral filter: a
  ``guide_bilateral`` student's guide reads the log luminance's base layer through it.
"""
from __future__ import annotations

import math
from typing import List, Tuple

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


def _axis(coord: torch.Tensor, size: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clamped cell-centred coordinate -> (lower index, upper index, fraction)."""
    c = coord.clamp(0, size - 1)
    i0 = c.detach().floor().clamp(max=size - 1)
    frac = c - i0
    i0 = i0.long()
    return i0, (i0 + 1).clamp(max=size - 1), frac


def _cell_coords(h: int, w: int, gh: int, gw: int, like: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pixel centres of an ``h x w`` image in the cells of a ``gh x gw`` grid (dtype and device of ``like``):
    ``xs [1,1,W]``, ``ys [1,H,1]``; (x, y) depend only on the column / row."""
    xs = ((torch.arange(w, dtype=like.dtype, device=like.device) + 0.5) * (gw / w) - 0.5).view(1, 1, w)
    ys = ((torch.arange(h, dtype=like.dtype, device=like.device) + 0.5) * (gh / h) - 0.5).view(1, h, 1)
    return xs, ys


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
    xs, ys = _cell_coords(h, w, gh, gw, grid)
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
    a = coeffs.unflatten(1, [3, 4])  # [B,3,4,*S]
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


def _blur_matrix(n: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    """``[n, n]`` matrix (dtype and device of ``like``) of a Gaussian blur along an axis of ``n`` cells, zero
    outside (a banded matmul is far faster on the CPU than conv3d for these small grids)."""
    t = torch.arange(n, dtype=like.dtype, device=like.device)
    k = torch.exp(-0.5 * ((t.view(-1, 1) - t.view(1, -1)) / sigma) ** 2)
    return k / torch.exp(-0.5 * (torch.arange(-n, n + 1, dtype=like.dtype, device=like.device) / sigma) ** 2).sum()


def bilateral_dims(h: int, w: int, sigma_px: float, sigma_range: float,
                   cells_per_sigma: float = 1.0) -> Tuple[int, int, int]:
    """``(D, Gh, Gw)`` of ``bilateral_base``'s grid for an ``h x w`` image: cells of ``1 / cells_per_sigma``
    sigma in range (values in [0, 1]) and in space (about ``cells_per_sigma * max(h, w) / sigma_px`` a side).
    Halves round up (``floor(x + 0.5)``, the same in Python and TorchScript)."""
    c = cells_per_sigma
    gh = int(math.floor(h * c / sigma_px + 0.5))
    gw = int(math.floor(w * c / sigma_px + 0.5))
    return max(1, int(math.ceil(c / sigma_range))), max(1, gh), max(1, gw)


def bilateral_splat(e: torch.Tensor, dims: Tuple[int, int, int]) -> torch.Tensor:
    """``(e, 1)`` of ``e [B,H,W]`` splatted trilinearly into a ``[B,2,D,Gh,Gw]`` grid at ``(x, y, e)``: the exact
    transpose of ``slice_grid``'s trilinear read (same cell-centred coordinates, same border clamp)."""
    d, gh, gw = dims
    b, h, w = e.shape[0], e.shape[1], e.shape[2]
    xs, ys = _cell_coords(h, w, gh, gw, e)
    corners: List[List[Tuple[torch.Tensor, torch.Tensor]]] = []
    for i0, i1, f in (_axis(e * d - 0.5, d), _axis(ys, gh), _axis(xs, gw)):  # z, y, x: (index, weight) x 2
        corners.append([(i0, 1 - f), (i1, f)])
    vals = torch.stack([e, torch.ones_like(e)], -1).reshape(b, h * w, 2)
    acc = torch.zeros(b, d * gh * gw, 2, dtype=e.dtype, device=e.device)
    for iz, wz in corners[0]:
        for iy, wy in corners[1]:
            for ix, wx in corners[2]:
                idx = ((iz * gh + iy) * gw + ix).expand(b, h, w).reshape(b, h * w, 1).expand(b, h * w, 2)
                acc.scatter_add_(1, idx, vals * (wz * wy * wx).expand(b, h, w).reshape(b, h * w, 1))
    return acc.view(b, d, gh, gw, 2).permute(0, 4, 1, 2, 3).contiguous()


def bilateral_blur(grid: torch.Tensor, cells_per_sigma: float = 1.0) -> torch.Tensor:
    """Gaussian blur of a splatted ``[B,2,D,Gh,Gw]`` grid along its three axes (zero outside), by
    ``sqrt(c^2 - 1/3)`` cells for ``c = cells_per_sigma``: with the splat's and the slice's tents (variance
    1/6 cell^2 each) the spreads come to about one sigma."""
    c = cells_per_sigma
    s = math.sqrt(max(c * c - 1.0 / 3.0, 0.25))
    d, gh, gw = grid.shape[2], grid.shape[3], grid.shape[4]
    g = grid @ _blur_matrix(gw, s, grid)
    g = (g.transpose(-1, -2) @ _blur_matrix(gh, s, grid)).transpose(-1, -2)
    g = (g.permute(0, 1, 3, 4, 2) @ _blur_matrix(d, s, grid)).permute(0, 1, 4, 2, 3)
    return g.contiguous()


def bilateral_slice(grid: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """The blurred ``[B,2,D,Gh,Gw]`` grid read at each pixel's ``(x, y, e)``, numerator over weight: ``[B,H,W]``."""
    gh, gw = grid.shape[3], grid.shape[4]
    xs, ys = _cell_coords(e.shape[-2], e.shape[-1], gh, gw, e)
    num, den = _trilinear(grid, xs, ys, e).unbind(1)
    return num / den.clamp(min=1e-20)


def bilateral_base(e: torch.Tensor, sigma_px: float, sigma_range: float, cells_per_sigma: float = 1.0) -> torch.Tensor:
    """Edge-preserving smoothing of ``e [B,H,W]`` (values in [0, 1]) by a bilateral grid (Paris & Durand
    2006; Chen et al. 2007): splat ``(e, 1)`` trilinearly into cells of ``1 / cells_per_sigma`` sigma in space
    and in range (``bilateral_splat``), Gaussian-blur the grid (``bilateral_blur``), slice it at each pixel's
    own ``e`` and divide (``bilateral_slice``). The splat is the exact transpose of the slice, so a constant
    image comes back unchanged; spatial and range spreads come to about ``sigma_px`` and ``sigma_range``.
    The grid has about ``c max(H, W) / sigma_px`` cells a side whatever the resolution (``bilateral_dims``).
    No autograd: a function of the input. The fused path (students/fused.py) splats and slices in C++ and
    blurs with ``bilateral_blur``."""
    with torch.no_grad():
        dims = bilateral_dims(*e.shape[-2:], sigma_px, sigma_range, cells_per_sigma)
        return bilateral_slice(bilateral_blur(bilateral_splat(e, dims), cells_per_sigma), e)
