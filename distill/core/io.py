"""Image files in and out: every supported format decodes to float32 linear RGB [H,W,3].

Reading has two levels:
  * ``read_image_raw(path)`` returns the pixels as stored (uint8 / uint16 display values, or float32 linear)
    with alpha dropped and grey expanded to 3 channels, so that a tool can write its output at the input's
    bit depth;
  * ``read_image(path)`` decodes that to scene-linear float32 (sRGB-decoded for display formats).

Formats and what "decoded" means for each:
  * PNG / JPEG / TIFF, 8 or 16 bit: sRGB-encoded display values -> linear in [0, 1].
  * float TIFF, Radiance .hdr, OpenEXR .exr: already linear; values may exceed 1. NaN/Inf is refused; negative
    values are clipped to 0 (radiance cannot be negative; grading tools and denoisers leave small negative
    values, and every teacher here expects >= 0). ``meta["negative_clipped"]`` counts the pixels touched.
  * RAW (.dng .cr2 .nef ...): demosaiced by LibRaw (rawpy) with camera white balance into linear sRGB
    primaries, no gamma, no auto-brightening: 16-bit linear -> [0, 1].

Every decode problem raises ``ImageError`` with the file path and the problem in the message.
"""
from __future__ import annotations

import os

# OpenCV only enables its OpenEXR codec when this is set before first use. Wheels built without OpenEXR
# (opencv-python-headless 5.0 is one) ignore it; .exr then goes through the ``OpenEXR`` package.
os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")

import io as _io  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from distill.core.atomic import atomic_write  # noqa: E402
from distill.core.color import linear_to_srgb, srgb_to_linear  # noqa: E402

MIN_SIZE = 16  # smallest accepted side in pixels: smaller images cannot make a training crop or a grid cell

DISPLAY_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff"})
HDR_EXTENSIONS = frozenset({".hdr", ".pic", ".exr"})
RAW_EXTENSIONS = frozenset({".dng", ".cr2", ".cr3", ".nef", ".nrw", ".arw", ".rw2", ".orf", ".raf", ".pef",
                            ".srw", ".raw", ".3fr", ".iiq", ".rwl", ".x3f", ".erf", ".kdc", ".mrw"})
IMAGE_EXTENSIONS = DISPLAY_EXTENSIONS | HDR_EXTENSIONS | RAW_EXTENSIONS

_MAX = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}


class ImageError(ValueError):
    """An image file could not be read or written; the message names the file and the problem."""


# ----------------------------------------------------------------------------------------------------------
# Display values <-> floats
# ----------------------------------------------------------------------------------------------------------

def decode_display(arr: np.ndarray) -> np.ndarray:
    """uint8 / uint16 display values -> float32 in [0, 1] (no colour decoding); float input passes as float32."""
    if arr.dtype in _MAX:
        return arr.astype(np.float32) / np.float32(_MAX[arr.dtype])
    if arr.dtype.kind == "f":
        return arr.astype(np.float32, copy=False)
    raise ValueError(f"decode_display: expected uint8, uint16 or float, got {arr.dtype}")


def encode_display(arr: np.ndarray, bit_depth: int = 8) -> np.ndarray:
    """float values in [0, 1] -> uint8 (bit_depth 8) or uint16 (bit_depth 16), clipped and rounded."""
    if bit_depth not in (8, 16):
        raise ValueError(f"encode_display: bit_depth must be 8 or 16, got {bit_depth}")
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    top = _MAX[np.dtype(dtype)]
    return np.rint(np.clip(arr, 0.0, 1.0) * top).astype(dtype)


_LUTS: dict[np.dtype, np.ndarray] = {}


def _srgb_lut(dtype: np.dtype) -> np.ndarray:
    # sRGB decoding of every code value once: a table lookup is ~10x faster than pow() per pixel.
    if dtype not in _LUTS:
        top = _MAX[dtype]
        _LUTS[dtype] = srgb_to_linear(np.arange(top + 1, dtype=np.float64) / top)
    return _LUTS[dtype]


