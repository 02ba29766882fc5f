"""The operator suite: ten image operators the student was never tailored to, written as a user would.

Each entry of ``SUITE`` is a plain function ``img -> img``: one ``HxWx3`` float32 sRGB image in [0, 1] in,
one out (float32, same shape, in [0, 1]), deterministic, its parameters keyword arguments with defaults,
its input never written to. Each one is a teacher as it stands, with no adapter code::

    hdr-distill train teacher=python teacher.fn=teachers.suite:clahe
    hdr-distill train teacher=python teacher.fn=teachers.suite:l0_smooth +teacher.params.lam=0.01

``python -m benchmarks.operator_suite`` distills them all under one budget and tabulates the result.

Where a well-kept library has the operator, the suite calls it with its defaults (scikit-image, OpenCV's
``photo`` module); the three that no such library ships (dark-channel dehazing, L0 smoothing, multiscale
Retinex) are written plainly in NumPy/OpenCV after their papers. Parameters are in pixels, as the libraries
and papers give them, so an operator's look depends on the image's resolution (as it does for a user who
calls it): the student learns it from resized training crops and is scored on held-out photos at up to
1024 px.

| name            | library            | reference                                                              |
|-----------------|--------------------|------------------------------------------------------------------------|
| tv_denoise      | scikit-image       | Chambolle 2004, total-variation (ROF) denoising                        |
| clahe           | scikit-image       | Zuiderveld 1994, contrast-limited adaptive histogram equalization      |
| unsharp         | scikit-image       | unsharp masking (image + amount * (image - Gaussian blur))             |
| detail_enhance  | OpenCV photo       | Gastal & Oliveira 2011, domain transform; OpenCV detailEnhance         |
| edge_preserving | OpenCV photo       | Gastal & Oliveira 2011, domain-transform recursive filter              |
| stylization     | OpenCV photo       | OpenCV stylization (domain-transform abstraction + edges): painterly   |
| pencil_sketch   | OpenCV photo       | OpenCV pencilSketch, colour output: texture replaced by strokes        |
| dehaze          | NumPy/OpenCV       | He, Sun, Tang 2009/2011, dark channel prior (+ He et al. 2010 guided filter) |
| l0_smooth       | NumPy              | Xu, Lu, Xu, Jia 2011, image smoothing via L0 gradient minimization     |
| retinex         | NumPy/OpenCV       | Jobson, Rahman, Woodell 1997, multiscale Retinex with colour restoration |
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

__all__ = ["SUITE", "LIBRARY", "REFERENCE", "tv_denoise", "clahe", "unsharp", "detail_enhance",
           "edge_preserving", "stylization", "pencil_sketch", "dehaze", "l0_smooth", "retinex"]


# ---- small helpers ----------------------------------------------------------------------------------------

def _out(img: np.ndarray) -> np.ndarray:
    """Any float image -> float32 in [0, 1], C-contiguous."""
    return np.ascontiguousarray(np.clip(img, 0.0, 1.0), dtype=np.float32)


def _to_bgr8(img: np.ndarray) -> np.ndarray:
    """RGB float [0, 1] -> BGR uint8, what OpenCV's photo module takes."""
    return np.ascontiguousarray(np.rint(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)[..., ::-1])


def _from_bgr8(img: np.ndarray) -> np.ndarray:
    return _out(img[..., ::-1].astype(np.float32) / np.float32(255.0))


# ---- scikit-image ------------------------------------------------------------------------------------------

def tv_denoise(img: np.ndarray, weight: float = 0.1, eps: float = 2e-4, max_num_iter: int = 200) -> np.ndarray:
    """Total-variation (ROF) denoising, Chambolle's projection algorithm: ``skimage.restoration.denoise_tv_chambolle``.

    Reference: A. Chambolle, "An algorithm for total variation minimization and applications", JMIV 2004.
    """
    from skimage.restoration import denoise_tv_chambolle

    return _out(denoise_tv_chambolle(img, weight=weight, eps=eps, max_num_iter=max_num_iter, channel_axis=-1))


