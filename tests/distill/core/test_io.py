"""distill.core.io: every format decodes to float32 linear RGB [H,W,3]; bad files raise ImageError naming the file."""
import os

import cv2
import numpy as np
import pytest
import tifffile

from distill.core import io
from distill.core.color import linear_to_srgb, srgb_to_linear
from distill.core.io import MIN_SIZE, ImageError, read_image, read_image_raw, write_image

H, W = 24, 32


def _srgb8(rng) -> np.ndarray:
    """[H,W,3] uint8 with distinct channels; the corner pixel is (200, 100, 50) to catch RGB/BGR swaps."""
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    img[0, 0] = (200, 100, 50)
    return img


def _expect_linear(stored: np.ndarray) -> np.ndarray:
    top = 255.0 if stored.dtype == np.uint8 else 65535.0
    return srgb_to_linear(stored.astype(np.float64) / top)


def _check_linear(img: np.ndarray) -> None:
    assert img.dtype == np.float32 and img.ndim == 3 and img.shape[2] == 3
    assert img.flags["C_CONTIGUOUS"]
    assert np.isfinite(img).all() and img.min() >= 0


def _write_cv2(path, rgb):
    bgr = rgb[:, :, ::-1] if rgb.ndim == 3 and rgb.shape[2] >= 3 else rgb
    if rgb.ndim == 3 and rgb.shape[2] == 4:
        bgr = rgb[:, :, [2, 1, 0, 3]]
    assert cv2.imwrite(str(path), np.ascontiguousarray(bgr))
    return path


def _exr_supported() -> bool:
    return io._exr_module() is not None or cv2.haveImageWriter("x.exr")


# ------------------------------------------------------------------------------------------------------------
# sRGB decoding: known values
# ------------------------------------------------------------------------------------------------------------

def test_srgb_8bit_known_values(tmp_path):
    img = np.zeros((MIN_SIZE, MIN_SIZE, 3), np.uint8)
    img[0, 0], img[0, 1], img[0, 2] = 255, 188, 10
    img, meta = read_image(_write_cv2(tmp_path / "k.png", img))
    assert img[0, 0] == pytest.approx([1.0] * 3, abs=1e-7)
    assert img[0, 1] == pytest.approx([0.50289] * 3, abs=2e-5)  # ((188/255 + 0.055) / 1.055) ** 2.4
    assert img[0, 2] == pytest.approx([10 / 255 / 12.92] * 3, rel=1e-5)  # the linear toe
    assert img[1, 1].tolist() == [0.0, 0.0, 0.0]
    assert meta["color_space"] == "srgb" and meta["bit_depth"] == 8 and meta["hdr"] is False


def test_srgb_16bit_known_values(tmp_path):
    img = np.zeros((MIN_SIZE, MIN_SIZE, 3), np.uint16)
    img[0, 0], img[0, 1] = 65535, 32768
    out, meta = read_image(_write_cv2(tmp_path / "k16.png", img))
    assert out[0, 0] == pytest.approx([1.0] * 3, abs=1e-7)
    assert out[0, 1] == pytest.approx([((32768 / 65535 + 0.055) / 1.055) ** 2.4] * 3, rel=1e-5)
    assert meta["bit_depth"] == 16


def test_display_helpers_round_trip():
    codes8 = np.arange(256, dtype=np.uint8)
    assert (io.encode_display(io.decode_display(codes8), 8) == codes8).all()
    codes16 = np.arange(0, 65536, 7, dtype=np.uint16)
    assert (io.encode_display(io.decode_display(codes16), 16) == codes16).all()
    assert io.encode_display(np.array([-1.0, 2.0]), 8).tolist() == [0, 255]
    with pytest.raises(ValueError, match="bit_depth"):
        io.encode_display(np.zeros(3), 12)


# ------------------------------------------------------------------------------------------------------------
# Each format: shape, dtype, range and exact values
# ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", [".png", ".tif", ".tiff"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_lossless_display_formats_decode_exactly(tmp_path, rng, ext, dtype):
    stored = _srgb8(rng).astype(dtype) * (257 if dtype == np.uint16 else 1)
    path = tmp_path / f"img{ext}"
    if ext == ".png":
        _write_cv2(path, stored)
    else:
        tifffile.imwrite(path, stored, photometric="rgb")
    raw, meta = read_image_raw(path)
    assert raw.dtype == dtype and (raw == stored).all()
    img, _ = read_image(path)
    _check_linear(img)
    np.testing.assert_allclose(img, _expect_linear(stored), rtol=1e-5, atol=1e-7)
    assert meta["format"] == ("png" if ext == ".png" else "tiff")
    assert meta["bit_depth"] == 8 * np.dtype(dtype).itemsize and meta["orig_channels"] == 3


