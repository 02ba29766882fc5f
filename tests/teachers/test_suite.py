"""The operator suite (teachers/suite.py): each operator does what its name says, measured on an image built so
that the answer is known, and each one is a valid teacher as it stands (validation, sizes, range, input kept)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from distill.data.validate import validate_teacher
from teachers.python import PythonTeacher
from teachers.suite import LIBRARY, REFERENCE, SUITE
from teachers import suite as S

NAMES = sorted(SUITE)


def _natural(h: int, w: int) -> np.ndarray:
    from skimage import data

    img = data.astronaut().astype(np.float32) / 255.0
    return np.ascontiguousarray(cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA), dtype=np.float32)


def _hf_energy(img: np.ndarray) -> float:
    """Mean squared difference between the image and its Gaussian blur (sigma 1 px): the fine detail."""
    img = img.astype(np.float32)
    return float(np.mean((img - cv2.GaussianBlur(img, (0, 0), 1.0)) ** 2))


def _nonzero_gradient_fraction(img: np.ndarray, tol: float = 1e-3) -> float:
    gx = np.abs(np.diff(img, axis=1)).max(axis=2)
    gy = np.abs(np.diff(img, axis=0)).max(axis=2)
    return float((np.mean(gx > tol) + np.mean(gy > tol)) / 2)


def _step(h: int = 64, w: int = 64, lo: float = 0.2, hi: float = 0.8) -> np.ndarray:
    img = np.full((h, w, 3), lo, np.float32)
    img[:, w // 2:] = hi
    return img


# ---- every entry: a teacher as it stands ------------------------------------------------------------------

def test_suite_has_ten_operators_each_documented():
    assert len(SUITE) >= 10
    assert set(LIBRARY) == set(SUITE) == set(REFERENCE)
    for name, fn in SUITE.items():
        assert fn.__name__ == name and getattr(S, name) is fn  # teacher.fn=teachers.suite:<name> finds it
        assert "Reference" in (fn.__doc__ or ""), name


@pytest.mark.parametrize("name", NAMES)
def test_passes_teacher_validation_through_the_python_adapter(name):
    t = PythonTeacher(f"teachers.suite:{name}")
    assert t.name == name and t.input_space == "srgb" and t.output_space == "srgb"
    report = validate_teacher(t)
    assert report.probe_shape[0] == 2


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(64, 64), (97, 131)])
def test_float32_in_range_same_shape_input_untouched_deterministic(name, shape):
    x = _natural(*shape)
    keep = x.copy()
    x.setflags(write=False)  # an operator writing into its input fails here, loudly
    y = SUITE[name](x)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == x.shape
    assert np.isfinite(y).all() and y.min() >= 0.0 and y.max() <= 1.0
    assert np.array_equal(x, keep)
    assert np.array_equal(SUITE[name](x), y)  # deterministic, bit for bit
    assert np.abs(y - x).mean() > 2e-3, f"{name} is (nearly) the identity on a photo"


@pytest.mark.parametrize("name", NAMES)
def test_flat_and_tiny_images_give_valid_output_without_warnings(name):
    """Training crops can be flat (sky, a black frame) and as small as 16 px: no NaN (0/0 in a stretch), no
    warning, still float32 in [0, 1]. (What a library does with a flat image is its own: CLAHE and OpenCV's
    stylization turn a constant image white.)"""
    import warnings

    for value in (0.0, 0.5, 1.0):
        for shape in ((16, 16, 3), (17, 23, 3)):
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                y = SUITE[name](np.full(shape, value, np.float32))
            assert y.dtype == np.float32 and y.shape == shape
            assert np.isfinite(y).all() and 0.0 <= y.min() and y.max() <= 1.0, (value, shape)


def test_the_adapter_batches_what_the_function_does_per_image():
    t = PythonTeacher("teachers.suite:clahe")
    xs = np.stack([_natural(48, 64), _natural(48, 64)[::-1].copy()])
    y = t(torch.from_numpy(xs).permute(0, 3, 1, 2).contiguous())
    for i in range(2):
        np.testing.assert_array_equal(y[i].permute(1, 2, 0).numpy(), S.clahe(xs[i]))


# ---- per operator: the property that would fail if it were wrong ------------------------------------------

def test_tv_denoise_removes_noise_and_keeps_a_step():
    rng = np.random.default_rng(0)
    flat = (0.5 + rng.normal(0, 0.05, (64, 64, 3))).astype(np.float32)
    assert S.tv_denoise(flat).std() < flat.std() / 5  # measured: 8.9x lower
    step = _step()
    noisy = np.clip(step + rng.normal(0, 0.05, step.shape), 0, 1).astype(np.float32)
    y = S.tv_denoise(noisy)
    assert np.abs(y - step).mean() < np.abs(noisy - step).mean() / 4  # measured 0.006 vs 0.040
    assert y[:, :28].mean() == pytest.approx(0.2, abs=0.02) and y[:, 36:].mean() == pytest.approx(0.8, abs=0.02)
    assert y[:, 32].mean() - y[:, 31].mean() > 0.4  # the edge stays one pixel sharp (measured 0.53)


def _local_std(img: np.ndarray, k: int = 16) -> float:
    g = img.mean(axis=2)
    return float(np.mean([g[i:i + k, j:j + k].std() for i in range(0, g.shape[0], k)
                          for j in range(0, g.shape[1], k)]))


def test_clahe_raises_local_contrast_of_a_flat_looking_image():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:128, 0:128] / 128
    lum = 0.5 + 0.04 * np.sin(2 * np.pi * 4 * xx) * np.sin(2 * np.pi * 3 * yy) + 0.02 * rng.normal(size=xx.shape)
    img = (lum[..., None] * np.array([1.0, 0.95, 0.9])).astype(np.float32)
    y = S.clahe(img)
    assert _local_std(y) > 3 * _local_std(img)  # measured 8x
    assert np.corrcoef(y.mean(axis=2).ravel(), img.mean(axis=2).ravel())[0, 1] > 0.8  # same picture, stretched


def test_unsharp_raises_fine_detail_and_leaves_a_flat_image_alone():
    rng = np.random.default_rng(2)
    tex = cv2.GaussianBlur(np.clip(0.5 + 0.1 * rng.normal(size=(64, 64, 3)), 0, 1).astype(np.float32), (0, 0), 1.0)
    y = S.unsharp(tex)
    assert _hf_energy(y) > 2.5 * _hf_energy(tex)  # amount 1: (1 + 1)^2 on the finest scales; measured 3.7x
    assert y.mean() == pytest.approx(tex.mean(), abs=1e-3)  # sharpening adds no light
    flat = np.full((40, 56, 3), 0.3, np.float32)
    np.testing.assert_allclose(S.unsharp(flat), flat, atol=1e-6)


def test_unsharp_works_on_every_channel():
    """scikit-image's unsharp_mask with channel_axis=-1 fills only rows 0..2 (issue #7264): the rest would be
    whatever the allocator left there; here every pixel of a non-flat image must match the per-channel result."""
    from skimage.filters import unsharp_mask

    x = _natural(64, 64)
    y = S.unsharp(x)
    for c in range(3):
        np.testing.assert_allclose(y[..., c], np.clip(unsharp_mask(x[..., c], radius=2.0, amount=1.0), 0, 1),
                                   atol=1e-6)


def test_dehaze_recovers_a_synthetic_hazy_scene():
    """``I = J t + A (1 - t)`` with a haze-free J that obeys the dark-channel prior (each colour block has one
    channel at 0.02), t known (0.35 .. 0.9 across the frame, a 'sky' strip at 0.03 on top): where t >= 0.35
    the recovered J is within 0.07 of the truth on average (the hazy input is 0.18 off) and contrast rises."""
    rng = np.random.default_rng(3)
    h = w = 160
    blocks = rng.uniform(0.15, 0.9, (h // 16, w // 16, 3))
    np.put_along_axis(blocks, rng.integers(0, 3, blocks.shape[:2])[..., None], 0.02, axis=2)
    j = np.kron(blocks, np.ones((16, 16, 1)))
    t = np.broadcast_to(0.35 + 0.55 * np.arange(w) / (w - 1), (h, w)).copy()
    t[:24] = 0.03
    airlight = np.array([0.85, 0.88, 0.92])
    hazy = (j * t[..., None] + airlight * (1 - t[..., None])).astype(np.float32)
    out = S.dehaze(hazy)
    seen = np.zeros((h, w), bool)
    seen[40:] = True  # away from the sky strip (and the guided filter's reach of it)
    err_in, err_out = np.abs(hazy - j)[seen].mean(), np.abs(out - j)[seen].mean()
    assert err_out < 0.07 and err_out < err_in / 3  # measured 0.050 vs 0.184
    assert out[seen].std() > 1.3 * hazy[seen].std()  # measured 0.308 vs 0.222 (truth 0.320)


def test_l0_smoothing_is_piecewise_constant_and_keeps_the_edge():
    rng = np.random.default_rng(4)
    step = _step()
    noisy = np.clip(step + rng.normal(0, 0.03, step.shape), 0, 1).astype(np.float32)
    y = S.l0_smooth(noisy)
    assert _nonzero_gradient_fraction(noisy) > 0.95
    assert _nonzero_gradient_fraction(y) < 0.10  # measured 0.044: the flat halves have no gradient left
    assert y[:, :30].mean() == pytest.approx(0.2, abs=0.02) and y[:, 34:].mean() == pytest.approx(0.8, abs=0.02)
    assert y[:, 32].mean() - y[:, 31].mean() > 0.5  # the step survives, sharp


def test_retinex_brings_a_dark_and_a_bright_half_together():
    h, w = 384, 768
    yy, xx = np.mgrid[0:h, 0:w] / (w / 2)
    shading = np.where(xx < 1, 0.1, 0.8)  # one scene under two illuminations
    texture = 1 + 0.3 * np.sin(2 * np.pi * 6 * yy) * np.sin(2 * np.pi * 5 * xx)
    img = np.clip((shading * texture)[..., None] * np.array([1.0, 0.9, 0.8]), 0, 1).astype(np.float32)
    y = S.retinex(img)
    dark, bright = slice(0, w // 2), slice(w // 2, w)
    gap_in = img[:, bright].mean() - img[:, dark].mean()
    gap_out = y[:, bright].mean() - y[:, dark].mean()
    assert 0 < gap_out < 0.6 * gap_in  # measured 0.47 of the input's gap
    assert y[:, dark].mean() > 3 * img[:, dark].mean()  # the dark half is lifted (0.09 -> 0.48)


def test_retinex_wide_surround_matches_an_exact_gaussian():
    """The reduced-scale surround for sigma > 8 px agrees with cv2's exact Gaussian away from the borders."""
    x = _natural(200, 260) * 255 + 1
    for sigma in (15.0, 80.0):
        exact = cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        fast = S._surround(x, sigma)
        m = 20
        rel = np.abs(fast - exact)[m:-m, m:-m] / exact[m:-m, m:-m]
        assert rel.mean() < 0.01, (sigma, rel.mean())


