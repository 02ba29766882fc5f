"""Small deterministic images and bursts shared by the HDR+ tests."""
from __future__ import annotations

import cv2
import numpy as np
from skimage import data

from distill.core.color import srgb_to_linear
from teachers.hdrplus.burst import Burst, SRGB_FROM_XYZ


def textured_linear(h: int = 128, w: int = 128) -> np.ndarray:
    """[h, w, 3] float32 linear crop of scikit-image's astronaut (texture for alignment)."""
    img = cv2.resize(data.astronaut(), (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    return np.ascontiguousarray(srgb_to_linear(img))


def burst_from_mosaics(mosaics: np.ndarray, sigma: float, seed: int = 0) -> Burst:
    """A Burst whose normalised frames are ``mosaics`` [N, H, W] plus Gaussian noise of std ``sigma``
    (12-bit, black 256, neutral white balance, sRGB camera)."""
    rng = np.random.default_rng(seed)
    noisy = mosaics + rng.normal(0, sigma, mosaics.shape)
    dn = np.clip(np.round(256 + noisy * (4095 - 256)), 0, 4095).astype(np.uint16)
    return Burst(
        frames=dn, cfa_pattern="RGGB", black_level=np.full(4, 256.0), white_level=4095,
        wb_gains=np.ones(3), xyz_to_cam=SRGB_FROM_XYZ, noise_model=(0.0, sigma**2),
    )
