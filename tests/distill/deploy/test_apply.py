"""`hdr-distill apply`: mixed folders (8/16-bit, grey, odd sizes, float, corrupt), bit depths, spaces, safety."""
import hashlib
import json

import cv2
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from distill.deploy.apply import list_inputs, plan_outputs, run, student_input, to_file_values
from distill.train.checkpoint import save_checkpoint
from distill.cli import CONF_DIR
from distill.core.color import srgb_to_linear, to_space
from distill.core.io import read_image_raw, stored_to_linear, write_image
from students.hdrnet import HDRNet

STUDENT = {"_target_": "students.hdrnet.HDRNet", "lowres": 64, "grid_size": 8, "width": 4}


def _model(seed=0) -> HDRNet:
    torch.manual_seed(seed)
    m = HDRNet(lowres=64, grid_size=8, width=4)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))  # not the identity an untrained student is
    return m.eval()


def _checkpoint(path, input_space="srgb", output_space="srgb"):
    m = _model()
    ident = {"name": "t", "params": {}, "input_space": input_space, "output_space": output_space}
    save_checkpoint(path, {"state_dict": m.state_dict(), "step": 1, "teacher": ident, "config": {"student": STUDENT}})
    return m


def _cfg(**kw):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("apply", overrides=[f"{k}={v}" for k, v in kw.items()] + ["progress=false", "threads=1"])


