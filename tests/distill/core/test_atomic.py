"""distill/core/atomic.py: all-or-nothing writes."""
import os
import stat

import pytest

from distill.core.atomic import atomic_write, atomic_write_json, atomic_write_text


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "summary.json"
    atomic_write_json(p, {"psnr": 30.0})

    def half_then_fail(tmp):
        with open(tmp, "w") as f:
            f.write('{"psn')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(p, half_then_fail)
    assert p.read_text() == '{\n  "psnr": 30.0\n}\n'
    assert sorted(os.listdir(tmp_path)) == ["summary.json"]


def test_temp_keeps_extension_and_final_mode_is_not_0600(tmp_path):
    seen = []
    atomic_write(tmp_path / "a" / "x.npz", lambda tmp: (seen.append(tmp), open(tmp, "wb").write(b"1")))
    assert seen[0].endswith(".npz") and os.path.basename(seen[0]).startswith(".")
    mode = stat.S_IMODE(os.stat(tmp_path / "a" / "x.npz").st_mode)
    assert mode & 0o044  # readable by others as with a plain open() (umask permitting)
    atomic_write_text(tmp_path / "t.txt", "hello")
    assert (tmp_path / "t.txt").read_text() == "hello"
