"""Pretrained students: the slim format, name resolution, and every shipped student against the current code."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from distill.cli import CONF_DIR
from distill.core.protocols import teacher_identity
from distill.train import pretrained as P
from distill.train.checkpoint import CheckpointError, build_student, check_teacher, load_checkpoint, save_checkpoint
from students.hdrnet import HDRNet

STUDENT = {"_target_": "students.hdrnet.HDRNet", "lowres": 64, "grid_size": 8, "width": 4}
IDENT = {"name": "t", "params": {"a": 1}, "input_space": "srgb", "output_space": "srgb"}


def _train_ckpt(path: Path) -> HDRNet:
    torch.manual_seed(0)
    m = HDRNet(lowres=64, grid_size=8, width=4)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))  # not the identity an untrained student is
    save_checkpoint(path, {"state_dict": m.state_dict(), "optimizer": {"big": torch.zeros(1000)}, "step": 9,
                           "train_state_dict": m.state_dict(), "teacher": IDENT, "history": [{"step": 9}],
                           "config": {"student": STUDENT}})
    return m.eval()


def _summary() -> dict:
    return {"headline": {"psnr_mean": 34.5, "psnr_worst": 30.25, "psnr_worst_image": "b"},
            "metrics": {"psnr": {"mean": 34.5, "worst": 30.25}, "ssim": {"mean": 0.97}},
            "images": {"source": "held out"}, "per_image": [{"name": "a"}, {"name": "b"}],
            "gates": [{"gate": "psnr_min", "value": 34.5, "threshold": 33.0, "status": "PASS", "text": "x"}]}


def test_add_writes_a_slim_file_that_loads_and_matches(tmp_path):
    m = _train_ckpt(tmp_path / "last.pt")
    (tmp_path / "summary.json").write_text(json.dumps(_summary()))
    bench = {"machine": {"threads": 2}, "results": [
        {"size": "1080p", "method": "student (fused-cpp-avx2)", "median_ms": 10.0},
        {"size": "1080p", "method": "student (torch)", "median_ms": 900.0},
        {"size": "1080p", "method": "t", "median_ms": 95.0}]}
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    root = tmp_path / "pretrained"
    e = P.add("toy", tmp_path / "last.pt", "toy/recipe", "t", tmp_path / "summary.json", tmp_path / "bench.json",
              root=root)
    assert (root / "toy.pt").is_file() and e["file"] == "toy.pt"
    assert e["held_out"]["psnr_worst"] == 30.25 and e["held_out"]["images"] == ["a", "b"]
    assert e["speed"]["1080p"]["student_ms"] == 10.0  # the fastest student row, not the torch one
    assert e["speed"]["1080p"]["teachers"]["t"]["ratio"] == pytest.approx(9.5)
    assert P.manifest(root)["toy"]["recipe"] == "toy/recipe"
    # slim: no optimizer, no raw weights; float16 storage only because the output moved <= 1e-3
    raw = torch.load(root / "toy.pt", weights_only=False)
    assert "optimizer" not in raw and "train_state_dict" not in raw
    assert e["weights_dtype"] == "float16" and e["fp16_max_abs_diff"] <= P.FP16_TOLERANCE
    assert all(v.dtype == torch.float16 for v in raw["state_dict"].values() if v.is_floating_point())
    ck = load_checkpoint(root / "toy.pt")
    assert all(v.dtype == torch.float32 for v in ck["state_dict"].values() if v.is_floating_point())
    x = torch.rand(1, 3, 40, 56)
    with torch.inference_mode():
        d = float((build_student(ck)(x) - m(x)).abs().max())
    assert 0 < d <= P.FP16_TOLERANCE  # rounded weights: a small, nonzero difference
    assert ck["teacher"] == IDENT and ck["step"] == 9


def test_fp16_refused_when_it_moves_the_output(tmp_path, monkeypatch):
    _train_ckpt(tmp_path / "last.pt")
    monkeypatch.setattr(P, "FP16_TOLERANCE", 0.0)
    e = P.add("toy", tmp_path / "last.pt", "r", "t", root=tmp_path / "pre")
    assert e["weights_dtype"] == "float32"
    raw = torch.load(tmp_path / "pre" / "toy.pt", weights_only=False)
    assert all(v.dtype == torch.float32 for v in raw["state_dict"].values() if v.is_floating_point())


def test_resolve_names_and_paths(tmp_path):
    root = tmp_path / "pre"
    root.mkdir()
    (root / "a.pt").write_bytes(b"x")
    assert P.resolve("pretrained/a", root) == root / "a.pt"
    assert P.resolve("pretrained:a.pt", root) == root / "a.pt"
    assert P.resolve(tmp_path / "other.pt", root) == tmp_path / "other.pt"  # plain paths pass through
    with pytest.raises(CheckpointError, match=r"no pretrained student 'b' \(shipped: a\)"):
        P.resolve("pretrained/b", root)


# ---- the students that ship in pretrained/ ----

SHIPPED = P.manifest()


def test_manifest_and_files_agree():
    files = set(P.names())
    assert files == set(SHIPPED), f"pretrained/*.pt {sorted(files)} vs manifest {sorted(SHIPPED)}"
    for name, e in SHIPPED.items():
        assert (P.PRETRAINED_DIR / e["file"]).stat().st_size < 16 * 2**20, name
        assert e["held_out"]["psnr_mean"] is not None and e["held_out"]["psnr_worst"] is not None, name


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_student_loads_by_name_and_fused_equals_torch(name):
    from students.fused import FastStudent, available

    ckpt = load_checkpoint(f"pretrained/{name}")
    model = build_student(ckpt)
    if not available():
        pytest.skip("fused C++ library unavailable here")
    space = ckpt["teacher"]["input_space"]
    rng = np.random.default_rng(0)
    img = rng.random((70, 94, 3), dtype=np.float32)
    if space == "hdr":
        img = img**4 * 2.0**rng.uniform(-6, 0, (70, 94, 1)).astype(np.float32)
    fast = FastStudent(model, threads=1)
    assert fast.engine.startswith("fused"), fast.engine  # every shipped student runs fused
    got = fast(img)
    with torch.inference_mode():
        want = model(torch.from_numpy(img).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    assert np.abs(got - want).max() < 2e-5


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_student_teacher_is_the_current_teacher_config(name):
    """A changed teacher (its parameters, its colour spaces) breaks here, not silently in a user's report."""
    e = SHIPPED[name]
    ckpt = load_checkpoint(f"pretrained/{name}")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[f"teacher={e['teacher_config']}"])
    check_teacher(ckpt, teacher_identity(instantiate(cfg.teacher)))


def test_build_student_refuses_missing_or_misfit_weights_in_one_line(tmp_path):
    m = _train_ckpt(tmp_path / "last.pt")
    ck = load_checkpoint(tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="no 'state_dict'"):
        build_student({k: v for k, v in ck.items() if k != "state_dict"})
    wide = {**ck, "config": {"student": {**STUDENT, "width": 8}}}
    with pytest.raises(CheckpointError, match=r"do not fit its student config: '.*' is \[.*\] in the weights") as e:
        build_student(wide)
    assert "\n" not in str(e.value)
    assert isinstance(build_student(ck), HDRNet) and m is not None
