"""The local Laplacian teacher's per-pixel colour kernels (numba, threaded): luminance, log luminance,
luminance ratios and the sRGB encoding through a table. Split from teachers/local_laplacian.py, which uses them
around the pyramid filter."""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from distill.core.color import LUMA, linear_to_srgb

_JIT = dict(cache=True, fastmath=True, nogil=True)
SRGB_BINS = 4096  # sRGB encoding tabulated on sqrt(linear)


_LR, _LG, _LB = (np.float32(c) for c in LUMA)


def _srgb_table(bins: int = SRGB_BINS) -> np.ndarray:
    # sRGB encoding tabulated on s = sqrt(linear): smooth in s, so a lerp is within 1e-7 of the curve.
    s = np.linspace(0.0, 1.0, bins + 1)
    enc = linear_to_srgb(s * s).astype(np.float64)
    return np.append(enc, enc[-1]).astype(np.float32)


_SRGB_TABLE = _srgb_table()


@numba.njit(inline="always", **_JIT)
def _encode(v, table):
    # v linear, clipped to [0, 1] -> sRGB through the sqrt-domain table.
    s = math.sqrt(min(max(v, np.float32(0.0)), np.float32(1.0))) * np.float32(table.shape[0] - 2)
    i = np.int32(s)
    return table[i] + (s - np.float32(i)) * (table[i + 1] - table[i])


@numba.njit(parallel=True, **_JIT)
def _encode_rows(lin, table, out):
    for y in prange(lin.shape[0]):
        for x in range(lin.shape[1]):
            out[y, x] = _encode(lin[y, x], table)


def encode_srgb(linear: np.ndarray) -> np.ndarray:
    """sRGB encoding of linear values clipped to [0, 1] (``distill.core.color.linear_to_srgb`` within 1e-6)."""
    lin = np.ascontiguousarray(linear, dtype=np.float32)
    flat = lin.reshape(lin.shape[0], -1)
    out = np.empty_like(flat)
    _encode_rows(flat, _SRGB_TABLE, out)
    return out.reshape(lin.shape)


@numba.njit(parallel=True, **_JIT)
def _luma(img, out):
    for y in prange(img.shape[0]):
        for x in range(img.shape[1]):
            out[y, x] = _LR * img[y, x, 0] + _LG * img[y, x, 1] + _LB * img[y, x, 2]


@numba.njit(parallel=True, **_JIT)
def _log_luma(img, floor, out):
    zero = np.float32(0.0)
    for y in prange(img.shape[0]):
        for x in range(img.shape[1]):
            lum = _LR * max(img[y, x, 0], zero) + _LG * max(img[y, x, 1], zero) + _LB * max(img[y, x, 2], zero)
            out[y, x] = math.log(max(lum, floor))


@numba.njit(parallel=True, **_JIT)
def _ratios_intensity(img, lum, lum_out, eps, out):
    zero, one = np.float32(0.0), np.float32(1.0)
    for y in prange(img.shape[0]):
        for x in range(img.shape[1]):
            ratio = (lum_out[y, x] + eps) / (lum[y, x] + eps)
            for c in range(3):
                out[y, x, c] = min(max(img[y, x, c] * ratio, zero), one)


@numba.njit(parallel=True, **_JIT)
def _ratios_log(img, log_lum, out_log, white, table, out):
    zero = np.float32(0.0)
    for y in prange(img.shape[0]):
        for x in range(img.shape[1]):
            ratio = math.exp(out_log[y, x] - white - log_lum[y, x])  # lum_out / lum_in
            for c in range(3):
                out[y, x, c] = _encode(max(img[y, x, c], zero) * ratio, table)
