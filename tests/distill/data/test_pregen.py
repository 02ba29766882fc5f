"""hdr-distill pairs: shards fill the cache that training then reads."""
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from distill.cli import CONF_DIR
from distill.data.pairs import PairDataset
from distill.data.pregen import run
from distill.data.validate import ConfigError

OVR = ["teacher=gamma", "data.train.names=[astronaut,chelsea]", "data.train.include_grey=false",
       "data.pairs.crop_size=32", "data.pairs.crops_per_image=3", "pregen.workers=0", "pregen.progress=false"]


def _cfg(cache: Path, *extra):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[*OVR, f"data.pairs.cache_dir={cache}", *extra])
    with open_dict(cfg):
        cfg.out_dir = str(cache.parent)
    return cfg


def test_two_shards_fill_every_pair_once_and_training_reads_them(tmp_path):
    cache = tmp_path / "cache"
    a = run(_cfg(cache, "pregen.shard=0", "pregen.num_shards=2"))
    b = run(_cfg(cache, "pregen.shard=1", "pregen.num_shards=2"))
    assert (a["pairs"], b["pairs"]) == (3, 3) and a["computed"] == 3 and b["computed"] == 3
    assert len(list(cache.rglob("*.npz"))) == 6
    again = run(_cfg(cache, "pregen.shard=1", "pregen.num_shards=2"))
    assert again["computed"] == 0 and again["already_cached"] == 3
    cfg = _cfg(cache)
    ds = PairDataset(instantiate(cfg.data.train), instantiate(cfg.teacher), seed=int(cfg.seed),
                     **OmegaConf.to_container(cfg.data.pairs, resolve=True))
    for i in range(len(ds)):
        ds[i]
    assert ds.cache_hits == len(ds) == 6


def test_no_cache_dir_and_bad_shard_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="cache_dir is null"):
        run(_cfg(tmp_path / "c", "data.pairs.cache_dir=null"))
    with pytest.raises(ConfigError, match="pregen.shard=2"):
        run(_cfg(tmp_path / "c", "pregen.shard=2", "pregen.num_shards=2"))


@pytest.mark.parametrize("override, key", [
    ("data.pairs.crops_per_image=0", "data.pairs.crops_per_image"), ("data.pairs.crop_size=4", "data.pairs.crop_size"),
    ("pregen.workers=-1", "pregen.workers"), ("pregen.num_shards=0", "pregen.num_shards"),
])
def test_config_errors_come_before_the_teacher_is_built(tmp_path, override, key):
    # teacher.gamma=oops would fail when the teacher is built: the config error must be reported first
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        run(_cfg(tmp_path / "c", override, "teacher._target_=no.such.Teacher"))
    assert not (tmp_path / "c").exists()


def test_an_unreadable_image_is_named_counted_and_skipped(tmp_path):
    import cv2
    import numpy as np

    d = tmp_path / "imgs"
    d.mkdir()
    cv2.imwrite(str(d / "good.png"), (np.random.default_rng(0).random((60, 80, 3)) * 255).astype(np.uint8))
    cv2.imwrite(str(d / "bad.png"), np.full((60, 80, 3), 128, np.uint8))
    (d / "bad.png").write_bytes((d / "bad.png").read_bytes()[:40])  # truncated
    cache = tmp_path / "cache"
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["teacher=gamma", "data=folder", f"data.train.paths=[{d}]",
                                           f"data.val.paths=[{d}]", "data.pairs.crop_size=32",
                                           "data.pairs.crops_per_image=3", "pregen.workers=0",
                                           "pregen.progress=false", f"data.pairs.cache_dir={cache}"])
    with open_dict(cfg):
        cfg.out_dir = str(tmp_path)
    s = run(cfg)
    assert s["pairs"] == 6 and s["computed"] == 3 and s["skipped"] == 3
    assert len(s["bad_images"]) == 1 and "bad.png" in s["bad_images"][0]
    assert len(list(cache.rglob("*.npz"))) == 3