def stored_to_linear(arr: np.ndarray, color_space: str) -> np.ndarray:
    """Pixels from ``read_image_raw`` -> float32 linear RGB (C-contiguous).

    Args:
        arr: [H,W,3] uint8/uint16 display values or float32 linear values.
        color_space: the stored encoding, ``"srgb"`` or ``"linear"`` (``meta["color_space"]``).
    """
    if color_space not in ("srgb", "linear"):
        raise ValueError(f"stored_to_linear: color_space must be 'srgb' or 'linear', got {color_space!r}")
    if arr.dtype in _MAX:
        if color_space == "srgb":
            if arr.dtype == np.uint8:  # cv2.LUT: same table, ~2.5x faster than numpy indexing
                return cv2.LUT(np.ascontiguousarray(arr), _srgb_lut(arr.dtype))
            return np.ascontiguousarray(_srgb_lut(arr.dtype)[arr])
        return np.ascontiguousarray(decode_display(arr))
    if color_space == "srgb":
        return np.ascontiguousarray(srgb_to_linear(arr))
    return np.ascontiguousarray(arr, dtype=np.float32)


# ----------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------

def read_image(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """Read any supported image as float32 linear RGB.

    Returns:
        ``(linear [H,W,3] float32 C-contiguous, meta)``; meta holds ``path``, ``format``, ``bit_depth``,
        ``color_space`` (the file's encoding: ``"srgb"`` or ``"linear"``), ``hdr`` (values may exceed 1),
        ``orig_channels``, ``shape`` and format-specific extras (``raw`` for camera files).

    Raises:
        ImageError: missing / empty / truncated / undecodable file, unsupported extension, NaN or Inf in a
            float image, or a side smaller than ``MIN_SIZE``.

    Example:
        >>> img, meta = read_image("photo.jpg")   # doctest: +SKIP
        >>> img.shape, img.dtype, meta["color_space"]
        ((3000, 4000, 3), dtype('float32'), 'srgb')
    """
    stored, meta = read_image_raw(path)
    return stored_to_linear(stored, meta["color_space"]), meta


def read_image_raw(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """Read an image as stored: [H,W,3] in RGB order, alpha dropped, grey expanded to 3 channels.

    The array is uint8/uint16 sRGB display values (PNG, JPEG, integer TIFF), uint16 linear values (RAW), or
    float32 linear values (.hdr, .exr, float TIFF; NaN/Inf refused, negatives clipped).

    Same checks and meta as ``read_image``; ``stored_to_linear(arr, meta["color_space"])`` finishes decoding.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if not path.exists():
        raise ImageError(f"{path}: file not found")
    if not path.is_file():
        raise ImageError(f"{path}: not a regular file")
    if ext not in IMAGE_EXTENSIONS:
        raise ImageError(f"{path}: unsupported extension '{ext}' (supported: {', '.join(sorted(IMAGE_EXTENSIONS))})")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: file is empty (0 bytes)")

    if ext in RAW_EXTENSIONS:
        arr, meta = _read_raw(path)
    elif ext == ".exr":
        arr, meta = _read_exr(path)
    elif ext in (".hdr", ".pic"):
        arr, meta = _read_radiance(path)
    elif ext in (".tif", ".tiff"):
        arr, meta = _read_tiff(path)
    else:
        arr, meta = _read_cv2(path, ext)

    meta["orig_channels"] = meta.get("orig_channels") or (1 if arr.ndim == 2 else arr.shape[2])
    arr = _to_rgb3(arr, path)
    if arr.dtype.kind == "f":
        arr = _check_float(arr, path, meta)
    h, w = arr.shape[:2]
    if h < MIN_SIZE or w < MIN_SIZE:
        raise ImageError(f"{path}: image is {w}x{h} pixels; the minimum is {MIN_SIZE} pixels on each side")
    meta.update(path=str(path), shape=(h, w))
    return np.ascontiguousarray(arr), meta


def _from_bgr(arr: np.ndarray) -> np.ndarray:
    """OpenCV's grey / BGR / BGRA -> RGB [H,W,3] (cvtColor: one threaded pass, ~2x faster than indexing)."""
    if arr.ndim == 2:
        return arr
    if arr.shape[2] == 4:
        return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB)
    if arr.shape[2] == 3:
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    return arr


def _to_rgb3(arr: np.ndarray, path: Path) -> np.ndarray:
    """[H,W] or [H,W,C] RGB(A) / grey(+alpha) -> [H,W,3] RGB: grey is repeated, alpha and extras dropped."""
    if arr.ndim == 2:
        arr = np.ascontiguousarray(arr)
        if arr.dtype in (np.uint8, np.uint16, np.float32):
            return cv2.cvtColor(arr, cv2.COLOR_GRAY2RGB)
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] < 1:
        raise ImageError(f"{path}: unexpected pixel array shape {arr.shape}")
    c = arr.shape[2]
    if c in (1, 2):  # grey, grey + alpha
        return np.repeat(arr[:, :, :1], 3, axis=2)
    return arr[:, :, :3]


