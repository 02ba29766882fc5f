"""Tone-mapping teachers: scene-linear HDR radiance in, display sRGB out.

Four operators behind the :class:`distill.core.protocols.NumpyTeacher` adapter:

* :class:`Reinhard`  - OpenCV ``createTonemapReinhard`` (Reinhard & Devlin 2005, photoreceptor model; global).
* :class:`Drago`     - OpenCV ``createTonemapDrago`` (Drago et al. 2003, adaptive logarithmic mapping; global).
* :class:`Mantiuk`   - OpenCV ``createTonemapMantiuk`` (Mantiuk et al. 2006, contrast mapping solved in the
  gradient domain; local).
* :class:`DurandDorsey` - Durand & Dorsey 2002, "Fast bilateral filtering for the display of high-dynamic-range
  images" (local): written here, with OpenCV's ``cv2.bilateralFilter`` as the bilateral filter.

The contract every teacher here shares (it is what ``params()`` reports):

Input (``input_space = "hdr"``): float32 scene-linear RGB [H,W,3], values >= 0, unbounded.
  * NaN or Inf anywhere -> ``ValueError`` (never passed on).
  * Negative values (noise after a colour matrix or demosaic) are clamped to 0: treated as no light.
  * **Exposure normalisation**: each image is divided by its own maximum channel value, so every operator
    here is invariant to a global exposure scale: ``teacher(k * x) == teacher(x)`` for any k > 0. The pair
    stream may therefore feed the teacher (and the student) ``normalize_hdr(x)``, which lies in [0, 1],
    without changing the target. The OpenCV operators (``params()["exposure"] == "minmax"``) go on, as OpenCV
    itself does first, to map the image minimum to 0: ``(x - min) / (max - min)``; Durand-Dorsey
    (``"max"``) keeps the black level.
  * **Floor**: after normalisation, values below ``floor`` (default 1e-6, i.e. 20 stops below the peak) are
    raised to ``floor``. This bounds the dynamic range each operator sees at 1/floor and keeps logarithms
    finite. (OpenCV's operators additionally clamp their grey level to 1e-4 before taking logs, so their
    statistics see at most 4 decades.)
  * An all-black image (maximum 0) maps to an all-black output. For the OpenCV operators, an image whose grey
    level is uniform has no tone to map (Reinhard's key is 0/0 there) and is returned as its normalised
    colours (largest channel 1), encoded.

Output (``output_space = "srgb"``): float32 [H,W,3], finite, in [0, 1].
  * OpenCV's operators end with its ``Tonemap`` step: ``v -> ((v - min) / (max - min)) ** (1 / gamma)`` over
    the whole image, i.e. they return *display* values stretched to fill [0, 1] and encoded with a pure power
    law. Here ``gamma=None`` (the default) runs OpenCV with gamma 1 (linear display values) and then applies
    the exact IEC 61966-2-1 sRGB encoding (:func:`distill.core.color.linear_to_srgb`), so the output is sRGB in the
    strict sense; a number (e.g. ``gamma=2.2``) keeps OpenCV's own power-law encoding ``v ** (1/gamma)``,
    which only approximates sRGB (it is brighter in the deep shadows).
  * OpenCV divides each channel by the grey level; where that is 0 (a pixel with all channels at the image
    minimum) it returns NaN, and one NaN spoils its final stretch of the whole image. :func:`_black_point`
    makes sure no grey level is 0 (a one-pixel change of size ``floor``); any NaN/Inf that still came out of
    OpenCV raises ``RuntimeError`` rather than reaching training.
"""
from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
import torch

from distill.core.color import linear_to_srgb, luminance
from distill.core.protocols import NumpyTeacher

DEFAULT_FLOOR = 1e-6


# ----------------------------------------------------------------------------------------------------------
# The shared input contract
# ----------------------------------------------------------------------------------------------------------


