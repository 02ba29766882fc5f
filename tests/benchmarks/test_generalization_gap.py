import numpy as np

from benchmarks.generalization_gap import pick, resize_short, square_crops
from distill.data.dead_leaves import DeadLeavesSource
from distill.data.sources import ConcatSource, EmbeddedSource


def test_pick_skips_dead_leaves_and_limits():
    src = ConcatSource([DeadLeavesSource(count=2, size=32), EmbeddedSource(names=["chelsea", "astronaut"])])
    assert [i.name for i in pick(src)] == ["chelsea", "astronaut"]
    assert [i.name for i in pick(src, limit=1)] == ["chelsea"]
    assert [i.name for i in pick(src, skip_prefix=None)] == ["leaves_0000", "leaves_0001", "chelsea", "astronaut"]


def test_resize_short_keeps_aspect():
    x = np.zeros((400, 600, 3), np.float32)
    assert resize_short(x, 256).shape == (256, 384, 3)
    assert resize_short(x, None) is x


def test_square_crops_cover_both_ends():
    x = np.arange(4 * 10, dtype=np.float32).reshape(4, 10, 1).repeat(3, 2)
    sq = square_crops(x)
    assert list(sq) == ["left", "centre", "right"]
    assert all(v.shape == (4, 4, 3) for v in sq.values())
    assert sq["left"][0, 0, 0] == 0 and sq["right"][0, -1, 0] == 9 and sq["centre"][0, 0, 0] == 3
    tall = square_crops(x.transpose(1, 0, 2))
    assert list(tall) == ["top", "centre", "bottom"] and tall["bottom"][-1, 0, 0] == 9
