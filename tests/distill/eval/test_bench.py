"""distill/eval/bench.py: sizes, round-robin timing, the table's ratio column and a tiny end-to-end run."""
import json
import time

import pytest

from distill.eval import bench as B


def test_sizes_are_named_or_even_sided_megapixels():
    assert B.size_of("1080p") == (1080, 1920) and B.size_of("12MP") == (3000, 4000)
    h, w = B.size_of(4)
    assert h % 2 == 0 and w % 2 == 0 and abs(h * w / 1e6 - 4) < 0.01 and abs(w / h - 4 / 3) < 0.01
    assert B.size_label(0.25) == "0.25MP" and B.size_label("1080p") == "1080p"


def test_interleaved_timing_alternates_bursts_and_respects_budget():
    calls = []
    methods = {
        "a": lambda: calls.append("a"),
        "b": lambda: calls.append("b"),
        "slow": lambda: (calls.append("slow"), time.sleep(0.02)),
    }
    res = B.time_interleaved(methods, repeats=6, warmup=1, budget_s=0.05, burst=2)
    timed = calls[3:]  # after one warm-up call each
    assert timed[:6] == ["a", "a", "b", "b", "slow", "slow"]  # bursts of 2, round-robin
    assert timed[6:9] == ["a", "a", "b"]
    assert res["a"]["runs"] == 6 and res["b"]["runs"] == 6
    assert res["slow"]["runs"] == 3  # at least 3 runs, then the 0.05 s budget stops it
    assert res["slow"]["median_ms"] >= 20 and res["slow"]["min_ms"] <= res["slow"]["median_ms"]


def test_table_ratio_is_teacher_over_fused_student():
    rows = [
        {"size": "1080p", "method": "student (fused-cpp-avx512)", "median_ms": 8.0, "min_ms": 7.0, "runs": 5},
        {"size": "1080p", "method": "reinhard", "median_ms": 80.0, "min_ms": 70.0, "runs": 5},
    ]
    txt = B.table(rows, {"reinhard@1080p": {"extra_mb": 77.0}})
    line = [ln for ln in txt.splitlines() if "reinhard" in ln][0]
    assert "10.0x" in line and line.rstrip().endswith("77")


def test_unknown_teacher_is_named():
    with pytest.raises(ValueError, match="unknown teacher 'nope'"):
        B.load_teacher("nope")


def test_a_teacher_that_extends_another_is_composed():
    # durand_robust.yaml is `defaults: [durand, _self_]` plus its range: bench must build the same teacher
    # training builds, not a bare dict.
    from teachers.tonemap import DurandDorsey
    t = B.load_teacher("durand_robust")
    assert isinstance(t, DurandDorsey) and t.range_percentiles == (1.0, 99.0)
    assert t.target_contrast == 5.0 and B.load_teacher("durand").range_percentiles == (0.0, 100.0)


def test_tiny_bench_run_writes_json_plot_and_table(tmp_path):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({
        "checkpoint": None, "teachers": ["gamma"], "sizes": [0.05], "memory": False, "memory_sizes": [],
        "torch_student_max_mp": 1.0, "teacher_max_mp": None, "threads": 1, "warmup": 1, "repeats": 3,
        "budget_s": 1.0, "out_dir": str(tmp_path),
    })
    rep = B.run(cfg)
    methods = {r["method"] for r in rep["results"]}
    assert "gamma" in methods and "student (torch)" in methods
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["machine"]["threads"] == 1 and all(r["runs"] == 3 for r in data["results"])
    # Each timed teacher's identity, as a checkpoint of it records it: what report matches rows by.
    from distill.core.protocols import teacher_identity

    assert data["teacher_identity"] == {"gamma": teacher_identity(B.load_teacher("gamma"))}
    assert data["teacher_identity"]["gamma"]["name"] == "gamma_curve"
    assert (tmp_path / "bench.png").stat().st_size > 0 and "gamma" in (tmp_path / "bench.txt").read_text()
