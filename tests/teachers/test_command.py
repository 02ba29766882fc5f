"""CommandTeacher: an external program as a teacher; every failure is an error that names the command."""
from __future__ import annotations

import os
import shlex
import sys
import textwrap

import numpy as np
import pytest
import torch

from teachers.command import CommandTeacher, CommandTeacherError, read_image, to_float_rgb, write_image

PY = shlex.quote(sys.executable)


def _batch(b=2, h=7, w=9, seed=0, scale=1.0):
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed)) * scale


def _script(tmp_path, name, body):
    p = tmp_path / name
    p.write_text(textwrap.dedent(body))
    return f"{PY} {shlex.quote(str(p))}"


INVERT16 = """
    import sys
    import cv2
    src, dst = sys.argv[1], sys.argv[2]
    img = cv2.imread(src, cv2.IMREAD_UNCHANGED)
    assert img.dtype.name == "uint16", img.dtype
    cv2.imwrite(dst, 65535 - img)
"""


def test_script_operator_matches_its_operation_within_16bit_quantisation(tmp_path):
    t = CommandTeacher(_script(tmp_path, "invert.py", INVERT16) + " {in} {out}", workers=2)
    x = _batch(b=3)
    y = t(x)
    assert y.shape == x.shape and y.dtype == torch.float32
    q = torch.round(x * 65535) / 65535  # what the 16-bit PNG carries
    assert torch.allclose(y, 1 - q, atol=1e-6)  # the script's exact operation, images in batch order
    assert (y - (1 - x)).abs().max() <= 0.5 / 65535 + 1e-6
    assert t.name == "invert"
    p = t.params()
    assert p["bit_depth"] == 16 and p["ext"] == "png" and "invert.py" in p["cmd"]
    assert "invert.py" in p["files_sha256"]  # the script's content is part of the identity


@pytest.mark.parametrize("ext, depth, space, tol", [
    ("png", 8, "srgb", 0.5 / 255),
    ("png", 16, "srgb", 0.5 / 65535),
    ("tif", 16, "linear", 0.5 / 65535),
    ("tif", 32, "hdr", 0.0),
    ("pfm", 32, "hdr", 0.0),
    ("hdr", 32, "hdr", 0.01),  # Radiance RGBE: 8-bit mantissa per pixel
])
def test_formats_round_trip_through_a_copying_program(ext, depth, space, tol):
    t = CommandTeacher("cp {in} {out}", ext=ext, bit_depth=depth, input_space=space, output_space=space)
    x = _batch(scale=8.0 if space == "hdr" else 1.0)
    y = t(x)
    err = (y - x).abs()
    if ext == "hdr":
        err = err / x.abs().amax(1, keepdim=True).clamp(min=1e-3)  # shared exponent: relative to the max channel
    assert err.max() <= tol + 1e-7


def test_shell_mode_with_redirection(tmp_path):
    t = CommandTeacher("cat {in} > {out}", shell=True)
    x = _batch(b=1)
    assert torch.allclose(t(x), torch.round(x * 65535) / 65535, atol=1e-7)


def test_nonzero_exit_reports_code_and_stderr(tmp_path):
    cmd = _script(tmp_path, "fails.py", """
        import sys
        print("loading model...", file=sys.stderr)
        print("boom: cannot open lens profile", file=sys.stderr)
        sys.exit(3)
    """) + " {in} {out}"
    t = CommandTeacher(cmd, workers=2)
    with pytest.raises(CommandTeacherError) as e:
        t(_batch(b=3))
    msg = str(e.value)
    assert "exit code 3" in msg and "boom: cannot open lens profile" in msg and "fails.py" in msg


def test_hang_is_killed_with_a_timeout_error(tmp_path):
    pid_file = tmp_path / "pid"
    cmd = _script(tmp_path, "hangs.py", f"""
        import os, time
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        time.sleep(60)
    """) + " {in} {out}"
    t = CommandTeacher(cmd, timeout=1)
    with pytest.raises(CommandTeacherError, match=r"timed out after 1 s") as e:
        t(_batch(b=1))
    assert "hangs.py" in str(e.value)
    with pytest.raises(ProcessLookupError):  # the program was killed and reaped, not left running
        os.kill(int(pid_file.read_text()), 0)


