import numpy as np
import pytest
import torch

from benchmarks.error_anatomy import detail_gains, global_fit, scale_split
from distill.core.color import linear_to_srgb, luminance
from distill.eval.metrics import psnr


def _pair(a: float, b: float):
    """Student output p and a teacher y whose log luminance is exactly a*log L_p + b (colour by ratios)."""
    g = torch.Generator().manual_seed(0)
    lin_p = 0.02 + 0.4 * torch.rand(1, 3, 24, 32, generator=g)
    lum = luminance(lin_p)
    lin_y = lin_p * lum ** (a - 1) * 10**b
    return linear_to_srgb(lin_p), linear_to_srgb(lin_y)


def test_global_fit_recovers_a_known_exponent_and_level():
    p, y = _pair(0.8, -0.05)
    a, b, fixed = global_fit(p, y)
    assert a == pytest.approx(0.8, abs=2e-3) and b == pytest.approx(-0.05, abs=2e-3)
    assert psnr(fixed, y) > 55 and psnr(p, y) < 30
    _, _, level_only = global_fit(p, y, exponent=False)  # a level cannot undo an exponent
    assert psnr(p, y) < psnr(level_only, y) < 40


def test_global_fit_level_only_undoes_a_pure_gain():
    p, y = _pair(1.0, -0.1)
    a, b, fixed = global_fit(p, y, exponent=False)
    assert a == 1.0 and b == pytest.approx(-0.1, abs=1e-4) and psnr(fixed, y) > 55


def test_global_fit_refuses_an_all_clipped_image():
    ones = torch.ones(1, 3, 4, 4)
    with pytest.raises(ValueError, match="clipped"):
        global_fit(ones, ones)


def test_scale_split_puts_an_offset_low_and_a_checkerboard_high():
    offset = np.full((32, 32, 3), 0.01, np.float32)
    low, high = scale_split(offset, 4)
    assert low == pytest.approx(40.0, abs=1e-3) and high > 100
    checker = (np.indices((32, 32)).sum(0) % 2 * 0.02 - 0.01).astype(np.float32)[..., None]
    low, high = scale_split(checker, 4)
    assert high == pytest.approx(40.0, abs=0.1) and low > 60


def test_detail_gain_of_an_exponent_is_the_exponent():
    g = torch.Generator().manual_seed(1)
    x = 0.02 + 0.5 * torch.rand(1, 3, 40, 48, generator=g)  # linear, textured
    lum = luminance(x)
    keep = np.ones((40, 48), bool)
    outs = [linear_to_srgb(x * lum ** (k - 1) * 0.8) for k in (1.0, 0.6)]  # log L_out = k log L_x + const
    flat = linear_to_srgb(torch.full_like(x, 0.3))  # no detail passed on
    one, six, none = detail_gains(x, keep, *outs, flat)
    assert one == pytest.approx(1.0, abs=1e-3) and six == pytest.approx(0.6, abs=1e-3)
    assert abs(none) < 1e-6
    with pytest.raises(ValueError, match="no unclipped"):
        detail_gains(x, np.zeros((40, 48), bool), flat)


def test_edge_split_tells_an_error_at_the_edge_from_one_in_the_flat():
    from benchmarks.error_anatomy import edge_split
    x = torch.full((1, 3, 64, 64), 0.01)
    x[..., 32:] = 0.5  # one vertical edge, 5.6 stops
    at_edge = np.zeros((64, 64, 3), np.float32)
    at_edge[:, 30:34] = 0.1
    flat, top10, top2 = edge_split(at_edge, x)
    assert flat == float("inf") and top2 == pytest.approx(20.0, abs=1e-4) and top10 < 25  # error only on the edge
    in_flat = np.zeros((64, 64, 3), np.float32)
    in_flat[:, :8] = 0.1
    flat, top10, top2 = edge_split(in_flat, x)
    assert flat < 30 and top10 == float("inf") and top2 == float("inf")