def clahe(img: np.ndarray, clip_limit: float = 0.01, nbins: int = 256) -> np.ndarray:
    """Contrast-limited adaptive histogram equalization on the HSV value channel:
    ``skimage.exposure.equalize_adapthist`` (tiles of 1/8 of the image per side, its default).

    Reference: K. Zuiderveld, "Contrast Limited Adaptive Histogram Equalization", Graphics Gems IV, 1994.
    """
    from skimage.exposure import equalize_adapthist

    return _out(equalize_adapthist(img, kernel_size=None, clip_limit=clip_limit, nbins=nbins))


def unsharp(img: np.ndarray, radius: float = 2.0, amount: float = 1.0) -> np.ndarray:
    """Unsharp masking, ``img + amount * (img - gaussian(img, radius))``: ``skimage.filters.unsharp_mask``.

    Reference: the darkroom technique; e.g. Gonzalez & Woods, Digital Image Processing, 3.6.3.
    """
    from skimage.filters import unsharp_mask

    # channel_axis=2, not -1: scikit-image <= 0.26 slices the wrong axis for a negative channel_axis and returns
    # uninitialised memory (scikit-image issue #7264, fix in PR #8085)
    return _out(unsharp_mask(img, radius=radius, amount=amount, channel_axis=2))


# ---- OpenCV's photo module (8-bit BGR in and out) ---------------------------------------------------------

def detail_enhance(img: np.ndarray, sigma_s: float = 10.0, sigma_r: float = 0.15) -> np.ndarray:
    """Detail enhancement by a domain-transform edge-preserving filter: ``cv2.detailEnhance``.

    Reference: E. Gastal, M. Oliveira, "Domain Transform for Edge-Aware Image and Video Processing", SIGGRAPH 2011.
    """
    return _from_bgr8(cv2.detailEnhance(_to_bgr8(img), sigma_s=sigma_s, sigma_r=sigma_r))


def edge_preserving(img: np.ndarray, flags: int = cv2.RECURS_FILTER, sigma_s: float = 60.0,
                    sigma_r: float = 0.4) -> np.ndarray:
    """Edge-preserving smoothing, domain transform (recursive filter): ``cv2.edgePreservingFilter``.

    Reference: E. Gastal, M. Oliveira, "Domain Transform for Edge-Aware Image and Video Processing", SIGGRAPH 2011.
    """
    return _from_bgr8(cv2.edgePreservingFilter(_to_bgr8(img), flags=int(flags), sigma_s=sigma_s, sigma_r=sigma_r))


def stylization(img: np.ndarray, sigma_s: float = 60.0, sigma_r: float = 0.45) -> np.ndarray:
    """Painterly abstraction (flat regions, dark edges): ``cv2.stylization``.

    Reference: OpenCV photo module, non-photorealistic rendering after Gastal & Oliveira, SIGGRAPH 2011.
    """
    return _from_bgr8(cv2.stylization(_to_bgr8(img), sigma_s=sigma_s, sigma_r=sigma_r))


def pencil_sketch(img: np.ndarray, sigma_s: float = 60.0, sigma_r: float = 0.07,
                  shade_factor: float = 0.02) -> np.ndarray:
    """Colour pencil drawing (texture replaced by strokes): the colour output of ``cv2.pencilSketch``.

    Reference: OpenCV photo module, non-photorealistic rendering after Gastal & Oliveira, SIGGRAPH 2011.
    """
    _, colour = cv2.pencilSketch(_to_bgr8(img), sigma_s=sigma_s, sigma_r=sigma_r, shade_factor=shade_factor)
    return _from_bgr8(colour)


# ---- written here, after the papers -----------------------------------------------------------------------

