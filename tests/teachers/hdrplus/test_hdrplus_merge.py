"""Merge: exact reconstruction of one frame, sqrt(N) noise drop on flat areas, no ghost of a moving patch."""
import numpy as np
import pytest

from teachers.hdrplus.burst import synthesize_burst
from teachers.hdrplus.merge import (
    from_planes, merge_planes, pad_planes, raised_cosine, tile_padding, to_planes,
)
from teachers.hdrplus.pipeline import HdrPlus
from tests.teachers.hdrplus.helpers import burst_from_mosaics, textured_linear


def test_planes_round_trip_and_window_partition_of_unity():
    bayer = np.arange(8 * 12, dtype=np.float32).reshape(8, 12)
    planes = to_planes(bayer)
    assert planes.shape == (4, 4, 6) and planes[1, 0, 0] == bayer[0, 1] and planes[2, 0, 0] == bayer[1, 0]
    np.testing.assert_array_equal(from_planes(planes), bayer)
    w = raised_cosine(16)
    tiled = w[:8, :8] + w[8:, :8] + w[:8, 8:] + w[8:, 8:]  # four half-shifted tiles over one block
    np.testing.assert_allclose(tiled, 1.0, atol=1e-6)
    top, bottom, left, right = tile_padding(50, 37, 16)
    assert top == left == 8 and bottom >= 8 and right >= 8 and (50 + top + bottom) % 8 == 0


def test_single_frame_merge_is_the_identity():
    planes = to_planes(textured_linear(64, 80)[..., 0][None])  # [1, 4, 32, 40]
    padded, (top, _, left, _) = pad_planes(planes, 16)
    disp = np.zeros((1, (padded.shape[-2] - 16) // 8 + 1, (padded.shape[-1] - 16) // 8 + 1, 2))
    merged = merge_planes(padded, disp, 0, (1e-3, 1e-5), spatial_factor=0.0)
    np.testing.assert_allclose(merged[:, top : top + 32, left : left + 40], planes[0], atol=1e-6)


def test_merging_n_frames_lowers_noise_by_about_sqrt_n():
    n = 8
    flat = np.full((128, 128, 3), 0.3, np.float32)
    burst = synthesize_burst(flat, n_frames=n, seed=1, iso=800, shifts=[(0, 0)] * n)
    planes = to_planes(burst.normalized())
    padded, (top, _, left, _) = pad_planes(planes, 16)
    disp = np.zeros((n, (padded.shape[-2] - 16) // 8 + 1, (padded.shape[-1] - 16) // 8 + 1, 2))
    merged = merge_planes(padded, disp, 0, burst.noise_model, temporal_factor=8.0, spatial_factor=0.0)
    merged = merged[:, top : top + 64, left : left + 64]
    ratio = planes[0].std(axis=(1, 2)) / merged.std(axis=(1, 2))
    # Wiener weights keep a little of the reference: at k_t = 8 the drop is ~88% of sqrt(8) = 2.83
    assert np.all(ratio > 0.85 * np.sqrt(n)) and np.all(ratio < 1.05 * np.sqrt(n))
    np.testing.assert_allclose(merged.mean(axis=(1, 2)), planes[0].mean(axis=(1, 2)), atol=2e-3)


def moving_patch_burst(n=6, sigma=0.01):
    """Textured static background with a 24 x 24 bright (0.9) patch that moves 20 pixels right per frame."""
    background = 0.1 + 0.3 * textured_linear(128, 160).mean(axis=-1)
    scenes = np.repeat(background[None], n, axis=0)
    for z in range(n):
        x0 = 16 + 20 * z
        scenes[z, 52:76, x0 : x0 + 24] = 0.9
    return burst_from_mosaics(scenes, sigma), scenes


def merged_with(burst, temporal_factor, zero_motion):
    if not zero_motion:
        return HdrPlus(spatial_factor=0.0, temporal_factor=temporal_factor).merge_burst(burst)
    # the robust merge alone: the background is static, so alignment has nothing to add
    planes = to_planes(burst.normalized())
    padded, (top, _, left, _) = pad_planes(planes, 16)
    disp = np.zeros((burst.n_frames, (padded.shape[-2] - 16) // 8 + 1, (padded.shape[-1] - 16) // 8 + 1, 2))
    merged = merge_planes(padded, disp, 0, burst.noise_model, 16, temporal_factor, 0.0)
    return from_planes(merged[:, top : top + planes.shape[-2], left : left + planes.shape[-1]])


@pytest.mark.parametrize("zero_motion", [True, False])
def test_moving_patch_does_not_ghost(zero_motion):
    burst, scenes = moving_patch_burst()
    clean_ref = scenes[0]
    ghost = (scenes[1:] != clean_ref).any(axis=0)  # where the patch is in some alternate only
    assert ghost.sum() > 2000
    err = np.abs(merged_with(burst, 8.0, zero_motion) - clean_ref)
    assert err[ghost].mean() < 0.015 and np.percentile(err[ghost], 99) < 0.06
    patch = clean_ref == 0.9
    assert abs(merged_with(burst, 8.0, zero_motion)[patch].mean() - 0.9) < 0.01
    # the plain average of the aligned frames (k_t huge) does ghost: the test can tell
    plain = merged_with(burst, 1e9, zero_motion)
    assert np.abs(plain - clean_ref)[ghost].mean() > 0.05


def test_bad_merge_inputs_raise():
    with pytest.raises(ValueError, match="not padded"):
        merge_planes(np.zeros((1, 4, 30, 30), np.float32), np.zeros((1, 2, 2, 2)), 0, (0.0, 1e-4))
    with pytest.raises(ValueError, match="disp has shape"):
        merge_planes(np.zeros((1, 4, 32, 32), np.float32), np.zeros((1, 2, 2, 2)), 0, (0.0, 1e-4))
