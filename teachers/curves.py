"""Global tone curves: the simplest teachers, useful as a sanity check of the whole distillation path."""
from __future__ import annotations

import torch

from distill.core.protocols import check_images


class GammaCurve:
    """``y = gain * x ** gamma`` per channel, clipped to [0, 1]. A global operator any grid can represent."""

    input_space = "srgb"
    output_space = "srgb"

    def __init__(self, gamma: float = 0.5, gain: float = 1.0, name: str = "gamma_curve"):
        if gamma <= 0:
            raise ValueError(f"GammaCurve: gamma must be > 0, got {gamma}")
        self.gamma, self.gain, self.name = float(gamma), float(gain), name

    def params(self) -> dict:
        return {"gamma": self.gamma, "gain": self.gain}

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images, f"teacher '{self.name}'")
        return (self.gain * images.clamp(min=0) ** self.gamma).clamp(0, 1)