def _check_float(arr: np.ndarray, path: Path, meta: dict) -> np.ndarray:
    """Refuse NaN/Inf; clip negative radiance to 0 (counted in meta)."""
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():  # whole-array test first; per-pixel count only for the message
        finite = np.isfinite(arr).all(axis=2)
        bad = int(finite.size - np.count_nonzero(finite))
        raise ImageError(f"{path}: {bad} of {finite.size} pixels contain NaN or Inf values")
    meta["negative_clipped"] = 0
    if arr.min() < 0:
        meta["negative_clipped"] = int(np.count_nonzero((arr < 0).any(axis=2)))
        arr = np.maximum(arr, 0.0)
    return arr


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ImageError(f"{path}: cannot read file ({e.strerror or e})") from e


def _read_bytes(path: Path) -> np.ndarray:
    return np.frombuffer(_read_file(path), dtype=np.uint8)


_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # PNG colour type -> channels (palette counts as RGB)


def _read_cv2(path: Path, ext: str) -> tuple[np.ndarray, dict]:
    """PNG / JPEG through OpenCV; BGR(A) -> RGB(A)."""
    data = _read_bytes(path)
    fmt = "jpeg" if ext in (".jpg", ".jpeg") else "png"
    # JPEG: honour the EXIF orientation (phones store pictures sideways); IMREAD_UNCHANGED would ignore it.
    # PNG: keep alpha and 16 bits exactly as stored.
    flags = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR if fmt == "jpeg" else cv2.IMREAD_UNCHANGED
    arr = cv2.imdecode(data, flags)
    if arr is None or arr.size == 0:
        raise ImageError(f"{path}: cannot decode as {fmt.upper()} (corrupt, truncated or not an image)")
    meta: dict[str, Any] = {"format": fmt, "color_space": "srgb", "hdr": False}
    meta["bit_depth"] = 8 * arr.dtype.itemsize
    if fmt == "png" and data[:8].tobytes() == b"\x89PNG\r\n\x1a\n" and data.size >= 26:
        # IHDR tells the true channel count and depth (OpenCV expands grey+alpha, palette, 1-bit).
        meta["bit_depth"] = int(data[24])
        meta["orig_channels"] = _PNG_CHANNELS.get(int(data[25]))
    if arr.dtype not in _MAX:
        raise ImageError(f"{path}: unsupported pixel type {arr.dtype}")
    meta["orig_channels"] = meta.get("orig_channels") or (1 if arr.ndim == 2 else arr.shape[2])
    return _from_bgr(arr), meta