def _median_detail(img: np.ndarray) -> float:
    """Median |image - blur|: the texture of most pixels, blind to a few strong edges."""
    return float(np.median(np.abs(img - cv2.GaussianBlur(img, (0, 0), 1.0))))


def _edge_darkening(x: np.ndarray, y: np.ndarray) -> float:
    """Output/input luma ratio at the input's strongest 10 % gradients over that ratio on its flattest half."""
    g = x.mean(axis=2)
    mag = np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))
    ratio = y.mean(axis=2) / np.maximum(g, 1e-3)
    return float(np.median(ratio[mag > np.quantile(mag, 0.9)]) / np.median(ratio[mag < np.quantile(mag, 0.5)]))


@pytest.mark.parametrize("name", ["detail_enhance", "edge_preserving", "stylization", "pencil_sketch"])
def test_opencv_operators_change_a_photo_in_their_own_way(name):
    x = _natural(97, 131)
    y = SUITE[name](x)
    assert y.shape == x.shape and y.dtype == np.float32 and 0 <= y.min() and y.max() <= 1
    assert np.abs(y - x).mean() > 0.01
    np.testing.assert_array_equal(SUITE[name](x), y)
    if name == "detail_enhance":
        assert _hf_energy(y) > 1.5 * _hf_energy(x)  # measured 3.2x
    elif name == "edge_preserving":
        assert _median_detail(y) < 0.6 * _median_detail(x)  # texture smoothed away; measured 0.43x
    elif name == "stylization":  # flat washes of the input's tone, outlined in black
        assert _median_detail(y) < 0.85 * _median_detail(x)  # measured 0.75x
        assert _edge_darkening(x, y) < 0.3  # measured 0.0
    else:  # pencil strokes along the edges, lighter paper between them
        assert _edge_darkening(x, y) < 0.6  # measured 0.31


def test_opencv_operators_keep_rgb_order():
    """OpenCV works in BGR (detailEnhance's Lab conversion depends on it): a red input must not come back blue."""
    red = np.zeros((64, 64, 3), np.float32)
    red[..., 0] = 0.8
    red[16:48, 16:48] = [0.2, 0.6, 0.3]
    for name in ("detail_enhance", "edge_preserving"):
        y = SUITE[name](red)
        corner = y[:8, :8].mean(axis=(0, 1))
        assert corner[0] > corner[2] + 0.3, (name, corner)
