"""Synthetic training images from the dead-leaves model: unlimited content with natural-image statistics.

A student distilled from a handful of photos learns those photos. The dead-leaves model (Matheron; Lee,
Mumford, Huang 2001) stacks opaque shapes whose radii follow a power law ``p(r) ~ r^-3``: its images are
scale-invariant, with edges, occlusions and flat regions at every scale, as photos are. Each leaf here also
carries a texture (a grating or noise, so detail operators have fine detail to act on), and the whole image
a smooth illumination field. Colours are drawn in HSV with mostly muted saturation and mid-to-bright value,
then decoded to linear light like the embedded photos.

Items are pure functions of ``(seed, index)``: DataLoader workers can build any item in any order.

    >>> src = DeadLeavesSource(count=4, size=128)
    >>> src[0].linear.shape, src[0].name
    ((128, 128, 3), 'leaves_0000')
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from distill.data.sources import ConcatSource, SourceImage  # noqa: F401 (ConcatSource: configs written before it moved)


def _srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _colours(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` sRGB-encoded colours in [0,1]: muted saturation (most surfaces are), mostly mid-to-bright value."""
    hsv = np.empty((1, n, 3), np.float32)
    hsv[0, :, 0] = rng.uniform(0, 360, n)
    hsv[0, :, 1] = rng.beta(1.2, 2.5, n)
    hsv[0, :, 2] = 0.02 + 0.98 * rng.beta(1.6, 1.3, n)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]


def dead_leaves(size: int, rng: np.random.Generator, r_min: float = 5.0, r_max: float | None = None,
                coverage: float = 6.0, texture: float = 0.6, blur: float = 0.6) -> np.ndarray:
    """One ``size x size`` dead-leaves image, sRGB-encoded float32 in [0,1] ``[H,W,3]``.

    Args:
        r_min, r_max: leaf radius range in pixels (power law r^-3 between them; r_max default size/2).
        coverage: summed leaf area / drawing area (before the ellipse squash); 6 leaves few gaps.
        texture: probability that a leaf carries a grating or noise texture.
        blur: maximum Gaussian blur sigma (pixels) of the final image, drawn uniformly (0 = sharp).
    """
    r_max = size / 2 if r_max is None else r_max
    # Inverse-CDF draw from p(r) ~ r^-3 on [r_min, r_max].
    a, b = r_min**-2, r_max**-2
    mean_area = np.pi * 2 / (a - b) * np.log(r_max / r_min)  # E[pi r^2] under p(r) ~ r^-3
    n = int(coverage * size * size / mean_area) + 1
    radii = (a - rng.uniform(0, 1, n) * (a - b)) ** -0.5
    centres = rng.uniform(-0.1 * size, 1.1 * size, (n, 2))
    colours = _colours(rng, n)
    # Every per-leaf parameter is drawn up front, so `texture` changes the textures and not the layout.
    theta, aspect = rng.uniform(0, np.pi, n), rng.uniform(0.5, 1.0, n)
    textured, grating = rng.uniform(0, 1, n) < texture, rng.uniform(0, 1, n) < 0.5
    amp, period, phase = rng.uniform(0.05, 0.35, n), rng.uniform(2.5, 40, n), rng.uniform(0, 2 * np.pi, n)
    grain, noise_seed = rng.uniform(0.3, 2.0, n), rng.integers(0, 2**31, n)
    img = np.empty((size, size, 3), np.float32)
    img[:] = _colours(rng, 1)[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    # Painter's order, back to front: each leaf overwrites what it covers.
    for k in range(n):
        r, (cy, cx) = radii[k], centres[k]
        y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 2, size)
        x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 2, size)
        if y0 >= y1 or x0 >= x1:
            continue
        py, px = yy[y0:y1, x0:x1], xx[y0:y1, x0:x1]
        # An ellipse, not only discs: random aspect and orientation.
        u = (px - cx) * np.cos(theta[k]) + (py - cy) * np.sin(theta[k])
        v = (-(px - cx) * np.sin(theta[k]) + (py - cy) * np.cos(theta[k])) / aspect[k]
        inside = u * u + v * v <= r * r
        if not inside.any():
            continue
        patch = np.broadcast_to(colours[k], inside.shape + (3,)).copy()
        if textured[k]:
            if grating[k]:  # period 2.5..40 px, any orientation
                t = np.sin(2 * np.pi * u / period[k] + phase[k])
            else:  # noise, smoothed to a random grain
                noise = np.random.default_rng(noise_seed[k]).standard_normal(inside.shape).astype(np.float32)
                t = cv2.GaussianBlur(noise, (0, 0), grain[k])
                t /= t.std() + 1e-6
            patch *= np.clip(1 + amp[k] * t, 0, None)[..., None]
        img[y0:y1, x0:x1][inside] = patch[inside]
    # Smooth illumination: a random linear ramp in log intensity across the frame (up to ~2 stops).
    g = rng.uniform(-1, 1, 2) * rng.uniform(0, 1.0)
    shade = np.exp2(g[0] * (yy / size - 0.5) + g[1] * (xx / size - 0.5))[..., None]
    img = img * shade
    s = rng.uniform(0, blur)
    if s > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), s)
    return np.clip(img, 0, 1).astype(np.float32)


class DeadLeavesSource(Sequence):
    """``count`` dead-leaves images of ``size`` pixels, as linear-light ``SourceImage`` items.

    Args:
        count: number of images.
        size: side in pixels.
        seed: item ``i`` is drawn from ``default_rng([seed, i])``.
        **params: forwarded to :func:`dead_leaves` (r_min, r_max, coverage, texture, blur).
    """

    def __init__(self, count: int = 24, size: int = 512, seed: int = 0, **params):
        if int(count) < 1 or int(size) < 16:
            raise ValueError(f"DeadLeavesSource: need count >= 1 and size >= 16, got count={count}, size={size}")
        unknown = set(params) - {"r_min", "r_max", "coverage", "texture", "blur"}
        if unknown:
            raise ValueError(f"DeadLeavesSource: unknown parameter(s) {sorted(unknown)}")
        self.count, self.size, self.seed, self.params = int(count), int(size), int(seed), params

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> SourceImage:
        if not -self.count <= i < self.count:
            raise IndexError(f"DeadLeavesSource: index {i} out of range for {self.count} images")
        i %= self.count
        srgb = dead_leaves(self.size, np.random.default_rng([self.seed, i]), **self.params)
        return SourceImage(name=f"leaves_{i:04d}", linear=_srgb_to_linear(srgb).astype(np.float32),
                           meta={"synthetic": "dead_leaves", "seed": [self.seed, i]})
