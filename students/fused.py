"""Fast CPU inference for the HDRNet student: a fused C++ guide + slice + apply pass.

The differentiable torch path (students/grid.py) materialises the guide, the 12 sliced coefficient
planes and the output as separate full-resolution tensors; at 1080p that is about a second on two
cores. Here one pass over the full-resolution image computes, per pixel, the guide (3x3 colour
transform, 16-knot curves, mix, clamp), the trilinear slice and the 3x4 affine apply, and writes the
output, in one multithreaded C++ kernel (students/csrc/, built by ``python -m students.build``):

    image --area downsample (C++)--> low-res [256,256,3] --network (torch, channels_last)--> grid
    image, grid --fused guide + slice + apply (C++, OpenMP over rows)--> output
    (guide_bilateral students: image --splat (C++)--> small grid --blur (torch)--> base grid, which the
    fused pass slices per pixel for the guide)

It follows students/grid.py's conventions exactly (cell-centred coordinates, border clamp, guide
formula, row-major 3x4 coefficients) and agrees with HDRNet.forward to ~1e-6. Images are float32
HWC (numpy), uint8 / uint16 HWC (normalised to [0, 1] on read, rounded and clamped on write) or
float32 CHW (torch tensors). Float outputs are not clamped (like the torch path), except that a
``srgb_log`` student's output is decoded in the same pass (``hdrnet.decode_output``) and so lies in [0, 1].

The library is loaded with ctypes (no torch headers, so no rebuild per torch version). If it cannot
be built or loaded, or the student turns on an option that students/options.py does not declare for the
"fused" backend, ``FastStudent`` warns and falls back to the torch path; ``fused_slice_apply``
raises ``FusedUnavailable``. Set ``HDR_DISTILL_NO_FUSED=1`` to force the fallback and
``HDR_DISTILL_FUSED_ISA=avx2|scalar`` to force a kernel variant (for tests and benchmarks).

Example:
    >>> from students.hdrnet import HDRNet
    >>> fast = FastStudent(HDRNet())                       # doctest: +SKIP
    >>> out = fast(np.zeros((1080, 1920, 3), np.uint8))    # doctest: +SKIP
    >>> fast.engine                                        # doctest: +SKIP
    'fused-cpp-avx512'
"""
from __future__ import annotations

import copy
import ctypes
import os
import sys
import warnings

import cv2
import numpy as np
import torch

from students.grid import bilateral_blur, bilateral_dims
from students.hdrnet import (LOG_MAX, LOG_MIN, OUTPUT_LUMA, WHITE_FLOOR, HDRNet, encode_input, offset_biases,
                             white_base_count)
from students.options import unsupported

ENV_DISABLE = "HDR_DISTILL_NO_FUSED"
ENV_ISA = "HDR_DISTILL_FUSED_ISA"
ABI_VERSION = 8

# Pixel format codes of the C ABI (students/csrc/fused.cpp).
_HWC_CODES = {np.dtype(np.float32): 0, np.dtype(np.uint8): 1, np.dtype(np.uint16): 2}
_CHW_F32 = 3
_INT_MAX = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
_ENCODINGS = {"none": 0, "log": 1}
# fused_slice_apply only: "log_luma" is "log" with the guide on log luminance (hdrnet.luma_guide_input).
_SLICE_ENCODINGS = {**_ENCODINGS, "log_luma": 2}
_OUT_ENCODINGS = {"none": 0, "srgb_log": 1}
_ERRORS = {-1: "bad arguments", -2: "too many curve knots (max 256)", -3: "out of memory"}


class FusedUnavailable(RuntimeError):
    """The compiled fused library cannot be used (disabled, no compiler, build or load failure)."""


_lib: ctypes.CDLL | None = None
_lib_error: str | None = None