def prepare_hdr(img: np.ndarray, who: str, floor: float = DEFAULT_FLOOR) -> np.ndarray | None:
    """Validate an HDR image and apply the exposure normalisation and floor of the teachers' contract.

    Args:
        img: [H,W,3] scene-linear RGB, finite, >= 0 (negatives are clamped to 0).
        who: name used in error messages (the teacher).
        floor: smallest value after normalisation by the image maximum, in (0, 1).

    Returns:
        float32 [H,W,3] with values in [floor, 1] (maximum exactly 1), or None for an all-black image.
    """
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{who}: expected an HDR image [H,W,3], got shape {img.shape}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"{who}: empty image of shape {img.shape}")
    if not np.isfinite(img).all():
        raise ValueError(f"{who}: input contains NaN or Inf values (HDR input must be finite)")
    x = np.maximum(img.astype(np.float32, copy=False), 0.0)  # negatives: documented clamp to no light
    peak = float(x.max())
    if peak <= 0.0:
        return None
    # exposure normalisation: divide by the maximum channel value -> scale-invariant operator
    x = x / np.float32(peak)
    return np.maximum(x, np.float32(floor)).astype(np.float32, copy=False)


def normalize_hdr(images: torch.Tensor) -> torch.Tensor:
    """Divide each HDR image of a batch [B,3,H,W] by its maximum, so values lie in [0, 1].

    The teachers in this module normalise exactly like this themselves, so ``teacher(normalize_hdr(x))``
    equals ``teacher(x)``; a pair stream can hand this bounded tensor to both teacher and student.
    All-black images are returned unchanged. Negative values are clamped to 0, as the teachers do.
    """
    x = images.clamp(min=0)
    peak = x.amax(dim=(1, 2, 3), keepdim=True)  # [B,1,1,1]
    return torch.where(peak > 0, x / peak.clamp(min=torch.finfo(x.dtype).tiny), x)


def _check_floor(floor: float, who: str) -> float:
    floor = float(floor)
    if not 0.0 < floor < 1.0:
        raise ValueError(f"{who}: floor must be in (0, 1), got {floor}")
    return floor


def _check_gamma(gamma: float | None, who: str) -> float | None:
    if gamma is None:
        return None
    gamma = float(gamma)
    if not gamma > 0:
        raise ValueError(f"{who}: gamma must be > 0 or None (exact sRGB), got {gamma}")
    return gamma


# ----------------------------------------------------------------------------------------------------------
# OpenCV operators
# ----------------------------------------------------------------------------------------------------------


def _black_point(x: np.ndarray, floor: float) -> np.ndarray:
    """OpenCV's first step, done here so that nothing inside OpenCV divides 0 by 0.

    OpenCV starts with ``(x - min) / (max - min)``; a pixel whose three channels all sit at the minimum gets
    grey level 0, and OpenCV's colour step ``c / grey`` is then NaN there, and a single NaN corrupts OpenCV's
    final min/max stretch of the *whole* image. So: apply that stretch here (the black point goes to 0), raise
    everything to ``floor`` (so no grey level is 0), then set the blue channel of the darkest pixel to 0 (blue
    has the smallest grey weight, 0.114): OpenCV's own stretch then sees min 0 and max 1 exactly and is the
    identity. The one-pixel change is ``floor`` in size. A constant image is returned as is (OpenCV copies it).

    Args:
        x: [H,W,3] in [floor, 1] with maximum 1 (from :func:`prepare_hdr`).
        floor: smallest value after the stretch.

    Returns:
        [H,W,3] float32 in [0, 1], minimum exactly 0 (unless constant), maximum exactly 1.
    """
    lo = float(x.min())
    if 1.0 - lo <= 1e-7:
        return x
    x = np.maximum((x - np.float32(lo)) / np.float32(1.0 - lo), np.float32(floor))  # black point -> floor
    darkest = np.unravel_index(int(np.argmin(x.sum(axis=2))), x.shape[:2])
    x[darkest[0], darkest[1], 2] = 0.0  # OpenCV's min -> exactly 0, at a pixel with grey > 0
    return x


