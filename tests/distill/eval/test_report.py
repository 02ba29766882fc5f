"""Fidelity report: files, numbers that agree everywhere, gates, clear errors, LPIPS status, atomic writes."""
from __future__ import annotations

import csv
import html
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict
from skimage import data

from distill.eval import metrics as M
from distill.eval import plots as P
from distill.eval import report as R
from distill.eval import report_examples, report_format, report_measure, report_render, report_speed
from distill.train.checkpoint import CheckpointError, build_student, build_teacher, load_checkpoint, save_checkpoint
from distill.cli import CONF_DIR
from distill.data.pairs import image_pair
from distill.core.protocols import teacher_identity

REPO = Path(__file__).resolve().parents[3]
TINY = [
    "teacher=gamma", "student=hdrnet_small", "student.lowres=32", "student.grid_size=4", "student.grid_depth=4",
    "data.train.names=[astronaut,chelsea]", "data.val.names=[coffee]", "device=cpu",
]
NUM_RE = re.compile(r'<span class="num" data-key="([^"]+)" data-value="([^"]*)">([^<]*)</span>')


# ---------------------------------------------------------------------------------------------------------
# Fixtures: a checkpoint built directly (no training: the report judges whatever weights it gets) and
# three small images on disk.
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ckpt_path(tmp_path_factory) -> Path:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=TINY)
    with open_dict(cfg):
        cfg.out_dir = "unused"
    torch.manual_seed(0)
    student = instantiate(cfg.student)
    with torch.no_grad():  # a student that is not the identity, so errors are non-zero and differ per image
        for p in student.parameters():
            p.add_(0.05 * torch.randn_like(p))
    teacher = instantiate(cfg.teacher)
    history = [{"step": s, "loss": 0.1 / s, **({"val_psnr": 20 + s} if s % 2 == 0 else {})} for s in range(1, 7)]
    path = tmp_path_factory.mktemp("run") / "checkpoints" / "last.pt"
    save_checkpoint(path, {"state_dict": student.state_dict(), "optimizer": {}, "step": 6,
                           "config": OmegaConf.to_container(cfg, resolve=True),
                           "teacher": teacher_identity(teacher), "history": history})
    return path


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("images")
    for name, img in (("astronaut", data.astronaut()), ("coffee", data.coffee()), ("chelsea", data.chelsea())):
        small = cv2.resize(img, (80, 60), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(d / f"{name}.png"), small[..., ::-1])  # RGB -> BGR for OpenCV
    return d


@pytest.fixture(scope="module")
def report(ckpt_path, image_dir, tmp_path_factory):
    """One report with LPIPS on a random backbone (offline) and a bench.json that matches the teacher."""
    out = tmp_path_factory.mktemp("rep") / "report"
    bench = out.parent / "bench.json"
    ident = load_checkpoint(ckpt_path)["teacher"]
    bench.write_text(json.dumps(_bench_json("gamma", {"1080p": (100.0, 5.0), "12MP": (500.0, 40.0)}, ident)))
    summary = R.run_report(ckpt_path, out, images=str(image_dir), max_side=64, bench=bench, crop_size=16,
                           gates={"psnr_min": 5.0, "psnr_worst_min": None, "speedup_min": 10.0},
                           lpips_metric=M.LPIPSMetric(pnet_rand=True), progress=False)
    return out, summary


REINHARD = {"name": "reinhard", "params": {"gamma": 1.0, "intensity": 0.0}, "input_space": "hdr", "output_space": "srgb"}


def _bench_json(teacher: str, times: dict[str, tuple[float, float]], identity: dict | None) -> dict:
    """A bench.json as `hdr-distill bench` writes it; identity None: an old one that records none."""
    results = []
    for size, (t_ms, s_ms) in times.items():
        for method, ms in ((teacher, t_ms), ("student (fused-cpp-avx2)", s_ms), ("student (torch)", 50 * s_ms)):
            results.append({"method": method, "size": size, "median_ms": ms, "min_ms": ms, "runs": 3,
                            "megapixels": 2.07 if size == "1080p" else 12.0})
    memory = {f"{teacher}@1080p": {"extra_mb": 300.0}, "student (fused-cpp-avx2)@1080p": {"extra_mb": 40.0}}
    out = {"machine": {"cpu": "test cpu", "threads": 2}, "results": results, "memory": memory}
    if identity is not None:
        out["teacher_identity"] = {teacher: identity}
    return out