def _bind(lib: ctypes.CDLL) -> None:
    c_int, c_void_p, c_char_p = ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p
    lib.hd_abi_version.restype = c_int
    lib.hd_isa.restype = c_char_p
    lib.hd_compiled_isas.restype = c_char_p
    lib.hd_set_isa.argtypes = [c_char_p]
    lib.hd_set_isa.restype = c_int
    lib.hd_lanes.restype = c_int
    lib.hd_slice_apply.argtypes = [c_void_p, c_void_p, c_int, c_int, c_int, c_void_p, c_int, c_int, c_int,
                                   c_void_p, c_int, c_int, c_int, ctypes.c_float, c_void_p, c_int, c_int, c_int,
                                   c_int]
    lib.hd_slice_apply.restype = c_int
    lib.hd_bilateral_splat.argtypes = [c_void_p, c_int, c_int, c_int, c_int, c_int, c_int, c_void_p, c_int]
    lib.hd_bilateral_splat.restype = c_int
    lib.hd_bilateral_base_map.argtypes = [c_void_p, c_int, c_int, c_int, c_void_p, c_int, c_int, c_int, c_void_p,
                                          c_void_p, c_int]
    lib.hd_bilateral_base_map.restype = c_int
    lib.hd_downsample.argtypes = [c_void_p, c_int, c_int, c_int, c_int, c_int, c_void_p, c_int]
    lib.hd_downsample.restype = c_int
    lib.hd_detail.argtypes = [c_void_p, c_int, c_int, c_int, c_int, c_int, c_void_p, c_int]
    lib.hd_detail.restype = c_int


def load_library(build_if_missing: bool = True) -> ctypes.CDLL:
    """Load the cached fused library, building it once if it is missing.

    Raises:
        FusedUnavailable: disabled by ``$HDR_DISTILL_NO_FUSED``, no compiler, or build/load failure.
    """
    global _lib, _lib_error
    if os.environ.get(ENV_DISABLE, "") not in ("", "0"):
        raise FusedUnavailable(f"disabled by ${ENV_DISABLE}={os.environ[ENV_DISABLE]}")
    if _lib is not None:
        return _lib
    if _lib_error is not None:
        raise FusedUnavailable(_lib_error)
    from students import build as _build

    try:
        path = _build.find_library()
        if path is None:
            if not build_if_missing:
                raise FusedUnavailable("library not built (run `python -m students.build`)")
            print("students.fused: fused library not built yet; compiling it once (python -m students.build)...",
                  file=sys.stderr)
            path = _build.build(verbose=True)
        lib = ctypes.CDLL(str(path))
        _bind(lib)
        if lib.hd_abi_version() != ABI_VERSION:
            raise FusedUnavailable(f"{path}: ABI version {lib.hd_abi_version()} != {ABI_VERSION}")
        isa = os.environ.get(ENV_ISA)
        if isa and lib.hd_set_isa(isa.encode()) != 0:
            raise FusedUnavailable(f"${ENV_ISA}={isa}: not compiled or not supported by this CPU "
                                   f"(compiled: {lib.hd_compiled_isas().decode()})")
    except (_build.BuildError, OSError) as e:
        _lib_error = f"{type(e).__name__}: {e}"
        raise FusedUnavailable(_lib_error) from e
    _lib = lib
    return lib


def available() -> bool:
    """Whether the fused library can be used in this process."""
    try:
        load_library()
        return True
    except FusedUnavailable:
        return False


def engine() -> str:
    """``fused-cpp-<isa>`` of the kernel variant in use (raises FusedUnavailable if none)."""
    return "fused-cpp-" + load_library().hd_isa().decode()


def set_isa(name: str) -> None:
    """Force a kernel variant: "avx512", "avx2", "scalar" or "auto" (best the CPU supports)."""
    lib = load_library()
    if lib.hd_set_isa(name.encode()) != 0:
        raise ValueError(f"set_isa: '{name}' is not compiled or not supported by this CPU "
                         f"(compiled: {lib.hd_compiled_isas().decode()})")


def compiled_isas() -> list[str]:
    return load_library().hd_compiled_isas().decode().split(",")


# -- argument handling -----------------------------------------------------------------------------
def _ptr(a) -> int:
    return a.data_ptr() if isinstance(a, torch.Tensor) else a.ctypes.data


