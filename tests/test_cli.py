"""hdr-distill: an expected error (the project's own, a missing file, a bad override, Ctrl-C) is one line on
stderr and a non-zero exit from every subcommand; a real bug, or HYDRA_FULL_ERROR=1, shows the traceback."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill import cli

ROOT = Path(__file__).resolve().parent.parent


def _hdr_distill(tmp_path, *args, full_error=None):
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    if full_error is not None:
        env["HYDRA_FULL_ERROR"] = full_error
    return subprocess.run([sys.executable, "-m", "distill.cli", *args, f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def _one_line(p, cmd, *words):
    err = p.stderr.strip().splitlines()
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert len(err) == 1 and "Traceback" not in p.stderr, p.stderr
    assert err[0].startswith(f"hdr-distill {cmd}: error: "), err[0]
    for w in words:
        assert w in err[0], err[0]


@pytest.mark.parametrize("args, words", [
    (["train", "train.steps=0"], ["train.steps=0"]),                                 # the project's ConfigError
    (["train", "train.nope=1"], ["train.nope", "+train.nope=1"]),                     # a bad override
    (["train", "teacher=python"], ["teacher.fn"]),                                    # a missing mandatory value
    (["train", "teacher=no_such_teacher"], ["no_such_teacher"]),                      # an unknown group option
    (["apply", "checkpoint=nope.pt", "input=x", "output=y"], ["checkpoint not found", "nope.pt"]),
    (["export", "checkpoint=garbage.pt"], ["garbage.pt"]),                           # not a checkpoint
    (["bench", "checkpoint=nope.pt"], ["nope.pt"]),
    (["pairs", "data.pairs.cache_dir=null"], ["data.pairs.cache_dir"]),
])
def test_expected_errors_are_one_line_and_exit_2(tmp_path, args, words):
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    _one_line(_hdr_distill(tmp_path, *args), args[0], *words)


def test_full_error_still_shows_the_traceback(tmp_path):
    p = _hdr_distill(tmp_path, "train", "train.steps=0", full_error="1")
    assert p.returncode != 0 and "Traceback" in p.stderr and "train.steps=0" in p.stderr


def _in_process(monkeypatch, tmp_path, exc):
    """Run ``hdr-distill train`` in this process with the task replaced by one that raises ``exc``."""
    import distill.train.loop as loop

    def task(cfg):
        raise exc

    monkeypatch.setattr(loop, "train", task)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as e:
        cli.main(["train", f"hydra.run.dir={tmp_path / 'run'}"])
    return e.value.code


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, tmp_path, capsys):
    assert _in_process(monkeypatch, tmp_path, KeyboardInterrupt()) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["hdr-distill train: interrupted (Ctrl-C)"]


def test_a_dataloader_workers_error_is_reported_by_its_own_message(monkeypatch, tmp_path, capsys):
    from distill.data.pairs import PairError

    # what torch's DataLoader re-raises in the main process: the worker's traceback inside the message
    wrapped = PairError("Caught PairError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
                        "last):\n  File \"x.py\", line 1, in f\n    g()\ndistill.data.pairs.PairError: teacher 't' "
                        "returned values in [0, 255] for crop c of image 'i'")
    assert _in_process(monkeypatch, tmp_path, wrapped) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["hdr-distill train: error: teacher 't' returned values in [0, 255] for crop c of image 'i'"]


def test_a_real_bug_still_shows_its_traceback(monkeypatch, tmp_path, capsys):
    code = _in_process(monkeypatch, tmp_path, ZeroDivisionError("a bug"))
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" in err and "ZeroDivisionError: a bug" in err
