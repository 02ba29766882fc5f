"""PythonTeacher: a plain function (callable, import string, file path) becomes a Teacher."""
from __future__ import annotations

import pickle
import sys
import textwrap

import numpy as np
import pytest
import torch

from distill.core.protocols import Teacher, teacher_identity
from teachers.python import PythonTeacher, resolve_callable, teacher


def _batch(b=2, h=6, w=5, seed=0):
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def swap_rb(img):
    return img[..., ::-1].copy()


def test_from_callable_applies_function_per_image():
    t = PythonTeacher(swap_rb)
    x = _batch()
    y = t(x)
    assert isinstance(t, Teacher)
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert torch.equal(y, x.flip(1))  # channels reversed, exactly
    assert t.name == "swap_rb" and t.input_space == "srgb" and t.output_space == "srgb"


def test_params_are_passed_and_recorded():
    def gain(img, k=1.0):
        return img * k

    t = PythonTeacher(gain, params={"k": 0.5})
    x = _batch()
    assert torch.allclose(t(x), x * 0.5)
    p = t.params()
    assert p["kwargs"] == {"k": 0.5}
    assert p["fn"].endswith(":test_params_are_passed_and_recorded.<locals>.gain")
    assert len(p["source_sha256"]) == 16


def test_identity_changes_when_source_changes(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    ids = []
    for i, body in enumerate(["return img * 0.5", "return img * 0.25"]):
        mod = f"user_ops_v{i}"
        (tmp_path / f"{mod}.py").write_text(f"def op(img):\n    {body}\n")
        ids.append(teacher_identity(PythonTeacher(f"{mod}:op")))
    assert ids[0]["params"]["source_sha256"] != ids[1]["params"]["source_sha256"]


@pytest.mark.parametrize("form", ["{mod}:halve", "{mod}.halve", "{mod}:Ops.halve"])
def test_from_import_string(tmp_path, monkeypatch, form):
    mod = "user_ops_import_" + str(abs(hash(form)))
    (tmp_path / f"{mod}.py").write_text(textwrap.dedent("""
        import numpy as np

        def halve(img):
            return img * np.float32(0.5)

        class Ops:
            @staticmethod
            def halve(img):
                return img * np.float32(0.5)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    t = PythonTeacher(form.format(mod=mod))
    x = _batch()
    assert torch.equal(t(x), x * 0.5)
    assert t.fn_spec == form.format(mod=mod)
    # Spawned DataLoader workers get it by pickling: the function is re-resolved from the string.
    t2 = pickle.loads(pickle.dumps(t))
    assert torch.equal(t2(x), x * 0.5)


def test_from_file_path(tmp_path):
    f = tmp_path / "my ops.py"  # not a module name: only loadable by path
    f.write_text("def invert(img):\n    return 1.0 - img\n")
    t = PythonTeacher(f"{f}:invert")
    x = _batch()
    assert torch.allclose(t(x), 1 - x)
    assert t.params()["fn"] == "my ops.py:invert"  # the file's name, not the folder: same on every machine
    t2 = pickle.loads(pickle.dumps(t))
    assert torch.allclose(t2(x), 1 - x)


@pytest.mark.parametrize("spec, words", [
    ("no_such_module_xyz:fn", ["no_such_module_xyz:fn", "not found"]),
    ("no_such_module_xyz.fn", ["no_such_module_xyz.fn", "no importable module"]),
    ("numpy:no_such_fn", ["numpy:no_such_fn", "no attribute 'no_such_fn'"]),
    ("numpy.linalg.nope", ["numpy.linalg.nope", "no attribute 'nope'"]),
    ("/nonexistent/dir/ops.py:fn", ["does not exist"]),
])
def test_bad_import_string_names_it(spec, words):
    with pytest.raises(ImportError) as e:
        PythonTeacher(spec)
    for w in words:
        assert w in str(e.value)


def test_import_error_inside_user_module_is_not_hidden(tmp_path, monkeypatch):
    (tmp_path / "user_ops_broken.py").write_text("import this_dependency_is_missing_xyz\ndef f(x): return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="this_dependency_is_missing_xyz"):
        resolve_callable("user_ops_broken:f")


def test_uint8_function_gets_uint8_and_output_is_rescaled():
    seen = {}

    def posterize(img):  # an 8-bit OpenCV-style function
        seen["dtype"] = img.dtype
        seen["max"] = int(img.max())
        return (img // 64) * 64  # uint8 in, uint8 out

    t = PythonTeacher(posterize, value_range=(0, 255))
    x = _batch()
    y = t(x)
    assert seen["dtype"] == np.uint8 and seen["max"] > 200
    q = np.rint(x.numpy() * 255).astype(np.uint8)
    ref = ((q // 64) * 64).astype(np.float32) / 255
    assert np.array_equal(y.numpy(), ref)


def test_uint8_output_from_float_function_is_scaled_by_its_type():
    t = PythonTeacher(lambda img: (img * 255).round().astype(np.uint8))  # float in, uint8 out
    x = _batch()
    assert torch.allclose(t(x), x, atol=0.5 / 255 + 1e-7)


def test_float_output_in_0_255_range_is_mapped_back():
    t = PythonTeacher(lambda img: img.astype(np.float32) * 0.5, value_range=(0, 255), dtype="float32")
    x = _batch()
    assert torch.allclose(t(x), x * 0.5, atol=1e-6)


def test_batched_hwc_and_torch_bchw():
    seen = {}

    def batched(imgs):
        seen["shape"] = imgs.shape
        return imgs[:, ::-1].copy()  # flip rows

    x = _batch(b=3)
    y = PythonTeacher(batched, batched=True)(x)
    assert seen["shape"] == (3, 6, 5, 3)
    assert torch.equal(y, x.flip(2))

    def torch_op(t):
        assert isinstance(t, torch.Tensor) and t.shape == (3, 3, 6, 5)
        return t.pow(2.0)

    assert torch.allclose(PythonTeacher(torch_op, layout="bchw")(x), x ** 2)


def test_function_writing_into_its_input_does_not_touch_the_batch():
    def inplace(img):
        img *= 0.5
        return img

    x = _batch()
    x0 = x.clone()
    y = PythonTeacher(inplace)(x)
    assert torch.equal(x, x0) and torch.allclose(y, x0 * 0.5)


@pytest.mark.parametrize("fn, words", [
    (lambda img: img.mean(-1), ["grey", "(6, 5)"]),
    (lambda img: img[..., :1], ["grey"]),
    (lambda img: np.concatenate([img, img[..., :1]], -1), ["4 channels"]),
    (lambda img: img.transpose(2, 0, 1), ["channels-first"]),
    (lambda img: img[:3], ["(3, 5, 3)"]),
    (lambda img: [1, 2, 3], ["returned list"]),
])
def test_wrong_outputs_are_refused_clearly(fn, words):
    t = PythonTeacher(fn, name="bad_op")
    with pytest.raises((ValueError, TypeError)) as e:
        t(_batch())
    assert "bad_op" in str(e.value)
    for w in words:
        assert w in str(e.value)


def test_decorator_declares_defaults_and_arguments_override():
    @teacher(input_space="linear", output_space="hdr", params={"k": 2.0}, name="decl")
    def scale(img, k=1.0):
        return img * k

    t = PythonTeacher(scale)
    assert (t.name, t.input_space, t.output_space) == ("decl", "linear", "hdr")
    x = _batch()
    assert torch.allclose(t(x), 2 * x)
    t2 = PythonTeacher(scale, output_space="srgb", params={"k": 3.0})
    assert t2.output_space == "srgb" and t2.input_space == "linear"
    assert torch.allclose(t2(x), 3 * x)
    assert scale(np.float32(1.0)) == 1.0  # still a plain function

    @teacher
    def bare(img):
        return img

    assert PythonTeacher(bare).name.endswith("bare")


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="input_space 'rgb'"):
        PythonTeacher(swap_rb, input_space="rgb")
    with pytest.raises(ValueError, match="layout"):
        PythonTeacher(swap_rb, layout="chw")
    with pytest.raises(ValueError, match="hdr"):
        PythonTeacher(swap_rb, input_space="hdr", value_range=(0, 255))
    with pytest.raises(ValueError, match="value_range"):
        PythonTeacher(swap_rb, value_range=(1, 0))
    with pytest.raises(TypeError, match="not a callable"):
        PythonTeacher("numpy:pi")


def test_existing_teacher_is_pointed_at_target():
    class Mine:
        name, input_space, output_space = "mine", "srgb", "srgb"

        def params(self):
            return {}

        def __call__(self, images):
            return images

    with pytest.raises(TypeError, match="_target_"):
        PythonTeacher(Mine())


def test_class_named_by_string_is_instantiated(tmp_path, monkeypatch):
    (tmp_path / "user_ops_cls.py").write_text(
        "class Darken:\n    def __call__(self, img, amount=0.5):\n        return img * amount\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    t = PythonTeacher("user_ops_cls:Darken", params={"amount": 0.25})
    x = _batch()
    assert torch.allclose(t(x), x * 0.25)
    assert t.name == "Darken" and t.params()["fn"] == "user_ops_cls:Darken"


def test_hydra_instantiate_from_yaml():
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load("conf/teacher/python.yaml")
    cfg.fn = "numpy:sqrt"  # a builtin ufunc: no source, identity carries numpy's version
    cfg.params = {}
    t = instantiate(cfg)
    x = _batch()
    assert isinstance(t, PythonTeacher) and torch.allclose(t(x), x.sqrt())
    assert t.params()["version"] == np.__version__


def _spin(img):
    while True:  # a hung user function
        pass


def test_a_hung_function_is_stopped_after_the_timeout_with_a_clear_error():
    import threading

    from teachers.python import PythonTeacherError

    t = PythonTeacher(_spin, name="spin", timeout=0.3)
    with pytest.raises(PythonTeacherError, match=r"teacher 'spin'.*0\.3 s.*teacher\.timeout"):
        t(_batch())
    # off the main thread (no SIGALRM there) the call is abandoned in a daemon thread, with the same error
    err = []
    th = threading.Thread(target=lambda: err.append(pytest.raises(PythonTeacherError, t, _batch())))
    th.start()
    th.join(10)
    assert not th.is_alive() and err
    # a quick function is unaffected, and the timeout is not part of the identity
    fast = PythonTeacher(swap_rb, name="s", timeout=5)
    assert torch.equal(fast(_batch()), PythonTeacher(swap_rb, name="s")(_batch()))
    assert fast.params() == PythonTeacher(swap_rb, name="s").params()
    with pytest.raises(ValueError, match="timeout"):
        PythonTeacher(swap_rb, timeout=0)