def _as_numpy_f32(a, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def pack_guide(params: dict) -> tuple[np.ndarray, int]:
    """Pack HDRNet.guide_params() as the C ABI wants: ccm, ccm_bias, mix, mix_bias, shifts, slopes."""
    missing = {"ccm", "ccm_bias", "shifts", "slopes", "mix", "mix_bias"} - set(params)
    if missing:
        raise ValueError(f"guide_params: missing {sorted(missing)}")
    p = {k: _as_numpy_f32(v, k) for k, v in params.items()}
    shifts, slopes = p["shifts"], p["slopes"]
    if p["ccm"].shape != (3, 3) or p["ccm_bias"].size != 3 or p["mix"].size != 3 or p["mix_bias"].size != 1:
        raise ValueError("guide_params: expected ccm [3,3], ccm_bias [3], mix [3], mix_bias [1]")
    if shifts.ndim != 2 or shifts.shape[0] != 3 or slopes.shape != shifts.shape:
        raise ValueError(f"guide_params: shifts and slopes must both be [3,K], got {shifts.shape} and {slopes.shape}")
    packed = np.concatenate([p["ccm"].ravel(), p["ccm_bias"].ravel(), p["mix"].ravel(), p["mix_bias"].ravel(),
                             shifts.ravel(), slopes.ravel()]).astype(np.float32)
    return packed, shifts.shape[1]


def _image_format(image, layout: str, name: str = "image"):
    """(format code, H, W) of an image, checked."""
    if not isinstance(image, (np.ndarray, torch.Tensor)):
        raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(image).__name__}")
    if isinstance(image, torch.Tensor) and image.device.type != "cpu":
        raise ValueError(f"{name}: the fused path runs on the CPU, got a tensor on {image.device}")
    dtype = np.dtype(str(image.dtype).replace("torch.", ""))
    if layout == "hwc":
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{name}: layout 'hwc' needs shape [H,W,3], got {tuple(image.shape)}")
        if dtype not in _HWC_CODES:
            raise TypeError(f"{name}: HWC images must be float32, uint8 or uint16, got {dtype}")
        return _HWC_CODES[dtype], image.shape[0], image.shape[1]
    if layout == "chw":
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"{name}: layout 'chw' needs shape [3,H,W], got {tuple(image.shape)}")
        if dtype != np.float32:
            raise TypeError(f"{name}: CHW images must be float32, got {dtype}")
        return _CHW_F32, image.shape[1], image.shape[2]
    raise ValueError(f"layout must be 'hwc' or 'chw', got '{layout}'")


def _contiguous(a):
    return a.contiguous() if isinstance(a, torch.Tensor) else np.ascontiguousarray(a)


def _check_out(out, image, name="out"):
    same_kind = isinstance(out, torch.Tensor) == isinstance(image, torch.Tensor)
    if not same_kind or tuple(out.shape) != tuple(image.shape) or out.dtype != image.dtype:
        raise ValueError(f"{name}: must be a {type(image).__name__} of shape {tuple(image.shape)} and dtype "
                         f"{image.dtype}, got {type(out).__name__} {tuple(out.shape)} {out.dtype}")
    contiguous = out.is_contiguous() if isinstance(out, torch.Tensor) else out.flags.c_contiguous
    if not contiguous:
        raise ValueError(f"{name}: must be contiguous")
    if isinstance(out, np.ndarray) and not out.flags.writeable:
        raise ValueError(f"{name}: is read-only")


def _encoding_code(encoding: str, codes: dict[str, int] = _ENCODINGS, what: str = "encoding") -> int:
    if encoding not in codes:
        raise ValueError(f"unknown {what} '{encoding}' (expected one of {', '.join(codes)})")
    return codes[encoding]


# -- the two kernels -------------------------------------------------------------------------------
def quarter_hwc(image: np.ndarray) -> np.ndarray:
    """``image[::2, ::2]`` of an HWC array, contiguous, same dtype. OpenCV's nearest-neighbour halving picks
    exactly those pixels when both sides are even and is ~3x faster than numpy's strided copy (12 MP float:
    9 vs 28 ms); odd sides take the strided copy."""
    h, w = image.shape[:2]
    if h % 2 or w % 2 or not image.flags.c_contiguous:
        return np.ascontiguousarray(image[::2, ::2])
    return cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_NEAREST)