def _strict_json(path: Path):
    def no_const(c):
        raise ValueError(f"non-standard JSON constant {c} in {path}")

    return json.loads(path.read_text(), parse_constant=no_const)


def _numbers(html_text: str) -> list[tuple[str, object, str]]:
    return [(k, json.loads(html.unescape(v)), html.unescape(t)) for k, v, t in NUM_RE.findall(html_text)]


# ---------------------------------------------------------------------------------------------------------
# The report itself
# ---------------------------------------------------------------------------------------------------------


def test_report_files_exist_and_images_resolve(report):
    out, summary = report
    page = (out / "report.html").read_text()
    srcs = re.findall(r'<img[^>]*\ssrc="([^"]+)"', page)
    assert len(srcs) >= 3 * 2 + 3  # 3 examples x (full + crop), per-image bars, speed, curves
    for src in srcs:
        assert not src.startswith(("http:", "https:", "/")), src  # relative, self-contained folder
        assert (out / html.unescape(src)).is_file(), src
    assert "<link" not in page and "<script" not in page  # no external resources
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".report.tmp")]  # staging dir removed


def test_numbers_in_html_equal_summary_json(report):
    out, _ = report
    summary = _strict_json(out / "summary.json")  # valid JSON: no NaN / Infinity
    nums = _numbers((out / "report.html").read_text())
    keys = {k for k, _, _ in nums}
    assert {"headline.psnr_mean", "headline.psnr_worst", "headline.speedup", "metrics.ssim.mean"} <= keys
    for key, value, text in nums:
        assert report_format.metric_value(summary, key) == value, key
        if isinstance(value, float):
            decimals = len(text.split(".")[1]) if "." in text else 0
            assert abs(float(text) - value) <= 0.5 * 10 ** -decimals + 1e-12, (key, text, value)
    # The headline is the summary of the per-image rows.
    psnrs = [r["psnr"] for r in summary["per_image"]]
    assert summary["headline"]["psnr_mean"] == pytest.approx(np.mean(psnrs))
    assert summary["headline"]["psnr_worst"] == min(psnrs)