def _read_tiff(path: Path) -> tuple[np.ndarray, dict]:
    """First page of a TIFF through tifffile (8/16-bit integer and float, grey or RGB, contiguous or planar);
    other photometric interpretations (palette, YCbCr, CMYK ...) through OpenCV/libtiff, as 8-bit RGB."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            photometric = int(page.photometric)
            if photometric not in (1, 2):  # not MINISBLACK/RGB: palette, YCbCr, CMYK ... libtiff converts
                return _read_cv2_tiff(path)
            arr = page.asarray()
            axes = page.axes
    except ImageError:
        raise
    except Exception as e:  # tifffile raises many types for corrupt files
        raise ImageError(f"{path}: cannot decode as TIFF ({type(e).__name__}: {e})") from e
    if axes == "SYX":  # planar configuration: channels first
        arr = np.moveaxis(arr, 0, -1)
    elif axes not in ("YX", "YXS"):
        raise ImageError(f"{path}: unsupported TIFF layout (axes {axes})")
    meta: dict[str, Any] = {"format": "tiff", "orig_channels": 1 if arr.ndim == 2 else arr.shape[2]}
    if arr.ndim == 3 and photometric == 1:  # grey + extra samples (alpha)
        arr = arr[:, :, :1]
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * np.uint8(255)
    if arr.dtype.kind == "f":
        meta.update(color_space="linear", hdr=True, bit_depth=8 * arr.dtype.itemsize)
        return arr.astype(np.float32, copy=False), meta
    if arr.dtype not in _MAX:
        raise ImageError(f"{path}: unsupported TIFF sample type {arr.dtype} (expected uint8, uint16 or float)")
    meta.update(color_space="srgb", hdr=False, bit_depth=8 * arr.dtype.itemsize)
    return arr, meta


def _read_cv2_tiff(path: Path) -> tuple[np.ndarray, dict]:
    arr = cv2.imdecode(_read_bytes(path), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype not in _MAX:
        raise ImageError(f"{path}: cannot decode this TIFF (unsupported photometric interpretation)")
    return _from_bgr(arr), {"format": "tiff", "color_space": "srgb", "hdr": False,
                            "bit_depth": 8 * arr.dtype.itemsize, "orig_channels": 1 if arr.ndim == 2 else arr.shape[2]}


_RADIANCE_MAGIC = (b"#?RADIANCE", b"#?RGBE")


def _read_radiance(path: Path) -> tuple[np.ndarray, dict]:
    """Radiance RGBE. OpenCV refuses files with lines before the ``#?RADIANCE`` magic, which exist in the
    wild, so the header is located first and the file is decoded from memory from there on."""
    data = _read_file(path)
    starts = [i for i in (data.find(m, 0, 65536) for m in _RADIANCE_MAGIC) if i >= 0]
    if not starts:
        raise ImageError(f"{path}: not a Radiance HDR file (no '#?RADIANCE' or '#?RGBE' header)")
    data = data[min(starts):]
    header = data[: data.find(b"\n\n") if b"\n\n" in data else 4096].decode("latin-1").splitlines()
    meta: dict[str, Any] = {"format": "hdr", "color_space": "linear", "hdr": True, "bit_depth": 32,
                            "orig_channels": 3, "header_offset": min(starts)}
    for line in header:
        key, _, value = line.partition("=")
        if key == "FORMAT":
            meta["rgbe_format"] = value.strip()
        elif key == "EXPOSURE":  # recorded, not applied: pixel values stay as stored
            try:
                meta["exposure"] = meta.get("exposure", 1.0) * float(value.split()[0])
            except (ValueError, IndexError):
                raise ImageError(f"{path}: bad Radiance header line {line!r}") from None
    arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.ndim != 3 or arr.dtype != np.float32:
        raise ImageError(f"{path}: cannot decode Radiance HDR pixels (corrupt or truncated)")
    return _from_bgr(arr), meta


def _exr_module():
    try:
        import OpenEXR  # the official bindings (pip package "openexr")
    except ImportError:
        return None
    return OpenEXR


def _read_exr(path: Path) -> tuple[np.ndarray, dict]:
    """OpenEXR: R,G,B (or Y) channels of the first part as float32; alpha and other layers are ignored."""
    meta: dict[str, Any] = {"format": "exr", "color_space": "linear", "hdr": True}
    OpenEXR = _exr_module()
    if OpenEXR is None:
        if not cv2.haveImageReader(str(path)):
            raise ImageError(f"{path}: reading OpenEXR needs the 'openexr' Python package (pip install openexr) "
                             "or an OpenCV build with OpenEXR")
        arr = cv2.imdecode(_read_bytes(path), cv2.IMREAD_UNCHANGED)
        if arr is None:
            raise ImageError(f"{path}: cannot decode as OpenEXR (corrupt or truncated)")
        meta.update(bit_depth=32, orig_channels=1 if arr.ndim == 2 else arr.shape[2])
        return _from_bgr(arr), meta
    try:
        with OpenEXR.File(str(path), separate_channels=True) as f:
            channels = {name: ch.pixels for name, ch in f.channels().items()}
    except Exception as e:
        raise ImageError(f"{path}: cannot decode as OpenEXR ({e})") from e
    names = list(channels)
    if all(c in channels for c in "RGB"):
        planes = [channels[c] for c in "RGB"]
    elif "Y" in channels:
        planes = [channels["Y"]]
    elif len(channels) == 1:
        planes = [channels[names[0]]]
    else:
        raise ImageError(f"{path}: OpenEXR file has no R,G,B or Y channels (found {', '.join(names)})")
    if any(p.shape != planes[0].shape or p.ndim != 2 for p in planes):
        raise ImageError(f"{path}: OpenEXR channels are subsampled or of unequal size; not supported")
    meta.update(bit_depth=8 * planes[0].dtype.itemsize, orig_channels=len(names))
    return np.stack([p.astype(np.float32) for p in planes], axis=2), meta


def _read_raw(path: Path) -> tuple[np.ndarray, dict]:
    """Camera RAW through LibRaw: camera white balance, linear sRGB primaries, no gamma, no auto-bright.

    ``adjust_maximum_thr=0`` keeps the sensor's white level as 1.0: LibRaw's default (0.75) replaces it with
    the brightest pixel when that exceeds 75 % of white, which would scale each file by its own content.
    """
    import rawpy

    try:
        with rawpy.imread(str(path)) as raw:
            info = {
                "cfa_pattern": raw.raw_pattern.tolist() if raw.raw_pattern is not None else None,
                "color_desc": raw.color_desc.decode(errors="replace"),
                "black_level": [int(v) for v in raw.black_level_per_channel],
                "white_level": int(raw.white_level),
                "camera_wb": [float(v) for v in raw.camera_whitebalance],
                "raw_shape": tuple(raw.raw_image_visible.shape),
            }  # read before postprocess(), which rewrites the pattern for its 3-colour demosaic
            out = raw.postprocess(gamma=(1, 1), no_auto_bright=True, output_bps=16, use_camera_wb=True,
                                  output_color=rawpy.ColorSpace.sRGB, adjust_maximum_thr=0.0)
    except rawpy.LibRawError as e:
        raise ImageError(f"{path}: cannot decode as camera RAW ({type(e).__name__}: {e})") from e
    # linear 16-bit output: read_image divides by 65535 without sRGB decoding.
    meta = {"format": "raw", "color_space": "linear", "hdr": False, "bit_depth": 16, "orig_channels": 1,
            "raw": info}
    return out, meta


# ----------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------

WRITE_EXTENSIONS = DISPLAY_EXTENSIONS | HDR_EXTENSIONS


def downscale_max_side(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """``image [H,W,C]`` shrunk (area filter) so that its longer side is ``max_side``; returned as is when it
    already fits or ``max_side`` is None/0. Never enlarges."""
    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image
    s = max_side / max(h, w)
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def write_image(path: str | os.PathLike, image: np.ndarray, *, bit_depth: int = 8, encode_srgb: bool = True,
                jpeg_quality: int = 95) -> Path:
    """Write a float RGB image atomically (temp file in the same folder, then ``os.replace``).

    Args:
        path: destination; the extension picks the format (.png .jpg .jpeg .tif .tiff .hdr .pic .exr).
        image: [H,W,3] float array. For display formats: linear values (``encode_srgb=True``, encoded here)
            or display values in [0, 1] (``encode_srgb=False``); clipped to [0, 1].
        bit_depth: 8 or 16 for PNG/TIFF, 8 for JPEG; 32 for TIFF writes float32. Float formats (.hdr, .exr,
            32-bit TIFF) always store the values as given (linear), negatives clipped to 0, and ignore
            ``encode_srgb``.
        encode_srgb: apply the sRGB transfer curve before quantising (display formats only).
        jpeg_quality: 0..100.

    Returns:
        The written path.

    Raises:
        ValueError: bad shape, NaN/Inf, or a bit depth the format cannot hold.
        ImageError: the encoder failed (the destination is left untouched).
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in WRITE_EXTENSIONS:
        raise ValueError(f"write_image: cannot write '{ext}' files ({path}); use one of "
                         f"{', '.join(sorted(WRITE_EXTENSIONS))}")
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype.kind != "f":
        raise ValueError(f"write_image: expected a float [H,W,3] array for {path}, got {image.dtype} "
                         f"{tuple(image.shape)}")
    if not np.isfinite(image).all():
        raise ValueError(f"write_image: image for {path} contains NaN or Inf values")
    float_out = ext in HDR_EXTENSIONS or (ext in (".tif", ".tiff") and bit_depth == 32)
    if float_out:
        img = np.ascontiguousarray(np.maximum(image, 0), dtype=np.float32)
        if ext == ".exr":
            writer = _exr_writer(img, path)
        elif ext in (".hdr", ".pic"):
            writer = _bytes_writer(_cv2_encode(".hdr", img[:, :, ::-1], [], path))
        else:
            writer = _bytes_writer(_tiff_bytes(img, path))
    else:
        if ext in (".jpg", ".jpeg") and bit_depth != 8:
            raise ValueError(f"write_image: JPEG holds 8 bits only, asked for {bit_depth} ({path})")
        if bit_depth not in (8, 16):
            raise ValueError(f"write_image: bit_depth must be 8 or 16 for {ext} (32 only for TIFF), "
                             f"got {bit_depth} ({path})")
        display = linear_to_srgb(image) if encode_srgb else image
        q = encode_display(display, bit_depth)
        if ext in (".tif", ".tiff"):
            writer = _bytes_writer(_tiff_bytes(q, path))
        else:
            params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if ext in (".jpg", ".jpeg") else []
            writer = _bytes_writer(_cv2_encode(ext, np.ascontiguousarray(q[:, :, ::-1]), params, path))
    _atomic_write(path, writer)
    return path


