"""HDR+ finishing: from a merged (or single) normalised Bayer mosaic to display sRGB, one function per step.

The order follows Hasinoff et al. 2016 Section 6 (and timothybrooks/hdr-plus's ``finish``): black/white
level, white balance, demosaic, colour matrix to linear sRGB, local tone mapping by exposure fusion of a
synthetic short/long pair, sRGB gamma, light sharpening. ``develop_linear`` stops after the colour matrix
(the student's input); ``finish`` runs everything (the teacher's output).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from distill.core.color import LUMA, linear_to_srgb, srgb_to_linear


@dataclass(frozen=True)
class FinishParams:
    """Finishing settings."""

    tone_gain: float = 4.0  # exposure ratio of the synthetic long frame to the short one (1 = no tone map)
    fusion_sigma: float = 0.2  # Mertens well-exposedness width around 0.5 (gamma-encoded)
    sharpen_amount: float = 0.3  # unsharp-mask strength (0 = off)
    sharpen_sigma: float = 1.0  # unsharp-mask blur radius, pixels


def cfa_tile(values_by_position: np.ndarray, h: int, w: int) -> np.ndarray:
    """Expand 4 values (CFA positions (0,0), (0,1), (1,0), (1,1)) to an [h, w] mosaic."""
    cell = np.asarray(values_by_position, np.float32).reshape(2, 2)
    return np.tile(cell, (h // 2, w // 2))


def black_white_level(raw: np.ndarray, black_level: np.ndarray, white_level: float) -> np.ndarray:
    """Linearise raw digital numbers: black -> 0, white -> 1, per CFA position. [..., H, W] -> float32."""
    h, w = raw.shape[-2:]
    black = cfa_tile(np.broadcast_to(np.asarray(black_level, np.float32).ravel(), (4,)), h, w)
    return ((raw.astype(np.float32) - black) / (np.float32(white_level) - black)).astype(np.float32)


def white_balance(bayer: np.ndarray, gains: np.ndarray, pattern: str, clip: bool = True) -> np.ndarray:
    """Multiply each CFA sample by its colour's gain; ``clip`` caps at 1 so that saturated highlights,
    whichever channel clipped first, end up white rather than tinted."""
    gains = np.asarray(gains, np.float32)
    per_pos = np.array([gains["RGB".index(c)] for c in pattern], np.float32)
    out = bayer.astype(np.float32) * cfa_tile(per_pos, *bayer.shape[-2:])
    return np.minimum(out, 1.0) if clip else out


# bilinear interpolation kernels: green from its 4 neighbours, red/blue from 2 or 4 neighbours
_K_GREEN = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float32) / 4
_K_RED_BLUE = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4


def demosaic_bilinear(bayer: np.ndarray, pattern: str) -> np.ndarray:
    """Bilinear demosaicking: [H, W] mosaic -> [H, W, 3] RGB; known samples are kept exactly.

    Each colour's samples are placed on a zero image and convolved with a kernel whose weights at the
    sample positions it can reach sum to 1 (reflect-101 borders keep the CFA phase).
    """
    h, w = bayer.shape
    out = np.empty((h, w, 3), np.float32)
    for ch in range(3):
        mask = cfa_tile(np.array([1.0 if c == "RGB"[ch] else 0.0 for c in pattern]), h, w)
        kernel = _K_GREEN if ch == 1 else _K_RED_BLUE
        out[..., ch] = cv2.filter2D(bayer.astype(np.float32) * mask, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    return out


def apply_color_matrix(rgb: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Per-pixel 3x3 colour transform: out = matrix @ rgb. [..., 3] -> [..., 3] float32."""
    return (rgb.astype(np.float32) @ np.asarray(matrix, np.float32).T).astype(np.float32)