@pytest.mark.parametrize("body, words", [
    ("open(dst, 'wb').write(b'this is not an image')", ["cannot read", "20 bytes"]),
    ("pass", ["wrote no output file"]),
    ("cv2.imwrite(dst, img[:-1])", ["output is 9x6", "input was 9x7"]),
    ("cv2.imwrite(dst, img[..., 0])", ["grey"]),
    ("cv2.imwrite(dst, np.dstack([img, img[..., :1]]))", ["alpha"]),
])
def test_garbage_output_is_refused_clearly(tmp_path, body, words):
    cmd = _script(tmp_path, "bad.py", f"""
        import sys
        import cv2, numpy as np
        src, dst = sys.argv[1], sys.argv[2]
        img = cv2.imread(src, cv2.IMREAD_UNCHANGED)
        {body}
    """) + " {in} {out}"
    with pytest.raises(CommandTeacherError) as e:
        CommandTeacher(cmd)(_batch(b=1))
    for w in words:
        assert w in str(e.value)
    assert "bad.py" in str(e.value)


def test_opaque_rgba_and_8bit_output_are_accepted(tmp_path):
    cmd = _script(tmp_path, "rgba8.py", """
        import sys
        import cv2, numpy as np
        img = cv2.imread(sys.argv[1], cv2.IMREAD_UNCHANGED)
        img8 = (img // 257).astype(np.uint8)
        cv2.imwrite(sys.argv[2], np.dstack([img8, np.full(img8.shape[:2], 255, np.uint8)]))
    """) + " {in} {out}"
    x = _batch(b=1)
    with pytest.warns(UserWarning, match="8-bit output"):
        y = CommandTeacher(cmd)(x)
    assert (y - x).abs().max() <= 1.0 / 255 + 1e-6


@pytest.mark.parametrize("kwargs, err, words", [
    (dict(cmd="cp {in} out.png"), ValueError, ["no {out} placeholder"]),
    (dict(cmd="no_such_program_xyz {in} {out}"), CommandTeacherError, ["no_such_program_xyz", "not found"]),
    (dict(cmd="cp {in} {out}", ext="gif"), ValueError, ["ext 'gif'"]),
    (dict(cmd="cp {in} {out}", ext="png", bit_depth=32), ValueError, ["bit_depth 32"]),
    (dict(cmd="cp {in} {out}", input_space="hdr"), ValueError, ["hdr", "float"]),
    (dict(cmd="cp {in} {out}", timeout=0), ValueError, ["timeout"]),
])
def test_bad_settings_are_refused(kwargs, err, words):
    with pytest.raises(err) as e:
        CommandTeacher(**kwargs)
    for w in words:
        assert w in str(e.value)


def test_float_helpers_round_trip(tmp_path):
    img = np.random.default_rng(0).random((5, 4, 3)).astype(np.float32)
    for ext in ("png", "tif"):
        p = str(tmp_path / f"a.{ext}")
        write_image(p, img, 16)
        out, depth = to_float_rgb(read_image(p))
        assert depth == 16 and np.abs(out - img).max() <= 0.5 / 65535 + 1e-7


def test_training_pairs_do_not_skip_a_failing_command(tmp_path):
    """A failing program stops pair generation with its error; nothing is silently dropped."""
    from distill.data.pairs import PairDataset

    class Src:
        name = "probe"
        linear = np.random.default_rng(0).random((40, 40, 3)).astype(np.float32)

        def content_hash(self):
            return "probe"

    cmd = _script(tmp_path, "fails.py", "import sys\nprint('bad lut', file=sys.stderr)\nsys.exit(2)\n")
    ds = PairDataset([Src()], CommandTeacher(cmd + " {in} {out}"), crop_size=16, crops_per_image=2)
    with pytest.raises(CommandTeacherError, match="exit code 2"):
        ds[0]


@pytest.mark.parametrize("cmd", ["cat '{in}' > '{out}'", 'cat "{in}" > "{out}"', "cat {in} > {out}"])
def test_shell_mode_is_not_injectable_through_the_temp_folder_name(tmp_path, monkeypatch, cmd):
    import tempfile

    evil = tmp_path / "a;touch X;b"
    evil.mkdir()
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("TMPDIR", str(evil))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    assert tempfile.gettempdir() == str(evil)
    x = _batch(b=1)
    y = CommandTeacher(cmd, shell=True)(x)
    assert not (work / "X").exists() and not list(tmp_path.rglob("X"))  # nothing ran but cat
    assert torch.allclose(y, torch.round(x * 65535) / 65535, atol=1e-7)
