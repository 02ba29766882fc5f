"""Tone-mapping teachers: contract (shape, range, finiteness, exposure, bad input), parameter directions,
OpenCV encoding convention, and Durand-Dorsey against known answers and a slow brute-force reference."""
from __future__ import annotations

import inspect
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data, transform

from distill.core.color import luminance, srgb_to_linear
from distill.core.protocols import Teacher, teacher_identity
from teachers.tonemap import Drago, DurandDorsey, Mantiuk, Reinhard, durand_dorsey, normalize_hdr

CONF = Path(__file__).resolve().parents[2] / "conf" / "teacher"
ALL = {"reinhard": Reinhard, "drago": Drago, "mantiuk": Mantiuk, "durand": DurandDorsey}


def _photo_hdr(h=48, w=64) -> np.ndarray:
    """A small linear photo turned HDR by hand: a bright window (x300) and a lamp (x5000)."""
    lin = srgb_to_linear(transform.resize(data.coffee(), (h, w), anti_aliasing=True)).astype(np.float32)
    lin[: h // 3, : w // 3] *= 300.0
    lin[h // 2 - 1 : h // 2 + 2, w // 2 - 1 : w // 2 + 2] = 5000.0
    return lin


def _inputs() -> dict[str, np.ndarray]:
    ordinary = _photo_hdr()
    single = np.zeros((40, 52, 3), np.float32)
    single[17, 23] = 1000.0
    ramp = np.logspace(-8, 9, 40 * 52, dtype=np.float64).reshape(40, 52)  # 17 decades
    very_high = (ramp[..., None] * np.array([1.0, 0.7, 0.4])).astype(np.float32)
    return {"ordinary": ordinary, "black": np.zeros((40, 52, 3), np.float32), "single_bright": single,
            "very_high_dr": very_high}


def _chroma(y: np.ndarray) -> float:
    return float((y.max(axis=2) - y.min(axis=2)).mean())


def _log_lum(y_srgb: np.ndarray) -> np.ndarray:
    return np.log10(np.maximum(luminance(srgb_to_linear(y_srgb)), 1e-4))


# ----------------------------------------------------------------------------------------------------------
# contract shared by the four teachers
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("kind", ["ordinary", "black", "single_bright", "very_high_dr"])
def test_output_finite_in_range_right_shape(name, kind):
    teacher = ALL[name]()
    img = _inputs()[kind]
    x = torch.from_numpy(np.stack([img, 0.5 * img])).permute(0, 3, 1, 2)  # [2,3,H,W]
    y = teacher(x)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert torch.isfinite(y).all()
    assert y.min() >= 0.0 and y.max() <= 1.0
    if kind == "black":
        assert (y == 0).all()  # black in -> black out
    if kind == "single_bright":
        lum = y.mean(dim=1).flatten(1)  # [2, H*W]
        bright = 17 * y.shape[3] + 23
        assert (lum[:, bright] >= lum.max(dim=1).values - 1e-6).all()  # the light stays the brightest pixel
        others = torch.cat([lum[:, :bright], lum[:, bright + 1 :]], dim=1)
        off = (others - others.median(dim=1, keepdim=True).values).abs() > 1e-5
        if name != "mantiuk":  # global operators (and Durand's edge-stopping filter): the rest is one value,
            assert off.sum(dim=1).max() <= 1  # but for OpenCV's black-point anchor pixel
    if kind in ("ordinary", "very_high_dr"):
        assert y.std() > 0.05  # a real picture, not a flat one


@pytest.mark.parametrize("name", ALL)
def test_protocol_identity_and_params_list_every_argument(name):
    teacher = ALL[name]()
    assert isinstance(teacher, Teacher)
    assert teacher.name == name and teacher.input_space == "hdr" and teacher.output_space == "srgb"
    params = teacher.params()
    args = set(inspect.signature(ALL[name].__init__).parameters) - {"self"}
    assert args <= set(params), f"params() misses {args - set(params)}"
    assert params["exposure"] in ("max", "minmax") and params["floor"] == 1e-6
    ident = teacher_identity(teacher)
    assert ident["name"] == name and ident["params"] == params


@pytest.mark.parametrize("name", ALL)
def test_exposure_scale_invariance_and_normalize_hdr(name):
    teacher = ALL[name]()
    img = _photo_hdr()
    y = teacher.apply_np(img)
    for k in (1e-4, 37.0, 1e5):
        np.testing.assert_allclose(teacher.apply_np(img * np.float32(k)), y, atol=2e-4)
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    xn = normalize_hdr(x)
    assert float(xn.max()) == 1.0 and float(xn.min()) >= 0.0
    torch.testing.assert_close(teacher(xn), teacher(x), atol=2e-4, rtol=0)


@pytest.mark.parametrize("name", ALL)
def test_bad_input_raises_and_negatives_clamp(name):
    teacher = ALL[name]()
    img = _photo_hdr()
    for bad in (np.nan, np.inf, -np.inf):
        broken = img.copy()
        broken[3, 4, 1] = bad
        with pytest.raises(ValueError, match="NaN or Inf"):
            teacher.apply_np(broken)
        with pytest.raises(ValueError, match="NaN or Inf"):
            teacher(torch.from_numpy(broken).permute(2, 0, 1)[None])
    with pytest.raises(ValueError, match=r"\[H,W,3\]"):
        teacher.apply_np(img[..., :2])
    negative = img.copy()
    negative[10:20, 10:20] = -0.5  # documented clamp: negative radiance is no light
    clamped = np.maximum(negative, 0)
    np.testing.assert_array_equal(teacher.apply_np(negative), teacher.apply_np(clamped))


@pytest.mark.parametrize("name", ALL)
def test_repeatable_and_yaml_instantiates(name):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    teacher = instantiate(OmegaConf.load(CONF / f"{name}.yaml"))
    assert type(teacher) is ALL[name] and teacher.params() == ALL[name]().params()
    img = _photo_hdr()
    # OpenCV's Reinhard rewrites its own intensity inside process(): a reused operator would drift
    np.testing.assert_array_equal(teacher.apply_np(img), teacher.apply_np(img))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="intensity"):
        Reinhard(intensity=9)
    with pytest.raises(ValueError, match="bias"):
        Drago(bias=0)
    with pytest.raises(ValueError, match="scale"):
        Mantiuk(scale=-1)
    with pytest.raises(ValueError, match="target_contrast"):
        DurandDorsey(target_contrast=1.0)
    with pytest.raises(ValueError, match="floor"):
        Drago(floor=0)
    with pytest.raises(ValueError, match="gamma"):
        Mantiuk(gamma=0)


def test_zero_grey_pixels_do_not_spoil_opencv():
    # OpenCV alone returns NaN at pixels whose channels all sit at the minimum, and one NaN in its first
    # pixel corrupts its final stretch of the whole image; the teachers must still fill [0, 1] exactly.
    import cv2

    img = _photo_hdr()
    img[0, 0] = 0.0
    img[5:9, 5:9] = 0.0
    assert np.isnan(cv2.createTonemapDrago(1.0, 1.0, 0.85).process(img.copy())).any()
    for cls in (Reinhard, Drago, Mantiuk):
        y = cls(gamma=1.0).apply_np(img)  # gamma 1: OpenCV's display values unencoded
        assert np.isfinite(y).all() and y.min() == 0.0 and y.max() == pytest.approx(1.0, abs=1e-6)
        tol = 1e-3 if cls is Mantiuk else 1e-6  # Mantiuk is local: its solve spreads a little into the patch
        assert np.abs(y[5:9, 5:9] - y[6, 6]).max() < tol  # the black patch stays uniform
    y = Reinhard(color_adapt=1.0).apply_np(img)  # full colour adaptation: 0/0 in OpenCV on any zero channel
    assert np.isfinite(y).all()


# ----------------------------------------------------------------------------------------------------------
# documented parameter directions
# ----------------------------------------------------------------------------------------------------------


def test_parameter_directions():
    img = _photo_hdr()
    # Reinhard: intensity up -> brighter
    means = [Reinhard(intensity=v).apply_np(img).mean() for v in (-2.0, 0.0, 2.0)]
    assert means[0] < means[1] < means[2]
    # Reinhard: color_adapt up -> per-channel adaptation -> less saturated
    chroma = [_chroma(Reinhard(color_adapt=v).apply_np(img)) for v in (0.0, 0.5, 1.0)]
    assert chroma[0] > chroma[1] > chroma[2]
    # Mantiuk: scale up -> more contrast
    spread = [_log_lum(Mantiuk(scale=v).apply_np(img)).std() for v in (0.5, 0.7, 0.9)]
    assert spread[0] < spread[1] < spread[2]
    # Durand: target contrast up -> more global contrast (window x300 against the room, in log10 output)
    h, w = img.shape[:2]
    gaps = []
    for v in (2.0, 5.0, 20.0):
        out_log = _log_lum(DurandDorsey(target_contrast=v).apply_np(img))
        gaps.append(np.median(out_log[: h // 3, : w // 3]) - np.median(out_log[h // 3 :, w // 3 :]))
    assert 0 < gaps[0] < gaps[1] < gaps[2]
    # saturation up -> more saturated, for every operator that has it
    for cls in (Drago, Mantiuk, DurandDorsey):
        chroma = [_chroma(cls(saturation=v).apply_np(img)) for v in (0.5, 1.0, 1.5)]
        assert chroma[0] < chroma[1] < chroma[2], cls.__name__


def test_drago_bias_darkens_every_pixel_of_a_grey_scene():
    ramp = np.logspace(-4, 0, 32 * 32, dtype=np.float32).reshape(32, 32)
    grey = np.repeat(ramp[..., None], 3, axis=2)
    darker = Drago(bias=1.0).apply_np(grey)
    lighter = Drago(bias=0.7).apply_np(grey)
    inner = (slice(None), slice(None), 0)
    assert (darker[inner] <= lighter[inner] + 1e-6).all()
    assert (darker[inner] < lighter[inner]).mean() > 0.99


@pytest.mark.parametrize("cls", [Reinhard, Drago, Mantiuk])
def test_encoding_convention_srgb_versus_opencv_power_law(cls):
    # gamma=None: exact sRGB of OpenCV's linear display values; gamma=2.2: OpenCV's own v ** (1/2.2)
    img = _photo_hdr()
    srgb = cls().apply_np(img)
    power = cls(gamma=2.2).apply_np(img)
    linear = cls(gamma=1.0).apply_np(img)
    np.testing.assert_allclose(srgb_to_linear(srgb), linear, atol=2e-5)
    np.testing.assert_allclose(power, linear ** (1 / 2.2), atol=2e-5)


# ----------------------------------------------------------------------------------------------------------
# Durand & Dorsey
# ----------------------------------------------------------------------------------------------------------


def _bilateral_reference(a: np.ndarray, sigma_space: float, sigma_range: float) -> np.ndarray:
    """Brute-force bilateral filter, written from its definition (float64).

    Same support as OpenCV: a disc of radius round(1.5 sigma_space) (at least 1), mirrored borders without
    repeating the edge pixel (reflect-101), exact Gaussian weights.
    """
    r = max(1, int(round(1.5 * sigma_space)))
    pad = np.pad(a.astype(np.float64), r, mode="reflect")
    H, W = a.shape
    num, den = np.zeros((H, W)), np.zeros((H, W))
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dy * dy + dx * dx > r * r:
                continue
            nb = pad[r + dy : r + dy + H, r + dx : r + dx + W]
            w = math.exp(-(dy * dy + dx * dx) / (2 * sigma_space**2)) * np.exp(-((nb - a) ** 2) / (2 * sigma_range**2))
            num += w * nb
            den += w
    return num / den


def _durand_reference(img, target_contrast=5.0, sigma_space=0.02, sigma_range=0.4, saturation=1.0, floor=1e-6):
    """The paper's recipe written plainly in float64, with the brute-force filter above."""
    x = np.maximum(img.astype(np.float64), 0)
    x = np.maximum(x / x.max(), floor)
    lum = np.maximum(x @ np.array([0.2126, 0.7152, 0.0722]), floor)
    log_lum = np.log10(lum)
    base = _bilateral_reference(log_lum, sigma_space * max(img.shape[:2]), sigma_range)
    detail = log_lum - base
    compression = math.log10(target_contrast) / (base.max() - base.min())
    out_lum = 10.0 ** (compression * (base - base.max()) + detail)
    out = np.clip((x / lum[..., None]) ** saturation * out_lum[..., None], 0, 1)
    return np.where(out <= 0.0031308, 12.92 * out, 1.055 * out ** (1 / 2.4) - 0.055)


def test_durand_matches_brute_force_reference():
    img = _photo_hdr(36, 44)
    for kw in ({}, {"sigma_space": 0.08, "sigma_range": 0.25, "saturation": 0.7, "target_contrast": 12.0}):
        ours = DurandDorsey(**kw).apply_np(img)
        ref = _durand_reference(img, **kw)
        assert np.abs(ours - ref).max() < 2e-3, kw


def test_durand_constant_image_maps_to_constant():
    for colour in ([0.3, 0.3, 0.3], [2.0, 1.0, 0.5], [1e-5, 3e-5, 2e-5]):
        img = np.ones((30, 40, 3), np.float32) * np.float32(colour)
        for work in (None, 2.0):
            y = durand_dorsey(img, sigma_space=0.2, work_sigma_px=work)
            assert np.abs(y - y[0, 0]).max() < 1e-6
    grey = durand_dorsey(np.full((8, 8, 3), 7.0, np.float32))
    np.testing.assert_allclose(grey, 1.0, atol=1e-6)  # the maximum base maps to 1


def test_durand_step_plus_texture_known_answer():
    # Dark half: 1e-3 with a +-a log10 checkerboard; bright half: flat 1.0, three decades up.
    # Expected: bright half -> 1 (max base); dark half base -> 1 / target_contrast (the base's 3 decades are
    # compressed to log10(tc)); the texture, all below sigma_range, is detail and kept: +-a in log10.
    a, tc = 0.05, 5.0
    H, W = 40, 64
    log_img = np.full((H, W), -3.0)
    yy, xx = np.mgrid[:H, :W]
    log_img += np.where((yy + xx) % 2 == 0, a, -a)
    log_img[:, W // 2 :] = 0.0
    img = np.repeat((10.0**log_img)[..., None], 3, axis=2).astype(np.float32)

    out, (log_lum, base, detail) = durand_dorsey(img, target_contrast=tc, sigma_space=0.05, sigma_range=0.4,
                                                 return_layers=True)
    out_log = np.log10(srgb_to_linear(out)[..., 1])
    dark = (slice(4, H - 4), slice(4, W // 2 - 4))  # away from borders and the step
    bright = (slice(None), slice(W // 2 + 4, W))
    np.testing.assert_allclose(out[bright], 1.0, atol=1e-6)
    parity = ((yy + xx) % 2 == 0)[dark]
    level = out_log[dark].mean()
    texture = out_log[dark][parity].mean() - out_log[dark][~parity].mean()
    assert level == pytest.approx(-math.log10(tc), abs=0.01)
    assert texture == pytest.approx(2 * a, rel=0.05)  # detail preserved
    assert np.abs(detail[dark][parity].mean() - detail[dark][~parity].mean() - 2 * a) < 0.005
    assert np.abs(base[dark] - base[dark].mean()).max() < 0.01  # the texture is not in the base


def test_durand_downsampled_path_keeps_a_step_sharp():
    # the approximate path (work_sigma_px) must not halo: joint upsampling keeps each side's own base
    img = np.full((120, 120, 3), 1e-3, np.float32)
    img[:, 61:] = 1.0
    fast = durand_dorsey(img, sigma_space=0.1, work_sigma_px=3.0)  # 12 px -> 4x downsampled
    exact = durand_dorsey(img, sigma_space=0.1)
    assert np.abs(fast - exact).max() < 1e-3


def test_durand_percentile_range_is_robust_to_one_dark_pixel():
    """min..max (the paper) lets one black pixel re-expose the image; a 1..99 percentile range does not."""
    import numpy as np

    from teachers.tonemap import durand_dorsey

    rng = np.random.default_rng(0)
    img = (np.exp(rng.normal(0, 1.5, (48, 64, 1))) * np.array([1.0, 0.9, 0.8])).astype(np.float32)
    dark = img.copy()
    dark[0, 0] = 1e-5 * img.max()
    kw = dict(sigma_space=0.05)
    paper = np.abs(durand_dorsey(dark, **kw) - durand_dorsey(img, **kw))[1:, 1:].mean()
    robust = np.abs(durand_dorsey(dark, **kw, range_percentiles=(1, 99))
                    - durand_dorsey(img, **kw, range_percentiles=(1, 99)))[1:, 1:].mean()
    assert paper > 0.02 and robust < 0.1 * paper
    assert np.array_equal(durand_dorsey(img, **kw), durand_dorsey(img, **kw, range_percentiles=(0, 100)))
