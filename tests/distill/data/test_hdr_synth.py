"""Synthetic HDR generator: determinism, finiteness, dynamic range, each stage's known effect, the source."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from skimage import data, transform

from distill.core.color import luminance, srgb_to_linear
from distill.data.hdr_synth import DEFAULTS, SyntheticHDRSource, dynamic_range_stops, synthesize_hdr

# every stage off: highlight gain 1 is the identity curve, sky gain 1, no lights, no exposure change
OFF = {"highlight_gain": 1.0, "sky_gain": 1.0, "n_lights": 0, "exposure_stops": 0.0}


def _photo(name="coffee", h=64, w=96) -> np.ndarray:
    return srgb_to_linear(transform.resize(getattr(data, name)(), (h, w), anti_aliasing=True)).astype(np.float32)


def test_deterministic_finite_and_seed_dependent():
    lin = _photo()
    a = synthesize_hdr(lin, seed=3)
    b = synthesize_hdr(lin.copy(), seed=3)
    c = synthesize_hdr(lin, seed=4)
    assert a.dtype == np.float32 and a.shape == lin.shape
    assert np.isfinite(a).all() and a.min() >= 0
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("name", ["coffee", "astronaut", "chelsea"])
def test_dynamic_range_grows_past_a_bound(name):
    lin = _photo(name)
    ldr = dynamic_range_stops(lin)
    for seed in range(4):
        hdr, drawn = synthesize_hdr(lin, seed, return_params=True)
        assert drawn["dynamic_range_stops"] == pytest.approx(dynamic_range_stops(hdr))
        assert dynamic_range_stops(hdr) >= max(ldr + 4.0, 9.0)  # lights >= 10x white add >= 3.3 stops
        assert luminance(hdr).max() >= 10.0 * 2.0 ** drawn["exposure_stops"] * 0.9  # a light at least 10x white


def test_all_stages_off_is_identity():
    lin = _photo()
    np.testing.assert_allclose(synthesize_hdr(lin, 0, **OFF), lin, rtol=1e-6, atol=1e-7)


def test_highlight_expansion_known_answer():
    # L' = L / (1 - L (1 - 1/g)): white -> g, 0.5 -> 0.5 / (1 - 0.5 * 7/8) with g = 8, slope 1 at black
    levels = np.array([1e-3, 0.5, 1.0], np.float32)
    grey = np.repeat(np.repeat(levels[None, :, None], 3, axis=2), 4, axis=0)  # [4,3,3]
    out = synthesize_hdr(grey, 0, **{**OFF, "highlight_gain": 8.0})
    expected = levels / (1 - levels * (1 - 1 / 8.0))
    np.testing.assert_allclose(out[0, :, 1], expected, rtol=1e-5)
    np.testing.assert_allclose(out[..., 0], out[..., 2])  # grey stays grey (colour kept by ratio)


def test_exposure_is_an_exact_power_of_two():
    lin = _photo()
    base = synthesize_hdr(lin, 5, **{**OFF, "highlight_gain": 4.0})
    up = synthesize_hdr(lin, 5, **{**OFF, "highlight_gain": 4.0, "exposure_stops": 2.0})
    np.testing.assert_allclose(up, 4.0 * base, rtol=1e-6)


def test_light_source_peak_and_sky_only_in_the_upper_part():
    lin = _photo()
    one = synthesize_hdr(lin, 1, **{**OFF, "n_lights": 1, "light_gain": 500.0, "light_radius": 0.05})
    assert 500.0 * 0.98 <= one[..., 0].max() <= 500.0 + 1.0  # red tint is 1: peak ~ gain x white
    sky = synthesize_hdr(lin, 1, **{**OFF, "sky_gain": 10.0, "sky_extent": 0.3})
    low = int(0.3 * lin.shape[0]) + 8  # below the ramp and the mask blur
    np.testing.assert_allclose(sky[low:], lin[low:], rtol=1e-6, atol=1e-7)
    assert sky[:low].max() > 5.0 * lin[:low].max()


def test_bad_input_raises():
    lin = _photo()
    with pytest.raises(ValueError, match=r"\[H,W,3\]"):
        synthesize_hdr(lin[..., 0], 0)
    bad = lin.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        synthesize_hdr(bad, 0)
    with pytest.raises(ValueError, match="unknown parameter"):
        synthesize_hdr(lin, 0, sky=3)
    assert set(OFF) <= set(DEFAULTS)


def test_source_is_sequence_like_and_reproducible():
    base = [SimpleNamespace(name="coffee", linear=_photo("coffee", 48, 64), meta={"color_space": "srgb"}),
            SimpleNamespace(name="chelsea", linear=_photo("chelsea", 48, 64))]
    src = SyntheticHDRSource(base, seed=7, variants=3)
    assert len(src) == 6
    items = [src[i] for i in range(len(src))]
    assert [it.name for it in items[:3]] == ["coffee_hdr0", "coffee_hdr1", "coffee_hdr2"]
    assert items[4].name == "chelsea_hdr1"
    again = SyntheticHDRSource(base, seed=7, variants=3)[4]  # any access order gives the same item
    np.testing.assert_array_equal(again.linear, items[4].linear)
    assert again.content_hash() == items[4].content_hash()
    assert len({it.content_hash() for it in items}) == 6
    meta = items[1].meta
    assert meta["hdr"] is True and meta["color_space"] == "srgb" and meta["synthetic_hdr"]["base"] == "coffee"
    assert meta["synthetic_hdr"]["dynamic_range_stops"] > 9
    assert src[-1].name == "chelsea_hdr2"
    with pytest.raises(IndexError):
        src[6]
    with pytest.raises(ValueError, match="variants"):
        SyntheticHDRSource(base, variants=0)
    other = SyntheticHDRSource(base, seed=8, variants=3)[4]
    assert not np.array_equal(other.linear, items[4].linear)
