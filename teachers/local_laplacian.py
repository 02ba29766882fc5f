"""Local Laplacian filter (Paris, Hasinoff, Kautz, "Local Laplacian Filters", SIGGRAPH 2011).

Every Laplacian coefficient ``L_l[O](x, y)`` of the output is the same coefficient of the Laplacian pyramid
of the input *remapped around its own Gaussian value* ``g = G_l[I](x, y)``:

    r_g(i) = g + sign(i - g) * sigma_r * f_d(|i - g| / sigma_r)        if |i - g| <= sigma_r   (details)
    r_g(i) = g + sign(i - g) * (beta * (|i - g| - sigma_r) + sigma_r)  otherwise               (edges)

with ``f_d(x) = x ** alpha`` (``alpha < 1`` boosts details, ``alpha > 1`` smooths them) blended towards the
identity for differences under the noise level (Paris et al., Sec. 5.1: a smooth step from
``noise_level`` to ``2 * noise_level`` so that noise is not amplified), and ``beta < 1`` compressing the
large-scale range. The residual (coarsest level) is the input's.

Two ways to compute it:

* ``mode="reference"``: the direct algorithm of the paper (Sec. 4): for every coefficient, remap the
  local input patch that the coefficient depends on, build its pyramid and read the one coefficient.
  Exact by construction (it uses the exact curve, no sampling), cost ~O(N log N) with a large constant:
  the ground truth the fast mode is checked against, limited to ``REFERENCE_MAX_PIXELS`` pixels.
* ``mode="fast"``: Aubry, Paris, Hasinoff, Kautz, Durand, "Fast Local Laplacian Filters" (TOG 2014):
  remap the whole image at ``K`` evenly spaced values ``g_k`` spanning the channel's range, build their
  Laplacian pyramids, and per level and pixel interpolate linearly between the two samples around
  ``G_l[I](x, y)``; collapse. The approximation error falls as ``K`` grows (see the tests).

Colour: ``color="luminance"`` filters the luminance and multiplies the RGB ratios back (Paris et al.,
Sec. 6); ``color="rgb"`` filters each channel independently.

Domains:

* ``domain="intensity"`` (sRGB in, sRGB out): filter the sRGB-encoded values; ratios
  ``rgb * (Y_out + EPS) / (Y_in + EPS)`` keep black pixels black; the output is clipped to [0, 1].
* ``domain="log"`` (HDR linear in, display sRGB out): filter ``ln`` of the luminance (or of each channel),
  floored at ``LOG_FLOOR`` times the image maximum so that exact zeros are finite. Exposure normalisation:
  the filtered log image is shifted so that its ``WHITE_PERCENTILE``-th percentile maps to display white
  1.0 (the input's exposure therefore does not matter: the filter commutes with a shift of the log image),
  then ``exp``, ratios back to RGB, clip to [0, 1] and encode with the sRGB curve (tabulated on the square
  root of the linear value: within 1e-6 of ``distill.core.color.linear_to_srgb``).

How the fast mode is scheduled (one channel ``[H, W]``, the K samples kept side by side as the last axis
so that every pyramid operation is one contiguous vector over ``k``):

1. level 0 -> 1: remap each input row at all K samples and blur/decimate it on the fly: the K full-size
   remapped images are never stored, only ``G_1[r_k(I)]`` ``[H/2, W/2, K]``;
2. levels >= 1: ``G_{l+1}[r_k(I)] = downsample(G_l[r_k(I)])`` for all k at once;
3. per level, per pixel: pick the two samples around ``G_l[I]``, evaluate only those two Laplacian
   coefficients (``G_l - upsample(G_{l+1})``, with the level-0 ``G_0`` remapped on the fly), lerp;
4. collapse the output pyramid with the input's residual on top.

The numba kernels are compiled once per machine (``cache=True``) and use numba's thread count.
"""
from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from numba import prange

from distill.core.protocols import NumpyTeacher
from teachers import _pyramid
from teachers._llf_color import _SRGB_TABLE, _log_luma, _luma, _ratios_intensity, _ratios_log, encode_srgb  # noqa: F401

MODES = ("fast", "reference")
COLORS = ("luminance", "rgb")
DOMAINS = ("intensity", "log")

