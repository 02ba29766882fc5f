"""Training loop, checkpoints and resume, driven through the real Hydra configs."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from distill.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from distill.cli import CONF_DIR
from distill.train.loop import train

TINY = [
    "teacher=gamma", "student=hdrnet_small", "student.lowres=64", "student.grid_size=8",
    "data.train.names=[astronaut,chelsea]", "data.val.names=[coffee]", "data.val_max_side=96",
    "data.pairs.crop_size=64", "data.pairs.crops_per_image=4",
    "train.batch_size=2", "train.num_workers=0", "train.val_every=3", "train.ckpt_every=3",
    "train.progress=false", "train.log_every=2", "device=cpu", "data.pairs.cache_dir=null",
]


def _cfg(out_dir: Path, *overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, *overrides])
    with open_dict(cfg):
        cfg.out_dir = str(out_dir)  # ${hydra:runtime.output_dir} only exists inside a Hydra run
    return cfg


def test_train_writes_checkpoint_history_and_summary(tmp_path):
    s = train(_cfg(tmp_path, "train.steps=6"))
    assert s["steps"] == 6 and s["val_images"] == ["coffee"]
    assert (tmp_path / "checkpoints" / "last.pt").exists()
    assert (tmp_path / "curves.png").stat().st_size > 0
    rows = (tmp_path / "history.csv").read_text().splitlines()
    assert len(rows) == 7 and rows[0].startswith("step,loss")
    assert json.loads((tmp_path / "summary.json").read_text())["val_psnr_db"] == pytest.approx(s["val_psnr_db"])
    ck = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert ck["teacher"]["name"] == "gamma_curve" and ck["step"] == 6
    assert ck["config"]["student"]["_target_"] == "students.hdrnet.HDRNet"


def test_rectangular_and_square_crops_train_from_the_command_line(tmp_path):
    # "48x64" is a string to Hydra's override grammar; both pixel-sampled and whole-crop losses take it
    for extra in (["train.pixels_per_crop=128"], ["train.pixels_per_crop=null"]):
        out = tmp_path / extra[0].split("=")[1]
        s = train(_cfg(out, "train.steps=4", "data.pairs.crop_size=[48x64,64]", *extra))
        assert s["steps"] == 4 and np.isfinite(s["val_psnr_db"])
        assert load_checkpoint(out / "checkpoints" / "last.pt")["config"]["data"]["pairs"]["crop_size"] == ["48x64", 64]


@pytest.mark.parametrize("extra", [["train.ema_decay=null"], ["train.ema_decay=0.9"]], ids=["raw", "ema"])
def test_resume_gives_identical_weights(tmp_path, monkeypatch, extra):
    """A run interrupted right after its step-3 checkpoint, then resumed, ends bit-identical to an
    uninterrupted run (same data order, same pixel samples, same LR schedule, Adam state restored,
    and with train.ema_decay the weight average too)."""
    import distill.train.loop as train_mod

    a, b = tmp_path / "a", tmp_path / "b"
    train(_cfg(a, "train.steps=6", *extra))
    real_save = train_mod.save_checkpoint

    def save_then_die(path, payload):
        real_save(path, payload)
        raise KeyboardInterrupt  # killed right after the first checkpoint

    monkeypatch.setattr(train_mod, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(b, "train.steps=6", *extra))
    monkeypatch.setattr(train_mod, "save_checkpoint", real_save)
    assert load_checkpoint(b / "checkpoints" / "last.pt")["step"] == 3
    train(_cfg(b, "train.steps=6", "train.resume=true", *extra))
    ca, cb = (load_checkpoint(d / "checkpoints" / "last.pt") for d in (a, b))
    ema = extra[0].endswith("0.9")
    keys = ["state_dict", "train_state_dict"] if ema else ["state_dict"]
    for key in keys:
        assert all(torch.equal(ca[key][k], cb[key][k]) for k in ca[key])
    assert cb["step"] == 6
    assert ("train_state_dict" in ca) == ema
    if ema:  # the average is not the last weights
        assert not torch.equal(ca["state_dict"]["to_grid.weight"], ca["train_state_dict"]["to_grid.weight"])


def test_ema_update_and_warmup():
    from distill.train.loop import ema_decay_at, ema_update

    model, ema = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
        ema.weight.fill_(0.0)
    ema_update(ema, model, 0.75)
    assert torch.allclose(ema.weight, torch.full_like(ema.weight, 0.25))
    ema_update(ema, model, 0.75)
    assert torch.allclose(ema.weight, torch.full_like(ema.weight, 0.25 + 0.75 * 0.25))
    assert ema_decay_at(0.999, 0) == pytest.approx(0.1)  # early: mostly the new weights
    assert ema_decay_at(0.999, 10**6) == 0.999


def test_ema_weights_are_what_is_validated_and_saved(tmp_path):
    from distill.train.checkpoint import build_student
    from distill.data.pairs import image_pair
    from distill.data.sources import EmbeddedSource
    from distill.train.loop import downscale_max_side, psnr_tensor
    from teachers.curves import GammaCurve

    s = train(_cfg(tmp_path, "train.steps=6", "train.ema_decay=0.9"))
    ck = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    x, y = image_pair(GammaCurve(**{k: v for k, v in ck["config"]["teacher"].items() if k != "_target_"}),
                      downscale_max_side(EmbeddedSource(["coffee"])[0].linear, 96))
    with torch.no_grad():
        assert psnr_tensor(build_student(ck)(x), y) == pytest.approx(s["val_psnr_db"], abs=1e-3)


def test_resume_with_another_teacher_is_refused(tmp_path):
    train(_cfg(tmp_path, "train.steps=2"))
    with pytest.raises(CheckpointError, match="teacher"):
        train(_cfg(tmp_path, "train.steps=4", "train.resume=true", "teacher.gamma=0.8"))


def test_resume_with_other_data_or_student_is_refused_but_more_steps_are_fine(tmp_path):
    from distill.train.loop import config_mismatch

    train(_cfg(tmp_path, "train.steps=2"))
    with pytest.raises(ValueError, match=r"data\.train\.names: \['astronaut', 'chelsea'\] -> \['astronaut'\]"):
        train(_cfg(tmp_path, "train.steps=4", "train.resume=true", "data.train.names=[astronaut]"))
    with pytest.raises(ValueError, match="student.stats_bins: 0 -> 4"):
        train(_cfg(tmp_path, "train.steps=4", "train.resume=true", "student.stats_bins=4"))
    assert train(_cfg(tmp_path, "train.steps=4", "train.resume=true"))["steps"] == 4  # extending a run
    # An optional key added to the configs since (null) matches a checkpoint that lacks it; the cache
    # location never matters.
    saved = {"data": {"pairs": {"crop_size": 64, "cache_dir": "a"}}, "student": {}}
    now = {"data": {"pairs": {"crop_size": 64, "cache_dir": "b", "side_px_range": None}}, "student": {}}
    assert config_mismatch(saved, now) == []
    # an off-by-default switch added since matches a checkpoint without it; switched on, it does not
    saved["student"], now["student"] = {"width": 8}, {"width": 8, "detail_input": False}
    assert config_mismatch(saved, now) == []
    now["student"]["detail_input"] = True
    assert config_mismatch(saved, now) == ["student.detail_input: None -> True"]


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    p = tmp_path / "last.pt"
    save_checkpoint(p, {"step": 1})

    def boom(*a, **k):
        raise KeyboardInterrupt  # an interrupted write

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(p, {"step": 2})
    assert load_checkpoint(p)["step"] == 1
    assert [f.name for f in tmp_path.iterdir()] == ["last.pt"]


def test_missing_or_foreign_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "x.pt")


# ---- hostile configs (issue 30, items 2 and 8): refused before anything runs or is written ------------------

def _snapshot(d: Path) -> dict:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("steps", [-5, 0])
@pytest.mark.parametrize("resume", ["false", "true"])
def test_a_bad_step_count_leaves_a_trained_run_untouched(tmp_path, steps, resume):
    from distill.data.validate import ConfigError

    train(_cfg(tmp_path, "train.steps=3"))
    before = _snapshot(tmp_path)
    with pytest.raises(ConfigError, match=rf"train\.steps.*{steps}"):
        train(_cfg(tmp_path, f"train.steps={steps}", f"train.resume={resume}"))
    assert _snapshot(tmp_path) == before  # last.pt, history.csv, summary.json: byte for byte


def test_a_fresh_run_never_overwrites_a_later_checkpoint_without_the_flag(tmp_path):
    from distill.data.validate import ConfigError

    train(_cfg(tmp_path, "train.steps=4"))
    before = _snapshot(tmp_path)
    for steps in (2, 6):  # a shorter run would replace step 4 with step 2; a longer one writes step 3 first
        with pytest.raises(ConfigError, match=r"step 4.*train\.resume=true.*train\.overwrite=true"):
            train(_cfg(tmp_path, f"train.steps={steps}"))
        assert _snapshot(tmp_path) == before
    assert train(_cfg(tmp_path, "train.steps=6", "train.resume=true"))["steps"] == 6  # resuming is fine
    assert train(_cfg(tmp_path, "train.steps=2", "train.overwrite=true"))["steps"] == 2  # and so is the flag
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["step"] == 2


@pytest.mark.parametrize("override, key", [
    ("train.batch_size=0", "train.batch_size"), ("train.val_every=0", "train.val_every"),
    ("train.ckpt_every=0", "train.ckpt_every"), ("train.log_every=0", "train.log_every"),
    ("data.pairs.crops_per_image=0", "data.pairs.crops_per_image"), ("train.loss=l3", "train.loss"),
    ("train.lr_schedule=linear", "train.lr_schedule"), ("train.num_workers=-1", "train.num_workers"),
    ("train.ema_decay=1.5", "train.ema_decay"), ("train.pixels_per_crop=-3", "train.pixels_per_crop"),
    ("data.pairs.crop_size=8", "data.pairs.crop_size"), ("data.pairs.crop_size=abc", "data.pairs.crop_size"),
    ("train.steps=2.5", "train.steps"), ("train.batch_size=two", "train.batch_size"),
])
def test_config_errors_are_refused_first_with_the_key_named(tmp_path, monkeypatch, override, key):
    import distill.data.validate as validate
    from distill.data.validate import ConfigError

    def never(*a, **k):
        raise AssertionError("the teacher was validated before the config was")

    monkeypatch.setattr(validate, "validate_teacher", never)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        train(_cfg(tmp_path / "run", "train.steps=3", override))
    assert not (tmp_path / "run").exists()  # nothing written


def test_resuming_from_a_checkpoint_without_weights_is_one_clear_error(tmp_path):
    train(_cfg(tmp_path / "a", "train.steps=2"))
    ck = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    del ck["state_dict"], ck["format"], ck["path"]
    save_checkpoint(tmp_path / "bare.pt", ck)
    with pytest.raises(CheckpointError, match=r"bare\.pt.*no 'state_dict'"):
        train(_cfg(tmp_path / "b", "train.steps=4", f"train.resume={tmp_path / 'bare.pt'}"))


def test_resume_true_in_a_folder_without_a_checkpoint_says_so(tmp_path, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="distill.train.loop"):
        assert train(_cfg(tmp_path, "train.steps=1", "train.resume=true"))["trained_steps_this_run"] == 1
    assert any("holds no checkpoint" in r.getMessage() and "step 0" in r.getMessage() for r in caplog.records)