def test_jpeg_decodes_close_to_source(tmp_path, smooth_linear):
    stored = io.encode_display(linear_to_srgb(smooth_linear), 8)
    path = _write_cv2(tmp_path / "a.jpg", stored)
    img, meta = read_image(path)
    _check_linear(img)
    assert img.shape == stored.shape and meta["format"] == "jpeg"
    # lossy, but a smooth image survives quality 95 within a few code values, channels in RGB order
    assert np.abs(linear_to_srgb(img) - stored / 255.0).mean() < 0.01


def test_jpeg_exif_orientation_applied(tmp_path):
    from PIL import Image

    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = 255  # left half white as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    Image.fromarray(stored).save(tmp_path / "o.jpg", exif=exif.tobytes(), quality=95)
    raw, _ = read_image_raw(tmp_path / "o.jpg")
    assert raw.shape == (40, 20, 3)  # shown upright: the white half is now on top
    assert raw[:16].min() > 240 and raw[24:].max() < 15


def test_tiff_planar_configuration(tmp_path, rng):
    stored = _srgb8(rng)
    tifffile.imwrite(tmp_path / "p.tif", np.moveaxis(stored, 2, 0), photometric="rgb", planarconfig="separate")
    raw, _ = read_image_raw(tmp_path / "p.tif")
    assert (raw == stored).all()


def test_float_tiff_is_linear_and_may_exceed_one(tmp_path, smooth_linear):
    hdr = smooth_linear * 4.0
    tifffile.imwrite(tmp_path / "f.tif", hdr, photometric="rgb")
    img, meta = read_image(tmp_path / "f.tif")
    _check_linear(img)
    assert (img == hdr).all() and img.max() > 1
    assert meta["color_space"] == "linear" and meta["hdr"] is True and meta["bit_depth"] == 32


def test_float_tiff_negative_values_clipped(tmp_path, smooth_linear):
    data = smooth_linear.copy()
    data[0, :5] = -0.25
    tifffile.imwrite(tmp_path / "n.tif", data, photometric="rgb")
    img, meta = read_image(tmp_path / "n.tif")
    assert (img[0, :5] == 0).all() and (img[1:] == data[1:]).all()
    assert meta["negative_clipped"] == 5


@pytest.mark.parametrize("ext, dtype", [(".png", np.uint8), (".png", np.uint16), (".tif", np.uint16)])
def test_grey_becomes_three_equal_channels(tmp_path, rng, ext, dtype):
    grey = rng.integers(0, np.iinfo(dtype).max, (H, W), dtype=dtype)
    path = tmp_path / f"g{ext}"
    _write_cv2(path, grey) if ext == ".png" else tifffile.imwrite(path, grey)
    img, meta = read_image(path)
    _check_linear(img)
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()
    np.testing.assert_allclose(img[..., 0], _expect_linear(grey), rtol=1e-5, atol=1e-7)
    assert meta["orig_channels"] == 1


def test_rgba_drops_alpha(tmp_path, rng):
    rgba = np.concatenate([_srgb8(rng), rng.integers(0, 256, (H, W, 1), dtype=np.uint8)], axis=2)
    img, meta = read_image(_write_cv2(tmp_path / "a.png", rgba))
    np.testing.assert_allclose(img, _expect_linear(rgba[..., :3]), rtol=1e-5, atol=1e-7)
    assert meta["orig_channels"] == 4


def test_grey_alpha_png_and_tiff_drop_alpha(tmp_path, rng):
    from PIL import Image

    la = rng.integers(0, 256, (H, W, 2), dtype=np.uint8)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    tifffile.imwrite(tmp_path / "la.tif", la, photometric="minisblack", extrasamples=["unassalpha"])
    for name in ("la.png", "la.tif"):
        raw, meta = read_image_raw(tmp_path / name)
        assert raw.shape == (H, W, 3) and (raw == la[..., :1]).all(), name
        assert meta["orig_channels"] == 2, name


def test_palette_and_one_bit_png(tmp_path, rng):
    from PIL import Image

    idx = rng.integers(0, 3, (H, W), dtype=np.uint8)
    pal = Image.fromarray(idx, "P")
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    pal.save(tmp_path / "p.png")
    raw, _ = read_image_raw(tmp_path / "p.png")
    lut = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    assert (raw == lut[idx]).all()
    bits = rng.random((H, W)) > 0.5
    Image.fromarray(bits).save(tmp_path / "b.png")
    raw, meta = read_image_raw(tmp_path / "b.png")
    assert (raw[..., 1] == np.where(bits, 255, 0)).all() and meta["bit_depth"] == 1


