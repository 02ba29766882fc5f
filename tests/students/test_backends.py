"""The option x backend matrix of students/options.py: every pair it claims runs and equals HDRNet.forward;
every pair it does not claim is refused with a message naming the option, before anything is written."""
import dataclasses
import warnings

import numpy as np
import pytest
import torch

from students import fused, options
from students.hdrnet import HDRNet, HDRNetConfig
from students.options import ALL, BACKENDS, OPTIONS, RemovedOption, UnsupportedOption, drop_removed, require, unsupported

TINY = {"lowres": 32, "grid_size": 8, "width": 4}  # a 4x4 grid of 8 x 8 px cells at 48x64
H, W = 48, 64
STRUCTURAL = {"lowres", "grid_size", "grid_depth", "width", "global_layers", "curve_knots"}  # sizes, not options
BY_NAME = {opt.name(): opt for opt in OPTIONS}
CASES = {"none": {}, **{opt.name(): opt.example for opt in OPTIONS}}  # "none": the plain student
CLAIMED = [(n, b) for n in CASES for b in BACKENDS if n == "none" or b in BY_NAME[n].backends]
REFUSED = [(opt.name(), b) for opt in OPTIONS for b in BACKENDS if b not in opt.backends]


def student(cfg: dict, seed: int = 0) -> HDRNet:
    """A tiny student with random weights: the grid is far from the identity, every option's input matters."""
    torch.manual_seed(seed)
    m = HDRNet(**TINY, **cfg)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m.eval()