def fused_slice_apply(image, grid, guide_params, out=None, layout: str = "hwc", encoding: str = "none",
                      threads: int | None = None, out_encoding: str = "none", out_scale: float = 1.0,
                      base_grid: np.ndarray | None = None):
    """Guide + trilinear slice + affine apply in one pass (the full-resolution half of HDRNet.forward).

    Args:
        image: ``[H,W,3]`` float32/uint8/uint16 (layout "hwc") or ``[3,H,W]`` float32 (layout "chw"),
            numpy or CPU torch.
        grid: ``[12,D,Gh,Gw]`` (or ``[1,12,D,Gh,Gw]``) coefficients, numpy or torch.
        guide_params: ``HDRNet.guide_params()`` (dict of tensors), or the ``pack_guide`` tuple.
        out: optional output of the same type, shape and dtype as ``image`` (reused: no allocation).
        encoding: "none" or "log" (``hdrnet.encode_input``, applied per pixel before guide and apply), or
            "log_luma": "log", with the guide reading the pixel's log luminance (``hdrnet.luma_guide_input``).
        out_encoding: "none" or "srgb_log" (``hdrnet.decode_output``, applied to the affine output).
        out_scale: with "srgb_log", the decoded output is multiplied by this (> 0) and clipped at 1
            (``hdrnet.normalise_white`` with ``white = 1 / out_scale``); ignored otherwise.
        threads: OpenMP threads (None: OpenMP default, which ``torch.set_num_threads`` also sets, since
            torch and this library share torch's libgomp).
        base_grid: a ``guide_bilateral`` student's blurred bilateral grid of this image, float32
            ``[2,D,Gh,Gw]`` (``bilateral_base_grid``); needs a "log" or "log_luma" encoding.

    Returns:
        ``out`` (or a new array/tensor like ``image``).
    """
    lib = load_library()
    fmt, h, w = _image_format(image, layout)
    image = _contiguous(image)
    g = _as_numpy_f32(grid, "grid")
    if g.ndim == 5 and g.shape[0] == 1:
        g = g[0]
    if g.ndim != 4 or g.shape[0] != 12:
        raise ValueError(f"grid: expected [12,D,Gh,Gw], got {g.shape}")
    packed, k = guide_params if isinstance(guide_params, tuple) else pack_guide(guide_params)
    if not float(out_scale) > 0.0:
        raise ValueError(f"fused_slice_apply: out_scale must be > 0, got {out_scale}")
    if out is None:
        out = torch.empty_like(image) if isinstance(image, torch.Tensor) else np.empty_like(image)
    else:
        _check_out(out, image)
    bptr, bdims = None, (0, 0, 0)
    if base_grid is not None:
        if encoding == "none":
            raise ValueError("fused_slice_apply: base_grid needs a 'log' or 'log_luma' encoding")
        base_grid = _as_numpy_f32(base_grid, "base_grid")
        if base_grid.ndim != 4 or base_grid.shape[0] != 2:
            raise ValueError(f"base_grid: expected [2,D,Gh,Gw], got {base_grid.shape}")
        bptr, bdims = base_grid.ctypes.data, base_grid.shape[1:]
    rc = lib.hd_slice_apply(_ptr(image), _ptr(out), fmt, h, w, g.ctypes.data, g.shape[1], g.shape[2], g.shape[3],
                            packed.ctypes.data, k, _encoding_code(encoding, _SLICE_ENCODINGS),
                            _encoding_code(out_encoding, _OUT_ENCODINGS, "out_encoding"),
                            float(out_scale), bptr, *bdims, threads or 0)
    if rc != 0:
        raise RuntimeError(f"fused_slice_apply: {_ERRORS.get(rc, rc)} (image {tuple(image.shape)}, grid {g.shape})")
    return out


