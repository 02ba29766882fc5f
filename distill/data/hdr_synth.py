"""Synthetic HDR scenes from ordinary linear LDR photos, so tone-mapping demos run with no downloads.

Free HDR data is scarce on a fresh machine, while the embedded photos (scikit-image) are LDR: their scene-
linear values stop at 1 (clipped highlights) and span roughly 8-12 stops. :func:`synthesize_hdr` turns one
into a plausible HDR scene, deterministically from a seed, in four stages:

1. **Highlight expansion** (inverse tone curve): luminance ``L`` is mapped by the inverse of a Reinhard-style
   shoulder, ``L' = L / (1 - L * (1 - 1/g))``: slope 1 at black, ``L' = g`` at ``L = 1``. This undoes the
   highlight roll-off a camera applies, so near-white areas become ``g`` times brighter (g = ``highlight_gain``,
   drawn in [4, 16]). Colour is kept by scaling RGB with ``L'/L``.
2. **Sky gain**: the bright part of the upper image (luminance above the 75th percentile, weighted by a ramp
   that is 1 at the top edge and 0 below ``sky_extent`` of the height, then blurred) is multiplied by up to
   ``sky_gain`` (drawn in [2, 16]): skies and windows are far brighter than the rest of a real scene.
3. **Light sources**: ``n_lights`` (drawn in [1, 4]) Gaussian blobs of radius 0.3-2 % of the shorter side,
   a warm-to-neutral tint, and a peak of ``light_gain`` (log-uniform in [10, 1000]) times LDR white, are added.
4. **Exposure**: the whole scene is multiplied by ``2 ** stops`` with stops uniform in ``exposure_stops``
   ([-3, 3], a 6-stop span), so scale-dependent code sees very different absolute levels.

The result is float32, finite, >= 0. :func:`dynamic_range_stops` measures it as ``log2(max / p1)``, with p1 the
1st percentile of the non-zero luminance (a robust black level). On five embedded photos (5 seeds each) the
synthetic scenes span 9-23 stops against 4-12 for the LDR input, 5-11 stops more (``python -m distill.data.hdr_synth``
prints the table).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from distill.core.color import luminance

# Parameter ranges drawn per image (low, high); a scalar passed by the caller fixes the value instead.
DEFAULTS: dict[str, Any] = {
    "highlight_gain": (4.0, 16.0),  # L=1 maps to this; undoes the camera's highlight shoulder
    "sky_gain": (2.0, 16.0),  # extra gain on the bright upper region
    "sky_extent": 0.5,  # fraction of the height the sky ramp reaches down to
    "n_lights": (1, 4),  # number of light blobs, inclusive
    "light_gain": (10.0, 1000.0),  # blob peak in units of LDR white, drawn log-uniform
    "light_radius": (0.003, 0.02),  # blob sigma as a fraction of the shorter side
    "exposure_stops": (-3.0, 3.0),  # global exposure scale 2**U(lo, hi)
}


def _draw(rng: np.random.Generator, value, log: bool = False, integer: bool = False):
    """A scalar stays fixed; a (lo, hi) pair is drawn uniformly (log-uniform or integer if asked)."""
    if np.isscalar(value):
        return value
    lo, hi = value
    if integer:
        return int(rng.integers(int(lo), int(hi) + 1))
    if log:
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return float(rng.uniform(lo, hi))


def synthesize_hdr(linear: np.ndarray, seed: int, return_params: bool = False, **params):
    """Make a synthetic HDR scene from one linear LDR image. Deterministic in (image, seed, params).

    Args:
        linear: [H,W,3] scene-linear RGB floats in [0, 1] (values outside are clipped; must be finite).
        seed: seed of the random draws (any non-negative int).
        return_params: also return the dict of values actually drawn.
        **params: override the ranges in ``DEFAULTS``: a (lo, hi) pair is drawn from, a scalar is used as is.

    Returns:
        float32 [H,W,3] linear HDR radiance (>= 0, finite), or (hdr, drawn params).

    Example:
        >>> hdr = synthesize_hdr(np.full((64, 64, 3), 0.5, np.float32), seed=0)
        >>> dynamic_range_stops(hdr) > 3
        True
    """
    linear = np.asarray(linear)
    if linear.ndim != 3 or linear.shape[2] != 3:
        raise ValueError(f"synthesize_hdr: linear must be [H,W,3], got shape {linear.shape}")
    if not np.isfinite(linear).all():
        raise ValueError("synthesize_hdr: linear contains NaN or Inf")
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"synthesize_hdr: unknown parameter(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    cfg = {**DEFAULTS, **params}
    rng = np.random.default_rng(int(seed))
    x = np.clip(linear.astype(np.float32), 0.0, 1.0)  # [H,W,3]
    H, W = x.shape[:2]
    drawn: dict[str, Any] = {}

    # 1. highlight expansion: inverse shoulder on luminance, colour kept by ratio
    g = drawn["highlight_gain"] = _draw(rng, cfg["highlight_gain"])
    lum = luminance(x)  # [H,W]
    lum_c = np.minimum(lum, 1.0)
    expanded = lum_c / (1.0 - lum_c * (1.0 - 1.0 / g))
    x = x * np.where(lum > 0, expanded / np.maximum(lum, 1e-12), 1.0)[..., None].astype(np.float32)

    # 2. sky gain: bright pixels of the upper part, smooth mask, multiplied up
    sky = drawn["sky_gain"] = _draw(rng, cfg["sky_gain"])
    extent = float(cfg["sky_extent"])
    ramp = np.clip(1.0 - np.arange(H, dtype=np.float32) / max(extent * H, 1.0), 0.0, 1.0)[:, None]  # [H,1]
    lum = luminance(x)
    bright = (lum > np.percentile(lum, 75)).astype(np.float32)  # [H,W]
    blur = max(1.0, 0.01 * min(H, W))
    mask = cv2.GaussianBlur(bright * ramp, (0, 0), blur)  # [H,W] in [0,1]
    x = x * (1.0 + (sky - 1.0) * mask)[..., None]

    # 3. light sources: Gaussian blobs, peak light_gain x LDR white, warm-to-neutral tint
    n = drawn["n_lights"] = _draw(rng, cfg["n_lights"], integer=True)
    yy, xx = np.arange(H, dtype=np.float32)[:, None], np.arange(W, dtype=np.float32)[None, :]
    lights = []
    for _ in range(n):
        gain = _draw(rng, cfg["light_gain"], log=True)
        sigma = max(0.5, _draw(rng, cfg["light_radius"]) * min(H, W))
        cy, cx = rng.uniform(0, H), rng.uniform(0, W)
        warmth = rng.uniform(0.0, 1.0)
        tint = np.array([1.0, 1.0 - 0.25 * warmth, 1.0 - 0.55 * warmth], np.float32)  # [3]
        # evaluated within 6 sigma only: exp(-18) * 1000 < 2e-5, and no far-away denormal tails
        r = int(np.ceil(6 * sigma))
        y0, y1 = max(0, int(cy) - r), min(H, int(cy) + r + 1)
        x0, x1 = max(0, int(cx) - r), min(W, int(cx) + r + 1)
        if y0 < y1 and x0 < x1:
            d2 = (yy[y0:y1] - cy) ** 2 + (xx[:, x0:x1] - cx) ** 2  # [h,w]
            blob = np.exp(-d2 / np.float32(2 * sigma**2))
            x[y0:y1, x0:x1] += np.float32(gain) * blob[..., None] * tint
        lights.append({"gain": gain, "sigma_px": sigma, "center": (cy, cx), "tint": tint.tolist()})
    drawn["lights"] = lights

    # 4. global exposure scale over several stops
    stops = drawn["exposure_stops"] = _draw(rng, cfg["exposure_stops"])
    hdr = (x * np.float32(2.0**stops)).astype(np.float32)
    drawn["dynamic_range_stops"] = dynamic_range_stops(hdr)
    return (hdr, drawn) if return_params else hdr


def dynamic_range_stops(img: np.ndarray, low_percentile: float = 1.0) -> float:
    """Dynamic range in stops: ``log2(max luminance / p-th percentile of the non-zero luminance)``."""
    lum = luminance(np.asarray(img, np.float32)).ravel()
    lum = lum[lum > 0]
    if lum.size == 0:
        return 0.0
    return float(np.log2(lum.max() / np.percentile(lum, low_percentile)))


@dataclass
class HDRImage:
    """Fallback item type when ``distill.data.sources.SourceImage`` is not available (same fields)."""

    name: str
    linear: np.ndarray  # [H,W,3] float32 linear HDR
    meta: dict = field(default_factory=dict)

    def content_hash(self) -> str:
        h = hashlib.sha256(str(self.linear.shape).encode())
        h.update(np.ascontiguousarray(self.linear).tobytes())
        return h.hexdigest()[:16]


def _make_item(name: str, linear: np.ndarray, meta: dict):
    try:  # the project's source item type, if present
        from distill.data.sources import SourceImage
    except ImportError:
        return HDRImage(name, linear, meta)
    return SourceImage(name=name, linear=linear, meta=meta)


class SyntheticHDRSource:
    """Sequence of synthetic HDR scenes made from a base source of linear LDR images.

    Item ``i`` is variant ``i % variants`` of base image ``i // variants``, seeded by ``(seed, i // variants,
    i % variants)``, so every item is reproducible on its own (DataLoader workers can index in any order).

    Args:
        base_source: sequence of objects with ``.name`` and ``.linear`` ([H,W,3] linear, [0,1]) and
            optionally ``.meta``.
        seed: base seed.
        variants: synthetic scenes per base image.
        **params: forwarded to :func:`synthesize_hdr`.
    """

    def __init__(self, base_source, seed: int = 0, variants: int = 1, **params):
        if int(variants) < 1:
            raise ValueError(f"SyntheticHDRSource: variants must be >= 1, got {variants}")
        unknown = set(params) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"SyntheticHDRSource: unknown parameter(s) {sorted(unknown)}")
        self.base, self.seed, self.variants, self.params = base_source, int(seed), int(variants), params

    def __len__(self) -> int:
        return len(self.base) * self.variants

    def __getitem__(self, idx: int):
        if not -len(self) <= idx < len(self):
            raise IndexError(f"SyntheticHDRSource: index {idx} out of range for {len(self)} items")
        idx %= len(self)
        b, v = divmod(idx, self.variants)
        item = self.base[b]
        seed = int(np.random.SeedSequence([self.seed, b, v]).generate_state(1)[0])
        hdr, drawn = synthesize_hdr(item.linear, seed, return_params=True, **self.params)
        meta = {
            **dict(getattr(item, "meta", {}) or {}),
            "hdr": True,  # values exceed 1: scene-linear radiance, for teachers with input_space "hdr"
            "synthetic_hdr": {"base": item.name, "variant": v, "seed": seed, **drawn},
        }
        return _make_item(f"{item.name}_hdr{v}", hdr, meta)


def _main() -> None:  # pragma: no cover - a report, not a library path
    from skimage import data

    from distill.core.color import srgb_to_linear

    print(f"{'image':24s} {'LDR stops':>9s} {'HDR stops (seeds 0..4)':>30s}")
    for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry"):
        lin = srgb_to_linear(getattr(data, name)()[..., :3] / 255.0)
        hdr = [dynamic_range_stops(synthesize_hdr(lin, s)) for s in range(5)]
        print(f"{name:24s} {dynamic_range_stops(lin):9.1f} {' '.join(f'{d:5.1f}' for d in hdr):>30s}")


if __name__ == "__main__":
    _main()