def _box(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window, borders reflected."""
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def _guided_filter(guide: np.ndarray, src: np.ndarray, r: int, eps: float) -> np.ndarray:
    """Grey-guide guided filter (He, Sun, Tang, "Guided Image Filtering", ECCV 2010, Algorithm 1)."""
    mean_i, mean_p = _box(guide, r), _box(src, r)
    cov_ip = _box(guide * src, r) - mean_i * mean_p
    var_i = _box(guide * guide, r) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return _box(a, r) * guide + _box(b, r)


def dehaze(img: np.ndarray, patch: int = 15, omega: float = 0.95, t0: float = 0.1, top_fraction: float = 0.001,
           guide_radius: int = 60, guide_eps: float = 1e-3) -> np.ndarray:
    """Single-image haze removal by the dark channel prior, transmission refined by a guided filter.

    Model ``I = J t + A (1 - t)``: the dark channel (min over a ``patch`` window of the min over colours) of a
    haze-free outdoor image is near 0, so ``t = 1 - omega * dark(I / A)``; the airlight ``A`` is the
    brightest input pixel (by intensity) among the ``top_fraction`` haziest by dark channel; ``t`` is refined by
    a guided filter on the grey input and clamped at ``t0``; ``J = (I - A) / t + A``.

    Reference: K. He, J. Sun, X. Tang, "Single Image Haze Removal Using Dark Channel Prior", CVPR 2009 / TPAMI 2011.
    """
    x = img.astype(np.float64)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (patch, patch))
    dark = cv2.erode(x.min(axis=2), kernel, borderType=cv2.BORDER_REFLECT)
    n = max(1, int(round(top_fraction * dark.size)))
    top = np.argsort(dark, axis=None, kind="stable")[-n:]  # the haziest pixels (ties broken by position)
    flat = x.reshape(-1, 3)
    airlight = flat[top[np.argmax(flat[top].sum(axis=1))]]  # the brightest of them
    airlight = np.maximum(airlight, 1e-3)
    t = 1.0 - omega * cv2.erode((x / airlight).min(axis=2), kernel, borderType=cv2.BORDER_REFLECT)
    grey = x @ np.array([0.299, 0.587, 0.114])
    t = _guided_filter(grey, t, guide_radius, guide_eps)
    t = np.maximum(t, t0)[..., None]
    return _out((x - airlight) / t + airlight)


def l0_smooth(img: np.ndarray, lam: float = 2e-2, kappa: float = 2.0, beta_max: float = 1e5) -> np.ndarray:
    """L0 gradient minimization: ``min_S |S - I|^2 + lam * #{p : grad S(p) != 0}``, by half-quadratic splitting
    (the paper's Algorithm 1: beta from 2 lam, times kappa per iteration, until beta_max), gradients by circular
    forward differences, the S-step solved by FFT.

    Reference: L. Xu, C. Lu, Y. Xu, J. Jia, "Image Smoothing via L0 Gradient Minimization", SIGGRAPH Asia 2011.
    """
    from scipy import fft

    # channels first, float32 (scipy's FFTs keep the precision; numpy's are float64)
    s = np.ascontiguousarray(np.moveaxis(img, 2, 0), dtype=np.float32)
    h, w = s.shape[1:]
    # |F(d_x)|^2 + |F(d_y)|^2 of the forward-difference kernels, on rfft2's half plane
    fy = 2.0 - 2.0 * np.cos(2.0 * np.pi * np.arange(h) / h)
    fx = 2.0 - 2.0 * np.cos(2.0 * np.pi * np.arange(w // 2 + 1) / w)
    denorm2 = (fy[:, None] + fx[None, :]).astype(np.float32)
    norm1 = fft.rfft2(s)
    gx, gy, div = np.empty_like(s), np.empty_like(s), np.empty_like(s)
    beta = 2.0 * lam
    while beta < beta_max:
        # circular forward differences S(x+1) - S(x), S(y+1) - S(y)
        np.subtract(s[:, :, 1:], s[:, :, :-1], out=gx[:, :, :-1])
        np.subtract(s[:, :, :1], s[:, :, -1:], out=gx[:, :, -1:])
        np.subtract(s[:, 1:], s[:, :-1], out=gy[:, :-1])
        np.subtract(s[:, :1], s[:, -1:], out=gy[:, -1:])
        small = (gx * gx + gy * gy).sum(axis=0) < lam / beta  # the h, v step: keep a gradient only if it pays
        gx[:, small] = 0.0
        gy[:, small] = 0.0
        # D^T applied to (h, v): g(x-1) - g(x), circular
        np.subtract(gx[:, :, :-1], gx[:, :, 1:], out=div[:, :, 1:])
        np.subtract(gx[:, :, -1:], gx[:, :, :1], out=div[:, :, :1])
        div[:, 1:] += gy[:, :-1] - gy[:, 1:]
        div[:, :1] += gy[:, -1:] - gy[:, :1]
        s = fft.irfft2((norm1 + np.float32(beta) * fft.rfft2(div)) / (1 + np.float32(beta) * denorm2), s=(h, w))
        beta *= kappa
    s = np.moveaxis(s, 0, 2)
    return _out(s)


def _surround(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of std ``sigma`` px; a wide one is computed on a copy shrunk by a power of two f <= sigma / 4
    (area), blurred by sigma / f and enlarged again (bilinear): the surround is smooth at that scale, and an exact
    250 px kernel would cost ~1500 taps per pixel."""
    if sigma <= 8:
        return cv2.GaussianBlur(x, (0, 0), float(sigma), borderType=cv2.BORDER_REFLECT)
    f = 2 ** int(np.floor(np.log2(sigma / 4.0)))
    h, w = x.shape[:2]
    small = cv2.resize(x, (max(1, round(w / f)), max(1, round(h / f))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), float(sigma) / f, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def retinex(img: np.ndarray, sigmas: tuple[float, ...] = (15.0, 80.0, 250.0), alpha: float = 125.0,
            beta: float = 46.0, low_clip: float = 0.01, high_clip: float = 0.01) -> np.ndarray:
    """Multiscale Retinex with colour restoration (MSRCR), then a simplest colour balance.

    On 8-bit-scaled values ``I + 1``: ``MSR = mean_s (log I - log G_s * I)`` over Gaussian surrounds ``sigmas``;
    colour restoration ``C = beta (log(alpha I) - log sum_c I)``; ``MSR C`` per channel stretched to [0, 1] after
    clipping ``low_clip`` / ``high_clip`` of its pixels at either end (the paper's final gain and offset, G and
    b, would change nothing before this stretch). Surrounds wider than 8 px are computed at a reduced scale.

    Reference: D. Jobson, Z. Rahman, G. Woodell, "A multiscale retinex for bridging the gap between color
    images and the human observation of scenes", IEEE TIP 1997.
    """
    x = img.astype(np.float32) * np.float32(255.0) + np.float32(1.0)
    log_x = np.log(x)
    msr = np.zeros_like(x)
    for sigma in sigmas:
        msr += log_x - np.log(_surround(x, sigma))
    msr /= len(sigmas)
    colour = np.float32(beta) * (np.log(np.float32(alpha) * x) - np.log(x.sum(axis=2, keepdims=True)))
    y = msr * colour
    out = np.empty_like(y)
    for c in range(3):
        lo, hi = np.quantile(y[..., c], [low_clip, 1.0 - high_clip])
        out[..., c] = (y[..., c] - lo) / (hi - lo) if hi > lo else 0.5
    return _out(out)


SUITE: dict[str, Callable[..., np.ndarray]] = {
    "tv_denoise": tv_denoise,
    "clahe": clahe,
    "unsharp": unsharp,
    "detail_enhance": detail_enhance,
    "edge_preserving": edge_preserving,
    "stylization": stylization,
    "pencil_sketch": pencil_sketch,
    "dehaze": dehaze,
    "l0_smooth": l0_smooth,
    "retinex": retinex,
}

# Where each operator comes from, for the suite's table.
LIBRARY = {"tv_denoise": "scikit-image", "clahe": "scikit-image", "unsharp": "scikit-image",
           "detail_enhance": "OpenCV", "edge_preserving": "OpenCV", "stylization": "OpenCV",
           "pencil_sketch": "OpenCV", "dehaze": "NumPy/OpenCV", "l0_smooth": "NumPy", "retinex": "NumPy/OpenCV"}
REFERENCE = {
    "tv_denoise": "Chambolle 2004 (ROF total variation)",
    "clahe": "Zuiderveld 1994 (CLAHE)",
    "unsharp": "unsharp masking",
    "detail_enhance": "Gastal & Oliveira 2011 (domain transform)",
    "edge_preserving": "Gastal & Oliveira 2011 (recursive filter)",
    "stylization": "OpenCV NPR stylization (painterly)",
    "pencil_sketch": "OpenCV NPR pencil sketch (colour)",
    "dehaze": "He, Sun & Tang 2009 (dark channel prior)",
    "l0_smooth": "Xu, Lu, Xu & Jia 2011 (L0 gradient minimization)",
    "retinex": "Jobson, Rahman & Woodell 1997 (MSRCR)",
}
