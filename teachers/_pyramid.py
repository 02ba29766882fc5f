"""Gaussian and Laplacian pyramids (Burt & Adelson 1983), written once for every teacher.

Conventions (shared by the NumPy functions here and the numba kernels of the local Laplacian teacher):

* Kernel: the 5-tap binomial ``[1, 4, 6, 4, 1] / 16``, applied separably.
* Borders: reflect-101 (``x[-1] = x[1]``, ``x[n] = x[n-2]``), OpenCV's ``BORDER_DEFAULT``.
* ``downsample``: blur, then keep even rows and columns: ``n -> (n + 1) // 2`` (any size, odd included).
* ``upsample(c, n)``: put ``c`` on the even samples of a zero signal of size ``n``, blur with the kernel
  times 2 per axis (times 4 in 2-D), reflect-101 at the *fine* size (a size-1 axis is copied). Written out
  per output parity: ``u[2i] = (c[i-1] + 6 c[i] + c[i+1]) / 8`` and ``u[2i+1] = (c[i] + c[i+1]) / 2``, with
  ``c[-1] = c[1]`` and, at the far end, ``c[m] = c[m-1]`` when ``n`` is even and ``c[m] = c[m-2]`` when
  ``n`` is odd (so that odd sizes, whose decimation is symmetric, give mirror-symmetric pyramids).

``downsample`` is OpenCV's ``pyrDown`` and ``upsample`` is ``pyrUp`` at even sizes (odd sizes: pad by one
reflected sample, ``pyrUp``, crop), checked in the tests and used for speed; a
Laplacian pyramid collapses back to its input to float32 rounding whatever ``upsample`` is, because
``collapse`` undoes ``laplacian_pyramid`` with the same operator.

Images are float32 ``[H, W]`` or ``[H, W, C]``; every function is pure (inputs are never modified).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

KERNEL = np.array([1, 4, 6, 4, 1], dtype=np.float32) / 16


def auto_levels(height: int, width: int) -> int:
    """Pyramid depth (levels, residual included) so that the residual's larger side is 3-4 pixels.

    ``max(1, ceil(log2(max(H, W))) - 1)``: 1080p -> 10 levels (residual 3x4), 64x64 -> 5 (residual 4x4),
    1x100 -> 6 (a 1-pixel-wide image is still filtered along its length).
    """
    side = max(int(height), int(width))
    if min(int(height), int(width)) < 1:
        raise ValueError(f"auto_levels: image size must be positive, got {height}x{width}")
    return max(1, math.ceil(math.log2(side)) - 1)


def level_shapes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """Spatial shape of every pyramid level: ``(H, W), ((H+1)//2, (W+1)//2), ...``."""
    shapes = [(int(height), int(width))]
    for _ in range(levels - 1):
        h, w = shapes[-1]
        shapes.append(((h + 1) // 2, (w + 1) // 2))
    return shapes


def _as_image(img: np.ndarray, who: str) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim not in (2, 3) or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"{who}: expected a float image [H,W] or [H,W,C], got shape {img.shape}")
    return np.ascontiguousarray(img, dtype=np.float32)


def _keep_channels(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    # OpenCV drops a trailing channel axis of size 1; put it back so shapes round-trip.
    return out.reshape(out.shape[0], out.shape[1], *like.shape[2:])


def _tiny(img: np.ndarray) -> bool:
    # OpenCV's pyramid functions need at least 2 samples per axis; 1-pixel images use the NumPy path.
    return img.shape[0] < 2 or img.shape[1] < 2 or (img.ndim == 3 and img.shape[2] > 4)


def _reflect(idx: np.ndarray, n: int) -> np.ndarray:
    """Reflect-101 indices into ``[0, n)``; sizes 1 and 2 fold repeatedly (1 -> all zeros)."""
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    idx = np.mod(idx, period)
    return np.where(idx < n, idx, period - idx)


def _blur_axis(x: np.ndarray, axis: int, taps: np.ndarray) -> np.ndarray:
    n = x.shape[axis]
    idx = np.arange(n)
    out = np.zeros_like(x)
    for off, w in zip(range(-2, 3), taps):
        if w != 0:
            out += w * np.take(x, _reflect(idx + off, n), axis=axis)
    return out


def downsample_np(img: np.ndarray) -> np.ndarray:
    """Plain NumPy definition of ``downsample`` (the specification; slow but any size and channel count)."""
    img = _as_image(img, "downsample_np")
    out = _blur_axis(_blur_axis(img, 0, KERNEL), 1, KERNEL)
    return np.ascontiguousarray(out[::2, ::2])


def upsample_np(coarse: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Plain NumPy definition of ``upsample`` to spatial ``shape`` (the specification)."""
    coarse = _as_image(coarse, "upsample_np")
    h, w = int(shape[0]), int(shape[1])
    if ((h + 1) // 2, (w + 1) // 2) != coarse.shape[:2]:
        raise ValueError(f"upsample_np: coarse shape {coarse.shape[:2]} does not match fine shape {(h, w)}")
    up = np.zeros((h, w) + coarse.shape[2:], dtype=np.float32)
    up[::2, ::2] = coarse
    # A size-1 axis holds just c[0]: nothing to interpolate (the reflected blur would double it).
    if h > 1:
        up = _blur_axis(up, 0, 2 * KERNEL)
    if w > 1:
        up = _blur_axis(up, 1, 2 * KERNEL)
    return up


def downsample(img: np.ndarray) -> np.ndarray:
    """Blur with the binomial kernel and keep even samples: ``[H, W(, C)] -> [(H+1)//2, (W+1)//2(, C)]``."""
    img = _as_image(img, "downsample")
    if _tiny(img):
        return downsample_np(img)
    h, w = img.shape[:2]
    return _keep_channels(cv2.pyrDown(img, dstsize=((w + 1) // 2, (h + 1) // 2)), img)


def upsample(coarse: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Inverse-direction step of the pyramid: ``[(H+1)//2, (W+1)//2(, C)] -> [H, W(, C)]``."""
    coarse = _as_image(coarse, "upsample")
    h, w = int(shape[0]), int(shape[1])
    if ((h + 1) // 2, (w + 1) // 2) != coarse.shape[:2]:
        raise ValueError(f"upsample: coarse shape {coarse.shape[:2]} does not match fine shape {(h, w)}")
    if _tiny(coarse):
        return upsample_np(coarse, (h, w))
    # OpenCV's pyrUp is the definition at even sizes; an odd size gets c[m] = c[m-2] by padding the
    # coarse image with one reflected row/column, then the even-size result is cropped.
    pad_h, pad_w = h % 2, w % 2
    if pad_h or pad_w:
        coarse = _keep_channels(cv2.copyMakeBorder(coarse, 0, pad_h, 0, pad_w, cv2.BORDER_REFLECT_101), coarse)
    m, mw = coarse.shape[:2]
    up = _keep_channels(cv2.pyrUp(coarse, dstsize=(2 * mw, 2 * m)), coarse)
    return up if (h, w) == (2 * m, 2 * mw) else np.ascontiguousarray(up[:h, :w])


def gaussian_pyramid(img: np.ndarray, levels: int | None = None) -> list[np.ndarray]:
    """``[G0 = img, G1, ..., G_{levels-1}]``; ``levels=None`` picks ``auto_levels``."""
    img = _as_image(img, "gaussian_pyramid")
    levels = auto_levels(*img.shape[:2]) if levels is None else int(levels)
    if levels < 1:
        raise ValueError(f"gaussian_pyramid: levels must be >= 1, got {levels}")
    pyr = [img]
    for _ in range(levels - 1):
        pyr.append(downsample(pyr[-1]))
    return pyr


def laplacian_pyramid(img: np.ndarray, levels: int | None = None) -> list[np.ndarray]:
    """``[L0, ..., L_{levels-2}, residual]`` with ``L_l = G_l - upsample(G_{l+1})`` and residual ``G_last``."""
    gauss = gaussian_pyramid(img, levels)
    lap = [g - upsample(gn, g.shape[:2]) for g, gn in zip(gauss[:-1], gauss[1:])]
    lap.append(gauss[-1])
    return lap


def collapse(pyramid: list[np.ndarray]) -> np.ndarray:
    """Rebuild the image from a Laplacian pyramid: ``G_l = L_l + upsample(G_{l+1})`` from the residual up."""
    if not pyramid:
        raise ValueError("collapse: empty pyramid")
    out = _as_image(pyramid[-1], "collapse")
    for lap in reversed(pyramid[:-1]):
        out = lap + upsample(out, lap.shape[:2])
    return out
