"""Export: ONNX (onnxruntime) and TorchScript reproduce HDRNet.forward on two image sizes; metadata; atomic files."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from distill.train.checkpoint import save_checkpoint
from distill.cli import CONF_DIR
from distill.deploy.export import (ExportableStudent, area_lowres, load_torchscript, read_onnx_metadata,
                            read_torchscript_metadata, run, slice_grid_sample, verify_onnx)
from students.grid import lowres_copy, slice_grid
from students.hdrnet import HDRNet

TINY_STUDENT = {"_target_": "students.hdrnet.HDRNet", "lowres": 64, "grid_size": 8, "width": 4}
IDENTITY = {"name": "test_teacher", "params": {"k": 1}, "input_space": "srgb", "output_space": "srgb"}
SIZES = [(64 + 27, 64 + 45), (150, 97)]  # neither a multiple of the low-res size 64


def trained_like(seed: int = 0, **cfg) -> HDRNet:
    """A tiny HDRNet with perturbed weights: its output differs from its input (an untrained one is the identity)."""
    torch.manual_seed(seed)
    m = HDRNet(**{k: v for k, v in {**TINY_STUDENT, **cfg}.items() if k != "_target_"})
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m.eval()


def images(sizes, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(1, 3, h, w, generator=g) for h, w in sizes]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One checkpoint exported to both formats through the real `hdr-distill export` config (ONNX is slow)."""
    d = tmp_path_factory.mktemp("export")
    model = trained_like()
    ckpt = save_checkpoint(d / "last.pt", {"state_dict": model.state_dict(), "step": 7, "teacher": IDENTITY,
                                           "config": {"student": TINY_STUDENT}})
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("export", overrides=[f"checkpoint={ckpt}", f"out={d / 'student'}", "format=both",
                                           f"verify_sizes={[list(s) for s in SIZES]}"])
    result = run(cfg)
    return model, result, d


def test_area_lowres_matches_torch_area_on_uneven_sizes():
    x = torch.rand(2, 3, 101, 77, dtype=torch.float64)
    for size in (16, 64, 77):
        ref = F.interpolate(x, size=(size, size), mode="area")  # adaptive pooling: overlapping windows
        assert torch.allclose(area_lowres(x, size), ref, atol=1e-12)
    assert torch.allclose(area_lowres(x.float(), 64), lowres_copy(x.float(), 64), atol=1e-6)


def test_slice_grid_sample_matches_slice_grid():
    torch.manual_seed(0)
    grid = torch.randn(2, 12, 8, 5, 7, dtype=torch.float64)
    guide = torch.rand(2, 13, 11, dtype=torch.float64)
    guide[0, 0, 0], guide[1, -1, -1] = 0.0, 1.0  # the clamped ends of the intensity axis
    assert torch.allclose(slice_grid_sample(grid, guide), slice_grid(grid, guide), atol=1e-12)


def test_exportable_student_equals_hdrnet_forward_incl_small_and_log():
    for cfg in ({}, {"input_encoding": "log"}):
        m = trained_like(**cfg)
        net = ExportableStudent(m)
        for x in images([(91, 109), (40, 200), (64, 64)]):  # area branch, small (bilinear) branch, exact size
            with torch.inference_mode():
                assert (net(x) - m(x)).abs().max() < 1e-5


def test_onnx_reproduces_torch_on_two_sizes(exported):
    import onnxruntime as ort

    model, result, d = exported
    path = d / "student.onnx"
    assert result["files"]["onnx"] == str(path) and max(result["max_abs_diff"]["onnx"].values()) < 1e-4
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    xs = images(SIZES, seed=5)
    for x in xs:
        got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        with torch.inference_mode():
            ref = model(x).numpy()
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() < 1e-4
        assert np.abs(ref - x.numpy()).max() > 0.05  # the student does something: identity would also "match"
    # dynamic batch: two images of one size in one call
    batch = torch.cat([xs[0], xs[0].flip(-1)])
    got = sess.run(None, {sess.get_inputs()[0].name: batch.numpy()})[0]
    with torch.inference_mode():
        assert np.abs(got - model(batch).numpy()).max() < 1e-4


def test_torchscript_reproduces_torch_on_two_sizes(exported):
    model, result, d = exported
    scripted = load_torchscript(d / "student.ts")
    for x in images(SIZES + [(40, 50)], seed=6):  # 40x50: smaller than the low-res size (TorchScript only)
        with torch.inference_mode():
            assert (scripted(x) - model(x)).abs().max() < 1e-4
    assert max(result["max_abs_diff"]["torchscript"].values()) < 1e-4


