"""benchmarks.operator_suite without training: rows from fake report/speed/training summaries, the table, the
suite's mean, resuming (rows kept, only missing operators run, other settings refused), the commands it runs."""
from __future__ import annotations

import json
import math
import sys

import pytest

from benchmarks import operator_suite as OS

SETTINGS = {"steps": 7, "data": "embedded_leaves", "device": "cpu", "max_side": 256, "bench_size": "1080p",
            "threads": 2, "overrides": []}
OPTS = {"repeats": 3, "budget_s": 1.0, "lpips": False}


def _report(psnr_mean=40.0, psnr_worst=35.0, base=25.0, ssim=0.98):
    return {"headline": {"psnr_mean": psnr_mean, "psnr_worst": psnr_worst, "psnr_worst_image": "rocket"},
            "metrics": {"psnr": {"mean": psnr_mean, "worst": psnr_worst},
                        "psnr_input": {"mean": base, "worst": base - 3},
                        "ssim": {"mean": ssim, "worst": ssim - 0.01},
                        "ciede2000_mean": {"mean": 1.5, "worst": 2.0}},
            "images": {"count": 14}}


def _speed(teacher_ms=400.0, student_ms=20.0):
    return {"headline": {"size": "1080p", "speedup": teacher_ms / student_ms},
            "rows": [{"size": "1080p", "teacher_ms": teacher_ms, "student_ms": student_ms,
                      "student_method": "student (fused C++)", "speedup": teacher_ms / student_ms}]}


def _train(steps=7):
    return {"steps": steps, "trained_steps_this_run": steps, "wall_time_s": 12.5, "val_psnr_db": 39.0,
            "checkpoint": "x/last.pt"}


def fake_work(results: dict, calls: list):
    """A stand-in for run_operator: ``results[op]`` is (psnr_mean, baseline) or an exception to raise."""
    def work(op, settings, out, opts):
        calls.append(op)
        res = results[op]
        if isinstance(res, Exception):
            raise res
        return OS.make_row(op, _report(res[0], res[0] - 4, res[1]), _speed(), _train(settings["steps"]), 30.0,
                           "lib", "ref")
    return work


def test_row_takes_each_number_from_its_summary():
    row = OS.make_row("clahe", _report(), _speed(), _train(), 33.3, "scikit-image", "Zuiderveld 1994")
    assert row["psnr_mean"] == 40.0 and row["psnr_worst"] == 35.0 and row["psnr_worst_image"] == "rocket"
    assert row["baseline_psnr_mean"] == 25.0 and row["ssim_mean"] == 0.98 and row["ciede2000_mean"] == 1.5
    assert row["teacher_ms"] == 400.0 and row["student_ms"] == 20.0 and row["speedup"] == 20.0
    assert row["bench_size"] == "1080p" and row["images"] == 14 and row["steps"] == 7
    assert row["distill_wall_s"] == 33.3 and row["train_loop_s"] == 12.5 and row["resumed"] is False


def test_row_reads_inf_strings_and_survives_missing_speed():
    rep = _report()
    rep["metrics"]["psnr"]["worst"] = "inf"  # report's JSON-safe infinity
    row = OS.make_row("x", rep, None, _train(), 1.0)
    assert math.isinf(row["psnr_worst"]) and row["teacher_ms"] is None and row["speedup"] is None
    assert "inf" in OS.text_table([row]) and "n/a" in OS.text_table([row])


def test_suite_stats_and_markdown_table():
    rows = [OS.make_row("a", _report(40.0, base=25.0), _speed(), _train(), 10.0, "libA"),
            OS.make_row("b", _report(30.0, base=31.0), _speed(100.0, 50.0), _train(), 20.0, "libB")]
    st = OS.suite_stats(rows)
    assert st["psnr_mean"] == pytest.approx(35.0) and st["baseline_psnr_mean"] == pytest.approx(28.0)
    assert st["at_or_above_target"] == 1 and st["beyond_baseline"] == 1 and st["operators"] == 2
    state = {"settings": SETTINGS, "rows": {r["operator"]: r for r in rows}, "failed": {"c": "boom"},
             "command": "python -m benchmarks.operator_suite --steps 7"}
    md = OS.markdown(state)
    lines = md.splitlines()
    header = next(i for i, ln in enumerate(lines) if ln.startswith("| operator"))
    assert lines[header + 2].split("|")[1:-1] == [" a ", " libA ", " 40.00 ", " 35.00 ", " 25.00 ", " 0.9800 ",
                                                   " 1.50 ", " 400.0 ", " 20.0 ", " 20.0x ", " 10 "]
    assert lines[header + 3].startswith("| b | libB | 30.00 |") and "| 2.0x |" in lines[header + 3]
    assert "**7 steps**" in md and "Suite mean PSNR 35.00 dB (do-nothing 28.00 dB)" in md
    assert "1 of 2 at or above 33 dB" in md and "- `c`: boom" in md
    assert "python -m benchmarks.operator_suite --steps 7" in md


