"""Finishing steps: each has an identity or a known answer."""
import numpy as np
import pytest

from distill.core.color import linear_to_srgb
from teachers.hdrplus.burst import SYNTH_CAM_FROM_SRGB, SYNTH_WB_GAINS, Burst, synthesize_burst
from teachers.hdrplus.finish import (
    apply_color_matrix, black_white_level, demosaic_bilinear, develop_linear, gamma_srgb, sharpen, tone_map,
    white_balance,
)
from teachers.hdrplus.burst import mosaic
from tests.teachers.hdrplus.helpers import textured_linear


def test_black_and_white_levels_map_to_0_and_1():
    raw = np.array([[64, 1023], [80, 543.5]], np.float32)
    out = black_white_level(raw, [64, 64, 80, 64], 1023)
    np.testing.assert_allclose(out, [[0.0, 1.0], [0.0, 0.5]], atol=1e-7)


@pytest.mark.parametrize("pattern", ["RGGB", "BGGR", "GRBG", "GBRG"])
def test_white_balance_makes_a_grey_card_grey(pattern):
    gains = np.array([2.1, 1.0, 1.7])
    card = np.full((8, 8, 3), 0.4, np.float32) / gains.astype(np.float32)  # what the camera records
    balanced = white_balance(mosaic(card, pattern), gains, pattern)
    np.testing.assert_allclose(balanced, 0.4, atol=1e-6)
    # highlights clip to white whichever channel saturates first
    assert white_balance(np.ones((2, 2), np.float32), gains, pattern).max() == 1.0


def test_colour_matrix_known_answer():
    burst = synthesize_burst(np.zeros((8, 8, 3), np.float32), n_frames=1, seed=0)
    # ColorMatrix1 of the synthetic camera leads back to the inverse of its colour mixing
    np.testing.assert_allclose(burst.rgb_from_cam(), np.linalg.inv(SYNTH_CAM_FROM_SRGB), atol=1e-9)
    np.testing.assert_allclose(burst.rgb_from_cam().sum(axis=1), 1.0, atol=1e-9)  # white stays white
    rgb = np.array([[0.2, 0.5, 0.7]], np.float32)
    np.testing.assert_allclose(apply_color_matrix(rgb, [[0, 1, 0], [0, 0, 1], [1, 0, 0]]), [[0.5, 0.7, 0.2]])


@pytest.mark.parametrize("pattern", ["RGGB", "GBRG"])
def test_bilinear_demosaic_keeps_samples_and_reproduces_constant_and_linear_images(pattern):
    yy, xx = np.mgrid[0:16, 0:20].astype(np.float32)
    ramp = np.stack([0.01 * xx, 0.02 * yy, 0.3 + 0.01 * (xx + yy)], axis=-1)
    out = demosaic_bilinear(mosaic(ramp, pattern), pattern)
    np.testing.assert_allclose(out[2:-2, 2:-2], ramp[2:-2, 2:-2], atol=1e-5)  # linear is exact inside
    np.testing.assert_array_equal(mosaic(out, pattern), mosaic(ramp, pattern))  # samples kept
    flat = np.broadcast_to(np.float32([0.1, 0.5, 0.9]), (16, 20, 3))
    np.testing.assert_allclose(demosaic_bilinear(mosaic(flat, pattern), pattern), flat, atol=1e-6)


def test_develop_linear_recovers_the_scene_colour():
    img = np.broadcast_to(np.float32([0.6, 0.3, 0.1]), (8, 8, 3)).copy()
    burst = synthesize_burst(img, n_frames=1, seed=0, noise_model=(0.0, 0.0))
    out = develop_linear(burst.normalized(0), burst.cfa_pattern, burst.wb_gains, burst.rgb_from_cam())
    np.testing.assert_allclose(out, img, atol=2e-3)  # 12-bit quantisation only


def test_tone_map_identity_and_shadow_lift():
    img = textured_linear(64, 64)
    np.testing.assert_allclose(tone_map(img, gain=1.0), img, atol=1e-4)
    out = tone_map(img, gain=4.0)
    grey, grey_out = img.mean(-1), out.mean(-1)
    dark, bright = (grey > 1e-3) & (grey < 0.05), grey > 0.5
    assert np.median(grey_out[dark] / grey[dark]) > 1.4  # shadows brightened
    assert np.median(grey_out[bright] / grey[bright]) < 1.2  # highlights nearly kept
    assert np.all(out >= 0)


def test_gamma_and_sharpen():
    # gamma_srgb against IEC 61966-2-1 written out here (not against the function it calls), with known
    # values, the linear toe, and clipping
    x = np.linspace(-0.2, 1.2, 57, dtype=np.float64)
    c = np.clip(x, 0, 1)
    iec = np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)
    np.testing.assert_allclose(gamma_srgb(x.astype(np.float32).reshape(3, 19)).ravel(), iec, atol=2e-6)
    np.testing.assert_allclose(gamma_srgb(np.array([0.0, 0.001, 0.18, 0.5, 1.0], np.float32)),
                               [0.0, 0.01292, 0.461356, 0.735357, 1.0], atol=2e-6)
    img = linear_to_srgb(textured_linear(32, 32))
    np.testing.assert_array_equal(sharpen(img, amount=0.0), img)
    flat = np.full((16, 16, 3), 0.4, np.float32)
    np.testing.assert_allclose(sharpen(flat, amount=0.5), flat, atol=1e-6)
    # sharpening raises local contrast
    assert np.abs(np.diff(sharpen(img, 0.5), axis=1)).mean() > np.abs(np.diff(img, axis=1)).mean()
    # the unsharp mask itself: x + amount * (x - G_sigma * x), clipped, with an independent Gaussian (scipy,
    # mirrored borders = OpenCV's REFLECT_101); a mid-grey impulse keeps every value inside [0, 1]
    from scipy.ndimage import gaussian_filter

    imp = np.full((33, 33, 3), 0.5, np.float32)
    imp[16, 16] = [0.9, 0.7, 0.6]
    for amount, sigma in ((0.3, 1.0), (0.8, 2.0)):
        blur = np.stack([gaussian_filter(imp[..., k].astype(np.float64), sigma, mode="mirror", truncate=4.0)
                         for k in range(3)], -1)
        ref = np.clip(imp + amount * (imp - blur), 0, 1)
        np.testing.assert_allclose(sharpen(imp, amount=amount, sigma=sigma), ref, atol=1e-5)
