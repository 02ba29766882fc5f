"""Every config in conf/ composes, and every option with a ``_target_`` instantiates.

Walks the tree, so a new experiment, teacher, student, data or pairs option is covered without editing
this file. Instantiating is cheap: sources decode images on access, not on construction, and the
`make photos` set (``.cache/photos``) is replaced by a folder of five tiny images, and the real HDR views
(``.cache/hdr``, ``python -m distill.data.real_hdr``) by views of two tiny panoramas.
"""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from distill.cli import COMMANDS, CONF_DIR

CONF = Path(CONF_DIR)
REPO = CONF.parent
EXPERIMENTS = sorted(p.relative_to(CONF / "experiment").with_suffix("").as_posix()
                     for p in (CONF / "experiment").rglob("*.yaml"))
PRIMARY = sorted({name for name, _, _ in COMMANDS.values()})
RECIPE = re.compile(r"embedded|demo|photos(_\w+)?")  # conf/experiment/README.md


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


# the options that need a value from the user, with a harmless one
NEEDS = {
    "teacher=command": ["teacher.cmd='cp {in} {out}'"],
    "teacher=python": [f"teacher.fn='{REPO / 'examples/my_operator.py'}:clarity_warm'"],
}


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A stand-in for `make photos`' folder: five small PNGs, so its train and held-out splits are both non-empty."""
    d = tmp_path_factory.mktemp("photos")
    for i in range(5):
        cv2.imwrite(str(d / f"{'abcde'[i]}.png"), np.full((24, 32, 3), 40 * i, np.uint8))
    return d


@pytest.fixture(scope="module")
def hdr_views(tmp_path_factory) -> Path:
    """A stand-in for `python -m distill.data.real_hdr`'s folder: views of two tiny panoramas, one held out."""
    from distill.core.io import write_image
    from distill.data.real_hdr import cut_views, view_grid

    d = tmp_path_factory.mktemp("hdr")
    (d / "panoramas").mkdir()
    panos = []
    for i, name in enumerate(("a", "b")):
        write_image(d / "panoramas" / f"{name}.exr", np.full((32, 64, 3), 0.5 + i, np.float32))
        panos.append({"name": name, "package": None, "source": name, "file": f"panoramas/{name}.exr"})
    cut_views(d, panos, heldout=("b",), specs=view_grid(1, (0.0,), (60.0,)), width=32, height=24)
    return d


@pytest.fixture(scope="module")
def cfg_of(photos, hdr_views):
    """compose(config_name, overrides) inside one Hydra context, with data.photos / folder paths on ``photos``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        def cfg_of(overrides=(), config_name="config", hydra=False):
            overrides = list(overrides)
            if config_name == "config":
                data = next((o.split("=", 1)[1] for o in overrides if o.startswith("data=")), None)
                overrides += [f"++data.photos='{photos}'", f"++data.hdr='{hdr_views}'"]
                if data == "folder":
                    overrides += [f"data.train.paths=['{photos}']", f"data.val.paths=['{photos}']"]
            return compose(config_name, overrides=overrides, return_hydra_config=hydra)
        yield cfg_of
    GlobalHydra.instance().clear()


def _build(cfg) -> dict:
    """Instantiate what training instantiates (distill/train/loop.py) and check the pair settings."""
    from distill.data.pairs import PairDataset
    from distill.data.validate import check_pairs_config, check_train_config

    teacher = instantiate(cfg.teacher)
    student = instantiate(cfg.student)
    optimizer = instantiate(cfg.train.optimizer)(params=student.parameters())
    train_src, val_src = instantiate(cfg.data.train), instantiate(cfg.data.val)
    assert len(train_src) > 0 and len(val_src) > 0
    check_train_config(cfg)
    pairs = OmegaConf.to_container(cfg.data.pairs, resolve=True)
    check_pairs_config(pairs)
    inspect.signature(PairDataset).bind(train_src, teacher, **pairs)  # every data.pairs key is an argument
    return dict(teacher=teacher, student=student, optimizer=optimizer, train=train_src, val=val_src)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_builds(cfg_of, name):
    teacher, recipe = name.split("/")
    assert teacher in _options("teacher"), f"conf/experiment/{teacher}/ names no conf/teacher/{teacher}.yaml"
    assert RECIPE.fullmatch(recipe), f"{name}: recipes are embedded, demo, photos or photos_<variant>"
    cfg = cfg_of([f"experiment={name}"], hydra=True)
    choices = cfg.hydra.runtime.choices
    assert choices.experiment == name and choices.teacher == teacher
    # the naming rule: only a photos recipe reads the `make photos` set
    needs_photos = "PhotoSetSource" in OmegaConf.to_yaml(cfg.data)
    assert needs_photos == recipe.startswith("photos"), f"{name}: data={choices.data}"
    _build(cfg)


def test_photos_variants_build_on_photos(cfg_of):
    """photos_<variant> is photos plus its own keys: the nested default resolves."""
    detail = cfg_of(["experiment=local_laplacian/photos_detail"])
    base = cfg_of(["experiment=local_laplacian/photos"])
    assert detail.data == base.data and detail.teacher == base.teacher
    assert detail.student.detail_input and not base.student.detail_input
    tone = cfg_of(["experiment=local_laplacian_tone/photos"])
    tone_base = cfg_of(["experiment=local_laplacian_tone/embedded"])
    assert tone.teacher == tone_base.teacher and tone.student.stats_bins == tone_base.student.stats_bins == 16
    assert tone.data.pairs.crop_size == 320 and tone_base.data.pairs.crop_size == 256


@pytest.mark.parametrize("group", ["teacher", "student", "data", "train"])
def test_every_group_option_instantiates(cfg_of, group):
    for option in _options(group):
        key = f"{group}={option}"
        cfg = cfg_of([key, *NEEDS.get(key, [])])
        if group == "teacher":
            assert instantiate(cfg.teacher) is not None, key
        elif group == "student":
            assert instantiate(cfg.student) is not None, key
        else:
            _build(cfg)


@pytest.mark.parametrize("option", _options("pairs"))
def test_every_pairs_option_composes_into_data_pairs(cfg_of, option):
    from distill.data.validate import check_pairs_config

    full = OmegaConf.load(CONF / "pairs/default.yaml")
    for data in _options("data"):
        cfg = cfg_of([f"data={data}", f"pairs@data.pairs={option}"])
        assert set(cfg.data.pairs) == set(full), f"data={data} pairs@data.pairs={option}"
        check_pairs_config(OmegaConf.to_container(cfg.data.pairs, resolve=True))


@pytest.mark.parametrize("config_name", PRIMARY)
def test_every_primary_config_composes(cfg_of, config_name):
    cfg = cfg_of(config_name=config_name, hydra=True)
    assert cfg.hydra.help.app_name == "hdr-distill"
    OmegaConf.to_yaml(cfg)  # every key renders (interpolations are checked where they are used)