def _exposure_fusion(images: list[np.ndarray], weights: list[np.ndarray]) -> np.ndarray:
    """Mertens et al. 2007 multi-resolution blend of single-channel images with per-pixel weights."""
    h, w = images[0].shape
    levels = max(1, int(np.floor(np.log2(max(1, min(h, w))))) - 3)
    total = np.sum(weights, axis=0) + 1e-12
    blended = None
    for img, wgt in zip(images, weights):
        # Gaussian pyramid of the normalised weight, Laplacian pyramid of the image
        g_w = [wgt / total]
        g_i = [img]
        for _ in range(levels - 1):
            g_w.append(cv2.pyrDown(g_w[-1]))
            g_i.append(cv2.pyrDown(g_i[-1]))
        lap = [g_i[k] - cv2.pyrUp(g_i[k + 1], dstsize=g_i[k].shape[::-1]) for k in range(levels - 1)] + [g_i[-1]]
        contrib = [lw * gw for lw, gw in zip(lap, g_w)]
        blended = contrib if blended is None else [b + c for b, c in zip(blended, contrib)]
    # collapse
    out = blended[-1]
    for k in range(levels - 2, -1, -1):
        out = blended[k] + cv2.pyrUp(out, dstsize=blended[k].shape[::-1])
    return out


def tone_map(rgb: np.ndarray, gain: float = 4.0, sigma: float = 0.2) -> np.ndarray:
    """Local tone mapping by exposure fusion (Hasinoff Sec. 6): brighten shadows, keep mid-tones.

    A synthetic short exposure (the image) and long exposure (the image times ``gain``, clipped) of the
    luminance are gamma-encoded and fused with Mertens' well-exposedness weights
    ``exp(-(v - 0.5)^2 / (2 sigma^2))``; the colour image is scaled by fused / original luminance.
    ``gain = 1`` is the identity.

    Args:
        rgb: [H, W, 3] linear sRGB in [0, 1].
    Returns:
        [H, W, 3] linear sRGB, tone-mapped.
    """
    grey = np.maximum(rgb.astype(np.float32) @ np.asarray(LUMA, np.float32), 0.0)
    short = linear_to_srgb(np.minimum(grey, 1.0))
    long = linear_to_srgb(np.minimum(grey * np.float32(gain), 1.0))
    weights = [np.exp(-((v - 0.5) ** 2) / (2 * sigma * sigma)).astype(np.float32) for v in (short, long)]
    fused = _exposure_fusion([short, long], weights)
    fused_lin = srgb_to_linear(np.clip(fused, 0.0, 1.0))
    ratio = np.where(grey > 1e-6, fused_lin / np.maximum(grey, 1e-6), 1.0).astype(np.float32)
    return rgb.astype(np.float32) * ratio[..., None]


def gamma_srgb(rgb: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 sRGB encoding (clips to [0, 1])."""
    return linear_to_srgb(rgb)


def sharpen(srgb: np.ndarray, amount: float = 0.3, sigma: float = 1.0) -> np.ndarray:
    """Unsharp mask: x + amount * (x - blur(x)), clipped to [0, 1]; ``amount = 0`` is the identity."""
    if amount == 0:
        return np.clip(srgb, 0.0, 1.0).astype(np.float32)
    blurred = cv2.GaussianBlur(srgb.astype(np.float32), (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT_101)
    return np.clip(srgb + amount * (srgb - blurred), 0.0, 1.0).astype(np.float32)


def develop_linear(bayer: np.ndarray, pattern: str, wb_gains: np.ndarray, rgb_from_cam: np.ndarray) -> np.ndarray:
    """White balance, demosaic, colour matrix: normalised mosaic [H, W] -> linear sRGB [H, W, 3] in [0, 1]."""
    balanced = white_balance(bayer, wb_gains, pattern)
    cam = demosaic_bilinear(balanced, pattern)
    return np.clip(apply_color_matrix(cam, rgb_from_cam), 0.0, 1.0)


def finish(
    bayer: np.ndarray,
    pattern: str,
    wb_gains: np.ndarray,
    rgb_from_cam: np.ndarray,
    params: FinishParams = FinishParams(),
) -> np.ndarray:
    """The whole finishing pipeline: normalised mosaic [H, W] -> display sRGB [H, W, 3] float32 in [0, 1]."""
    linear = develop_linear(bayer, pattern, wb_gains, rgb_from_cam)
    mapped = tone_map(linear, params.tone_gain, params.fusion_sigma)
    return sharpen(gamma_srgb(mapped), params.sharpen_amount, params.sharpen_sigma)
