"""Colour-space conversions shared by sources, pair streams, teachers and reports (torch and numpy)."""
from __future__ import annotations

import numpy as np
import torch

# Rec. 709 / sRGB luminance weights.
LUMA = (0.2126, 0.7152, 0.0722)


def srgb_to_linear(x):
    """IEC 61966-2-1 sRGB decoding; works on numpy arrays and torch tensors, values in [0, 1]."""
    if isinstance(x, torch.Tensor):
        return torch.where(x <= 0.04045, x / 12.92, ((x.clamp(min=0) + 0.055) / 1.055) ** 2.4)
    x = np.asarray(x, dtype=np.float32)
    return np.where(x <= 0.04045, x / 12.92, ((np.maximum(x, 0) + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x):
    """sRGB encoding of linear values; input clipped to [0, 1] first (display-referred output)."""
    if isinstance(x, torch.Tensor):
        x = x.clamp(0, 1)
        return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp(min=1e-12) ** (1 / 2.4) - 0.055)
    x = np.clip(np.asarray(x, dtype=np.float32), 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.maximum(x, 1e-12) ** (1 / 2.4) - 0.055).astype(
        np.float32
    )


def luminance(x):
    """Luminance of RGB; numpy [...,3] (channels last) or torch [B,3,H,W] (channels first)."""
    if isinstance(x, torch.Tensor):
        w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * w).sum(1, keepdim=True)
    return np.asarray(x, dtype=np.float32) @ np.asarray(LUMA, dtype=np.float32)


def to_space(linear: torch.Tensor, space: str) -> torch.Tensor:
    """Convert a linear-RGB batch ``[B,3,H,W]`` from a source into a teacher's declared input space."""
    if space == "srgb":
        return linear_to_srgb(linear)
    if space == "linear":
        return linear.clamp(0, 1)
    if space == "hdr":
        # Exposure normalisation: each image is divided by its maximum. The HDR teachers are invariant to
        # exposure scaling (they normalise the same way), and the student's log encoding expects a peak of 1.
        x = linear.clamp(min=0)
        peak = x.amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-20)
        return x / peak
    raise ValueError(f"unknown colour space '{space}' (expected one of srgb, linear, hdr)")