EPS = 1e-4  # ratio guard in the intensity domain (sRGB units)
LOG_FLOOR = 1e-5  # log domain: values below LOG_FLOOR * max are raised to it (exact zeros exist in HDR)
WHITE_PERCENTILE = 99.5  # log domain: this percentile of the output maps to display white
REFERENCE_MAX_PIXELS = 128 * 128  # the direct algorithm is ~1e4x slower than the fast one
TABLE_BINS = 1024  # fast mode: r_g(i) - i tabulated at 1024 sub-steps between samples


# ---------------------------------------------------------------------------------------------------
# The remapping function r_g(i) (Paris et al. 2011, Sec. 5), exact, NumPy.
# ---------------------------------------------------------------------------------------------------


def _smooth_step(lo: float, hi: float, x: np.ndarray) -> np.ndarray:
    # Paris et al.'s smooth step: 0 below lo, 1 above hi, C1 in between.
    y = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return y * y * (y - 2.0) * (y - 2.0)


def detail_curve(x: np.ndarray, alpha: float, sigma_r: float, noise_level: float) -> np.ndarray:
    """``f_d`` on normalised differences ``x = |i - g| / sigma_r`` in [0, 1] (float64 in, float64 out)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.power(x, alpha)
    if alpha < 1.0 and noise_level > 0.0:
        # Sec. 5.1: below the noise level keep the identity, so that noise is not amplified.
        tau = _smooth_step(noise_level, 2.0 * noise_level, x * sigma_r)
        out = tau * out + (1.0 - tau) * x
    return out


def remap(i: np.ndarray, g: float, sigma_r: float, alpha: float, beta: float, noise_level: float) -> np.ndarray:
    """``r_g(i)``: details (``|i - g| <= sigma_r``) through ``f_d``, edges scaled by ``beta`` (float64)."""
    d = np.asarray(i, dtype=np.float64) - g
    a = np.abs(d)
    x = np.minimum(a / sigma_r, 1.0)
    # Branch-free form of the two cases: f_d(1) = 1, so the edge part continues from sigma_r.
    mag = sigma_r * detail_curve(x, alpha, sigma_r, noise_level) + beta * np.maximum(a - sigma_r, 0.0)
    return g + np.sign(d) * mag


def remap_table(
    sigma_r: float, alpha: float, beta: float, noise_level: float, step: float, nk: int, bins: int = TABLE_BINS
) -> np.ndarray:
    """``r_g(i) - i`` tabulated for the fast mode: ``T[b, j]`` at ``i - g = (nk - 1 - j + b / bins) * step``.

    With samples ``g_k = gmin + k * step`` and a pixel at ``u = (i - gmin) / step = m + phi`` (integer m),
    ``i - g_k = (m - k + phi) * step``, so the K remapped values of one pixel are the K *contiguous* entries
    ``T[b, nk - 1 - m : 2 nk - 1 - m]`` (lerped between rows b and b + 1 by ``phi``): no per-sample curve
    evaluation and no gather. Shape [bins + 1, 2 nk] float32; lerp error < 2e-5 at the presets' settings.
    """
    b = np.arange(bins + 1, dtype=np.float64)[:, None] / bins
    j = np.arange(2 * nk, dtype=np.float64)[None, :]
    d = (nk - 1 - j + b) * step
    return (remap(d, 0.0, sigma_r, alpha, beta, noise_level) - d).astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# Fast algorithm (Aubry et al. 2014): numba kernels.
# Layout: the K samples sit side by side as the innermost axis, pyramid levels are [h, w * K]
# (pixel-major), so each tap of a blur is one contiguous K-vector and the lerp reads neighbours.
# Unsigned indices in the hot loops spare numba's negative-index wrap-around, which blocks vectorising.
# ---------------------------------------------------------------------------------------------------

_JIT = dict(cache=True, fastmath=True, nogil=True)
_U = np.uint64


@numba.njit(inline="always", **_JIT)
def _reflect(i, n):
    # Reflect-101 index into [0, n) (same border as teachers._pyramid / OpenCV).
    if n == 1:
        return 0
    period = 2 * (n - 1)
    i = i % period
    if i < 0:
        i += period
    return i if i < n else period - i


@numba.njit(inline="always", **_JIT)
def _table_pos(v, gmin, inv_step, nk, bins):
    # Where pixel value v sits among the samples: (integer part m, table row b, lerp weight f).
    u = (v - gmin) * inv_step
    m = min(max(np.int32(u), np.int32(0)), np.int32(nk - 1))
    ph = (u - np.float32(m)) * np.float32(bins)
    b = min(np.int32(ph), np.int32(bins - 1))
    return m, b, ph - np.float32(b)


@numba.njit(inline="always", **_JIT)
def _remap_row(src, table, gmin, inv_step, bins, nk, idx, frac, row):
    # row[(x + 2) * nk + k] = r_{g_k}(src[x]) for all k: K contiguous table entries per pixel.
    w = src.shape[0]
    tw = 2 * nk
    for x in range(w):  # vectorised over pixels: table offsets and weights
        m, b, f = _table_pos(src[x], gmin, inv_step, nk, bins)
        idx[x] = b * tw + nk - 1 - m
        frac[x] = f
    flat = table.ravel()
    utw = _U(tw)
    for x in range(w):
        i0 = _U(idx[x])
        f = frac[x]
        v = src[x]
        base = _U((x + 2) * nk)
        if nk % 8 == 0:  # whole 8-wide vectors
            for kk in range(0, nk, 8):
                o0 = i0 + _U(kk)
                ob = base + _U(kk)
                for k in range(8):
                    t0 = flat[o0 + _U(k)]
                    t1 = flat[o0 + utw + _U(k)]
                    row[ob + _U(k)] = v + t0 + f * (t1 - t0)
        else:
            for k in range(_U(nk)):
                t0 = flat[i0 + k]
                t1 = flat[i0 + utw + k]
                row[base + k] = v + t0 + f * (t1 - t0)


@numba.njit(inline="always", **_JIT)
def _pad_row(row, w, nk):
    # row [(w + 4) * nk] holds pixels 0..w-1 at slots 2..w+1; fill 2 slots each side by reflect-101.
    for s, x in ((0, -2), (1, -1), (w + 2, w), (w + 3, w + 1)):
        src = (_reflect(x, w) + 2) * nk
        for k in range(nk):
            row[s * nk + k] = row[src + k]


@numba.njit(inline="always", **_JIT)
def _blur_decimate_row(row, w1, nk, dst):
    # Horizontal half of ``downsample``: dst[j, k] = binomial(row[2j .. 2j+4, k]) (row padded by 2).
    n1, n2, n3, n4 = _U(nk), _U(2 * nk), _U(3 * nk), _U(4 * nk)
    for j in range(w1):
        o = _U(j * nk)
        s = _U(2 * j * nk)
        for k in range(_U(nk)):
            q = s + k
            dst[o + k] = (
                row[q] + row[q + n4] + 4.0 * (row[q + n1] + row[q + n3]) + 6.0 * row[q + n2]
            ) * np.float32(1.0 / 16.0)


@numba.njit(inline="always", **_JIT)
def _blur_rows(hbuf, qa, dst):
    # Vertical half of ``downsample``: dst = binomial(hbuf[qa .. qa+4]) over whole flat rows.
    r0, r1, r2, r3, r4 = hbuf[qa], hbuf[qa + 1], hbuf[qa + 2], hbuf[qa + 3], hbuf[qa + 4]
    for j in range(dst.shape[0]):
        dst[j] = (r0[j] + r4[j] + 4.0 * (r1[j] + r3[j]) + 6.0 * r2[j]) * np.float32(1.0 / 16.0)


@numba.njit(parallel=True, **_JIT)
def _remap_down(img, table, gmin, inv_step, bins, nk, chunk, out):
    """Stage 1: ``out[i, j*K + k] = downsample(r_{g_k}(img))[i, j]`` without storing remapped images.

    img [H, W] -> out [(H+1)//2, (W+1)//2 * K]. Output rows are processed in chunks; each chunk remaps and
    horizontally blurs the input rows it needs once (a 3-row overlap with its neighbour).
    """
    h, w = img.shape
    h1 = out.shape[0]
    w1 = out.shape[1] // nk
    nchunks = (h1 + chunk - 1) // chunk
    for c in prange(nchunks):
        i0 = c * chunk
        i1 = min(i0 + chunk, h1)
        q0 = 2 * i0 - 2
        nq = 2 * (i1 - 1) + 3 - q0
        hbuf = np.empty((nq, w1 * nk), np.float32)  # horizontally blurred rows, even columns
        row = np.empty((w + 4) * nk, np.float32)  # one input row remapped at all K samples, padded
        idx = np.empty(w, np.int32)
        frac = np.empty(w, np.float32)
        for q in range(nq):
            _remap_row(img[_reflect(q0 + q, h)], table, gmin, inv_step, bins, nk, idx, frac, row)
            _pad_row(row, w, nk)
            _blur_decimate_row(row, w1, nk, hbuf[q])
        for i in range(i0, i1):
            _blur_rows(hbuf, 2 * i - 2 - q0, out[i])


@numba.njit(parallel=True, **_JIT)
def _down_k(src, nk, chunk, out):
    """Stage 2: ``downsample`` of ``src [h, w*K]`` into ``out [(h+1)//2, (w+1)//2 * K]``, all k at once."""
    h = src.shape[0]
    w = src.shape[1] // nk
    h1 = out.shape[0]
    w1 = out.shape[1] // nk
    nchunks = (h1 + chunk - 1) // chunk
    for c in prange(nchunks):
        i0 = c * chunk
        i1 = min(i0 + chunk, h1)
        q0 = 2 * i0 - 2
        nq = 2 * (i1 - 1) + 3 - q0
        hbuf = np.empty((nq, w1 * nk), np.float32)
        row = np.empty((w + 4) * nk, np.float32)
        for q in range(nq):
            row[2 * nk : (w + 2) * nk] = src[_reflect(q0 + q, h)]
            _pad_row(row, w, nk)
            _blur_decimate_row(row, w1, nk, hbuf[q])
        for i in range(i0, i1):
            _blur_rows(hbuf, 2 * i - 2 - q0, out[i])


@numba.njit(inline="always", **_JIT)
def _far(i, m, n):
    # Coarse index i + 1 of ``upsample`` to fine size n: c[m] = c[m-1] (n even) or c[m-2] (n odd).
    if i + 1 < m:
        return i + 1
    return m - 2 if (n & 1 and m >= 2) else m - 1


@numba.njit(inline="always", **_JIT)
def _up_row(coarse, y, h, vrow):
    # Vertical half of ``upsample`` (to fine height h) for fine row y over a whole flat coarse row.
    h1 = coarse.shape[0]
    i = y >> 1
    ib = _far(i, h1, h)
    ia = abs(i - 1) if h1 > 1 else 0  # c[-1] = c[1]
    ra, ri, rb = coarse[ia], coarse[i], coarse[ib]
    if y & 1:  # odd rows (4, 4) / 8
        for j in range(vrow.shape[0]):
            vrow[j] = np.float32(0.5) * (ri[j] + rb[j])
    else:  # even rows (1, 6, 1) / 8
        for j in range(vrow.shape[0]):
            vrow[j] = (ra[j] + rb[j] + 6.0 * ri[j]) * np.float32(0.125)


@numba.njit(inline="always", **_JIT)
def _brackets(vals, gmin, inv_step, nk, k0s, ts):
    # Per pixel (vectorised): the lower of the two samples around the value and the upper one's weight.
    for x in range(vals.shape[0]):
        u = (vals[x] - gmin) * inv_step
        k0 = min(max(np.int32(u), np.int32(0)), np.int32(nk - 2))
        k0s[x] = k0
        ts[x] = min(max(u - np.float32(k0), np.float32(0.0)), np.float32(1.0))


@numba.njit(inline="always", **_JIT)
def _lap_pair(vrow, x, w, k0, nk):
    # upsample(G_{l+1})[k0] and [k0 + 1] at fine column x of w (horizontal half; vrow is the vertical half).
    w1 = vrow.shape[0] // nk
    j = x >> 1
    jb = _far(j, w1, w)
    pj = _U(j * nk + k0)
    pb = _U(jb * nk + k0)
    if x & 1:  # odd columns (4, 4) / 8
        u0 = np.float32(0.5) * (vrow[pj] + vrow[pb])
        u1 = np.float32(0.5) * (vrow[pj + _U(1)] + vrow[pb + _U(1)])
    else:  # even columns (1, 6, 1) / 8
        pa = _U((abs(j - 1) if w1 > 1 else 0) * nk + k0)
        u0 = (vrow[pa] + vrow[pb] + 6.0 * vrow[pj]) * np.float32(0.125)
        u1 = (vrow[pa + _U(1)] + vrow[pb + _U(1)] + 6.0 * vrow[pj + _U(1)]) * np.float32(0.125)
    return u0, u1


@numba.njit(parallel=True, **_JIT)
def _lerp_level0(img, g1, table, gmin, inv_step, bins, nk, out):
    """Stage 3 at level 0: ``out = lerp_k(r_k(img) - upsample(g1)[k])`` at the two k around img."""
    h, w = img.shape
    tw = 2 * nk
    flat = table.ravel()
    for y in prange(h):
        vrow = np.empty(g1.shape[1], np.float32)
        _up_row(g1, y, h, vrow)
        src = img[y]
        k0s = np.empty(w, np.int32)
        ts = np.empty(w, np.float32)
        tidx = np.empty(w, np.int32)
        tfrac = np.empty(w, np.float32)
        _brackets(src, gmin, inv_step, nk, k0s, ts)
        for x in range(w):  # vectorised: table position of r_{k0}(v) - v
            m, b, f = _table_pos(src[x], gmin, inv_step, nk, bins)
            tidx[x] = b * tw + nk - 1 - m + k0s[x]
            tfrac[x] = f
        for x in range(w):
            i0 = _U(tidx[x])
            f = tfrac[x]
            r0 = flat[i0] + f * (flat[i0 + _U(tw)] - flat[i0])
            r1 = flat[i0 + _U(1)] + f * (flat[i0 + _U(1 + tw)] - flat[i0 + _U(1)])
            u0, u1 = _lap_pair(vrow, x, w, k0s[x], nk)
            lap0 = r0 - u0
            out[y, x] = src[x] + lap0 + ts[x] * (r1 - u1 - lap0)


@numba.njit(parallel=True, **_JIT)
def _lerp_level(guide, gk, gk_next, gmin, inv_step, nk, out):
    """Stage 3 at level l >= 1: ``out = lerp_k(gk[k] - upsample(gk_next)[k])`` around ``guide``."""
    h, w = guide.shape
    for y in prange(h):
        vrow = np.empty(gk_next.shape[1], np.float32)
        _up_row(gk_next, y, h, vrow)
        grow = gk[y]
        k0s = np.empty(w, np.int32)
        ts = np.empty(w, np.float32)
        _brackets(guide[y], gmin, inv_step, nk, k0s, ts)
        for x in range(w):
            k0 = k0s[x]
            p = _U(x * nk + k0)
            u0, u1 = _lap_pair(vrow, x, w, k0, nk)
            lap0 = grow[p] - u0
            out[y, x] = lap0 + ts[x] * (grow[p + _U(1)] - u1 - lap0)


def _chunk_rows(rows: int) -> int:
    # About 8 chunks per thread for load balance, at least 8 rows so the 3-row overlap stays small.
    return max(8, -(-rows // (8 * numba.get_num_threads())))


def llf_fast(
    channel: np.ndarray,
    sigma_r: float,
    alpha: float,
    beta: float,
    levels: int | None = None,
    K: int = 32,
    noise_level: float = 0.02,
) -> np.ndarray:
    """Local Laplacian filter of one channel ``[H, W]`` by the fast algorithm of Aubry et al. (2014).

    Args:
        channel: float32 [H, W], finite.
        sigma_r: detail/edge threshold, in the channel's units.
        alpha: detail exponent (< 1 enhances, > 1 smooths).
        beta: edge (large-scale) slope (< 1 compresses the range).
        levels: pyramid depth, residual included; None = ``_pyramid.auto_levels``.
        K: number of intensity samples (>= 2; multiples of 8 use whole vectors).
        noise_level: differences below it are left alone (Paris et al., Sec. 5.1).

    Returns:
        float32 [H, W].

    Example:
        >>> img = np.random.default_rng(0).random((37, 50), dtype=np.float32)
        >>> out = llf_fast(img, sigma_r=0.2, alpha=1.0, beta=1.0)  # identity parameters
        >>> bool(np.abs(out - img).max() < 1e-5)
        True
    """
    img = np.ascontiguousarray(channel, dtype=np.float32)
    h, w = img.shape
    K = int(K)
    levels = _pyramid.auto_levels(h, w) if levels is None else int(levels)
    guide = _pyramid.gaussian_pyramid(img, levels)  # G_l[I]: picks the two samples per level
    if levels == 1:
        return img.copy()
    gmin, gmax = float(img.min()), float(img.max())
    step = max((gmax - gmin) / (K - 1), 1e-12)
    table = remap_table(sigma_r, alpha, beta, noise_level, step, K)
    gmin32, inv_step = np.float32(gmin), np.float32(1.0 / step)
    shapes = _pyramid.level_shapes(h, w, levels)

    # 1. remap at the K samples and downsample, fused: G_1[r_k(I)] [h1, w1 * K].
    gk = np.empty((shapes[1][0], shapes[1][1] * K), np.float32)
    _remap_down(img, table, gmin32, inv_step, TABLE_BINS, K, _chunk_rows(shapes[1][0]), gk)

    # 3. level 0 of the output pyramid: two remapped coefficients per pixel, lerp.
    pyramid = [np.empty((h, w), np.float32)]
    _lerp_level0(img, gk, table, gmin32, inv_step, TABLE_BINS, K, pyramid[0])

    # 2 + 3. levels 1 .. L-2: downsample all K at once, then lerp the two coefficients around G_l[I].
    for lvl in range(1, levels - 1):
        gk_next = np.empty((shapes[lvl + 1][0], shapes[lvl + 1][1] * K), np.float32)
        _down_k(gk, K, _chunk_rows(shapes[lvl + 1][0]), gk_next)
        pyramid.append(np.empty(shapes[lvl], np.float32))
        _lerp_level(guide[lvl], gk, gk_next, gmin32, inv_step, K, pyramid[-1])
        gk = gk_next

    # 4. residual from the input, collapse.
    pyramid.append(guide[-1])
    return _pyramid.collapse(pyramid)


# ---------------------------------------------------------------------------------------------------
# Reference: the direct algorithm (Paris et al. 2011, Sec. 4), one remapped patch per coefficient.
# ---------------------------------------------------------------------------------------------------


def _patch_range(center: int, lvl: int, size: int) -> tuple[int, int]:
    """Input rows [start, stop) that a level-``lvl`` coefficient at ``center`` depends on, with margin.

    ``L_l = G_l - upsample(G_{l+1})`` reaches ``3 * 2**(l+1) - 2`` input pixels away; we take ``2**(l+3)``
    and start on a multiple of ``2**(l+1)`` so the patch's decimation grid is the image's. A patch that
    would cross the image border is cut there, where it then has the image's own (reflected) border.
    """
    radius = 2 ** (lvl + 3)
    align = 2 ** (lvl + 1)
    start = max(0, ((center * 2**lvl - radius) // align) * align)
    stop = min(size, center * 2**lvl + radius + 1)
    return start, stop


def llf_reference(
    channel: np.ndarray,
    sigma_r: float,
    alpha: float,
    beta: float,
    levels: int | None = None,
    noise_level: float = 0.02,
) -> np.ndarray:
    """Local Laplacian filter of one channel ``[H, W]`` by the direct algorithm: the ground truth.

    Same arguments as ``llf_fast`` (no ``K``: the exact remapping is applied around every coefficient's own
    Gaussian value). Limited to ``REFERENCE_MAX_PIXELS`` pixels.
    """
    img = np.ascontiguousarray(channel, dtype=np.float32)
    h, w = img.shape
    if h * w > REFERENCE_MAX_PIXELS:
        raise ValueError(
            f"local_laplacian reference mode: image {h}x{w} has {h * w} pixels, above the limit of "
            f"{REFERENCE_MAX_PIXELS} (the direct algorithm is for checking small crops; use mode='fast')"
        )
    levels = _pyramid.auto_levels(h, w) if levels is None else int(levels)
    guide = _pyramid.gaussian_pyramid(img, levels)
    pyramid = []
    for lvl in range(levels - 1):
        lh, lw = guide[lvl].shape
        coeffs = np.empty((lh, lw), np.float32)
        for y in range(lh):
            r0, r1 = _patch_range(y, lvl, h)
            for x in range(lw):
                c0, c1 = _patch_range(x, lvl, w)
                g = float(guide[lvl][y, x])
                # Remap the patch around this coefficient's Gaussian value, take its Laplacian coefficient.
                patch = remap(img[r0:r1, c0:c1], g, sigma_r, alpha, beta, noise_level).astype(np.float32)
                gp = _pyramid.gaussian_pyramid(patch, lvl + 2)
                lap = gp[lvl] - _pyramid.upsample(gp[lvl + 1], gp[lvl].shape)
                coeffs[y, x] = lap[y - r0 // 2**lvl, x - c0 // 2**lvl]
        pyramid.append(coeffs)
    pyramid.append(guide[-1])
    return _pyramid.collapse(pyramid)


# ---------------------------------------------------------------------------------------------------
# The teacher: colour handling, domains, parameters.
# ---------------------------------------------------------------------------------------------------


class LocalLaplacian(NumpyTeacher):
    """Local Laplacian filter teacher: detail enhancement (sRGB) or tone compression (HDR -> sRGB).

    The defaults are the detail-enhancement preset (``conf/teacher/local_laplacian.yaml``); the tone
    compression preset is ``conf/teacher/local_laplacian_tone.yaml``.

    Args:
        sigma_r: detail/edge threshold, in the filtered domain's units (sRGB values, or natural-log units).
        alpha: detail exponent: < 1 enhances local contrast, 1 keeps it, > 1 smooths.
        beta: large-scale slope: < 1 compresses the range (tone mapping), 1 keeps it.
        levels: pyramid depth including the residual; None = automatic from the image size.
        K: intensity samples of the fast mode (accuracy vs time; see the tests for the figures).
        mode: "fast" (Aubry et al. 2014) or "reference" (direct algorithm, small images only).
        color: "luminance" (filter luminance, keep RGB ratios) or "rgb" (each channel on its own).
        domain: "intensity" (sRGB in/out) or "log" (HDR linear in, display sRGB out).
        noise_level: differences below it are not enhanced when alpha < 1 (domain units).

    Example:
        >>> import torch
        >>> teacher = LocalLaplacian(sigma_r=0.2, alpha=0.25, beta=1.0, K=32)
        >>> teacher(torch.rand(1, 3, 40, 56)).shape
        torch.Size([1, 3, 40, 56])
    """

    name = "local_laplacian"

    def __init__(
        self,
        sigma_r: float = 0.2,
        alpha: float = 0.25,
        beta: float = 1.0,
        levels: int | None = None,
        K: int = 32,
        mode: str = "fast",
        color: str = "luminance",
        domain: str = "intensity",
        noise_level: float = 0.02,
    ) -> None:
        who = "LocalLaplacian"
        if not (sigma_r > 0 and math.isfinite(sigma_r)):
            raise ValueError(f"{who}: sigma_r must be a positive number, got {sigma_r}")
        if not (alpha > 0 and math.isfinite(alpha)):
            raise ValueError(f"{who}: alpha must be a positive number, got {alpha}")
        if not (beta >= 0 and math.isfinite(beta)):
            raise ValueError(f"{who}: beta must be a number >= 0, got {beta}")
        if levels is not None and int(levels) < 1:
            raise ValueError(f"{who}: levels must be >= 1 or None (automatic), got {levels}")
        if int(K) < 2:
            raise ValueError(f"{who}: K (intensity samples) must be >= 2, got {K}")
        if mode not in MODES:
            raise ValueError(f"{who}: mode must be one of {MODES}, got '{mode}'")
        if color not in COLORS:
            raise ValueError(f"{who}: color must be one of {COLORS}, got '{color}'")
        if domain not in DOMAINS:
            raise ValueError(f"{who}: domain must be one of {DOMAINS}, got '{domain}'")
        if not (noise_level >= 0 and math.isfinite(noise_level)):
            raise ValueError(f"{who}: noise_level must be a number >= 0, got {noise_level}")
        self.sigma_r = float(sigma_r)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.levels = None if levels is None else int(levels)
        self.K = int(K)
        self.mode = mode
        self.color = color
        self.domain = domain
        self.noise_level = float(noise_level)
        # Log domain = HDR radiance in; both presets return display sRGB.
        self.input_space = "hdr" if domain == "log" else "srgb"
        self.output_space = "srgb"

    def params(self) -> dict[str, Any]:
        return {
            "sigma_r": self.sigma_r,
            "alpha": self.alpha,
            "beta": self.beta,
            "levels": self.levels,
            "K": self.K,
            "mode": self.mode,
            "color": self.color,
            "domain": self.domain,
            "noise_level": self.noise_level,
        }

    def filter_channel(self, channel: np.ndarray) -> np.ndarray:
        """The filter on one channel ``[H, W]`` in the working domain, by the selected mode."""
        args = (channel, self.sigma_r, self.alpha, self.beta, self.levels)
        if self.mode == "reference":
            return llf_reference(*args, noise_level=self.noise_level)
        return llf_fast(*args, K=self.K, noise_level=self.noise_level)

    def apply_np(self, img: np.ndarray) -> np.ndarray:
        """``[H, W, 3]`` (or ``[H, W]`` grey) float32 -> same shape, display sRGB in [0, 1]."""
        img = np.asarray(img, dtype=np.float32)
        if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
            raise ValueError(f"teacher '{self.name}': expected an image [H,W,3] or [H,W], got {img.shape}")
        if not np.isfinite(img).all():
            raise ValueError(f"teacher '{self.name}': input contains NaN or Inf values")
        if self.domain == "log":
            return self._apply_log(img)
        return self._apply_intensity(img)

    def _apply_intensity(self, img: np.ndarray) -> np.ndarray:
        if img.ndim == 2 or self.color == "rgb":
            chans = img[..., None] if img.ndim == 2 else img
            out = np.stack([self.filter_channel(chans[..., c]) for c in range(chans.shape[2])], axis=-1)
            return np.clip(out.reshape(img.shape), 0.0, 1.0).astype(np.float32)
        lum = np.empty(img.shape[:2], np.float32)
        _luma(img, lum)
        lum_out = self.filter_channel(lum)
        # Colour ratios (Paris et al., Sec. 6), clipped to display range; EPS keeps black pixels black.
        out = np.empty_like(img)
        _ratios_intensity(img, lum, lum_out, np.float32(EPS), out)
        return out

    def _apply_log(self, img: np.ndarray) -> np.ndarray:
        top = float(img.max())  # radiance is never negative: negative values count as 0
        if top <= 0.0:
            return np.zeros_like(img)
        floor = np.float32(LOG_FLOOR * top)
        if img.ndim == 2 or self.color == "rgb":
            chans = img[..., None] if img.ndim == 2 else img
            logs = np.log(np.maximum(chans, floor))
            out_log = np.stack([self.filter_channel(logs[..., c]) for c in range(chans.shape[2])], axis=-1)
            out = np.exp(out_log - _white_point(out_log)).reshape(img.shape)
            return encode_srgb(out)
        log_lum = np.empty(img.shape[:2], np.float32)
        _log_luma(img, floor, log_lum)
        out_log = self.filter_channel(log_lum)
        # White point, then ratios exp(out - white) / lum in one exp, clip, sRGB encoding.
        out = np.empty_like(img)
        _ratios_log(img, log_lum, out_log, _white_point(out_log), _SRGB_TABLE, out)
        return out


def _white_point(log_img: np.ndarray) -> np.float32:
    # Exposure normalisation of the log domain: this level maps to display white (1.0). Taken on every
    # other row and column (a quarter of the pixels): the same level to ~1e-3, 4x cheaper.
    return np.float32(np.percentile(log_img[::2, ::2], WHITE_PERCENTILE))
