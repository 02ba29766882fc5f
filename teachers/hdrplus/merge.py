"""HDR+ merge: robust temporal merge of aligned tiles in the 2-D Fourier domain, then spatial denoising.

Hasinoff et al. 2016, Section 5; IPOL 2021 (Monod, Delon, Veit), Sections 4.2-4.4. Per Bayer plane and per
tile of ``T x T`` plane pixels (tiles overlap by half):

1. *Temporal merge* (Hasinoff Eq. 6-7): with ``T_z`` the DFT of frame z's aligned tile and
   ``D_z = T_0 - T_z``, ``A_z = |D_z|^2 / (|D_z|^2 + k_t * Var[D_z])``, the merged tile is
   ``(1/N) sum_z (T_z + A_z D_z)``: frequencies where an alternate frame differs from the reference more
   than noise would explain (motion, misalignment) fall back to the reference.
   ``Var[D_z] = 2 T^2 sigma^2`` for white noise of variance ``sigma^2 = shot * rms(ref tile) + read``.
2. *Spatial denoising* (IPOL 4.3): a second Wiener shrinkage ``|M|^2 / (|M|^2 + k_s * rho * v)`` of the
   merged tile, where ``v`` is the noise variance left after step 1 (computed exactly from the A_z weights)
   and ``rho = |omega| / (T/2)`` is the normalised radial frequency (low frequencies are spared).
3. *Overlap-add* with the modified raised-cosine window
   ``w(x) = 1/2 - 1/2 cos(2 pi (x + 1/2) / T)``, whose half-shifted copies sum to exactly 1 (IPOL 4.4).

Planes are padded by half a tile (reflection) so that every pixel is covered by four windowed tiles.
"""
from __future__ import annotations

import numpy as np
import scipy.fft


def to_planes(bayer: np.ndarray) -> np.ndarray:
    """[..., H, W] Bayer mosaic -> [..., 4, H/2, W/2] planes in CFA order (0,0), (0,1), (1,0), (1,1)."""
    return np.stack(
        [bayer[..., 0::2, 0::2], bayer[..., 0::2, 1::2], bayer[..., 1::2, 0::2], bayer[..., 1::2, 1::2]], axis=-3
    )


def from_planes(planes: np.ndarray) -> np.ndarray:
    """Inverse of ``to_planes``: [..., 4, h, w] -> [..., 2h, 2w]."""
    *lead, four, h, w = planes.shape
    if four != 4:
        raise ValueError(f"from_planes: expected 4 planes, got shape {planes.shape}")
    out = np.empty((*lead, 2 * h, 2 * w), dtype=planes.dtype)
    out[..., 0::2, 0::2], out[..., 0::2, 1::2] = planes[..., 0, :, :], planes[..., 1, :, :]
    out[..., 1::2, 0::2], out[..., 1::2, 1::2] = planes[..., 2, :, :], planes[..., 3, :, :]
    return out


def tile_padding(h: int, w: int, tile: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) padding so that half-overlapping tiles cover an h x w plane with
    every pixel under four tiles: half a tile before, at least half a tile after, length fitting the step."""
    step = tile // 2

    def after(n: int) -> int:
        total = n + 2 * step
        return step + (-(total - tile)) % step

    return step, after(h), step, after(w)


def pad_planes(planes: np.ndarray, tile: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Reflect-pad the last two axes for tiling; returns the padded array and the padding used."""
    top, bottom, left, right = tile_padding(planes.shape[-2], planes.shape[-1], tile)
    width = [(0, 0)] * (planes.ndim - 2) + [(top, bottom), (left, right)]
    mode = "reflect" if min(planes.shape[-2:]) > max(top, bottom, left, right) else "symmetric"
    return np.pad(planes, width, mode=mode), (top, bottom, left, right)


def raised_cosine(tile: int) -> np.ndarray:
    """The modified raised-cosine window [T, T]: nonzero everywhere, half-shifted copies sum to 1."""
    x = np.arange(tile, dtype=np.float64)
    w1 = 0.5 - 0.5 * np.cos(2 * np.pi * (x + 0.5) / tile)
    return np.outer(w1, w1).astype(np.float32)


def radial_frequency(tile: int) -> np.ndarray:
    """[T, T/2+1] |omega| / (T/2) on the rfft2 layout: 0 at DC, 1 at Nyquist along an axis."""
    fy = np.fft.fftfreq(tile) * tile
    fx = np.fft.rfftfreq(tile) * tile
    return (np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2) / (tile / 2)).astype(np.float32)


def _gather_tiles(planes: np.ndarray, y0: np.ndarray, x0: np.ndarray, tile: int) -> np.ndarray:
    """Tiles of [P, H, W] planes at top-left corners y0, x0 ([a, b] ints) -> [P, a, b, T, T]."""
    r = np.arange(tile)
    rows = (y0[:, :, None] + r)[:, :, :, None]  # [a, b, T, 1]
    cols = (x0[:, :, None] + r)[:, :, None, :]  # [a, b, 1, T]
    return planes[:, rows, cols]


