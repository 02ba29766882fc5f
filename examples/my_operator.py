"""A worked example of "your own operator": a *clarity + warm* look in NumPy/OpenCV.

Distill it (from the repository root):

    hdr-distill train teacher=python teacher.fn=examples/my_operator.py:clarity_warm
    hdr-distill train --config-dir examples teacher=my_operator        # the same, via examples/teacher/

The function is plain NumPy: it takes one HxWx3 float32 sRGB image in [0, 1] and returns one. The
``@teacher`` decorator is optional; it records the colour spaces so that the command line stays short.
"""
from __future__ import annotations

import cv2
import numpy as np

from teachers.python import teacher

LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)  # Rec. 709 weights, applied to sRGB-encoded values


@teacher(input_space="srgb", output_space="srgb")
def clarity_warm(img: np.ndarray, clarity: float = 0.6, radius: float = 0.03, contrast: float = 0.25,
                 warmth: float = 0.06) -> np.ndarray:
    """Local contrast on luma, an S-shaped tone curve, and a warm colour shift.

    Args:
        img: HxWx3 float32 sRGB in [0, 1].
        clarity: strength of the unsharp mask on luma (0: none).
        radius: blur sigma as a fraction of the image's short side, so the look is the same at any
            resolution (a student trained on crops is applied to whole photos).
        contrast: blend between the identity (0) and a smoothstep S-curve (1).
        warmth: red gain 1 + warmth, blue gain 1 - warmth.

    Returns:
        HxWx3 float32 sRGB in [0, 1].
    """
    # 1. clarity: unsharp mask on luma with a large radius (local contrast, not sharpening)
    y = img @ LUMA  # [H,W]
    sigma = max(0.5, radius * min(img.shape[:2]))
    base = cv2.GaussianBlur(y, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    out = img + (clarity * (y - base))[..., None]  # the same detail on every channel keeps the hue
    # 2. tone curve: identity blended with smoothstep
    out = np.clip(out, 0.0, 1.0)
    out = (1 - contrast) * out + contrast * (out * out * (3 - 2 * out))
    # 3. warm shift
    out = out * np.array([1 + warmth, 1.0, 1 - warmth], np.float32)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