# ------------------------------------------------------------------------------------------------------------
# HDR: Radiance and OpenEXR
# ------------------------------------------------------------------------------------------------------------

def _assert_rgbe_close(got: np.ndarray, want: np.ndarray) -> None:
    """RGBE shares one exponent per pixel: each channel is exact to 1/128 of the pixel's largest channel."""
    err = np.abs(got - want)
    assert (err <= want.max(axis=2, keepdims=True) / 128).all(), float((err / want.max(axis=2, keepdims=True)).max())


def _rgbe_bytes(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".hdr", np.ascontiguousarray(img[:, :, ::-1]))
    assert ok
    return buf.tobytes()


def test_radiance_hdr_decodes_linear_above_one(tmp_path, smooth_linear):
    hdr = smooth_linear * 8.0 + 0.01
    (tmp_path / "a.hdr").write_bytes(_rgbe_bytes(hdr))
    img, meta = read_image(tmp_path / "a.hdr")
    _check_linear(img)
    assert img.max() > 7
    _assert_rgbe_close(img, hdr)
    assert meta["format"] == "hdr" and meta["hdr"] is True and meta["color_space"] == "linear"


def test_radiance_with_junk_before_magic(tmp_path, smooth_linear):
    hdr = smooth_linear * 3.0 + 0.01
    data = b"# written by some exporter\nGarbage line\n" + _rgbe_bytes(hdr)
    (tmp_path / "j.hdr").write_bytes(data)
    assert cv2.imread(str(tmp_path / "j.hdr"), cv2.IMREAD_UNCHANGED) is None  # what OpenCV alone does
    img, meta = read_image(tmp_path / "j.hdr")
    _assert_rgbe_close(img, hdr)
    assert meta["header_offset"] == data.index(b"#?")


def test_radiance_exposure_header_recorded(tmp_path, smooth_linear):
    data = _rgbe_bytes(smooth_linear + 0.01).replace(b"FORMAT=", b"EXPOSURE=2.5\nFORMAT=", 1)
    (tmp_path / "e.hdr").write_bytes(data)
    _, meta = read_image(tmp_path / "e.hdr")
    assert meta["exposure"] == 2.5


def test_exr_round_trip_exact(tmp_path, smooth_linear):
    if not _exr_supported():
        with pytest.raises(ImageError, match="openexr"):
            write_image(tmp_path / "a.exr", smooth_linear)
        pytest.skip("no OpenEXR codec here (pip install openexr): checked the error message only")
    hdr = smooth_linear * 16.0
    write_image(tmp_path / "a.exr", hdr)
    img, meta = read_image(tmp_path / "a.exr")
    _check_linear(img)
    assert (img == hdr).all()  # float32 storage: bit-exact
    assert meta["format"] == "exr" and meta["hdr"] is True and meta["bit_depth"] == 32


def test_exr_nan_inf_refused_with_count(tmp_path, smooth_linear):
    if io._exr_module() is None:
        pytest.skip("needs the openexr package to write NaN/Inf")
    import OpenEXR

    data = smooth_linear.copy()
    data[0, 0, 1], data[2, 3, 0], data[2, 3, 2] = np.nan, np.inf, -np.inf
    chans = {c: np.ascontiguousarray(data[..., i]) for i, c in enumerate("RGB")}
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION}, chans).write(str(tmp_path / "bad.exr"))
    with pytest.raises(ImageError, match=r"bad\.exr: 2 of 2240 pixels contain NaN or Inf"):
        read_image(tmp_path / "bad.exr")


def test_float_tiff_nan_refused_with_count(tmp_path, smooth_linear):
    data = smooth_linear.copy()
    data[5, 5, 0] = np.nan
    data[6, 7] = np.inf
    tifffile.imwrite(tmp_path / "nan.tif", data, photometric="rgb")
    with pytest.raises(ImageError, match=r"nan\.tif: 2 of 2240 pixels contain NaN or Inf"):
        read_image(tmp_path / "nan.tif")


# ------------------------------------------------------------------------------------------------------------
# RAW (a synthetic DNG written with tifffile)
# ------------------------------------------------------------------------------------------------------------

BLACK, WHITE = 64, 4095
XYZ_TO_SRGB = [[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]]