def test_metadata_records_teacher_and_spaces(exported):
    _, _, d = exported
    meta = read_onnx_metadata(d / "student.onnx")
    assert json.loads(meta["teacher"]) == IDENTITY
    assert meta["input_space"] == "srgb" and meta["output_space"] == "srgb" and meta["teacher_name"] == "test_teacher"
    assert json.loads(meta["student"])["lowres"] == 64 and meta["step"] == "7" and len(meta["checkpoint_sha256"]) == 64
    assert meta["onnx_slice"] == "portable" and meta["opset"] == "17"  # the default: the portable graph
    ts = read_torchscript_metadata(d / "student.ts")
    assert ts["teacher"] == IDENTITY and ts["format"] == meta["format"] == "hdr-distill-export/1"
    assert sorted(p.name for p in d.iterdir()) == ["last.pt", "student.onnx", "student.ts"]  # no temp files left


def test_verify_catches_a_wrong_model(exported):
    model, _, d = exported
    other = trained_like(seed=3)
    diffs = verify_onnx(d / "student.onnx", other, [SIZES[0]])
    assert max(diffs.values()) > 1e-3


def test_bad_arguments_raise(tmp_path):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("export", overrides=["format=tflite", f"checkpoint={tmp_path / 'x.pt'}"])
    with pytest.raises(ValueError, match="format='tflite'"):
        run(cfg)
    with open_dict(cfg):
        cfg.format, cfg.checkpoint = "onnx", None
    with pytest.raises(ValueError, match="checkpoint="):
        run(cfg)


def assert_both_formats_reproduce(model, tmp_path, name, cases, tol=1e-4):
    """Export ``model`` to ONNX and TorchScript; each must give ``want`` for ``inp``, for every case."""
    import onnxruntime as ort

    from distill.deploy.export import export_onnx, export_torchscript

    sess = ort.InferenceSession(str(export_onnx(model, tmp_path / f"{name}.onnx")), providers=["CPUExecutionProvider"])
    scripted = load_torchscript(export_torchscript(model, tmp_path / f"{name}.ts"))
    for inp, want in cases:
        got = sess.run(None, {sess.get_inputs()[0].name: inp.numpy()})[0]
        assert np.abs(got - want.numpy()).max() < tol
        assert (scripted(inp) - want).abs().max() < tol


def test_bilateral_guide_student_exports_to_torchscript(tmp_path):
    # student.guide_bilateral filters the whole image's log luminance (splat, blur, slice) before the guide: the
    # scripted model must do it at any size, its grid's size following the image's. (ONNX, where the grid's size
    # is a shape computation: the onnx column of tests/students/test_backends.py, three sizes.)
    from distill.deploy.export import export_torchscript
    model = trained_like(seed=5, input_encoding="log", guide_luma=True, guide_bilateral=0.05,
                         white_percentile=99.5, output_encoding="srgb_log")
    scripted = load_torchscript(export_torchscript(model, tmp_path / "b.ts"))
    plain = HDRNet(**{**model.config_dict(), "guide_bilateral": 0.0}).eval()
    plain.load_state_dict(model.state_dict())
    for x in images([(91, 109), (40, 23), (70, 70)], seed=9):
        x = x**4 * 5
        with torch.inference_mode():
            ref = model(x)
            assert (plain(x) - ref).abs().max() > 1e-3  # the filter matters to this output
            assert (ExportableStudent(model)(x) - ref).abs().max() < 1e-5
            assert (scripted(x) - ref).abs().max() < 1e-5
    # ... with the teacher's exposure rule computed from the base layer too (white_base_percentile).
    model = trained_like(seed=6, input_encoding="log", guide_luma=True, guide_bilateral=0.05,
                         white_base_percentile=99.0, output_encoding="srgb_log")
    scripted = load_torchscript(export_torchscript(model, tmp_path / "w.ts"))
    for x in images([(91, 109), (40, 23)], seed=10):
        x = x**4 * 0.5
        with torch.inference_mode():
            ref = model(x)
            assert (ExportableStudent(model)(x) - ref).abs().max() < 1e-5
            assert (scripted(x) - ref).abs().max() < 1e-5


def test_detail_input_student_exports_at_every_low_res_size():
    # student.detail_input adds a full-res 3x3 high-pass, area-averaged: both formats must compute it alike.
    # (each format against forward: tests/students/test_backends.py; here the low-res sizes around it)
    model = trained_like(seed=4, detail_input=True)
    x, small = images([(91, 109), (20, 30)], seed=8)
    with torch.inference_mode():
        assert (ExportableStudent(model)(x) - model(x)).abs().max() < 1e-5
        assert (ExportableStudent(model)(small) - model(small)).abs().max() < 1e-5  # smaller than lowres


