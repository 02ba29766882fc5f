"""Alignment recovers planted shifts; the sub-pixel fit is exact on a quadratic."""
import cv2
import numpy as np
import pytest

from teachers.hdrplus.align import AlignParams, align_burst, bin_grey, subpixel_offsets
from teachers.hdrplus.burst import synthesize_burst
from teachers.hdrplus.merge import pad_planes, to_planes
from tests.teachers.hdrplus.helpers import textured_linear


def shifted_grey(shift):
    """Reference grey image and a copy showing the scene at p + shift (cubic resampling), 256 x 256."""
    grey = textured_linear(256, 256).mean(axis=-1)
    warp = np.float32([[1, 0, shift[1]], [0, 1, shift[0]]])
    flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    return grey, cv2.warpAffine(grey, warp, (256, 256), flags=flags, borderMode=cv2.BORDER_REFLECT)


def interior_errors(disp, truth, margin=3):
    return np.abs(disp[margin:-margin, margin:-margin] - np.asarray(truth)).max(axis=-1)


@pytest.mark.parametrize("raw_shift", [(4, -6), (-40, 26)])
def test_integer_raw_shift_is_recovered_exactly(raw_shift):
    # frame 1 shows the scene at p + shift; in plane pixels the displacement is -shift / 2
    img = textured_linear(256, 256)
    burst = synthesize_burst(img, n_frames=2, seed=0, iso=100, shifts=[(0, 0), raw_shift])
    padded, _ = pad_planes(to_planes(burst.normalized()), 16)
    disp = align_burst(bin_grey(padded), 0)
    assert disp.shape == (2, 17, 17, 2) and not disp[0].any()
    err = interior_errors(disp[1], (-raw_shift[0] / 2, -raw_shift[1] / 2))
    # the default finest level is whole-pixel: >= 97% of interior tiles exactly right
    assert (err == 0).mean() >= 0.97


def test_subpixel_shift_is_recovered_within_a_quarter_pixel():
    shift = (1.5, -2.25)
    ref, alt = shifted_grey(shift)
    truth = (-shift[0], -shift[1])
    # default (paper): whole-pixel at the finest level -> the nearest integer, error <= 0.5 on most tiles
    err_int = interior_errors(align_burst(np.stack([ref, alt]), 0)[1], truth)
    assert np.median(err_int) <= 0.5 + 1e-6 and (err_int <= 0.5 + 1e-6).mean() >= 0.85
    # quadratic refinement at the finest level too (L2 there): median error below 0.25 px
    params = AlignParams(distances=("L2",) * 4, subpixels=(True,) * 4)
    err_sub = interior_errors(align_burst(np.stack([ref, alt]), 0, params)[1], truth)
    assert np.median(err_sub) < 0.25


def test_quadratic_fit_finds_the_minimum_of_a_quadratic():
    u = np.array([0.3, -0.4])
    a = np.array([[2.0, 0.5], [0.5, 1.0]])
    costs = np.empty((3, 3))
    for i, y in enumerate((-1, 0, 1)):
        for j, x in enumerate((-1, 0, 1)):
            d = np.array([y, x]) - u
            costs[i, j] = 0.5 * d @ a @ d + 7.0
    np.testing.assert_allclose(subpixel_offsets(costs), u, atol=1e-6)
    # a flat cost has no preferred offset
    np.testing.assert_array_equal(subpixel_offsets(np.ones((3, 3))), [0.0, 0.0])


def test_small_images_use_fewer_levels_and_bad_params_raise():
    ref, alt = shifted_grey((2, 2))
    disp = align_burst(np.stack([ref[:40, :40], alt[:40, :40]]), 0)
    assert disp.shape == (2, 4, 4, 2)
    with pytest.raises(ValueError, match="smaller than one finest tile"):
        align_burst(np.zeros((2, 8, 8), np.float32), 0)
    with pytest.raises(ValueError, match="same length"):
        AlignParams(factors=(1, 2))
    with pytest.raises(ValueError, match="distances"):
        AlignParams(distances=("L1", "L3", "L2", "L2"))