def write_dng(path, cfa: np.ndarray) -> None:
    """A minimal DNG: RGGB Bayer mosaic, camera primaries = sRGB primaries, neutral white balance."""
    srational = [v for x in np.ravel(XYZ_TO_SRGB) for v in (int(round(x * 10000)), 10000)]
    tags = [
        (50706, "B", 4, (1, 4, 0, 0), True),    # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),    # DNGBackwardVersion
        (50708, "s", 0, "hdr-distill synthetic", True),  # UniqueCameraModel
        (271, "s", 0, "hdr-distill", True),     # Make
        (33421, "H", 2, (2, 2), True),          # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),    # CFAPattern: R G / G B
        (50710, "B", 3, (0, 1, 2), True),       # CFAPlaneColor
        (50711, "H", 1, 1, True),               # CFALayout: rectangular
        (50714, "H", 1, BLACK, True),           # BlackLevel
        (50717, "H", 1, WHITE, True),           # WhiteLevel
        (50721, "2i", 9, srational, True),      # ColorMatrix1 (XYZ -> camera)
        (50778, "H", 1, 21, True),              # CalibrationIlluminant1: D65
        (50728, "2I", 3, (1, 1, 1, 1, 1, 1), True),  # AsShotNeutral
    ]
    tifffile.imwrite(path, cfa.astype(np.uint16), photometric=32803, extratags=tags)