def _cv2_encode(ext: str, bgr: np.ndarray, params: list, path: Path) -> bytes:
    try:
        ok, buf = cv2.imencode(ext, bgr, params)
    except cv2.error as e:
        raise ImageError(f"{path}: OpenCV cannot encode {ext} ({e})") from e
    if not ok:
        raise ImageError(f"{path}: OpenCV failed to encode {ext}")
    return buf.tobytes()


def _tiff_bytes(arr: np.ndarray, path: Path) -> bytes:
    import tifffile

    bio = _io.BytesIO()
    try:
        # deflate level 1: half the time of the default level for ~8 % more bytes; float data barely compresses
        packed = {"compression": "zlib", "compressionargs": {"level": 1}} if arr.dtype != np.float32 else {}
        tifffile.imwrite(bio, arr, photometric="rgb", **packed)
    except Exception as e:
        raise ImageError(f"{path}: cannot encode TIFF ({e})") from e
    return bio.getvalue()


def _bytes_writer(data: bytes) -> Callable[[str], None]:
    def write(tmp: str) -> None:
        Path(tmp).write_bytes(data)
    return write


def _exr_writer(img: np.ndarray, path: Path) -> Callable[[str], None]:
    OpenEXR = _exr_module()
    if OpenEXR is None:
        if not cv2.haveImageWriter(str(path)):
            raise ImageError(f"{path}: writing OpenEXR needs the 'openexr' Python package (pip install openexr) "
                             "or an OpenCV build with OpenEXR")
        return _bytes_writer(_cv2_encode(".exr", img[:, :, ::-1], [], path))

    def write(tmp: str) -> None:
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        channels = {c: np.ascontiguousarray(img[:, :, i]) for i, c in enumerate("RGB")}
        OpenEXR.File(header, channels).write(tmp)
    return write


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Write through a temp file beside the destination (distill.core.atomic): a reader never sees a
    half-written image, and a failure leaves an existing file untouched."""

    def checked(tmp: str) -> None:
        write(tmp)
        if os.path.getsize(tmp) == 0:
            raise ImageError(f"{path}: the encoder wrote nothing")

    atomic_write(path, checked)