def test_resume_skips_rows_and_retries_failures(tmp_path, capsys):
    calls: list = []
    work = fake_work({"a": (40.0, 25.0), "b": RuntimeError("teacher crashed\nmore"), "c": (36.0, 30.0)}, calls)
    state = OS.run_suite(["a", "b", "c"], SETTINGS, tmp_path, OPTS, work=work)
    assert calls == ["a", "b", "c"] and set(state["rows"]) == {"a", "c"}
    saved = json.loads((tmp_path / "suite.json").read_text())
    assert saved["failed"] == {"b": "teacher crashed"} and saved["format"] == OS.FORMAT
    assert saved["suite"]["psnr_mean"] == pytest.approx(38.0)
    assert "- `b`: teacher crashed" in (tmp_path / "suite.md").read_text()

    calls.clear()  # second run: only the failed one runs again, and now it works
    work = fake_work({"b": (34.0, 20.0)}, calls)
    state = OS.run_suite(["a", "b", "c"], SETTINGS, tmp_path, OPTS, work=work)
    assert calls == ["b"] and set(state["rows"]) == {"a", "b", "c"} and state["failed"] == {}
    assert "already measured (skipped): a, c" in capsys.readouterr().out
    md = (tmp_path / "suite.md").read_text()
    assert "Failed" not in md and md.count("\n| ") == 4  # header + 3 rows (the rule line starts with "|-")

    calls.clear()  # a row is never measured twice; a new operator is added beside the old ones
    state = OS.run_suite(["a", "d"], SETTINGS, tmp_path, OPTS, work=fake_work({"d": (33.0, 30.0)}, calls))
    assert calls == ["d"] and list(state["rows"]) == ["a", "c", "b", "d"]


def test_rows_of_other_settings_are_refused_unless_redo(tmp_path):
    OS.run_suite(["a"], SETTINGS, tmp_path, OPTS, work=fake_work({"a": (40.0, 25.0)}, []))
    other = {**SETTINGS, "steps": 2000}
    with pytest.raises(SystemExit, match="steps: 7 here, 2000 now"):
        OS.run_suite(["a"], other, tmp_path, OPTS, work=fake_work({}, []))
    calls: list = []
    state = OS.run_suite(["a"], other, tmp_path, OPTS, redo=True, work=fake_work({"a": (41.0, 25.0)}, calls))
    assert calls == ["a"] and state["rows"]["a"]["steps"] == 2000
    assert json.loads((tmp_path / "suite.json").read_text())["settings"]["steps"] == 2000


def test_commands_are_the_users_commands(tmp_path):
    cmd = OS.train_command("clahe", 2000, "photos_leaves", "cuda", tmp_path / "clahe" / "train", ["train.num_workers=1"])
    assert cmd[:4] == [sys.executable, "-m", "distill.cli", "train"]
    assert {"teacher=python", "teacher.fn=teachers.suite:clahe", "train.steps=2000", "data=photos_leaves",
            "device=cuda", f"hydra.run.dir={tmp_path / 'clahe' / 'train'}"} <= set(cmd)
    assert cmd[-1] == "train.num_workers=1"  # the user's overrides last: they win
    assert not any(a.startswith("student") for a in cmd)  # the default student recipe
    assert "train.resume=true" in cmd and not any("overwrite" in a for a in cmd)
    fresh = OS.train_command("clahe", 2000, "photos_leaves", "cpu", tmp_path, resume=False)
    assert "train.resume=false" in fresh and "train.overwrite=true" in fresh
    rep = OS.report_command(tmp_path / "last.pt", tmp_path / "rep", None, 2, False)
    assert rep[3] == "report" and f"checkpoint={tmp_path / 'last.pt'}" in rep and "max_side=null" in rep
    assert "lpips=false" in rep and "threads=2" in rep


def test_training_is_reused_only_when_it_finished_with_the_same_settings(tmp_path):
    op_dir = tmp_path / "clahe"
    assert OS.train_plan(op_dir, SETTINGS) == "fresh"  # nothing there
    (op_dir / "train" / "checkpoints").mkdir(parents=True)
    (op_dir / "train" / "checkpoints" / "last.pt").write_bytes(b"")
    assert OS.train_plan(op_dir, SETTINGS) == "fresh"  # a checkpoint of unknown settings is trained over
    (op_dir / "train_settings.json").write_text(json.dumps(SETTINGS))
    assert OS.train_plan(op_dir, SETTINGS) == "resume"  # started with these settings, never finished
    (op_dir / "train" / "summary.json").write_text(json.dumps(_train(SETTINGS["steps"])))
    assert OS.train_plan(op_dir, SETTINGS) == "done"
    # the training loop's resume check compares data and student only: other steps must not continue it
    assert OS.train_plan(op_dir, {**SETTINGS, "steps": 2000}) == "fresh"
    assert OS.train_plan(op_dir, {**SETTINGS, "overrides": ["train.batch_size=8"]}) == "fresh"


def test_data_auto_prefers_the_photo_set(tmp_path):
    assert OS.choose_data("auto", tmp_path) == "embedded_leaves"
    (tmp_path / ".cache" / "photos").mkdir(parents=True)
    assert OS.choose_data("auto", tmp_path) == "embedded_leaves"  # an empty folder is no photo set
    (tmp_path / ".cache" / "photos" / "a.png").write_bytes(b"")
    assert OS.choose_data("auto", tmp_path) == "photos_leaves"
    assert OS.choose_data("embedded", tmp_path) == "embedded"


def test_unknown_operator_is_refused_before_anything_runs(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        OS.main(["--operators", "clahe,nope", "--out", str(tmp_path)])
    assert e.value.code == 2 and "unknown nope" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