def test_dng_decodes_linear_with_right_levels_and_channels(tmp_path):
    h, w = 32, 48
    span = WHITE - BLACK
    cfa = np.full((h, w), BLACK + span // 2, np.uint16)          # left: neutral grey at 0.5
    red = cfa[:, w // 2:]                                         # right: red sites 0.8, others 0.1
    red[:] = BLACK + span // 10
    red[0::2, 0::2] = BLACK + int(0.8 * span)
    write_dng(tmp_path / "s.dng", cfa)
    img, meta = read_image(tmp_path / "s.dng")
    _check_linear(img)
    assert img.shape == (h, w, 3) and meta["format"] == "raw" and meta["color_space"] == "linear"
    grey = img[4:-4, 4:w // 2 - 4].reshape(-1, 3)
    np.testing.assert_allclose(grey, 0.5, atol=2e-3)             # linear: no gamma, no auto-brightening
    patch = img[4:-4, w // 2 + 4:-4].reshape(-1, 3).mean(0)
    np.testing.assert_allclose(patch, [0.8, 0.1, 0.1], atol=0.02)  # RGB order, camera WB neutral
    assert meta["raw"]["black_level"] == [BLACK] * 4 and meta["raw"]["white_level"] == WHITE
    assert meta["raw"]["cfa_pattern"] == [[0, 1], [3, 2]]


# ------------------------------------------------------------------------------------------------------------
# Bad files: ImageError naming the file and the problem
# ------------------------------------------------------------------------------------------------------------

def _bad_files(tmp_path, rng):
    good = _write_cv2(tmp_path / "good.png", _srgb8(rng)).read_bytes()
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "trunc.png").write_bytes(good[: len(good) // 2])
    (tmp_path / "text.png").write_text("this is not an image\n")
    (tmp_path / "notes.gif").write_bytes(b"GIF89a")
    (tmp_path / "text.jpg").write_text("nope")
    (tmp_path / "text.tif").write_text("nope")
    (tmp_path / "text.hdr").write_text("nope")
    (tmp_path / "text.exr").write_text("nope")
    (tmp_path / "text.dng").write_text("nope")
    (tmp_path / "folder.png").mkdir()
    return {
        "empty.png": "empty",
        "trunc.png": "cannot decode",
        "text.png": "cannot decode",
        "notes.gif": "unsupported extension",
        "text.jpg": "cannot decode",
        "text.tif": "cannot decode",
        "text.hdr": "not a Radiance",
        "text.exr": "exr|OpenEXR",
        "text.dng": "cannot decode as camera RAW",
        "missing.png": "not found",
        "folder.png": "not a regular file",
    }


def test_bad_files_raise_image_error_naming_the_file(tmp_path, rng):
    for name, problem in _bad_files(tmp_path, rng).items():
        path = tmp_path / name
        with pytest.raises(ImageError, match=problem) as err:
            read_image(path)
        assert str(path) in str(err.value), name


@pytest.mark.parametrize("name, bit_depth", [("t.png", 16), ("t.tif", 8), ("t.tif", 16), ("t.tif", 32),
                                             ("t.hdr", 8), ("t.exr", 8)])
def test_truncated_files_raise_image_error(tmp_path, rng, name, bit_depth):
    if name.endswith(".exr") and not _exr_supported():
        pytest.skip("no OpenEXR codec here")
    img = rng.random((64, 80, 3), dtype=np.float32)
    data = write_image(tmp_path / name, img, bit_depth=bit_depth).read_bytes()
    cut = tmp_path / f"cut_{name}"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageError, match="cannot decode") as err:
        read_image(cut)
    assert str(cut) in str(err.value)


@pytest.mark.parametrize("h, w", [(MIN_SIZE - 1, 40), (40, MIN_SIZE - 1), (4, 4)])
def test_tiny_image_refused_with_minimum_in_message(tmp_path, h, w):
    path = _write_cv2(tmp_path / "tiny.png", np.zeros((h, w, 3), np.uint8))
    with pytest.raises(ImageError, match=f"{w}x{h} pixels; the minimum is {MIN_SIZE} pixels") as err:
        read_image(path)
    assert str(path) in str(err.value)


def test_minimum_size_accepted(tmp_path):
    img, _ = read_image(_write_cv2(tmp_path / "ok.png", np.zeros((MIN_SIZE, MIN_SIZE, 3), np.uint8)))
    assert img.shape == (MIN_SIZE, MIN_SIZE, 3)


# ------------------------------------------------------------------------------------------------------------
# Writing: round trips and atomicity
# ------------------------------------------------------------------------------------------------------------

def test_png16_and_tiff16_round_trip_within_one_lsb(tmp_path, smooth_linear):
    for name in ("r.png", "r.tif"):
        write_image(tmp_path / name, smooth_linear, bit_depth=16)
        raw, meta = read_image_raw(tmp_path / name)
        assert raw.dtype == np.uint16 and meta["bit_depth"] == 16
        assert (raw == io.encode_display(linear_to_srgb(smooth_linear), 16)).all()
        back, _ = read_image(tmp_path / name)
        assert np.abs(linear_to_srgb(back) - linear_to_srgb(smooth_linear)).max() <= 1.0 / 65535


def test_png8_round_trip_within_one_lsb(tmp_path, smooth_linear):
    write_image(tmp_path / "r.png", smooth_linear)
    back, meta = read_image(tmp_path / "r.png")
    assert meta["bit_depth"] == 8
    assert np.abs(linear_to_srgb(back) - linear_to_srgb(smooth_linear)).max() <= 0.5 / 255 + 1e-6


def test_display_values_written_without_encoding(tmp_path, smooth_linear):
    write_image(tmp_path / "d.png", smooth_linear, encode_srgb=False)
    raw, _ = read_image_raw(tmp_path / "d.png")
    assert (raw == io.encode_display(smooth_linear, 8)).all()


def test_float_formats_round_trip(tmp_path, smooth_linear):
    hdr = smooth_linear * 5.0 + 0.01
    write_image(tmp_path / "f.tif", hdr, bit_depth=32)
    assert (read_image(tmp_path / "f.tif")[0] == hdr).all()
    write_image(tmp_path / "f.hdr", hdr)
    _assert_rgbe_close(read_image(tmp_path / "f.hdr")[0], hdr)


def test_write_rejects_bad_input(tmp_path, smooth_linear):
    with pytest.raises(ValueError, match="8 bits only"):
        write_image(tmp_path / "a.jpg", smooth_linear, bit_depth=16)
    with pytest.raises(ValueError, match=r"float \[H,W,3\]"):
        write_image(tmp_path / "a.png", smooth_linear[..., 0])
    with pytest.raises(ValueError, match="cannot write '.gif'"):
        write_image(tmp_path / "a.gif", smooth_linear)


def test_atomic_write_leaves_only_the_file(tmp_path, smooth_linear):
    out = write_image(tmp_path / "sub" / "o.png", smooth_linear)
    assert sorted(p.name for p in out.parent.iterdir()) == ["o.png"]
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_failed_write_keeps_existing_file_and_no_temp(tmp_path, smooth_linear, monkeypatch):
    path = write_image(tmp_path / "o.png", smooth_linear)
    before = path.read_bytes()

    def boom(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)  # fails after the temp file was written
    with pytest.raises(OSError, match="No space"):
        write_image(path, smooth_linear * 0.5)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="NaN"):  # fails before anything is written
        write_image(path, np.full_like(smooth_linear, np.nan))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]


def test_exr_env_is_set_before_opencv_use():
    assert os.environ.get("OPENCV_IO_ENABLE_OPENEXR") == "1"