def _torch_out(m, x_hwc: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(x_hwc, np.float32)).permute(2, 0, 1)[None]
        return m(x)[0].permute(1, 2, 0).numpy()


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture()
def mixed(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "in"
    src.mkdir()
    a8 = rng.integers(0, 256, (45, 67, 3), dtype=np.uint8)
    b16 = rng.integers(0, 65536, (70, 33, 3), dtype=np.uint16)
    grey = rng.integers(0, 256, (31, 97), dtype=np.uint8)
    cv2.imwrite(str(src / "a8.png"), a8[:, :, ::-1])
    cv2.imwrite(str(src / "b16.png"), b16[:, :, ::-1])
    cv2.imwrite(str(src / "grey.png"), grey)
    write_image(src / "f32.tif", rng.random((40, 52, 3)).astype(np.float32), bit_depth=32)
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # a PNG signature and garbage
    (src / "notes.txt").write_text("not an image")
    (src / "sub").mkdir()
    cv2.imwrite(str(src / "sub" / "deep.png"), a8)
    return src, {"a8": a8, "b16": b16, "grey": grey}


def test_mixed_folder_writes_every_good_file_at_its_bit_depth(tmp_path, mixed):
    src, arrays = mixed
    before = _digest(src)
    model = _checkpoint(tmp_path / "s.pt")
    out, rep = tmp_path / "out", tmp_path / "rep"
    with pytest.raises(SystemExit) as exit_info:  # one corrupt file -> status 1 after the rest complete
        run(_cfg(checkpoint=tmp_path / "s.pt", input=src, output=out, report_dir=rep))
    assert exit_info.value.code == 1
    assert sorted(p.name for p in out.iterdir()) == ["a8.png", "b16.png", "f32.tif", "grey.png"]  # not recursive
    summary = json.loads((rep / "apply_summary.json").read_text())
    assert summary["written"] == 4 and summary["failed"] == 1
    assert summary["failures"][0]["file"].endswith("broken.png") and "broken.png" in summary["failures"][0]["error"]
    assert summary["images_per_s"] > 0 and summary["mp_per_s"] > 0
    assert _digest(src) == before  # inputs untouched

    # 8-bit in -> 8-bit out, values = the torch student on the display values (to 1 LSB: float rounding)
    for name, top in (("a8", 255), ("b16", 65535)):
        y, meta = read_image_raw(out / f"{name}.png")
        x = arrays[name]
        assert y.dtype == x.dtype and y.shape == x.shape and meta["bit_depth"] == 8 * x.dtype.itemsize
        ref = np.rint(np.clip(_torch_out(model, x / np.float32(top)), 0, 1) * top)
        assert np.abs(y.astype(np.float64) - ref).max() <= 1
        assert np.abs(y.astype(np.float64) - x).mean() > 0.01 * top  # the student changed the picture
    # grey in -> 3 channels out (the three equal channels went through the student as RGB)
    y, meta = read_image_raw(out / "grey.png")
    g = np.repeat(arrays["grey"][:, :, None], 3, axis=2)
    assert y.shape == g.shape and meta["orig_channels"] == 3
    ref = np.rint(np.clip(_torch_out(model, g / np.float32(255)), 0, 1) * 255)
    assert np.abs(y.astype(np.float64) - ref).max() <= 1
    # float in -> float out (linear values: the sRGB output decoded to linear)
    y, meta = read_image_raw(out / "f32.tif")
    x, _ = read_image_raw(src / "f32.tif")
    assert y.dtype == np.float32 and meta["color_space"] == "linear"
    from distill.core.color import linear_to_srgb

    ref = srgb_to_linear(np.clip(_torch_out(model, linear_to_srgb(x)), 0, 1))
    assert np.abs(y - ref).max() < 1e-4


def test_recursive_keeps_structure_and_skip_existing(tmp_path, mixed):
    src, _ = mixed
    (src / "broken.png").unlink()
    _checkpoint(tmp_path / "s.pt")
    out = tmp_path / "out"
    res = run(_cfg(checkpoint=tmp_path / "s.pt", input=src, output=out, recursive=True, report_dir=tmp_path / "r"))
    assert res["written"] == 5 and (out / "sub" / "deep.png").exists()
    res = run(_cfg(checkpoint=tmp_path / "s.pt", input=src / "a8.png", output=out, skip_existing=True,
                   report_dir=tmp_path / "r"))
    assert res["written"] == 0 and res["skipped_existing"] == 1
    # the input replaced by a corrupt file after its output was written: the stale output is not trusted
    import os
    import time

    good = (src / "a8.png").read_bytes()
    (src / "a8.png").write_bytes(good[:30])
    later = time.time() + 5
    os.utime(src / "a8.png", (later, later))
    with pytest.raises(SystemExit):  # the corrupt input fails: status 1
        run(_cfg(checkpoint=tmp_path / "s.pt", input=src, output=out, recursive=True, skip_existing=True,
                 report_dir=tmp_path / "r2"))
    summary = json.loads((tmp_path / "r2" / "apply_summary.json").read_text())
    assert summary["skipped_existing"] == 4 and summary["failed"] == 1
    (src / "a8.png").write_bytes(good)


def test_never_overwrites_inputs(tmp_path, mixed):
    src, _ = mixed
    _checkpoint(tmp_path / "s.pt")
    before = _digest(src)
    with pytest.raises(ValueError, match="overwrite the input"):
        run(_cfg(checkpoint=tmp_path / "s.pt", input=src, output=src, report_dir=tmp_path / "r"))
    assert _digest(src) == before
    # with a suffix, the input folder can take the outputs (and they are not listed as inputs next time)
    root, files = list_inputs(src)
    outs = plan_outputs(root, files, src, None, "_student")
    assert all(o.name.endswith(("_student.png", "_student.tif")) for o in outs)


def test_output_folder_inside_input_is_not_read_back(tmp_path, mixed):
    src, _ = mixed
    out = src / "out"
    out.mkdir()
    cv2.imwrite(str(out / "old.png"), np.zeros((20, 20, 3), np.uint8))
    _, files = list_inputs(src, recursive=True, exclude=out)
    assert all(out not in f.parents for f in files) and any(f.name == "deep.png" for f in files)


@pytest.mark.parametrize("space", ["srgb", "linear", "hdr"])
def test_student_input_is_what_training_fed_the_student(space):
    """apply's conversion == distill.core.color.to_space(stored_to_linear(...)), the pair stream's conversion."""
    rng = np.random.default_rng(2)
    for stored, cs in ((rng.integers(0, 256, (9, 11, 3), dtype=np.uint8), "srgb"),
                       (rng.integers(0, 65536, (9, 11, 3), dtype=np.uint16), "srgb"),
                       ((rng.random((9, 11, 3)) * 8).astype(np.float32), "linear")):
        x, peak = student_input(stored, cs, space)
        x = x / np.float32(255 if x.dtype == np.uint8 else 65535) if x.dtype.kind == "u" else x
        lin = torch.from_numpy(stored_to_linear(stored, cs)).permute(2, 0, 1)[None]
        ref = to_space(lin, space)[0].permute(1, 2, 0).numpy()
        assert np.abs(x - ref).max() < 1e-6
        if space == "hdr":
            assert peak == pytest.approx(float(lin.max()))


def test_float_output_restores_hdr_exposure_and_decodes_srgb():
    y = np.full((2, 2, 3), 0.5, np.float32)
    v, enc = to_file_values(y, "hdr", 32, peak=8.0)
    assert not enc and np.allclose(v, 4.0)
    v, enc = to_file_values(y, "srgb", 32, peak=8.0)
    assert not enc and np.allclose(v, srgb_to_linear(np.float32(0.5)))
    v, enc = to_file_values(y, "linear", 8, peak=1.0)
    assert enc and v is y  # display file: write_image sRGB-encodes linear values


def test_missing_arguments_and_empty_folder(tmp_path):
    with pytest.raises(ValueError, match="checkpoint="):
        run(_cfg(input=tmp_path, output=tmp_path / "o"))
    with pytest.raises(ValueError, match="no images"):
        list_inputs(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_inputs(tmp_path / "nope")


# ---- hostile folders (issue 30, items 4, 5, 7, 9) -----------------------------------------------------------

def _good(folder, name="a.png", seed=0):
    img = np.random.default_rng(seed).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    cv2.imwrite(str(folder / name), img)


def test_every_kind_of_bad_entry_is_reported_skipped_and_counted(tmp_path):
    import os

    src = tmp_path / "in"
    src.mkdir()
    _good(src)
    (src / "loop.png").symlink_to(src / "loop.png")  # a symlink loop
    (src / "x.png").mkdir()  # a folder with an image's name
    (src / "gone.png").symlink_to(tmp_path / "deleted.png")  # a dangling symlink
    os.mkfifo(src / "pipe.png")  # reading it would block forever
    _checkpoint(tmp_path / "s.pt")
    rep = tmp_path / "rep"
    with pytest.raises(SystemExit) as e:
        run(_cfg(checkpoint=tmp_path / "s.pt", input=src, output=tmp_path / "out", report_dir=rep))
    assert e.value.code == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]
    summary = json.loads((rep / "apply_summary.json").read_text())
    assert summary["written"] == 1 and summary["failed"] == 4
    why = {f["file"].rsplit("/", 1)[-1]: f["error"] for f in summary["failures"]}
    assert "symlink loop" in why["loop.png"] and "folder" in why["x.png"]
    assert "deleted.png" in why["gone.png"] and "not a regular file" in why["pipe.png"]


def test_a_folder_of_only_bad_entries_still_reports_them(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "gone.png").symlink_to(tmp_path / "deleted.png")
    _checkpoint(tmp_path / "s.pt")
    with pytest.raises(SystemExit):
        run(_cfg(checkpoint=tmp_path / "s.pt", input=src, output=tmp_path / "out", report_dir=tmp_path / "rep"))
    assert json.loads((tmp_path / "rep" / "apply_summary.json").read_text())["failed"] == 1


def test_hdr_input_through_an_ldr_student_is_refused_unless_clipping_is_asked_for(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    hdr = np.random.default_rng(0).random((16, 20, 3)).astype(np.float32)
    hdr[4:8, 4:8] = 274.0  # a light source
    write_image(src / "memorial.hdr", hdr, bit_depth=32)
    write_image(src / "ldr.tif", np.clip(hdr, 0, 1) * 0.9, bit_depth=32)  # float, but within [0, 1]: fine
    for space in ("srgb", "linear"):
        _checkpoint(tmp_path / "s.pt", input_space=space, output_space=space)
        out = tmp_path / f"out_{space}"
        with pytest.raises(SystemExit):
            run(_cfg(checkpoint=tmp_path / "s.pt", input=src, output=out, report_dir=tmp_path / "rep"))
        assert sorted(p.name for p in out.iterdir()) == ["ldr.tif"]
        fail = json.loads((tmp_path / "rep" / "apply_summary.json").read_text())["failures"][0]
        assert fail["file"].endswith("memorial.hdr")
        assert "27" in fail["error"] and f"'{space}'" in fail["error"] and "clip_hdr=true" in fail["error"]
    res = run(_cfg(checkpoint=tmp_path / "s.pt", input=src, output=tmp_path / "clipped", report_dir=tmp_path / "rep",
                   **{"clip_hdr": "true"}))
    assert res["written"] == 2 and res["clipped_hdr"] == 1
    assert "clip" in capsys.readouterr().err.lower()
    _checkpoint(tmp_path / "h.pt", input_space="hdr", output_space="hdr")  # an HDR student takes it as it is
    assert run(_cfg(checkpoint=tmp_path / "h.pt", input=src, output=tmp_path / "h", report_dir=tmp_path / "rep"))[
        "written"] == 2


def test_replacing_existing_outputs_is_said_and_a_suffixed_second_run_into_the_input_folder_works(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    _good(src, "a.png", 0)
    _good(src, "b.png", 1)
    _checkpoint(tmp_path / "s.pt")
    kw = dict(checkpoint=tmp_path / "s.pt", input=src, output=tmp_path / "out", report_dir=tmp_path / "rep")
    assert run(_cfg(**kw))["overwritten"] == 0
    capsys.readouterr()
    assert run(_cfg(**kw))["overwritten"] == 2
    assert "replac" in capsys.readouterr().out
    kw.update(output=src, suffix="_student")
    assert run(_cfg(**kw))["written"] == 2
    again = run(_cfg(**kw))  # its own earlier outputs are not inputs now
    assert again["written"] == 2 and again["overwritten"] == 2
    assert sorted(p.name for p in src.iterdir()) == ["a.png", "a_student.png", "b.png", "b_student.png"]


def test_ctrl_c_stops_apply_with_its_summary_written(tmp_path, monkeypatch):
    import distill.deploy.apply as apply_mod

    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        _good(src, f"{i}.png", i)
    _checkpoint(tmp_path / "s.pt")
    real = apply_mod.StudentRunner.__call__
    calls = []

    def interrupt_on_third(self, x):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, x)

    monkeypatch.setattr(apply_mod.StudentRunner, "__call__", interrupt_on_third)
    with pytest.raises(KeyboardInterrupt):
        run(_cfg(checkpoint=tmp_path / "s.pt", input=src, output=tmp_path / "out", report_dir=tmp_path / "rep",
                 io_threads=1))
    summary = json.loads((tmp_path / "rep" / "apply_summary.json").read_text())
    assert summary["interrupted"] is True and summary["written"] == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "1.png"]


def test_a_checkpoint_without_weights_or_with_other_widths_is_one_clear_error(tmp_path, mixed):
    from distill.train.checkpoint import CheckpointError

    src, _ = mixed
    ident = {"name": "t", "params": {}, "input_space": "srgb", "output_space": "srgb"}
    save_checkpoint(tmp_path / "nw.pt", {"step": 1, "teacher": ident, "config": {"student": STUDENT}})
    with pytest.raises(CheckpointError, match=r"nw\.pt.*no 'state_dict'"):
        run(_cfg(checkpoint=tmp_path / "nw.pt", input=src, output=tmp_path / "o"))
    torch.manual_seed(0)
    wide = HDRNet(lowres=64, grid_size=8, width=8).state_dict()
    save_checkpoint(tmp_path / "w.pt", {"state_dict": wide, "step": 1, "teacher": ident, "config": {"student": STUDENT}})
    with pytest.raises(CheckpointError) as e:
        run(_cfg(checkpoint=tmp_path / "w.pt", input=src, output=tmp_path / "o"))
    msg = str(e.value)
    assert "\n" not in msg and "w.pt" in msg and "width=4" in msg and "do not fit" in msg, msg
