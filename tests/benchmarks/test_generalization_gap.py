from benchmarks.generalization_gap import resize_short, training_names
from distill.sources import EMBEDDED_GREY_NAMES, EMBEDDED_NAMES, HELDOUT_NAMES

import numpy as np


def test_training_names_walks_nested_sources_and_drops_excluded():
    cfg = {"data": {"train": {"_target_": "distill.sources.ConcatSource", "sources": [
        {"_target_": "distill.sources.EmbeddedSource", "names": None, "exclude": list(HELDOUT_NAMES),
         "include_grey": True},
        {"_target_": "distill.dead_leaves.DeadLeavesSource", "count": 4},
    ]}}}
    names = training_names(cfg)
    assert names == [n for n in EMBEDDED_NAMES + EMBEDDED_GREY_NAMES if n not in HELDOUT_NAMES]


def test_training_names_explicit_list_and_hdr_wrapper():
    cfg = {"data": {"train": {"_target_": "distill.hdr_synth.SyntheticHDRSource", "base_source": {
        "_target_": "distill.sources.EmbeddedSource", "names": ["astronaut", "chelsea"], "exclude": ["chelsea"]}}}}
    assert training_names(cfg) == ["astronaut"]
    assert training_names({}) == []


def test_resize_short_keeps_aspect():
    x = np.zeros((400, 600, 3), np.float32)
    assert resize_short(x, 256).shape == (256, 384, 3)
    assert resize_short(x, None) is x
