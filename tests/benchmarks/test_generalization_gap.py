import numpy as np

from benchmarks.generalization_gap import pick, resize_short
from distill.dead_leaves import DeadLeavesSource
from distill.sources import ConcatSource, EmbeddedSource


def test_pick_skips_dead_leaves_and_limits():
    src = ConcatSource([DeadLeavesSource(count=2, size=32), EmbeddedSource(names=["chelsea", "astronaut"])])
    assert [i.name for i in pick(src)] == ["chelsea", "astronaut"]
    assert [i.name for i in pick(src, limit=1)] == ["chelsea"]
    assert [i.name for i in pick(src, skip_prefix=None)] == ["leaves_0000", "leaves_0001", "chelsea", "astronaut"]


def test_resize_short_keeps_aspect():
    x = np.zeros((400, 600, 3), np.float32)
    assert resize_short(x, 256).shape == (256, 384, 3)
    assert resize_short(x, None) is x