def test_white_normalised_student_exports_to_onnx_and_torchscript(tmp_path):
    # student.white_percentile divides by an order statistic of the output (TopK in the graph): both formats
    # must find the same one, at any size (the pixel count is dynamic).
    model = trained_like(seed=5, white_percentile=99.5, input_encoding="log")
    x, other = [im ** 4 * 8 for im in images([(91, 109), (77, 140)], seed=9)]
    with torch.inference_mode():
        ref, ref_other = model(x), model(other)
        assert (ExportableStudent(model)(x) - ref).abs().max() < 1e-5
        assert (ref == 1).any() and ref.max() <= 1  # normalised: something reaches white, nothing passes it
    assert_both_formats_reproduce(model, tmp_path, "w", [(x, ref), (other, ref_other)])


def test_srgb_log_student_exports_to_onnx_and_torchscript(tmp_path):
    # student.output_encoding=srgb_log decodes the grid's output (exp2, clip, sRGB curve): both formats must
    # compute it, with and without the white level.
    for seed, white in ((6, None), (7, 99.5)):
        model = trained_like(seed=seed, input_encoding="log", output_encoding="srgb_log",
                             white_percentile=white)
        x = images([(91, 109)], seed=seed)[0] ** 4 * 8
        with torch.inference_mode():
            ref = model(x)
            assert (ExportableStudent(model)(x) - ref).abs().max() < 1e-5
            assert 0 <= ref.min() and ref.max() <= 1 and ref.std() > 0.05
        assert_both_formats_reproduce(model, tmp_path, f"sl{seed}", [(x, ref)])


def test_guide_luma_student_exports_to_onnx_and_torchscript(tmp_path):
    # student.guide_luma=true: the guide reads the log luminance (exp2, weighted sum, log2) in both formats;
    # stats_luma=true: so do the histograms.
    model = trained_like(seed=9, input_encoding="log", output_encoding="srgb_log", white_percentile=99.5,
                         guide_luma=True, stats_bins=8, stats_luma=True)
    x = images([(91, 109)], seed=9)[0] ** 4 * 8
    x[:, 0] *= 1e-3  # saturated colours, where the luma guide differs from the channel mean
    with torch.inference_mode():
        ref = model(x)
        assert (ExportableStudent(model)(x) - ref).abs().max() < 1e-5
        plain = trained_like(seed=9, input_encoding="log", output_encoding="srgb_log", white_percentile=99.5,
                             stats_bins=8)
        assert (plain(x) - ref).abs().max() > 1e-3  # the option changes the output
    assert_both_formats_reproduce(model, tmp_path, "luma", [(x, ref)])


def export_cfg(ckpt, out, fmt):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("export", overrides=[f"checkpoint={ckpt}", f"out={out}", f"format={fmt}", "verify=false"])


def test_export_refuses_an_option_of_any_requested_format_before_writing(tmp_path, monkeypatch):
    # format=both with a guide_bilateral student whose option ONNX is made to lack (students/options.py): neither
    # file is written.
    from students import options
    monkeypatch.setattr(options.GuideBilateral, "backends", frozenset({"torch", "fused", "torchscript"}))
    student = {**TINY_STUDENT, "input_encoding": "log", "guide_bilateral": 0.05}
    model = trained_like(**student)
    ckpt = save_checkpoint(tmp_path / "last.pt", {"state_dict": model.state_dict(), "step": 1, "teacher": IDENTITY,
                                                  "config": {"student": student}})
    with pytest.raises(ValueError, match="export format=both: the 'onnx' backend does not implement student "
                                         "option guide_bilateral=0.05 .*runs on: torch, fused, torchscript"):
        run(export_cfg(ckpt, tmp_path / "s", "both"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    assert run(export_cfg(ckpt, tmp_path / "s", "torchscript"))["files"] == {"torchscript": str(tmp_path / "s.ts")}


def test_checkpoint_with_a_removed_option_loads_at_its_default_and_is_refused_otherwise(tmp_path):
    from distill.train.checkpoint import CheckpointError, build_student, load_checkpoint
    model = trained_like()
    for value in (0.0, 0.01):
        old = {**TINY_STUDENT, "guide_blur": value, "guide_texture_stops": 0.0}  # saved before they were removed
        ckpt = save_checkpoint(tmp_path / f"old{value}.pt", {"state_dict": model.state_dict(), "step": 1,
                                                             "teacher": IDENTITY, "config": {"student": old}})
        if value == 0.0:
            x = images([(70, 80)])[0]
            with torch.inference_mode():
                assert torch.equal(build_student(load_checkpoint(ckpt))(x), model(x))
            continue
        with pytest.raises(CheckpointError, match=r"old0.01.pt: student option guide_blur=0.01 was removed .*"
                                                  r"last in hdr-distill 0.1.0, commit d0409b9"):
            build_student(load_checkpoint(ckpt))
        with pytest.raises(CheckpointError, match="guide_blur=0.01 was removed"):
            run(export_cfg(ckpt, tmp_path / "s", "torchscript"))
        assert not (tmp_path / "s.ts").exists()
