"""Training loop, checkpoints and resume, driven through the real Hydra configs."""
import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from distill.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from distill.cli import CONF_DIR
from distill.train import train

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


def test_resume_gives_identical_weights(tmp_path, monkeypatch):
    """A run interrupted right after its step-3 checkpoint, then resumed, ends bit-identical to an
    uninterrupted run (same data order, same pixel samples, same LR schedule, Adam state restored)."""
    import distill.train as train_mod

    a, b = tmp_path / "a", tmp_path / "b"
    train(_cfg(a, "train.steps=6"))
    real_save = train_mod.save_checkpoint

    def save_then_die(path, payload):
        real_save(path, payload)
        raise KeyboardInterrupt  # killed right after the first checkpoint

    monkeypatch.setattr(train_mod, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(b, "train.steps=6"))
    monkeypatch.setattr(train_mod, "save_checkpoint", real_save)
    assert load_checkpoint(b / "checkpoints" / "last.pt")["step"] == 3
    train(_cfg(b, "train.steps=6", "train.resume=true"))
    wa = load_checkpoint(a / "checkpoints" / "last.pt")["state_dict"]
    wb = load_checkpoint(b / "checkpoints" / "last.pt")["state_dict"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert load_checkpoint(b / "checkpoints" / "last.pt")["step"] == 6


def test_resume_with_another_teacher_is_refused(tmp_path):
    train(_cfg(tmp_path, "train.steps=2"))
    with pytest.raises(CheckpointError, match="teacher"):
        train(_cfg(tmp_path, "train.steps=4", "train.resume=true", "teacher.gamma=0.8"))


def test_resume_with_other_data_or_student_is_refused_but_more_steps_are_fine(tmp_path):
    from distill.train import config_mismatch

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