class _OpenCVTonemap(NumpyTeacher):
    """Shared wrapper: contract in, black point made safe, OpenCV operator, encoding out."""

    input_space = "hdr"
    output_space = "srgb"

    def __init__(self, gamma: float | None, floor: float):
        self.gamma = _check_gamma(gamma, type(self).__name__)
        self.floor = _check_floor(floor, type(self).__name__)

    def _operator(self, cv_gamma: float):  # pragma: no cover - abstract
        raise NotImplementedError

    def _own_params(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        return {
            **self._own_params(),
            "gamma": self.gamma,
            "encoding": "srgb" if self.gamma is None else f"power 1/{self.gamma:g}",
            "exposure": "minmax",
            "floor": self.floor,
            "negative": "clamp0",
        }

    def apply_np(self, img: np.ndarray) -> np.ndarray:
        x = prepare_hdr(img, f"teacher '{self.name}'", self.floor)  # [H,W,3] in [floor, 1]
        if x is None:
            return np.zeros(np.shape(img), np.float32)
        grey = x @ np.float32([0.299, 0.587, 0.114])  # OpenCV's RGB2GRAY weights
        if float(grey.max() - grey.min()) <= 1e-6:
            # no tone to map (Reinhard's key is 0/0 here): the colours as normalised, encoded
            return self._encode(x, powered=False)
        x = _black_point(x, self.floor)
        # A fresh operator per call: OpenCV's Reinhard overwrites its own `intensity` inside process().
        op = self._operator(1.0 if self.gamma is None else self.gamma)
        out = op.process(np.ascontiguousarray(x))
        if not np.isfinite(out).all():
            raise RuntimeError(f"teacher '{self.name}': OpenCV returned NaN/Inf (input range {x.min()}..{x.max()})")
        return self._encode(np.clip(out, 0.0, 1.0), powered=True)

    def _encode(self, display: np.ndarray, powered: bool) -> np.ndarray:
        """Exact sRGB encoding when gamma is None; else ``v ** (1/gamma)`` unless OpenCV already applied it."""
        if self.gamma is None:
            return linear_to_srgb(display)
        out = display if powered else np.power(display, np.float32(1.0 / self.gamma))
        return out.astype(np.float32, copy=False)


class Reinhard(_OpenCVTonemap):
    """Reinhard & Devlin 2005 photoreceptor operator, via ``cv2.createTonemapReinhard``.

    Global operator: each channel ``c -> c / (c + (I * a) ** m)`` where ``a`` blends the pixel's own
    channel/grey level with the image mean (``light_adapt``, ``color_adapt``), ``I = exp(-intensity)`` and the
    key ``m`` comes from the log-luminance statistics. Then OpenCV stretches the result to [0, 1].

    Exposure contract: maps the image's [min, max] to [0, 1] (scale-invariant), floors at ``floor``; see the
    module docstring for the NaN/negative policy and the output encoding.

    Args:
        intensity: in [-8, 8]; larger -> brighter output.
        light_adapt: in [0, 1]; 1 = adapt to each pixel's own level (local-looking), 0 = to the image mean.
        color_adapt: in [0, 1]; 1 = adapt each channel separately (white-balancing, less saturated output),
            0 = to the grey level. Passed to OpenCV as at most 1 - 1e-6 (see ``_operator``).
        gamma: None -> exact sRGB encoding; a number -> OpenCV's power law ``v ** (1/gamma)``.
        floor: smallest normalised input value.

    Example:
        >>> t = Reinhard(intensity=0.0)
        >>> y = t(torch.rand(1, 3, 32, 32) * 100)   # [1,3,32,32] sRGB in [0, 1]
    """

    name = "reinhard"

    def __init__(self, intensity: float = 0.0, light_adapt: float = 1.0, color_adapt: float = 0.0,
                 gamma: float | None = None, floor: float = DEFAULT_FLOOR):
        super().__init__(gamma, floor)
        if not -8.0 <= float(intensity) <= 8.0:
            raise ValueError(f"Reinhard: intensity must be in [-8, 8], got {intensity}")
        for arg, val in (("light_adapt", light_adapt), ("color_adapt", color_adapt)):
            if not 0.0 <= float(val) <= 1.0:
                raise ValueError(f"Reinhard: {arg} must be in [0, 1], got {val}")
        self.intensity, self.light_adapt, self.color_adapt = float(intensity), float(light_adapt), float(color_adapt)

    def _own_params(self) -> dict[str, Any]:
        return {"intensity": self.intensity, "light_adapt": self.light_adapt, "color_adapt": self.color_adapt}

    def _operator(self, cv_gamma: float):
        # With color_adapt = 1 a zero channel adapts to 0 and OpenCV computes 0/0 (its first stretch always
        # creates a zero channel); 1 - 1e-6 mixes in a millionth of the grey level, which is never 0 here.
        return cv2.createTonemapReinhard(cv_gamma, self.intensity, self.light_adapt, min(self.color_adapt, 1 - 1e-6))


class Drago(_OpenCVTonemap):
    """Drago et al. 2003 adaptive logarithmic mapping, via ``cv2.createTonemapDrago``.

    Global operator on the grey level ``L`` (divided by its geometric mean):
    ``L' = log(1 + L) / log(2 + 8 * (L / Lmax) ** (log(bias) / log(0.5)))``; colour is restored as
    ``(c / L) ** saturation * L'``, then OpenCV stretches the result to [0, 1].

    Exposure contract: maps the image's [min, max] to [0, 1] (scale-invariant), floors at ``floor``; see the
    module docstring for the NaN/negative policy and the output encoding.

    Args:
        bias: in (0, 1]; larger -> darker output (bias 0.85 is the paper's recommendation).
        saturation: colour ratio exponent; larger -> more saturated, 0 -> grey.
        gamma: None -> exact sRGB encoding; a number -> OpenCV's power law ``v ** (1/gamma)``.
        floor: smallest normalised input value.
    """

    name = "drago"

    def __init__(self, bias: float = 0.85, saturation: float = 1.0, gamma: float | None = None,
                 floor: float = DEFAULT_FLOOR):
        super().__init__(gamma, floor)
        if not 0.0 < float(bias) <= 1.0:
            raise ValueError(f"Drago: bias must be in (0, 1], got {bias}")
        if not float(saturation) >= 0.0:
            raise ValueError(f"Drago: saturation must be >= 0, got {saturation}")
        self.bias, self.saturation = float(bias), float(saturation)

    def _own_params(self) -> dict[str, Any]:
        return {"bias": self.bias, "saturation": self.saturation}

    def _operator(self, cv_gamma: float):
        return cv2.createTonemapDrago(cv_gamma, self.saturation, self.bias)


class Mantiuk(_OpenCVTonemap):
    """Mantiuk et al. 2006 contrast-domain operator, via ``cv2.createTonemapMantiuk``.

    Local operator: log-grey contrasts at every pyramid level are mapped through a transducer and scaled by
    ``scale``, and the image whose contrasts best match them is found by conjugate gradients; colour is
    restored as ``(c / L) ** saturation * L'``, then OpenCV stretches the result to [0, 1].

    Exposure contract: maps the image's [min, max] to [0, 1] (scale-invariant), floors at ``floor``; see the
    module docstring for the NaN/negative policy and the output encoding.

    Args:
        scale: contrast scale factor (> 0), typically 0.6-0.9; larger -> more contrast.
        saturation: colour ratio exponent; larger -> more saturated, 0 -> grey.
        gamma: None -> exact sRGB encoding; a number -> OpenCV's power law ``v ** (1/gamma)``.
        floor: smallest normalised input value.
    """

    name = "mantiuk"

    def __init__(self, scale: float = 0.7, saturation: float = 1.0, gamma: float | None = None,
                 floor: float = DEFAULT_FLOOR):
        super().__init__(gamma, floor)
        if not float(scale) > 0.0:
            raise ValueError(f"Mantiuk: scale must be > 0, got {scale}")
        if not float(saturation) >= 0.0:
            raise ValueError(f"Mantiuk: saturation must be >= 0, got {saturation}")
        self.scale, self.saturation = float(scale), float(saturation)

    def _own_params(self) -> dict[str, Any]:
        return {"scale": self.scale, "saturation": self.saturation}

    def _operator(self, cv_gamma: float):
        return cv2.createTonemapMantiuk(cv_gamma, self.scale, self.saturation)


# ----------------------------------------------------------------------------------------------------------
# Durand & Dorsey 2002
# ----------------------------------------------------------------------------------------------------------


def bilateral_filter(log_lum: np.ndarray, sigma_space_px: float, sigma_range: float) -> np.ndarray:
    """OpenCV's bilateral filter on a float32 map: Gaussian space weight x Gaussian range weight.

    ``cv2.bilateralFilter(src, d=-1, sigmaColor=sigma_range, sigmaSpace=sigma_space_px)``: a disc of radius
    ``round(1.5 * sigma_space_px)`` (at least 1), mirrored borders (BORDER_REFLECT_101), range weights from a
    4096-entry table with linear interpolation (exact to ~1e-6). ``sigma_range`` is in the units of the map
    (log10 luminance here).
    """
    return cv2.bilateralFilter(np.ascontiguousarray(log_lum, dtype=np.float32), -1, float(sigma_range),
                               float(sigma_space_px), borderType=cv2.BORDER_REFLECT_101)


def joint_upsample(base_low: np.ndarray, guide_low: np.ndarray, guide: np.ndarray, sigma_range: float) -> np.ndarray:
    """Bring a low-resolution base layer back to full resolution without blurring it across edges.

    Joint bilateral upsampling (Kopf et al. 2007) over the 2x2 nearest low-res samples: each full-res pixel
    averages the four bilinear neighbours' base values, weighted by bilinear weight x
    ``exp(-(guide - guide_low)^2 / (2 sigma_range^2))``, so a pixel on one side of an edge takes the base of
    its own side (plain bilinear upsampling would leave a halo as wide as the downsampling factor).

    Args:
        base_low: [h,w] filtered log luminance at low resolution.
        guide_low: [h,w] the low-res log luminance that was filtered (area average of ``guide``).
        guide: [H,W] full-resolution log luminance.
        sigma_range: range sigma, same units as the guide.

    Returns:
        [H,W] float32 base layer.
    """
    h, w = base_low.shape
    H, W = guide.shape
    # sample positions of full-res pixel centres in low-res pixel coordinates (cv2.resize convention)
    uy = (np.arange(H, dtype=np.float32) + 0.5) * (h / H) - 0.5
    ux = (np.arange(W, dtype=np.float32) + 0.5) * (w / W) - 0.5
    y0 = np.clip(np.floor(uy).astype(np.int64), 0, h - 1)
    x0 = np.clip(np.floor(ux).astype(np.int64), 0, w - 1)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy = np.clip(uy - y0, 0.0, 1.0)[:, None]  # [H,1]
    fx = np.clip(ux - x0, 0.0, 1.0)[None, :]  # [1,W]
    coef = np.float32(-0.5 / sigma_range**2)
    num = np.zeros((H, W), np.float32)
    den = np.zeros((H, W), np.float32)
    for ys, wy in ((y0, 1.0 - fy), (y1, fy)):
        for xs, wx in ((x0, 1.0 - fx), (x1, fx)):
            g = guide_low[ys[:, None], xs[None, :]]  # [H,W] neighbour's guide value
            # the 1e-12 keeps plain bilinear weights where every range weight underflows
            wgt = (wy * wx).astype(np.float32) * (np.exp(coef * (guide - g) ** 2) + np.float32(1e-12))
            num += wgt * base_low[ys[:, None], xs[None, :]]
            den += wgt
    return num / np.maximum(den, np.float32(1e-30))


def durand_dorsey(img: np.ndarray, target_contrast: float = 5.0, sigma_space: float = 0.02,
                  sigma_range: float = 0.4, saturation: float = 1.0, floor: float = DEFAULT_FLOOR,
                  work_sigma_px: float | None = None, return_layers: bool = False,
                  range_percentiles: tuple[float, float] = (0.0, 100.0)):
    """Durand & Dorsey 2002 tone mapping of one HDR image [H,W,3] -> sRGB [H,W,3] in [0, 1].

    Args:
        img: scene-linear RGB, finite, >= 0 (negatives clamped to 0).
        target_contrast: contrast ratio (max/min) the base layer is compressed to; larger -> more global
            contrast. The paper uses 5 (log10 range log10(5)).
        sigma_space: spatial sigma of the bilateral filter as a fraction of the longer image side (the paper's
            "2% of the image size"); so the operator, like the student's grid, scales with the image.
        sigma_range: range sigma in log10 luminance units (paper: 0.4).
        saturation: colour ratio exponent; 1 keeps the input's ratios, < 1 desaturates, 0 -> grey.
        floor: smallest luminance after normalisation by the image maximum.
        work_sigma_px: None (default): the bilateral filter runs at full resolution (exact; its cost grows
            with sigma^2, about 14 s at 1080p with the default sigma_space, 0.05 s on a 384^2 crop). A number:
            when ``sigma_space * max(H, W)`` exceeds it, the filter runs on an area-downsampled log luminance
            where the spatial sigma is this many pixels (the paper also subsamples) and the base comes back
            via :func:`joint_upsample`: ~100x faster at 1080p but an approximation (about 25-35 dB PSNR
            against full resolution on synthetic HDR scenes; edge pixels and small light sources differ).
        return_layers: also return ``(log10 luminance, base, detail)``, each [H,W].
        range_percentiles: the base layer's range that is compressed to ``target_contrast``, as percentiles of
            the base. (0, 100) is the paper's min..max; e.g. (1, 99) is a robust variant that one light
            source or one black pixel cannot move (values beyond it clip / sink), and that a student trained
            on crops can learn.

    Returns:
        float32 [H,W,3] sRGB-encoded output (exact IEC sRGB curve), or (output, layers).
    """
    who = "teacher 'durand'"
    x = prepare_hdr(img, who, floor)  # [H,W,3] in [floor, 1]
    if x is None:
        out = np.zeros(np.shape(img), np.float32)
        return (out, None) if return_layers else out
    H, W = x.shape[:2]

    # 1. log10 luminance (Rec. 709 weights), floored so the log is finite
    lum = np.maximum(luminance(x), np.float32(floor))  # [H,W]
    log_lum = np.log10(lum).astype(np.float32)

    # 2. base layer = bilateral filter of the log luminance (edge-preserving large-scale variation)
    sigma_px = sigma_space * max(H, W)
    if work_sigma_px is not None and sigma_px > work_sigma_px:
        factor = sigma_px / work_sigma_px
        h, w = max(1, round(H / factor)), max(1, round(W / factor))
        log_low = cv2.resize(log_lum, (w, h), interpolation=cv2.INTER_AREA)  # [h,w]
        base_low = bilateral_filter(log_low, sigma_px * w / W, sigma_range)
        base = joint_upsample(base_low, log_low, log_lum, sigma_range)  # [H,W]
    else:
        base = bilateral_filter(log_lum, sigma_px, sigma_range)  # [H,W]

    # 3. detail layer = what the base leaves out; kept as is
    detail = log_lum - base

    # 4. compress the base to the target contrast, with the largest base value mapped to 1 (log 0)
    lo_p, hi_p = range_percentiles
    if (lo_p, hi_p) == (0.0, 100.0):
        lo, hi = float(base.min()), float(base.max())
    else:
        lo, hi = (float(v) for v in np.percentile(base, [lo_p, hi_p]))
    spread = hi - lo
    scale = math.log10(target_contrast) / spread if spread > 1e-6 else 1.0
    out_log = scale * (base - hi) + detail
    out_lum = np.power(np.float32(10.0), out_log)  # [H,W]

    # 5. restore colour by ratios to the luminance (saturation exponent), clip, encode sRGB
    ratio = x / lum[..., None]  # [H,W,3]
    out = np.power(ratio, np.float32(saturation)) * out_lum[..., None]
    out = linear_to_srgb(np.clip(out, 0.0, 1.0))
    return (out, (log_lum, base, detail)) if return_layers else out


class DurandDorsey(NumpyTeacher):
    """Durand & Dorsey 2002 bilateral tone mapping (local), bilateral filter by ``cv2.bilateralFilter``.

    Stages (paper section 6): log10 luminance -> base = bilateral filter -> detail = log lum - base ->
    base compressed to ``target_contrast`` with its maximum at 1 -> detail added back -> colour restored by
    ratios ``(c / L) ** saturation`` -> clip to [0, 1] -> exact sRGB encoding.

    Bilateral filter: OpenCV's ``cv2.bilateralFilter`` on float32 log10 luminance, ``sigmaColor =
    sigma_range`` in log10 units, ``sigmaSpace = sigma_space * max(H, W)`` pixels (relative to the image's
    longer side), at full resolution by default; ``work_sigma_px`` trades exactness for speed on large images
    (see :func:`durand_dorsey`).

    Exposure contract: divides the input by its maximum (scale-invariant), floors at ``floor``; NaN/Inf
    raises, negatives are clamped to 0, all-black maps to black (module docstring).

    Args:
        target_contrast: contrast ratio of the compressed base (> 1); larger -> more global contrast.
        sigma_space: spatial sigma as a fraction of the longer image side (> 0).
        sigma_range: range sigma in log10 units (> 0); larger -> base blurs across more edges.
        saturation: colour ratio exponent (>= 0); larger -> more saturated.
        floor: smallest normalised luminance.
        work_sigma_px: None = exact full-resolution filter; a number = approximate, downsampled so the
            spatial sigma is this many pixels.
    """

    name = "durand"
    input_space = "hdr"
    output_space = "srgb"

    def __init__(self, target_contrast: float = 5.0, sigma_space: float = 0.02, sigma_range: float = 0.4,
                 saturation: float = 1.0, floor: float = DEFAULT_FLOOR, work_sigma_px: float | None = None,
                 range_percentiles: tuple[float, float] = (0.0, 100.0)):
        lo_p, hi_p = (float(v) for v in range_percentiles)
        if not 0.0 <= lo_p < hi_p <= 100.0:
            raise ValueError(f"DurandDorsey: range_percentiles must satisfy 0 <= lo < hi <= 100, got {range_percentiles}")
        self.range_percentiles = (lo_p, hi_p)
        if not float(target_contrast) > 1.0:
            raise ValueError(f"DurandDorsey: target_contrast must be > 1, got {target_contrast}")
        for arg, val in (("sigma_space", sigma_space), ("sigma_range", sigma_range)):
            if not float(val) > 0.0:
                raise ValueError(f"DurandDorsey: {arg} must be > 0, got {val}")
        if not float(saturation) >= 0.0:
            raise ValueError(f"DurandDorsey: saturation must be >= 0, got {saturation}")
        if work_sigma_px is not None and not float(work_sigma_px) >= 1.0:
            raise ValueError(f"DurandDorsey: work_sigma_px must be >= 1 or None, got {work_sigma_px}")
        self.target_contrast, self.sigma_space = float(target_contrast), float(sigma_space)
        self.sigma_range, self.saturation = float(sigma_range), float(saturation)
        self.floor = _check_floor(floor, "DurandDorsey")
        self.work_sigma_px = None if work_sigma_px is None else float(work_sigma_px)

    def params(self) -> dict[str, Any]:
        return {
            "target_contrast": self.target_contrast,
            "sigma_space": self.sigma_space,
            "sigma_space_units": "fraction of max(H, W)",
            "sigma_range": self.sigma_range,
            "sigma_range_units": "log10 luminance",
            "saturation": self.saturation,
            "work_sigma_px": self.work_sigma_px,
            "range_percentiles": list(self.range_percentiles),
            "bilateral": "cv2.bilateralFilter",
            "encoding": "srgb",
            "exposure": "max",
            "floor": self.floor,
            "negative": "clamp0",
        }

    def apply_np(self, img: np.ndarray) -> np.ndarray:
        return durand_dorsey(img, self.target_contrast, self.sigma_space, self.sigma_range, self.saturation,
                             self.floor, self.work_sigma_px, range_percentiles=self.range_percentiles)