def bilateral_base_grid(image, sigma: float, sigma_stops: float, layout: str = "hwc",
                        threads: int | None = None) -> np.ndarray:
    """The blurred bilateral grid ``[2,D,Gh,Gw]`` float32 of the image's encoded log luminance, as
    ``students.grid.bilateral_base`` builds it (splat in C++, one pass over the image; ``bilateral_blur`` on
    the small grid in torch), for ``fused_slice_apply(base_grid=...)``. ``sigma``: spatial sigma as a fraction
    of the longer side; ``sigma_stops``: range sigma in stops (``HDRNetConfig.guide_bilateral*``)."""
    lib = load_library()
    fmt, h, w = _image_format(image, layout)
    image = _contiguous(image)
    dims = bilateral_dims(h, w, sigma * max(h, w), sigma_stops / (LOG_MIN + LOG_MAX))
    splat = np.empty((2,) + dims, np.float32)
    rc = lib.hd_bilateral_splat(_ptr(image), fmt, h, w, *dims, splat.ctypes.data, threads or 0)
    if rc != 0:
        raise RuntimeError(f"bilateral_base_grid: {_ERRORS.get(rc, rc)} (image {tuple(image.shape)}, grid {dims})")
    with torch.inference_mode():
        return bilateral_blur(torch.from_numpy(splat)[None])[0].numpy()


