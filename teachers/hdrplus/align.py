"""HDR+ alignment: coarse-to-fine tile matching on a Gaussian pyramid of the 2x2-binned grey image.

Hasinoff et al. 2016, Section 4, with the IPOL 2021 (Monod, Delon, Veit) defaults, finest level first:

* relative downsampling factors ``[1, 2, 4, 4]`` (level 0 *is* the 2x2-binned grey image, so it has the
  resolution of one Bayer plane, and an integer shift there is a CFA-preserving 2-pixel raw shift),
* tile sizes ``[16, 16, 16, 8]``, tiles overlapping by half (step = size / 2), so that the finest tiles are
  exactly the merge tiles,
* search radii ``[1, 4, 4, 4]``,
* L1 distance and whole-pixel offsets at the finest level, L2 distance with sub-pixel refinement (a
  quadratic fitted to the 3x3 L2 costs around the best offset, Hasinoff Eq. 2-4) at the coarser levels.
  This is the paper's choice: the finest displacement stays an integer so that merged tiles are copied
  from the alternate frame without resampling; sub-pixel estimates only guide the next level down.
  ``subpixels=(True, ...)`` turns the refinement on at the finest level too (the result then carries the
  fractional part; the merge rounds it).

Displacement convention: ``disp[i, j] = (dy, dx)`` means the alternate frame's tile at
``(y0 + dy, x0 + dx)`` matches the reference tile at ``(y0, x0)``, i.e. ``alt(p + d) ~ ref(p)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numba
import numpy as np


@dataclass(frozen=True)
class AlignParams:
    """Alignment pyramid settings, finest level first (IPOL 2021 defaults)."""

    factors: tuple[int, ...] = (1, 2, 4, 4)  # downsampling of each level relative to the previous one
    tile_sizes: tuple[int, ...] = (16, 16, 16, 8)  # tile side at each level (pixels of that level)
    search_radii: tuple[int, ...] = (1, 4, 4, 4)  # exhaustive search +-radius around the upsampled guess
    distances: tuple[str, ...] = ("L1", "L2", "L2", "L2")  # L1 is robust at full res; L2 allows the fit
    subpixels: tuple[bool, ...] = (False, True, True, True)  # quadratic sub-pixel fit per level

    def __post_init__(self) -> None:
        n = len(self.factors)
        fields = (self.tile_sizes, self.search_radii, self.distances, self.subpixels)
        if n == 0 or any(len(f) != n for f in fields):
            raise ValueError(f"AlignParams: all per-level lists need the same length, got {self}")
        if self.factors[0] != 1 or any(f < 1 for f in self.factors):
            raise ValueError(f"AlignParams.factors: first must be 1 and all >= 1, got {self.factors}")
        if any(t < 2 or t % 2 for t in self.tile_sizes):
            raise ValueError(f"AlignParams.tile_sizes: must be even and >= 2, got {self.tile_sizes}")
        if any(r < 0 for r in self.search_radii):
            raise ValueError(f"AlignParams.search_radii: must be >= 0, got {self.search_radii}")
        if any(d not in ("L1", "L2") for d in self.distances):
            raise ValueError(f"AlignParams.distances: each must be 'L1' or 'L2', got {self.distances}")


def bin_grey(planes: np.ndarray) -> np.ndarray:
    """Grey image from Bayer planes: the mean of the 2x2 CFA cell. [..., 4, h, w] -> [..., h, w]."""
    return planes.mean(axis=-3, dtype=np.float32)


def gaussian_pyramid(grey: np.ndarray, factors: tuple[int, ...]) -> list[np.ndarray]:
    """Level l is level l-1 blurred (sigma = factor / 2, anti-aliasing) and decimated by ``factors[l]``."""
    levels = [np.ascontiguousarray(grey, dtype=np.float32)]
    for f in factors[1:]:
        prev = levels[-1]
        if f == 1:
            levels.append(prev)
            continue
        blurred = cv2.GaussianBlur(prev, (0, 0), sigmaX=0.5 * f, borderType=cv2.BORDER_REFLECT_101)
        levels.append(np.ascontiguousarray(blurred[::f, ::f]))
    return levels


def tile_grid(h: int, w: int, tile: int) -> tuple[int, int]:
    """Number of half-overlapping tiles (step tile/2) that fit inside an h x w image."""
    step = tile // 2
    return max(0, (h - tile) // step + 1), max(0, (w - tile) // step + 1)


@numba.njit(parallel=True, cache=True, fastmath=True)
def _tile_distances(ref, alt, tile, step, base_dy, base_dx, radius, use_l1):  # pragma: no cover - numba
    """Distance between every reference tile and the alternate tile at base + every offset in the window.

    ref, alt: [H, W] float32; base_dy, base_dx: [ny, nx] int; returns [ny, nx, 2r+1, 2r+1] float32.
    Alternate pixels outside the image are clamped to the border (the padding is a reflection anyway).
    """
    ny, nx = base_dy.shape
    h, w = alt.shape
    side = 2 * radius + 1
    out = np.empty((ny, nx, side, side), dtype=np.float32)
    for t in numba.prange(ny * nx):
        i = t // nx
        j = t - i * nx
        y0 = i * step
        x0 = j * step
        for a in range(side):
            for b in range(side):
                dy = base_dy[i, j] + a - radius
                dx = base_dx[i, j] + b - radius
                acc = 0.0
                for u in range(tile):
                    yy = min(max(y0 + u + dy, 0), h - 1)
                    for v in range(tile):
                        xx = min(max(x0 + v + dx, 0), w - 1)
                        d = ref[y0 + u, x0 + v] - alt[yy, xx]
                        acc += abs(d) if use_l1 else d * d
                out[i, j, a, b] = acc
    return out


def tile_distances(
    ref: np.ndarray, alt: np.ndarray, tile: int, base: np.ndarray, radius: int, metric: str
) -> np.ndarray:
    """Tile-matching costs: [ny, nx, 2r+1, 2r+1] for integer base displacements ``base`` [ny, nx, 2]."""
    base = np.asarray(base, dtype=np.int64)
    return _tile_distances(
        np.ascontiguousarray(ref, np.float32),
        np.ascontiguousarray(alt, np.float32),
        tile,
        tile // 2,
        np.ascontiguousarray(base[..., 0]),
        np.ascontiguousarray(base[..., 1]),
        radius,
        metric == "L1",
    )


def _quadratic_fit_matrix() -> np.ndarray:
    """[6, 9] least-squares fit of D(u) = 1/2 u'Au + b'u + c to costs on the 3x3 offsets (Hasinoff Eq. 3)."""
    rows = []
    for y in (-1, 0, 1):
        for x in (-1, 0, 1):
            rows.append([0.5 * y * y, y * x, 0.5 * x * x, y, x, 1.0])
    return np.linalg.pinv(np.array(rows))


_FIT = _quadratic_fit_matrix()


def subpixel_offsets(costs3: np.ndarray) -> np.ndarray:
    """Sub-pixel minimum of a quadratic fitted to 3x3 costs: [..., 3, 3] -> [..., 2] offsets in [-1, 1].

    Where the fitted quadratic is not positive definite (flat or saddle-shaped cost) the offset is 0.
    """
    coef = costs3.reshape(*costs3.shape[:-2], 9).astype(np.float64) @ _FIT.T  # [..., 6]
    a11, a12, a22, b1, b2 = (coef[..., k] for k in range(5))
    det = a11 * a22 - a12 * a12
    ok = (a11 > 0) & (det > 1e-12 * np.maximum(a11 * a22, 1e-30))
    safe = np.where(ok, det, 1.0)
    # u* = -A^{-1} b
    uy = -(a22 * b1 - a12 * b2) / safe
    ux = -(-a12 * b1 + a11 * b2) / safe
    out = np.stack([np.where(ok, uy, 0.0), np.where(ok, ux, 0.0)], axis=-1)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def _upsample_candidates(
    disp_c: np.ndarray, factor: int, tile_c: int, tile: int, ny: int, nx: int
) -> list[np.ndarray]:
    """Three integer guesses per fine tile from the coarse field (Hasinoff: nearest coarse tile and its
    nearest neighbour vertically and horizontally), scaled by the level factor. Each [ny, nx, 2]."""
    nyc, nxc = disp_c.shape[:2]
    step, step_c = tile // 2, tile_c // 2

    def indices(n: int, nc: int) -> tuple[np.ndarray, np.ndarray]:
        centre = np.arange(n) * step + (tile - 1) / 2.0  # fine tile centres
        pos = (centre / factor - (tile_c - 1) / 2.0) / step_c  # in coarse tile index units
        near = np.clip(np.rint(pos), 0, nc - 1).astype(np.int64)
        other = np.clip(np.where(pos >= near, near + 1, near - 1), 0, nc - 1).astype(np.int64)
        return near, other

    iy, iy2 = indices(ny, nyc)
    ix, ix2 = indices(nx, nxc)
    out = []
    for ry, rx in ((iy, ix), (iy2, ix), (iy, ix2)):
        guess = disp_c[ry[:, None], rx[None, :]] * factor
        out.append(np.rint(guess).astype(np.int64))
    return out


def align_pair(ref_pyr: list[np.ndarray], alt: np.ndarray, params: AlignParams) -> np.ndarray:
    """Align one alternate grey image to the reference pyramid.

    Args:
        ref_pyr: reference Gaussian pyramid from ``gaussian_pyramid`` (finest first), already truncated to
            the levels whose image holds at least one tile.
        alt: [h, w] alternate grey image, same size as ``ref_pyr[0]``.
        params: pyramid settings.

    Returns:
        [ny, nx, 2] float32 displacement (dy, dx) per finest-level tile, in level-0 pixels.
    """
    alt_pyr = gaussian_pyramid(alt, params.factors[: len(ref_pyr)])
    disp = None
    # coarse to fine
    for lvl in range(len(ref_pyr) - 1, -1, -1):
        ref_l, alt_l = ref_pyr[lvl], alt_pyr[lvl]
        tile, radius = params.tile_sizes[lvl], params.search_radii[lvl]
        metric, subpixel = params.distances[lvl], params.subpixels[lvl]
        ny, nx = tile_grid(*ref_l.shape, tile)
        if disp is None:
            base = np.zeros((ny, nx, 2), np.int64)
        else:
            # upsample the coarser field: pick the best of three candidates by this level's cost
            cands = _upsample_candidates(
                disp, params.factors[lvl + 1], params.tile_sizes[lvl + 1], tile, ny, nx
            )
            costs = np.stack([tile_distances(ref_l, alt_l, tile, c, 0, metric)[..., 0, 0] for c in cands])
            best = np.argmin(costs, axis=0)  # [ny, nx]
            base = np.take_along_axis(np.stack(cands), best[None, ..., None], axis=0)[0]
        # exhaustive search in the window around the guess
        costs = tile_distances(ref_l, alt_l, tile, base, radius, metric)  # [ny, nx, S, S]
        side = 2 * radius + 1
        arg = np.argmin(costs.reshape(ny, nx, side * side), axis=-1)
        ay, ax = np.divmod(arg, side)
        disp_l = base + np.stack([ay - radius, ax - radius], axis=-1)
        disp_l = disp_l.astype(np.float32)
        if subpixel and radius >= 1:
            # refine around the minimum when its 3x3 neighbourhood lies inside the search window
            inner = (ay >= 1) & (ay <= side - 2) & (ax >= 1) & (ax <= side - 2)
            cy, cx = np.clip(ay, 1, side - 2), np.clip(ax, 1, side - 2)
            win = np.stack(
                [costs[np.arange(ny)[:, None], np.arange(nx)[None, :], cy + dy, cx + dx]
                 for dy in (-1, 0, 1) for dx in (-1, 0, 1)],
                axis=-1,
            ).reshape(ny, nx, 3, 3)
            frac = subpixel_offsets(win)
            disp_l = disp_l + np.where(inner[..., None], frac, 0.0).astype(np.float32)
        disp = disp_l
    assert disp is not None
    return disp


def usable_levels(shape: tuple[int, int], params: AlignParams) -> int:
    """How many pyramid levels hold at least one tile (small crops drop the coarsest levels)."""
    h, w = shape
    n = 0
    for f, tile in zip(params.factors, params.tile_sizes):
        h, w = -(-h // f), -(-w // f)
        if min(tile_grid(h, w, tile)) < 1:
            break
        n += 1
    return n


def align_burst(greys: np.ndarray, ref_index: int, params: AlignParams = AlignParams()) -> np.ndarray:
    """Align every frame of a burst to the reference.

    Args:
        greys: [N, h, w] float32 grey (2x2-binned) frames.
        ref_index: the reference frame.
        params: pyramid settings.

    Returns:
        [N, ny, nx, 2] float32 per-tile displacements (zero for the reference), level-0 pixels.
    """
    greys = np.asarray(greys, dtype=np.float32)
    if greys.ndim != 3:
        raise ValueError(f"align_burst: greys must be [N,h,w], got shape {greys.shape}")
    n_levels = usable_levels(greys.shape[1:], params)
    if n_levels < 1:
        raise ValueError(
            f"align_burst: image {greys.shape[1:]} is smaller than one finest tile ({params.tile_sizes[0]})"
        )
    ref_pyr = gaussian_pyramid(greys[ref_index], params.factors[:n_levels])
    ny, nx = tile_grid(*greys.shape[1:], params.tile_sizes[0])
    out = np.zeros((greys.shape[0], ny, nx, 2), np.float32)
    for z in range(greys.shape[0]):
        if z != ref_index:
            out[z] = align_pair(ref_pyr, greys[z], params)
    return out
