"""validate_teacher: bad teachers are caught on the probe with a message that names them and the problem."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from distill.data.validate import TeacherValidationError, make_probe, validate_teacher
from teachers.python import PythonTeacher


class Raw:
    """A protocol teacher with a programmable body (PythonTeacher would fix some of these mistakes)."""

    def __init__(self, fn, name="raw", input_space="srgb", output_space="srgb"):
        self.fn, self.name, self.input_space, self.output_space = fn, name, input_space, output_space

    def params(self):
        return {}

    def __call__(self, images):
        return self.fn(images)


def _fails(teacher, *words):
    with pytest.raises(TeacherValidationError) as e:
        validate_teacher(teacher, size=32)
    msg = str(e.value)
    assert f"'{teacher.name}'" in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


def test_probe_is_deterministic_natural_and_in_space():
    p = make_probe("srgb", 64)
    assert p.shape == (2, 3, 64, 64) and p.dtype == torch.float32
    assert torch.equal(p, make_probe("srgb", 64))
    assert 0 <= float(p.min()) and float(p.max()) <= 1
    assert float((p[0] - p[1]).abs().mean()) > 0.05  # batch items differ
    assert float(p.diff(dim=3).abs().max()) > 0.3  # the disc's hard edge
    assert float(p.std()) > 0.1  # a gradient, not a flat field
    lin = make_probe("linear", 64)
    assert torch.allclose(make_probe("srgb", 64), __import__("distill.core.color").core.color.linear_to_srgb(lin))
    hdr = make_probe("hdr", 64)
    assert float(hdr.max()) == 1.0 and float(hdr[hdr > 0].min()) < 2.0 ** -10  # > 10 stops below the peak


def test_good_teacher_passes_with_report():
    rep = validate_teacher(PythonTeacher(lambda im: im ** 0.8, name="gamma08"))
    assert rep.name == "gamma08" and rep.probe_shape == (2, 3, 64, 64)
    assert rep.max_repeat_diff == 0.0 and rep.warnings == []
    assert 0 <= rep.out_min < rep.out_max <= 1 and rep.seconds_per_call > 0
    assert "gamma08" in str(rep) and "passed validation" in str(rep)


def test_hdr_teacher_gets_an_hdr_probe():
    seen = {}

    def tonemap(img):
        seen["max"], seen["min"] = float(img.max()), float(img[img > 0].min())
        return img / (1 + img)

    validate_teacher(PythonTeacher(tonemap, input_space="hdr", output_space="srgb"))
    assert seen["max"] == 1.0 and seen["min"] < 2.0 ** -10


def test_nan_is_caught():
    with np.errstate(invalid="ignore"):
        _fails(PythonTeacher(lambda im: np.log(im - 0.5), name="log_op"), "NaN")
    _fails(Raw(lambda x: x / (x - x), name="div0"), "NaN")
    _fails(Raw(lambda x: torch.where(x > 0.5, torch.inf, x), name="inf_op"), "Inf")


def test_wrong_shape_is_caught():
    _fails(Raw(lambda x: x[..., :-1].clone(), name="crop"), "shape", "[B,3,H,W]")
    _fails(Raw(lambda x: x.mean(1, keepdim=True), name="grey"), "shape")
    _fails(PythonTeacher(lambda im: im.mean(-1), name="grey_np"), "grey")


def test_non_determinism_is_caught():
    def noisy(x):
        return (x + 1e-3 * torch.rand_like(x)).clamp(0, 1)

    _fails(Raw(noisy, name="noisy"), "non-deterministic")


def test_tiny_float_wobble_is_not_non_determinism():
    state = {"n": 0}

    def wobble(x):  # differs between calls by 1e-8: below the stated tolerance
        state["n"] += 1
        return x * 0.5 + 1e-8 * state["n"]

    validate_teacher(Raw(wobble, name="wobble"))


def test_out_of_range_is_caught_with_a_hint():
    msg = _fails(PythonTeacher(lambda im: im * 255, name="scale255"), "outside [0, 1]")
    assert "value_range=(0, 255)" in msg
    _fails(Raw(lambda x: x - 0.5, name="neg"), "outside [0, 1]")
    _fails(Raw(lambda x: -x - 1, name="neg_hdr", output_space="hdr"), "negative radiance")
    # hdr outputs may exceed 1
    validate_teacher(Raw(lambda x: x * 10, name="bright_hdr", output_space="hdr"))


def test_slight_excursion_warns_and_is_kept():
    with pytest.warns(UserWarning, match="slightly outside"):
        rep = validate_teacher(Raw(lambda x: x / x.max() * 1.03, name="overshoot"))
    assert rep.out_max == pytest.approx(1.03) and len(rep.warnings) == 1 and "not clipped" in rep.warnings[0]


def test_other_mistakes_are_named():
    _fails(Raw(lambda x: torch.zeros_like(x), name="zeros"), "constant")
    _fails(Raw(lambda x: x.mul_(0.5), name="inplace"), "in place")
    _fails(Raw(lambda x: x.double(), name="f64"), "dtype torch.float64")
    _fails(Raw(lambda x: x.numpy(), name="np_out"), "ndarray", "PythonTeacher")
    _fails(Raw(lambda x: x, name="badspace", input_space="rgb"), "input_space")

    def raises(x):
        raise RuntimeError("lens profile missing")

    _fails(Raw(raises, name="raiser"), "RuntimeError", "lens profile missing")


def test_identity_warns():
    with pytest.warns(UserWarning, match="identity"):
        validate_teacher(Raw(lambda x: x.clone(), name="ident"))


def test_user_probe_and_make_pair():
    class Burst(Raw):
        def __init__(self, y_fn, random=False):
            super().__init__(lambda x: x * 0.5, name="burst")
            self.y_fn, self.random = y_fn, random

        def make_pair(self, x):
            xin = x + (1e-3 * torch.rand_like(x) if self.random else 0)
            return xin, self.y_fn(xin)

    probe = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    rep = validate_teacher(Burst(lambda x: x * 0.5), probe=probe)
    assert rep.has_make_pair and rep.probe_shape == (1, 3, 16, 16)
    with pytest.raises(TeacherValidationError, match="make_pair's y has shape"):
        validate_teacher(Burst(lambda x: x[:, :, 1:] * 0.5))
    with pytest.warns(UserWarning, match="make_pair is not repeatable"):
        validate_teacher(Burst(lambda x: x * 0.5, random=True))


def test_command_teacher_validates():
    from teachers.command import CommandTeacher

    with pytest.warns(UserWarning, match="identity"):
        rep = validate_teacher(CommandTeacher("cp {in} {out}", ext="tif", bit_depth=32), size=16)
    assert rep.max_repeat_diff == 0.0 and any("identity" in w for w in rep.warnings)


def test_teacher_that_edits_its_input_only_in_the_pair_streams_layout_is_caught():
    # The pair stream hands over channels-last tensors (HxWx3 arrays permuted to [B,3,H,W]); a NumPy
    # adapter that views them with ascontiguousarray gets the caller's memory there, and only there.
    def numpy_view_gamma(images):
        arr = np.ascontiguousarray(images.permute(0, 2, 3, 1).numpy())  # a view when channels-last
        arr **= 0.8
        return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()

    _fails(Raw(numpy_view_gamma, name="view_inplace"), "in place")


def test_python_teacher_whose_function_edits_its_argument_is_harmless_and_passes():
    def gamma_in_place(img):
        img **= 0.8
        return img

    validate_teacher(PythonTeacher(gamma_in_place, name="g"), size=32)
    x = make_probe("srgb", 32).contiguous(memory_format=torch.channels_last)
    keep = x.clone()
    y = PythonTeacher(gamma_in_place, name="g")(x)
    assert torch.equal(x, keep) and torch.allclose(y, keep ** 0.8)