def image(cfg: dict, seed: int = 1) -> torch.Tensor:
    x = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(seed))
    if cfg.get("input_encoding") == "log":
        x = x**4 * 6  # HDR-like: a few stops of range
        x[:, 0, :, : W // 2] *= 0.05  # saturated colours, where log luminance and the mean of log channels differ
    return x


def tolerance(cfg: HDRNetConfig, backend: str) -> float:
    """As tests/students/test_fused.py and tests/distill/deploy/test_export.py: the fused kernel's log2/exp2
    approximations compound to ~1e-5 on a log-luminance or bilateral guide."""
    if backend == "fused" and (cfg.guide_luma or cfg.guide_bilateral):
        return 2e-5
    return 1e-5 if backend in ("fused", "torchscript") else 1e-4


def run_backend(m: HDRNet, backend: str, x: torch.Tensor, path) -> np.ndarray:
    """``m`` on ``x`` through ``backend``; ``path``: where an exporter writes its file."""
    if backend == "torch":
        with torch.inference_mode():
            return m(x).numpy()
    if backend == "fused":
        if not fused.available():
            pytest.skip("the fused C++ library is unavailable (python -m students.build)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # a fallback to the torch path would pass silently
            fast = fused.FastStudent(m, threads=1)
        assert fast.engine.startswith("fused-cpp-")
        return fast(x).numpy()
    from distill.deploy.export import export_onnx, export_torchscript, load_torchscript
    if backend == "torchscript":
        scripted = load_torchscript(export_torchscript(m, path))
        with torch.inference_mode():
            return scripted(x).numpy()
    import onnxruntime as ort
    sess = ort.InferenceSession(str(export_onnx(m, path)), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]


def refuses(m: HDRNet, backend: str, names: list[str], path) -> None:
    """``backend`` refuses ``m``, naming every option in ``names``, and writes nothing at ``path``."""
    if backend == "fused":  # FastStudent falls back to the torch path (same output), saying why
        with pytest.warns(RuntimeWarning, match="no fused kernel for student option") as rec:
            fast = fused.FastStudent(m)
        assert fast.engine == "torch-fallback" and all(n in str(rec[0].message) for n in names)
        x = image(dataclasses.asdict(m.cfg))
        with torch.inference_mode():
            torch.testing.assert_close(fast(x), m(x), atol=0, rtol=0)
        return
    from distill.deploy.export import export_onnx, export_torchscript
    write = {"torchscript": export_torchscript, "onnx": export_onnx}[backend]
    with pytest.raises(UnsupportedOption) as err:
        write(m, path)
    msg = str(err.value)
    assert f"'{backend}' backend does not implement" in msg and all(n in msg for n in names), msg
    assert "runs on: torch" in msg  # where it does run
    assert not path.exists() and not list(path.parent.iterdir())  # refused before anything was written


@pytest.mark.parametrize("name,backend", CLAIMED, ids=[f"{n}-{b}" for n, b in CLAIMED])
def test_claimed_pair_equals_forward(name, backend, tmp_path):
    cfg = CASES[name]
    m = student(cfg, seed=len(name))
    assert unsupported(m.cfg, backend) == []
    x = image(cfg, seed=len(name) + 1)
    with torch.inference_mode():
        ref = m(x).numpy()
    assert np.abs(ref - x.numpy()).max() > 0.05  # the student does something: an identity would also "match"
    got = run_backend(m, backend, x, tmp_path / f"student.{backend}")
    assert got.shape == ref.shape
    diff = float(np.abs(got - ref).max())
    assert diff < tolerance(m.cfg, backend), f"{name} on {backend}: max |got - forward| = {diff:.2e}"
    if backend == "onnx":
        onnx_is_portable_and_matches_at_more_sizes(m, cfg, tmp_path / "student.onnx", seed=len(name) + 1)


ONNX_SIZES = [(97, 131), (256, 384)]  # with H x W above: three sizes, none a multiple of the low-res size


def onnx_is_portable_and_matches_at_more_sizes(m: HDRNet, cfg: dict, path, seed: int) -> None:
    """The default (portable) ONNX export: opset 17, no 5-D GridSample, only common ops
    (distill.deploy.onnx_slice.portability_problems), and HDRNet.forward at two more sizes."""
    import onnx
    import onnxruntime as ort

    from distill.deploy.onnx_slice import graph_report, portability_problems
    proto = onnx.load(str(path))
    rep = graph_report(proto)
    assert rep["opset"] == 17 and "GridSample" not in rep["ops"], rep
    assert portability_problems(proto, 17) == []
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for h, w in ONNX_SIZES:
        x = torch.nn.functional.interpolate(image(cfg, seed=seed), size=(h, w), mode="bilinear", align_corners=False)
        with torch.inference_mode():
            ref = m(x).numpy()
        got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        diff = float(np.abs(got - ref).max())
        assert got.shape == ref.shape and diff < tolerance(m.cfg, "onnx"), f"{h}x{w}: max |onnx - forward| = {diff:.2e}"


@pytest.mark.parametrize("name,backend", REFUSED, ids=[f"{n}-{b}" for n, b in REFUSED])
def test_unclaimed_pair_is_refused_before_anything_is_written(name, backend, tmp_path):
    m = student(CASES[name])
    assert name in unsupported(m.cfg, backend)
    refuses(m, backend, [name], tmp_path / f"student.{backend}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_reads_the_declaration(backend, tmp_path, monkeypatch):
    # The declaration claims nearly everything; take guide_luma away from one backend and that backend must
    # refuse it (the fused path and the exporters ask students/options.py, they keep no list of their own).
    monkeypatch.setattr(options.GuideLuma, "backends", ALL - {backend})
    cfg = options.GuideLuma.example
    if backend == "torch":
        with pytest.raises(UnsupportedOption, match="'torch' backend does not implement student option guide_luma"):
            HDRNet(**TINY, **cfg)
        return
    refuses(student(cfg), backend, ["guide_luma"], tmp_path / f"student.{backend}")


def test_every_option_changes_the_output():
    # A backend that ignored an option would still match forward if the option changed nothing on the test image.
    for name, cfg in CASES.items():
        if name == "none":
            continue
        opt = BY_NAME[name]
        on = student(cfg)
        off = HDRNet(**TINY, **{**cfg, **{f: HDRNetConfig.__dataclass_fields__[f].default for f in opt.fields}})
        try:
            off.load_state_dict(on.state_dict())
        except RuntimeError:  # stats_bins, detail_input: the option adds network inputs, so other weights
            off = student({k: v for k, v in cfg.items() if k not in opt.fields})
        x = image(cfg)
        with torch.inference_mode():
            assert (on(x) - off.eval()(x)).abs().max() > 1e-3, name


def test_the_declaration_covers_every_config_field_and_examples_turn_one_option_on():
    declared = [f for opt in OPTIONS for f in opt.fields]
    assert len(declared) == len(set(declared))
    assert set(declared) == {f.name for f in dataclasses.fields(HDRNetConfig)} - STRUCTURAL
    default = HDRNetConfig()
    for opt in OPTIONS:
        assert not opt.active(default), opt.name()
        assert "torch" in opt.backends and opt.backends <= set(BACKENDS), opt.name()
        assert set(opt.missing) <= set(BACKENDS) - opt.backends, opt.name()  # reasons only for missing ones
        assert opt.active(HDRNetConfig(**opt.example)), opt.name()


def test_require_names_every_missing_option_and_where_it_runs(monkeypatch):
    # every option exports to ONNX today: take it away from the two bilateral-guide ones to see the message
    for opt in (options.GuideBilateral, options.WhiteBasePercentile):
        monkeypatch.setattr(opt, "backends", ALL - {"onnx"})
    cfg = HDRNetConfig(**options.WhiteBasePercentile.example)
    assert unsupported(cfg, "onnx") == ["guide_bilateral", "white_base_percentile"]
    with pytest.raises(UnsupportedOption) as err:
        require(cfg, "onnx", "export_onnx")
    msg = str(err.value)
    assert msg.startswith("export_onnx: the 'onnx' backend does not implement student options guide_bilateral=0.05")
    assert "white_base_percentile=99.0" in msg and msg.count("runs on: torch, fused, torchscript") == 2
    require(cfg, "torchscript")  # no error
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        unsupported(cfg, "gpu")


def test_options_check_what_they_need():
    with pytest.raises(ValueError, match="stats_luma needs input_encoding 'log'"):
        HDRNetConfig(stats_luma=True)
    with pytest.raises(ValueError, match="white_base_percentile needs guide_bilateral"):
        HDRNetConfig(input_encoding="log", output_encoding="srgb_log", white_base_percentile=99.0)
    with pytest.raises(ValueError, match="guide_bilateral must be in"):
        HDRNetConfig(input_encoding="log", guide_bilateral=0.5)
    with pytest.raises(ValueError, match="stats_bins must be >= 0"):
        HDRNetConfig(stats_bins=-1)


def test_removed_options_drop_at_their_default_and_are_refused_otherwise():
    old = {"_target_": "students.hdrnet.HDRNet", "width": 4, "guide_blur": 0.0, "guide_texture_stops": 0.0}
    assert drop_removed(old) == {"_target_": "students.hdrnet.HDRNet", "width": 4}
    assert "guide_blur" in old  # the caller's config is left as it was
    for name in ("guide_blur", "guide_texture_stops"):
        with pytest.raises(RemovedOption, match=f"student option {name}=0.01 was removed .*commit d0409b9"):
            drop_removed({**old, name: 0.01}, "last.pt")
    with pytest.raises(TypeError):  # not an option of this version any more
        HDRNet(guide_blur=0.0)