def test_csv_has_one_row_per_image_and_matches_summary(report, image_dir):
    out, summary = report
    with open(out / "per_image.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["name"] for r in rows) == sorted(p.name for p in image_dir.glob("*.png"))
    for r, s in zip(rows, summary["per_image"]):
        assert r["name"] == s["name"]
        for m in M.METRICS:
            assert float(r[m]) == s[m]  # full precision in the CSV
    assert summary["images"]["count"] == 3


def test_metrics_equal_an_independent_computation(report, ckpt_path, image_dir):
    """Teacher and student run here by hand, metrics from distill.eval.metrics: the report's row must agree."""
    _, summary = report
    ckpt = load_checkpoint(ckpt_path)
    teacher, student = build_teacher(ckpt), build_student(ckpt)
    from distill.data.sources import FolderSource
    from distill.train.loop import downscale_max_side

    item = FolderSource(image_dir)[0]
    x, y = image_pair(teacher, downscale_max_side(item.linear, 64))
    with torch.inference_mode():
        s = student(x)  # the plain torch path; the report uses the fused one (agrees to ~1e-6)
    want = M.compute_all(s, y)
    got = next(r for r in summary["per_image"] if r["name"] == item.name)
    assert got["width"] == 64 and got["height"] == 48
    for m in ("psnr", "ssim", "ciede2000_mean", "ciede2000_p95"):
        assert got[m] == pytest.approx(want[m], rel=1e-3, abs=1e-4), m


def test_examples_speed_and_training_sections(report):
    out, summary = report
    labels = [lab for ex in summary["examples"] for lab in ex["labels"]]
    assert sorted(labels) == ["best", "median", "worst"]
    worst = next(ex for ex in summary["examples"] if "worst" in ex["labels"])
    assert worst["index"] == summary["metrics"]["psnr"]["worst_index"]
    sp = summary["speed"]
    assert sp["teacher_method"] == "gamma" and "same teacher and parameters" in sp["match"]
    assert [r["speedup"] for r in sp["rows"]] == [20.0, 12.5]  # teacher / fastest student
    assert (sp["rows"][0]["teacher_extra_mb"], sp["rows"][0]["student_extra_mb"]) == (300.0, 40.0)
    assert "student_extra_mb" not in sp["rows"][1]  # 12MP memory was not measured
    assert summary["headline"]["speedup"] == 20.0 and summary["headline"]["speedup_size"] == "1080p"
    gates = {g["gate"]: g["status"] for g in summary["gates"]}
    assert gates == {"psnr_min": "PASS", "speedup_min": "PASS"} and summary["passed"]
    assert summary["training"]["curves"] == "figures/curves.png" and summary["training"]["history_from"] == "checkpoint"
    assert summary["lpips"]["available"] and not summary["lpips"]["meaningful"]
    assert "RANDOM backbone" in summary["lpips"]["status"]
    assert all(isinstance(r["lpips"], float) for r in summary["per_image"])
    assert len(summary["checkpoint"]["sha256"]) == 64


def test_default_images_are_the_checkpoints_held_out_set_and_run_bench(ckpt_path, tmp_path):
    s = R.run_report(ckpt_path, tmp_path / "r", max_side=40, lpips=False, crop_size=16, progress=False,
                     run_bench=True, bench_size="0.02")
    assert [r["name"] for r in s["per_image"]] == ["coffee"]  # config.data.val of the checkpoint
    assert max(s["per_image"][0]["height"], s["per_image"][0]["width"]) == 40
    assert s["lpips"]["status"] == "LPIPS not computed: disabled (lpips=false)"
    # One image is worst, median and best at once: one example row, labelled with all three.
    assert [ex["labels"] for ex in s["examples"]] == [["worst", "median", "best"]]
    # run_bench: this checkpoint's own teacher against its student, at the size asked for.
    sp = s["speed"]
    assert sp["teacher_method"] == "gamma_curve" and sp["match"].startswith("the checkpoint's own teacher")
    (row,) = sp["rows"]
    assert row["size"] == "0.02MP" and row["speedup"] == pytest.approx(row["teacher_ms"] / row["student_ms"])
    assert (tmp_path / "r" / "figures" / "speed.png").is_file()
    assert s["headline"]["speedup"] == row["speedup"]


# ---------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------


def test_missing_checkpoint_is_a_clear_error(tmp_path, image_dir):
    missing = tmp_path / "nope" / "last.pt"
    with pytest.raises(CheckpointError, match=re.escape(str(missing))):
        R.run_report(missing, tmp_path / "r", images=str(image_dir))
    assert not (tmp_path / "r").exists()


def test_empty_image_folder_is_a_clear_error(ckpt_path, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=re.escape(str(empty))):
        R.run_report(ckpt_path, tmp_path / "r", images=str(empty), lpips=False)


def test_an_unreadable_held_out_image_is_named_counted_and_left_out(ckpt_path, tmp_path, image_dir):
    d = tmp_path / "imgs"
    d.mkdir()
    for name in ("astronaut.png", "chelsea.png"):
        (d / name).write_bytes((image_dir / name).read_bytes())
    good = (image_dir / "coffee.png").read_bytes()
    (d / "broken.png").write_bytes(good[: len(good) // 3])  # truncated
    s = R.run_report(ckpt_path, tmp_path / "r", images=str(d), max_side=48, lpips=False, crop_size=16,
                     progress=False)
    assert [r["name"] for r in s["per_image"]] == ["astronaut.png", "chelsea.png"]
    assert s["images"]["count"] == 2
    assert any("broken.png" in n and "1 held-out image(s) could not be read" in n for n in s["notes"])
    # the examples show the right pictures: their names are the rows' names
    assert {ex["name"] for ex in s["examples"]} <= {"astronaut.png", "chelsea.png"}
    (d / "astronaut.png").write_bytes(b"not a png")
    (d / "chelsea.png").write_bytes(b"")
    with pytest.raises(R.ReportError, match="none of the 3 held-out images could be read"):
        R.run_report(ckpt_path, tmp_path / "r2", images=str(d), max_side=48, lpips=False, progress=False)


def test_cli_errors_name_the_path_and_exit_non_zero(tmp_path):
    missing = tmp_path / "missing.pt"
    r = subprocess.run([sys.executable, "-m", "distill.cli", "report", f"checkpoint={missing}",
                        f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 2  # as every subcommand's expected error (distill.cli)
    assert f"checkpoint not found: {missing}" in r.stderr and "Traceback" not in r.stderr


def test_bad_arguments_fail_before_any_work(ckpt_path, tmp_path, image_dir):
    with pytest.raises(R.ReportError, match="unknown gate"):
        R.run_report(ckpt_path, tmp_path / "r", images=str(image_dir), gates={"psnr_mni": 30})
    with pytest.raises(R.ReportError, match="heat_vmax"):
        R.run_report(ckpt_path, tmp_path / "r", images=str(image_dir), heat_vmax=0)
    with pytest.raises(R.ReportError, match="bench: .*not found"):
        R.run_report(ckpt_path, tmp_path / "r", images=str(image_dir), bench=tmp_path / "bench.json")
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------------------------------------------
# Gates through the Hydra entry point, LPIPS status, run_bench
# ---------------------------------------------------------------------------------------------------------


def _report_cfg(*overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("report", overrides=list(overrides))


def test_gate_failure_exits_non_zero_after_writing(ckpt_path, image_dir, tmp_path, capsys):
    out = tmp_path / "rep"
    cfg = _report_cfg(f"checkpoint={ckpt_path}", f"images=[{image_dir / 'coffee.png'},{image_dir / 'chelsea.png'}]",
                      "max_side=32", "lpips=false", "crop_size=16", "gates.psnr_min=200", "fail_on_gate=true",
                      f"out_dir={out}")
    with pytest.raises(SystemExit) as e:
        R.run(cfg)
    assert e.value.code == 1
    s = _strict_json(out / "summary.json")
    assert not s["passed"] and s["gates"][0]["status"] == "FAIL" and s["images"]["count"] == 2
    page = (out / "report.html").read_text()
    assert "FAIL</span>" in page and "GATE FAILED" in page
    assert "FAIL" in capsys.readouterr().out
    # The same failing gate without fail_on_gate: the report is written, and no exit.
    cfg = _report_cfg(f"checkpoint={ckpt_path}", f"images={image_dir / 'coffee.png'}", "max_side=32",
                      "lpips=false", "crop_size=16", "gates.psnr_min=200", f"out_dir={tmp_path / 'rep2'}")
    assert R.run(cfg)["passed"] is False


def test_lpips_unavailable_is_stated_and_another_teachers_bench_is_not_used(ckpt_path, image_dir, tmp_path,
                                                                              monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(_bench_json("reinhard", {"1080p": (100.0, 5.0)}, REINHARD)))
    out = tmp_path / "rep"
    s = R.run_report(ckpt_path, out, images=[str(image_dir / "coffee.png")], max_side=32, crop_size=16,
                     bench=bench, progress=False)
    expected = tmp_path / "empty_torch_home" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert s["lpips"]["status"] == f"LPIPS not computed: backbone weights not found at {expected}; see README"
    assert all(r["lpips"] is None for r in s["per_image"]) and s["metrics"]["lpips"]["n"] == 0
    page = (out / "report.html").read_text()
    assert html.escape(s["lpips"]["status"]) in page and str(expected) in page
    with open(out / "per_image.csv", newline="") as f:
        assert all(r["lpips"] == "" for r in csv.DictReader(f))
    # The bench timed another operator: no speed-up is claimed, and the gate says why.
    assert s["speed"]["rows"] == [] and s["headline"]["speedup"] is None
    g = next(g for g in s["gates"] if g["gate"] == "speedup_min")
    assert g["status"] == "NOT MEASURED" and "none is the checkpoint's teacher 'gamma_curve'" in g["text"]
    assert "not measured" in page


# ---------------------------------------------------------------------------------------------------------
# Pieces
# ---------------------------------------------------------------------------------------------------------


def test_json_safe_and_fmt():
    obj = {"a": math.inf, "b": [-math.inf, math.nan, 1.5], "c": np.float32(2.0), "d": Path("x")}
    assert report_format.json_safe(obj) == {"a": "inf", "b": ["-inf", None, 1.5], "c": 2.0, "d": "x"}
    json.dumps(report_format.json_safe(obj), allow_nan=False)
    assert report_format.fmt("psnr", math.inf) == "inf" and report_format.fmt("psnr", 33.456) == "33.46" and report_format.fmt("ssim", None) == "n/a"


def test_evaluate_gates():
    stats = {"psnr": {"mean": 34.0, "worst": 30.0}}
    speed = {"min_speedup": 9.5, "rows": [{"size": "1080p"}, {"size": "12MP"}], "match": ""}
    g = report_measure.evaluate_gates(stats, speed, {"psnr_min": 33, "psnr_worst_min": 31, "speedup_min": 10})
    assert [x["status"] for x in g] == ["PASS", "FAIL", "FAIL"]
    assert g[2]["text"] == "speed-up 9.5x < 10x (smallest over 1080p, 12MP)"
    g = report_measure.evaluate_gates({"psnr": {"mean": math.inf, "worst": math.inf}}, None, {"psnr_min": 33, "speedup_min": 10})
    assert [x["status"] for x in g] == ["PASS", "NOT MEASURED"]
    assert report_measure.evaluate_gates(stats, None, {"psnr_min": None, "psnr_worst_min": None, "speedup_min": None}) == []


def test_nice_ceil_and_display_conversions():
    assert [report_examples.nice_ceil(v) for v in (0.01, 1.0, 1.3, 2.0, 4.1, 7.0, 12.0)] == [1.0, 1.0, 2.0, 2.0, 5.0, 10.0, 20.0]
    lin = np.array([[[0.0, 0.0031308, 1.0]]], np.float32)
    assert np.allclose(report_measure.display_output(lin, "linear"), [[[0.0, 0.04045, 1.0]]], atol=1e-5)
    assert np.array_equal(report_measure.display_output(np.array([[[-0.1, 0.5, 1.2]]], np.float32), "srgb"), [[[0.0, 0.5, 1.0]]])
    hdr = np.array([[[2.0, 4.0, 8.0]]], np.float32)  # divided by the teacher's peak (8), then encoded
    assert np.allclose(report_measure.display_output(hdr, "hdr", peak=8.0), report_measure.display_output(hdr / 8, "linear"))
    with pytest.raises(ValueError, match="peak"):
        report_measure.display_output(hdr, "hdr")


def test_publish_replaces_files_and_keeps_others(tmp_path):
    out = tmp_path / "rep"
    (out / "figures").mkdir(parents=True)
    (out / "report.html").write_text("old")
    (out / ".hydra").mkdir()
    (out / ".hydra" / "config.yaml").write_text("keep")
    staging = tmp_path / ".rep.tmp-1"
    (staging / "figures").mkdir(parents=True)
    (staging / "report.html").write_text("new")
    (staging / "figures" / "a.png").write_bytes(b"png")
    report_render.publish(staging, out)
    assert (out / "report.html").read_text() == "new" and (out / "figures" / "a.png").read_bytes() == b"png"
    assert (out / ".hydra" / "config.yaml").read_text() == "keep" and not staging.exists()


def test_failure_while_writing_leaves_no_partial_report(ckpt_path, image_dir, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_examples, "example_figures", boom)  # fails after the staging folder exists
    with pytest.raises(RuntimeError, match="disk full"):
        R.run_report(ckpt_path, tmp_path / "r", images=str(image_dir / "coffee.png"), max_side=32, lpips=False, crop_size=16,
                     progress=False)
    assert list(tmp_path.iterdir()) == []  # neither the report folder nor its staging folder


def test_metric_bars_and_speed_pngs(tmp_path):
    from matplotlib.image import imread

    p = P.metric_bars_png(["a", "b", "c"], [30.0, math.inf, None], tmp_path / "bars.png", xlabel="PSNR (dB)",
                          threshold=33.0)
    assert imread(p).shape[1] > imread(p).shape[0]
    with pytest.raises(ValueError, match="2 values"):
        P.metric_bars_png(["a"], [1.0, 2.0], tmp_path / "x.png", xlabel="x")
    p = P.speed_png([{"size": "1080p", "teacher_ms": 100.0, "student_ms": 5.0}], tmp_path / "speed.png")
    assert imread(p)[..., :3].std() > 0.05
    with pytest.raises(ValueError, match="positive"):
        P.speed_png([{"size": "1080p", "teacher_ms": 0.0, "student_ms": 5.0}], tmp_path / "x.png")


def test_do_nothing_baseline_equals_an_identity_students_psnr():
    """psnr_input is what a student that returns its input would score (srgb teacher)."""
    import numpy as np

    from distill.eval.report_measure import evaluate_image
    from teachers.curves import GammaCurve

    linear = np.random.default_rng(0).random((40, 48, 3), dtype=np.float32)
    row, _ = evaluate_image(GammaCurve(0.7), lambda x: x, linear, None)
    assert row["psnr_input"] == pytest.approx(row["psnr"], abs=1e-9) and row["psnr"] < 40


# ---------------------------------------------------------------------------------------------------------
# Hostile names, bench rows by teacher identity, a trivial teacher
# ---------------------------------------------------------------------------------------------------------

def _esc(s: str) -> str:
    """As the page's template escapes text (markupsafe writes ' as &#39;)."""
    import markupsafe

    return str(markupsafe.escape(s))


HOSTILE = "<img src=x onerror=alert(1)><script>alert('x')<\\script>"


def _plain_ckpt(path: Path, teacher, student_target: str = "torch.nn.Identity") -> Path:
    """A checkpoint with any teacher and a parameter-free student (no training, no grid)."""
    cfg = {"teacher": {"_target_": "teachers.curves.GammaCurve", "gamma": teacher.gamma, "gain": teacher.gain,
                       "name": teacher.name},
           "student": {"_target_": student_target}, "data": {}}
    save_checkpoint(path, {"state_dict": {}, "optimizer": {}, "step": 1, "config": cfg,
                           "teacher": teacher_identity(teacher), "history": []})
    return path


def test_html_escapes_hostile_image_and_teacher_names(ckpt_path, tmp_path):
    from teachers.curves import GammaCurve

    img_dir = tmp_path / "imgs"
    img_dir.mkdir()
    cv2.imwrite(str(img_dir / f"{HOSTILE}.png"), cv2.resize(data.coffee(), (40, 30))[..., ::-1])
    ckpt = _plain_ckpt(tmp_path / "ck.pt", GammaCurve(0.7, name="<script>alert('t')</script>"),
                       student_target="torch.nn.Identity")
    out = tmp_path / "rep"
    s = R.run_report(ckpt, out, images=str(img_dir), lpips=False, crop_size=8, progress=False)
    assert s["per_image"][0]["name"] == f"{HOSTILE}.png"  # the data keep the name as it is
    page = (out / "report.html").read_text()
    assert "<script" not in page and "<img src=x" not in page and "onerror=alert(1)>" not in page
    assert _esc(f"{HOSTILE}.png") in page  # shown, escaped, in the tables and the alt texts
    assert page.count(_esc(f"{HOSTILE}.png")) >= 4
    assert _esc("<script>alert('t')</script>") in page  # the teacher's name in the title and header
    assert _strict_json(out / "summary.json")["per_image"][0]["name"] == f"{HOSTILE}.png"


def _identity_bench(entries: list[tuple[str, dict | None, float]], student_ms: float = 5.0) -> dict:
    """bench.json with teacher rows ``(method, identity, ms)`` at 1080p; identity None: not recorded."""
    results = [{"method": "student (fused-cpp-avx2)", "size": "1080p", "median_ms": student_ms, "min_ms": student_ms,
                "runs": 3, "megapixels": 2.07}]
    results += [{"method": m, "size": "1080p", "median_ms": ms, "min_ms": ms, "runs": 3, "megapixels": 2.07}
                for m, _, ms in entries]
    known = {m: ident for m, ident, _ in entries if ident is not None}
    return {"machine": {"cpu": "test cpu", "threads": 2}, "results": results, "memory": {},
            **({"teacher_identity": known} if known else {})}


def test_bench_row_is_the_one_with_the_checkpoints_teacher_identity(ckpt_path, image_dir, tmp_path):
    mine = load_checkpoint(ckpt_path)["teacher"]
    other = {**mine, "params": {**mine["params"], "gamma": 0.7}}  # same operator, other settings
    # Listed first, and timed differently: picking by order or by operator name would get 30x.
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(_identity_bench([("gamma_07", other, 150.0), ("reinhard", REINHARD, 900.0),
                                                 ("gamma", mine, 100.0)])))
    s = R.run_report(ckpt_path, tmp_path / "r", images=[str(image_dir / "coffee.png")], max_side=32, crop_size=16,
                     lpips=False, bench=bench, progress=False)
    sp = s["speed"]
    assert sp["teacher_method"] == "gamma" and [r["speedup"] for r in sp["rows"]] == [20.0]
    assert next(g for g in s["gates"] if g["gate"] == "speedup_min")["status"] == "PASS"

    # Only another teacher's identity (same operator, other gamma): NOT MEASURED, and says which setting differs.
    sp = report_speed.speed_summary(_identity_bench([("gamma_07", other, 150.0)]), mine, "b.json")
    assert sp["teacher_method"] is None and sp["rows"] == [] and sp["min_speedup"] is None
    assert "other settings" in sp["match"] and "gamma" in sp["match"]
    g = report_measure.evaluate_gates({}, sp, {"speedup_min": 10})
    assert [x["status"] for x in g] == ["NOT MEASURED"]
    sp = report_speed.speed_summary(_identity_bench([("reinhard", REINHARD, 90.0)]), mine, "b.json")
    assert sp["rows"] == [] and "none is the checkpoint's teacher 'gamma_curve'" in sp["match"]


def test_old_bench_without_identities_is_not_matched(ckpt_path, image_dir, tmp_path, capsys):
    # A bench.json from before identities were recorded, timing this very teacher: still not guessed.
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(_bench_json("gamma", {"1080p": (100.0, 5.0)}, None)))
    s = R.run_report(ckpt_path, tmp_path / "r", images=[str(image_dir / "coffee.png")], max_side=32, crop_size=16,
                     lpips=False, bench=bench, progress=False)
    assert s["speed"]["teacher_method"] is None and s["speed"]["rows"] == [] and s["headline"]["speedup"] is None
    g = next(g for g in s["gates"] if g["gate"] == "speedup_min")
    assert g["status"] == "NOT MEASURED" and "records no teacher identities" in g["text"]
    assert "cannot be matched" in g["text"] and "rerun `hdr-distill bench`" in g["text"]
    page = (tmp_path / "r" / "report.html").read_text()
    assert _esc(g["text"]) in page and "no speed-up is claimed" in page and "<code>None</code>" not in page


def test_inf_psnr_on_every_image_is_a_failure_that_names_the_identity_teacher(tmp_path, image_dir, capsys):
    from teachers.curves import GammaCurve

    ckpt = _plain_ckpt(tmp_path / "ck.pt", GammaCurve(1.0))  # identity teacher, identity student
    out = tmp_path / "rep"
    cfg = _report_cfg(f"checkpoint={ckpt}", f"images={image_dir}", "max_side=32", "lpips=false", "crop_size=16",
                      "fail_on_gate=true", f"out_dir={out}")
    with pytest.raises(SystemExit) as e:
        R.run(cfg)
    assert e.value.code == 1
    s = _strict_json(out / "summary.json")
    assert all(r["psnr"] == "inf" for r in s["per_image"]) and not s["passed"]
    g = next(g for g in s["gates"] if g["gate"] == report_measure.IDENTITY_GATE)
    assert g["status"] == "FAIL" and "equals the teacher's input" in g["text"] and "identity" in g["text"]
    stdout = capsys.readouterr().out
    assert "WARNING" in stdout and "equals the teacher's input" in stdout
    page = (out / "report.html").read_text()
    assert 'class="warning"' in page and _esc(g["text"]) in page and "GATE FAILED" in page


def test_identity_gate_needs_every_image_inf():
    inf = math.inf
    assert report_measure.identity_gate([{"psnr": inf, "psnr_input": inf}, {"psnr": 40.0, "psnr_input": 20.0}]) is None
    assert report_measure.identity_gate([]) is None
    g = report_measure.identity_gate([{"psnr": inf, "psnr_input": 25.0}, {"psnr": inf, "psnr_input": inf}])
    assert g["status"] == "FAIL" and "bit for bit" in g["text"]  # the teacher does change its input
    g = report_measure.identity_gate([{"psnr": inf, "psnr_input": inf}])
    assert "equals the teacher's input" in g["text"]


def test_page_templates_ship_with_the_package():
    """An installed (non-editable) copy renders from the same template files: pyproject must ship them."""
    import fnmatch

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["distill"]
    files = [p.relative_to(REPO / "distill").as_posix() for p in report_render.TEMPLATES.iterdir() if p.is_file()]
    assert {"eval/templates/report.html.j2", "eval/templates/report.css"} <= set(files)
    assert all(any(fnmatch.fnmatch(f, g) for g in globs) for f in files), (files, globs)
    assert any(d.split()[0].lower().startswith("jinja2") for d in pyproject["project"]["dependencies"])
