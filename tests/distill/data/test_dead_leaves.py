"""distill/data/dead_leaves.py: synthetic dead-leaves training images; mixing them with photos (sources.ConcatSource)."""
import numpy as np
import pytest

from distill.data.dead_leaves import DeadLeavesSource, dead_leaves
from distill.data.sources import ConcatSource, EmbeddedSource


def test_items_are_deterministic_linear_and_in_range():
    src = DeadLeavesSource(count=3, size=96, seed=5)
    a, b = src[1], DeadLeavesSource(count=3, size=96, seed=5)[1]
    assert a.name == "leaves_0001" and a.linear.shape == (96, 96, 3) and a.linear.dtype == np.float32
    np.testing.assert_array_equal(a.linear, b.linear)
    assert a.content_hash() == b.content_hash() != src[0].content_hash()
    assert a.content_hash() != DeadLeavesSource(count=3, size=96, seed=6)[1].content_hash()
    assert 0.0 <= a.linear.min() and a.linear.max() <= 1.0
    # Linear light: the sRGB-encoded drawing decodes below itself in the mid-tones.
    srgb = dead_leaves(96, np.random.default_rng([5, 1]))
    mid = (srgb > 0.2) & (srgb < 0.8)
    assert (a.linear[mid] < srgb[mid]).all()
    assert src[-1].name == "leaves_0002"
    with pytest.raises(IndexError):
        src[3]


def test_textures_add_fine_detail_and_leaves_make_edges():
    def hf_energy(img):  # mean squared horizontal difference: fine detail and edges
        return float(np.mean(np.diff(img, axis=1) ** 2))

    flat = dead_leaves(128, np.random.default_rng(0), texture=0.0, blur=0.0)
    textured = dead_leaves(128, np.random.default_rng(0), texture=1.0, blur=0.0)
    assert hf_energy(textured) > 1.3 * hf_energy(flat)  # 1.45x with this seed
    # Untextured leaves are flat (up to the illumination ramp): most neighbours are equal, but edges abound.
    d = np.abs(np.diff(flat, axis=1)).max(-1)
    assert 0.5 < np.mean(d < 0.02) < 0.99


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="count"):
        DeadLeavesSource(count=0)
    with pytest.raises(ValueError, match="unknown parameter"):
        DeadLeavesSource(count=1, radius=3)


def test_concat_source_indexes_across_sources():
    emb = EmbeddedSource(names=["coffee", "chelsea"])
    leaves = DeadLeavesSource(count=2, size=64)
    cat = ConcatSource([emb, leaves])
    assert len(cat) == 4
    assert [cat[i].name for i in range(4)] == ["coffee", "chelsea", "leaves_0000", "leaves_0001"]
    assert cat[-1].name == "leaves_0001"
    with pytest.raises(IndexError):
        cat[4]
    with pytest.raises(ValueError, match="non-empty"):
        ConcatSource([])