def bilateral_base_map(image, base_grid: np.ndarray, layout: str = "hwc",
                       threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every pixel's base (the blurred ``base_grid`` read at the pixel, as the fused slice reads it for the
    guide) and encoded log luminance, float32 ``[H,W]`` each."""
    lib = load_library()
    fmt, h, w = _image_format(image, layout)
    image = _contiguous(image)
    g = _as_numpy_f32(base_grid, "base_grid")
    if g.ndim != 4 or g.shape[0] != 2:
        raise ValueError(f"base_grid: expected [2,D,Gh,Gw], got {g.shape}")
    base, lum = np.empty((h, w), np.float32), np.empty((h, w), np.float32)
    rc = lib.hd_bilateral_base_map(_ptr(image), fmt, h, w, g.ctypes.data, *g.shape[1:], base.ctypes.data,
                                   lum.ctypes.data, threads or 0)
    if rc != 0:
        raise RuntimeError(f"bilateral_base_map: {_ERRORS.get(rc, rc)} (image {tuple(image.shape)})")
    return base, lum


def area_downsample(image, size: int, layout: str = "hwc", encoding: str = "none", out: np.ndarray | None = None,
                    threads: int | None = None) -> np.ndarray:
    """Area-averaged ``size x size`` copy, float32 HWC ``[size,size,3]`` (channels-last for the network).

    Same windows as ``F.interpolate(mode="area")`` (adaptive average pooling: output row i averages
    input rows ``floor(i*H/size) .. ceil((i+1)*H/size)-1`` with equal weights), so it matches
    ``students.grid.lowres_copy`` to float rounding whether or not ``size`` divides the image; when it
    does not, windows overlap by one row/column (torch's definition, which training used) rather than
    using fractional box weights. Needs H, W >= size (smaller images: use lowres_copy). The encoding
    is applied per pixel before averaging, like ``lowres_copy(encode_input(x))``.
    """
    return _lowres_pass("area_downsample", "hd_downsample", "lowres_copy", image, (size, size, 3), layout, encoding,
                        out, threads)


def _lowres_pass(who: str, fn: str, small: str, image, shape: tuple, layout: str, encoding: str,
                 out: np.ndarray | None, threads: int | None) -> np.ndarray:
    """Run the C++ pass ``fn`` (image -> float32 ``shape``, the first two sides being the low-res size)."""
    lib = load_library()
    fmt, h, w = _image_format(image, layout)
    size = shape[0]
    if h < size or w < size:
        raise ValueError(f"{who}: image {h}x{w} is smaller than {size}x{size} (use {small})")
    image = _contiguous(image)
    if out is None:
        out = np.empty(shape, np.float32)
    elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out: must be a contiguous float32 array {list(shape)}, got {out.shape} {out.dtype}")
    rc = getattr(lib, fn)(_ptr(image), fmt, h, w, _encoding_code(encoding), size, out.ctypes.data, threads or 0)
    if rc != 0:
        raise RuntimeError(f"{who}: {_ERRORS.get(rc, rc)}")
    return out


def detail_energy_fused(image, size: int, layout: str = "hwc", encoding: str = "none", out: np.ndarray | None = None,
                        threads: int | None = None) -> np.ndarray:
    """``students.hdrnet.detail_energy`` in one C++ pass: ``[size,size]`` float32 (same windows as
    ``area_downsample``; the 3x3 mean averages the valid pixels at borders). Needs H, W >= size."""
    return _lowres_pass("detail_energy_fused", "hd_detail", "detail_energy", image, (size, size), layout, encoding,
                        out, threads)


# -- the whole student -----------------------------------------------------------------------------
class FastStudent:
    """Fast CPU inference for a trained HDRNet: C++ low-res copy, torch network, fused C++ full-res pass.

    ``FastStudent(model)(image)`` equals ``model(image)`` (to ~1e-6 for float images). It snapshots
    the model's weights at construction: rebuild it after further training. Not thread-safe (it
    reuses its low-res buffer); use one instance per thread.

    Args:
        model: an ``HDRNet``.
        threads: OpenMP threads of the C++ passes (None: OpenMP default, i.e. ``torch.get_num_threads()``).
            The network uses torch's own setting (``torch.set_num_threads``).
        use_fused: False forces the torch path (as does ``$HDR_DISTILL_NO_FUSED=1``).
        channels_last: run the low-res network in channels-last memory format.

    Attributes:
        engine: "fused-cpp-avx512" / "fused-cpp-avx2" / "fused-cpp-scalar", or "torch-fallback".
    """

    def __init__(self, model: HDRNet, threads: int | None = None, use_fused: bool = True, channels_last: bool = True):
        if not isinstance(model, HDRNet):
            raise TypeError(f"FastStudent: model must be an HDRNet, got {type(model).__name__}")
        self.cfg = model.cfg
        self.threads = threads
        self.channels_last = channels_last
        self.model = copy.deepcopy(model).cpu().float().eval().requires_grad_(False)
        self.guide = pack_guide(self.model.guide_params())
        self.slice_encoding = "log_luma" if self.cfg.guide_luma else self.cfg.input_encoding
        self._low = np.empty((self.cfg.lowres, self.cfg.lowres, 3), np.float32)
        if self.cfg.detail_input:  # reused per call, like _low
            self._det = np.empty((self.cfg.lowres, self.cfg.lowres), np.float32)
            self._low4 = np.empty((self.cfg.lowres, self.cfg.lowres, 4), np.float32)
        reason = "use_fused=False" if not use_fused else None
        missing = unsupported(self.cfg, "fused")  # students/options.py: what the fused path implements
        if reason is None and missing:
            reason = f"no fused kernel for student option{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
        if reason is None:
            try:
                self.engine = engine()
            except FusedUnavailable as e:
                reason = str(e)
        if reason is not None:
            warnings.warn(f"FastStudent: fused C++ path unavailable ({reason}); falling back to the torch path "
                          "(HDRNet.forward), which is about 50x slower", RuntimeWarning, stacklevel=2)
            self.engine = "torch-fallback"
            self.channels_last = False  # the fallback is exactly HDRNet.forward
        if self.channels_last:  # only the convolutions: the model also holds a 5-D buffer
            for mod in self.model.modules():
                if isinstance(mod, torch.nn.Conv2d):
                    mod.to(memory_format=torch.channels_last)

    # -- steps, exposed for benchmarking --------------------------------------------------------
    def lowres(self, image, layout: str) -> torch.Tensor:
        """Encoded low-res copy ``[1,3,L,L]`` (channels-last strides), as ``lowres_copy(encode_input(x))``;
        ``HDRNet.lowres_input`` (4 channels) for a ``detail_input`` student."""
        size = self.cfg.lowres
        _, h, w = _image_format(image, layout)
        if h >= size and w >= size:
            low = area_downsample(image, size, layout, self.cfg.input_encoding, out=self._low, threads=self.threads)
            if self.cfg.detail_input:  # 4th channel: the fine-detail energy, one more C++ pass
                det = detail_energy_fused(image, size, layout, self.cfg.input_encoding, out=self._det,
                                          threads=self.threads)
                low = np.concatenate([low, det[..., None]], 2, out=self._low4)
            low = torch.from_numpy(low).permute(2, 0, 1).unsqueeze(0)  # [1,3,L,L], channels-last strides
            return low if self.channels_last else low.contiguous()
        # Smaller than the low-res size: torch's (bilinear) lowres_copy on the encoded image; cheap here.
        x = _to_float_chw(image, layout).unsqueeze(0)
        low = self.model.lowres_input(encode_input(x, self.cfg.input_encoding))
        return low.contiguous(memory_format=torch.channels_last) if self.channels_last else low.contiguous()

    def coefficients(self, low: torch.Tensor) -> np.ndarray:
        """Low-res ``[1,3,L,L]`` -> grid ``[12,D,G,G]`` float32."""
        with torch.inference_mode():
            grid = self.model.coefficients(low)
        return np.ascontiguousarray(grid[0].numpy(), dtype=np.float32)

    def white(self, image, layout: str, grid: np.ndarray) -> float:
        """``HDRNet.white``: the white level, from the fused output on every other row and column of the
        image (as a float image of its own: the level is taken before any clamp or rounding)."""
        sub = self._quarter_float(image, layout)
        y = fused_slice_apply(sub, grid, self.guide, layout=layout, encoding=self.slice_encoding,
                              threads=self.threads, out_encoding=self.cfg.output_encoding,
                              base_grid=self.base_grid(sub, layout))
        y = np.asarray(y)
        luma = y @ np.float32(OUTPUT_LUMA) if layout == "hwc" else np.tensordot(np.float32(OUTPUT_LUMA), y, 1)
        return max(float(np.percentile(luma, self.cfg.white_percentile)), WHITE_FLOOR)

    def base_grid(self, image, layout: str) -> np.ndarray | None:
        """A ``guide_bilateral`` student's blurred bilateral grid of ``image`` (``bilateral_base_grid``); None
        for any other student."""
        if not self.cfg.guide_bilateral:
            return None
        return bilateral_base_grid(image, self.cfg.guide_bilateral, self.cfg.guide_bilateral_stops, layout,
                                   self.threads)

    def _quarter_float(self, image, layout: str):
        """Every other row and column of the image, as a float image of its own (``HDRNet.white``'s ``xs``)."""
        if layout == "hwc":
            sub = quarter_hwc(image)
            if image.dtype in _INT_MAX:  # to float and scaled in one pass
                sub = np.multiply(sub, np.float32(1.0 / _INT_MAX[image.dtype]), dtype=np.float32)
            return sub
        return image[:, ::2, ::2].contiguous()

    def exposed(self, image, layout: str, grid: np.ndarray) -> np.ndarray:
        """``HDRNet.expose`` for a ``white_base_percentile`` student: the base and log luminance of the quarter
        image from the C++ passes, the percentile and nearest pixels in numpy, the student's output at those
        few pixels in torch; the offset taken off the grid's biases. The grid as is for other students."""
        if self.cfg.white_base_percentile is None:
            return grid
        sub = self._quarter_float(image, layout)
        base, lum = bilateral_base_map(sub, self.base_grid(sub, layout), layout, self.threads)
        h, w = base.shape
        flat = base.reshape(-1)
        hi = np.percentile(flat, self.cfg.white_base_percentile)  # hdrnet.percentile's interpolation
        k = white_base_count(flat.size)
        near = np.argpartition(np.abs(flat - np.float32(hi)), k - 1)[:k]  # the k nearest, as torch.topk's
        idx = torch.from_numpy(near.astype(np.int64))[None]  # [1,K]
        b, e = torch.from_numpy(flat[near])[None], torch.from_numpy(lum.reshape(-1)[near])[None]  # [1,K]
        rows, cols = idx // w, idx % w
        sub_t = torch.from_numpy(np.ascontiguousarray(sub)) if isinstance(sub, np.ndarray) else sub
        pix = sub_t[rows[0], cols[0]].T if layout == "hwc" else sub_t[:, rows[0], cols[0]]  # [3,K]
        with torch.inference_mode():
            xp = encode_input(pix.float()[None], self.cfg.input_encoding)  # [1,3,K]
            grid_t = torch.from_numpy(grid)[None]
            c = self.model.white_offset_at(grid_t, xp, xp + (b - e).unsqueeze(1), e, b, rows, cols, h, w)
            return offset_biases(grid_t, c)[0].numpy()

    def _one(self, image, layout: str, out):
        grid = self.exposed(image, layout, self.coefficients(self.lowres(image, layout)))
        scale, fold = 1.0, False
        if self.cfg.white_percentile:
            white = self.white(image, layout, grid)
            # A decoded output is divided by the kernel itself (out_scale, clipped at 1); an affine one is divided
            # by dividing every coefficient (normalise_white folded into the grid), then clamped here.
            fold = self.cfg.output_encoding == "none"
            if fold:
                grid = grid * np.float32(1.0 / white)
            else:
                scale = 1.0 / white
        res = fused_slice_apply(image, grid, self.guide, out=out, layout=layout, encoding=self.slice_encoding,
                                threads=self.threads, out_encoding=self.cfg.output_encoding, out_scale=scale,
                                base_grid=self.base_grid(image, layout))
        if not fold:
            return res
        if isinstance(res, torch.Tensor):
            return res.clamp_(0.0, 1.0)
        if res.dtype not in _INT_MAX:  # integer outputs are clamped on write already
            np.clip(res, 0.0, 1.0, out=res)
        return res

    def __call__(self, image, out=None):
        """Run the student.

        Args:
            image: numpy ``[H,W,3]`` float32/uint8/uint16, or torch float32 ``[B,3,H,W]`` / ``[3,H,W]``.
            out: optional preallocated output like ``image`` (saves the allocation, ~35 ms at 12 MP).

        Returns:
            the output in the input's type, layout and dtype (integers rounded and clamped).
        """
        if isinstance(image, np.ndarray):
            _image_format(image, "hwc")
            if out is not None:
                _check_out(out, image)
            if self.engine == "torch-fallback":
                return self._fallback(image, "hwc", out)
            return self._one(image, "hwc", out)
        if not isinstance(image, torch.Tensor):
            raise TypeError(f"FastStudent: image must be a numpy array or torch tensor, got {type(image).__name__}")
        if image.ndim == 3:
            res = self(image.unsqueeze(0), None if out is None else out.unsqueeze(0))
            return res[0]
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"FastStudent: tensor image must be [B,3,H,W] or [3,H,W], got {tuple(image.shape)}")
        _image_format(image[0], "chw")
        if out is None:
            out = torch.empty_like(image, memory_format=torch.contiguous_format)
        else:
            _check_out(out, image)
        if self.engine == "torch-fallback":
            return self._fallback(image, "bchw", out)
        image = image.contiguous()
        for b in range(image.shape[0]):
            self._one(image[b], "chw", out[b])
        return out

    def _fallback(self, image, layout: str, out):
        """The torch path (HDRNet.forward), with the same input/output conventions."""
        with torch.inference_mode():
            if layout == "bchw":
                out.copy_(self.model(image.float()))
                return out
            y = self.model(_to_float_chw(image, "hwc").unsqueeze(0))[0].permute(1, 2, 0).numpy()
        if image.dtype in _INT_MAX:
            m = _INT_MAX[image.dtype]
            y = np.clip(np.rint(y * m), 0, m)
        if out is None:
            return y.astype(image.dtype)
        out[...] = y
        return out


def _to_float_chw(image, layout: str) -> torch.Tensor:
    """Image -> float32 torch ``[3,H,W]`` in [0,1] for integers (the torch path's input)."""
    if isinstance(image, torch.Tensor):
        x = image
    else:
        x = torch.from_numpy(np.ascontiguousarray(image))
    if layout == "hwc":
        x = x.permute(2, 0, 1)
    dtype = np.dtype(str(x.dtype).replace("torch.", ""))
    if dtype in _INT_MAX:
        return x.float() / _INT_MAX[dtype]
    return x.float().contiguous()