def merge_planes(
    planes: np.ndarray,
    disp: np.ndarray,
    ref_index: int,
    noise_model: tuple[float, float],
    tile: int = 16,
    temporal_factor: float = 1.0,
    spatial_factor: float = 0.5,
    workers: int = -1,
) -> np.ndarray:
    """Merge aligned Bayer planes into one denoised set of planes.

    Args:
        planes: [N, 4, H, W] float32 normalised raw planes, already padded with ``pad_planes`` (so the
            tile grid of ``tile`` with step ``tile/2`` covers them exactly).
        disp: [N, ny, nx, 2] per-tile displacements (dy, dx) in plane pixels from ``align_burst``; they are
            rounded to whole pixels (a CFA-preserving 2-pixel step in the raw mosaic).
        ref_index: the reference frame.
        noise_model: (shot, read): variance ``shot * x + read`` of one normalised raw value.
        tile: tile side in plane pixels (HDR+ and IPOL: 16).
        temporal_factor: k_t, robustness of the temporal merge in units of Var[D_z] (higher merges more
            and ghosts more; 0 keeps only the reference).
        spatial_factor: k_s, strength of the spatial Wiener step (0 disables it).
        workers: threads for scipy.fft (-1: all cores).

    Returns:
        [4, H, W] float32 merged planes (same padded geometry as the input).
    """
    n, p, h, w = planes.shape
    step = tile // 2
    ny, nx = (h - tile) // step + 1, (w - tile) // step + 1
    if (h - tile) % step or (w - tile) % step or ny < 1 or nx < 1:
        raise ValueError(f"merge_planes: planes {h}x{w} are not padded for tile {tile} (use pad_planes)")
    if disp.shape != (n, ny, nx, 2):
        raise ValueError(f"merge_planes: disp has shape {disp.shape}, expected {(n, ny, nx, 2)}")
    shot, read = noise_model
    window = raised_cosine(tile)
    rho = radial_frequency(tile)
    alts = [z for z in range(n) if z != ref_index]
    idisp = np.rint(disp).astype(np.int64)
    base_y = (np.arange(ny) * step)[:, None]
    base_x = (np.arange(nx) * step)[None, :]

    # output as s x s blocks: block (I, J) receives one quadrant from each of the 4 tiles covering it
    blocks = np.zeros((p, ny + 1, nx + 1, step, step), np.float32)
    rows_per_chunk = max(1, (1 << 24) // max(1, n * p * nx * tile * tile))
    for r0 in range(0, ny, rows_per_chunk):
        r1 = min(ny, r0 + rows_per_chunk)
        by = np.broadcast_to(base_y[r0:r1], (r1 - r0, nx))
        bx = np.broadcast_to(base_x, (r1 - r0, nx))
        ref_tiles = _gather_tiles(planes[ref_index], by, bx, tile)  # [P, a, nx, T, T]
        # Hasinoff: noise level of a tile from its RMS through the noise model
        rms = np.sqrt(np.mean(ref_tiles**2, axis=(-1, -2)))  # [P, a, nx]
        sigma2 = (shot * rms + read)[..., None, None].astype(np.float32)
        var_d = 2.0 * tile * tile * sigma2  # variance of one DFT coefficient of D_z = T_0 - T_z

        # 1. temporal merge, pairwise with the reference, in the Fourier domain
        f_ref = scipy.fft.rfft2(ref_tiles, workers=workers)  # [P, a, nx, T, T/2+1]
        acc = f_ref.copy()
        sum_a = np.zeros(f_ref.shape, np.float32)
        sum_b2 = np.zeros(f_ref.shape, np.float32)  # sum of (1 - A_z)^2, for the residual noise
        for z in alts:
            ty = np.clip(by + idisp[z, r0:r1, :, 0], 0, h - tile)
            tx = np.clip(bx + idisp[z, r0:r1, :, 1], 0, w - tile)
            f_alt = scipy.fft.rfft2(_gather_tiles(planes[z], ty, tx, tile), workers=workers)
            d = f_ref - f_alt
            d2 = d.real**2 + d.imag**2
            a = d2 / (d2 + temporal_factor * var_d + 1e-30)
            acc += f_alt + a * d
            sum_a += a
            sum_b2 += (1.0 - a) ** 2
        merged = acc / n

        # 2. spatial denoising: Wiener shrinkage against the noise left after the temporal merge
        if spatial_factor > 0:
            resid = (tile * tile) * sigma2 * ((1.0 + sum_a) ** 2 + sum_b2) / (n * n)
            m2 = merged.real**2 + merged.imag**2
            merged = merged * (m2 / (m2 + spatial_factor * rho * resid + 1e-30))

        # 3. back to pixels, window, overlap-add into the four blocks each tile covers
        out = scipy.fft.irfft2(merged, s=(tile, tile), workers=workers).astype(np.float32) * window
        q = out.reshape(p, r1 - r0, nx, 2, step, 2, step)
        for qa in (0, 1):
            for qb in (0, 1):
                blocks[:, r0 + qa : r1 + qa, qb : nx + qb] += q[:, :, :, qa, :, qb, :]
    # [P, ny+1, nx+1, s, s] -> [P, H, W]
    return blocks.transpose(0, 1, 3, 2, 4).reshape(p, (ny + 1) * step, (nx + 1) * step)
