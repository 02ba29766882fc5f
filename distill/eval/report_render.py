"""Report stage 4, render: the summary (summary.json), the plots beside the examples, the page from
templates/report.html.j2 (Jinja2, autoescaped), the CSV, and the atomic placement of the finished folder."""
from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import jinja2

from distill.eval import metrics as M
from distill.eval import plots as P
from distill.eval.report_collect import Collected, machine
from distill.eval.report_examples import HEAT_LABEL
from distill.eval.report_format import fmt, json_safe, sort_key
from distill.eval.report_measure import IDENTITY_GATE

FORMAT = "hdr-distill-report/1"
CSV_FIELDS = ["index", "name", "height", "width", *M.METRICS]
DISPLAY_STATEMENT = (
    "All metrics compare display-referred images: the teacher's and the student's outputs sRGB-encoded "
    "(outputs in linear space are encoded with the sRGB curve; HDR outputs are first divided by the "
    "teacher output's maximum) and clipped to [0, 1], i.e. what a screen shows. PSNR pools the three RGB "
    "channels with peak 1: 10 log10(1 / MSE)."
)
INF_NOTE = 'Infinite PSNR (student identical to teacher) is written as the string "inf" in summary.json and per_image.csv.'
TEMPLATES = Path(__file__).resolve().parent / "templates"
PER_IMAGE_LIMIT = 300  # rows in the page's per-image table; the CSV has all


def build_summary(c: Collected, rows: list[dict], stats: Mapping[str, Any], speed: Mapping[str, Any] | None,
                  gate_rows: list[dict], examples: list[dict], notes: list[str], vmax: float,
                  train_info: Mapping[str, Any], curves: bool) -> dict[str, Any]:
    """Everything summary.json holds (before inf is made JSON-safe); ``wall_time_s`` is filled in last."""
    worst_i = stats.get("psnr", {}).get("worst_index")
    lp = c.lpips_metric
    return {
        "format": FORMAT,
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "headline": {
            "psnr_mean": stats["psnr"]["mean"], "psnr_worst": stats["psnr"]["worst"],
            "psnr_worst_image": rows[worst_i]["name"] if worst_i is not None else None,
            "speedup": speed["headline"]["speedup"] if speed and speed["headline"] else None,
            "speedup_size": speed["headline"]["size"] if speed and speed["headline"] else None,
        },
        "gates": gate_rows, "passed": all(g["status"] != "FAIL" for g in gate_rows),
        "metrics": stats,
        "metric_definitions": {k: v[2] for k, v in M.METRICS.items()},
        "display_referred": DISPLAY_STATEMENT,
        "lpips": {"available": bool(lp is not None and lp.available),
                  "meaningful": bool(lp is not None and lp.available and lp.meaningful),
                  "status": c.lpips_status, "how_to_enable": M.lpips_weights_help("alex")},
        "images": {"source": c.source_desc, "count": len(rows), "max_side": c.max_side},
        "per_image": rows,
        "per_image_csv": "per_image.csv",
        "examples": examples, "heat_map": {"metric": HEAT_LABEL, "vmax": vmax, "vmin": 0.0},
        "speed": None if speed is None else {k: v for k, v in speed.items() if k != "results"},
        "checkpoint": {"path": str(c.ckpt_path), "sha256": c.sha256, "step": c.ckpt.get("step")},
        "teacher": c.identity,
        "student": {"config": (c.ckpt.get("config") or {}).get("student"), "engine": c.engine,
                    "parameters": int(sum(p.numel() for p in c.model.parameters()))},
        "training": {**train_info, "curves": "figures/curves.png" if curves else None},
        "machine": machine(),
        "notes": notes,
        "json_notes": INF_NOTE,
        "wall_time_s": None,
    }


def plots(rows: list[dict], history: list[dict], speed: Mapping[str, Any] | None, psnr_min: float | None,
          folder: Path) -> dict[str, str | None]:
    """The per-image bars, training curves and speed chart in ``folder``; paths relative to the report."""
    bars = P.metric_bars_png([r["name"] for r in rows], [r["psnr"] for r in rows], folder / "psnr_per_image.png",
                             xlabel="PSNR (dB), display-referred", threshold=psnr_min, higher_better=True)
    out: dict[str, str | None] = {"bars": f"figures/{bars.name}", "bench": None, "curves": None}
    if history:
        out["curves"] = "figures/" + P.curves_png(history, folder / "curves.png").name
    if speed is not None and speed["rows"]:
        P.speed_png(speed["rows"], folder / "speed.png", teacher=f"teacher ({speed['teacher_method']})")
        out["bench"] = "figures/speed.png"
    return out


# ---------------------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["fmt"] = lambda v, kind: fmt(kind, v)
    env.filters["dumps"] = lambda v, indent=None: json.dumps(v, indent=indent)  # plain text: autoescape quotes it
    return env


def _verdict_pill(gates: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    status = [g["status"] for g in gates]
    n_fail, n_na = status.count("FAIL"), status.count("NOT MEASURED")
    if n_fail:
        return "FAIL", f"{n_fail} GATE{'S' if n_fail > 1 else ''} FAILED"
    if not status or n_na == len(status):
        return "NA", "NO GATE MEASURED"
    return "PASS", "GATES PASS" + (f" ({n_na} not measured)" if n_na else "")


def _busy(machine: Mapping[str, Any], source: str) -> tuple[str, Any] | None:
    """(load, cores) when this run timed things on a machine busier than its cores."""
    load, cores = machine.get("load_average_1min"), machine.get("cores")
    if not source.startswith("a short bench in this run") or load is None or not cores or load <= cores:
        return None
    return f"{load:g}", cores


def view(s: Mapping[str, Any]) -> dict[str, Any]:
    """What the template shows beyond the summary itself: derived classes, orders and key/value lists."""
    gate_cls = {k: "" for k in ("psnr_min", "psnr_worst_min", "speedup_min")}
    for g in s["gates"]:
        if g["gate"] in gate_cls and g["status"] != "NOT MEASURED":
            gate_cls[g["gate"]] = g["status"].lower()
    t, ck, st, tr, mach = s["teacher"], s["checkpoint"], s["student"], s["training"], s["machine"]
    sp = s["speed"]
    return {
        "pill": _verdict_pill(s["gates"]),
        "gate_cls": gate_cls,
        "warnings": [g for g in s["gates"] if g["gate"] == IDENTITY_GATE],
        "metric_rows": [{"name": m, "unit": unit, "desc": desc, "st": s["metrics"][m]}
                        for m, (_, unit, desc) in M.METRICS.items() if s["metrics"].get(m) is not None],
        "metric_names": list(M.METRICS),
        "order": sorted(range(len(s["per_image"])), key=lambda i: sort_key(s["per_image"][i]["psnr"])),
        "limit": PER_IMAGE_LIMIT,
        "shown": {ex["index"] for ex in s["examples"]},
        "speed_memory": bool(sp) and any("teacher_extra_mb" in r or "student_extra_mb" in r for r in sp["rows"]),
        "busy": _busy(mach, sp["source"]) if sp else None,
        "compared": [
            ("teacher", t["name"]), ("teacher spaces", f"{t['input_space']} in, {t['output_space']} out"),
            ("checkpoint", ck["path"]), ("sha256", ck["sha256"]), ("step", ck["step"]),
            ("held-out val PSNR at training end",
             f"{tr['val_psnr_db']} dB (training run's summary.json)" if tr.get("val_psnr_db") is not None else "n/a"),
            ("student engine", st["engine"]), ("student parameters", f"{st['parameters']:,}"),
            ("images", s["images"]["source"]), ("max side", s["images"]["max_side"]),
            ("report wall time", f"{s['wall_time_s']} s")],
        "machine": [("CPU", mach.get("cpu")), ("cores", mach.get("cores")), ("threads", mach.get("threads")),
                    ("torch", mach.get("torch")), ("load average (1 min) at the end", mach.get("load_average_1min")),
                    ("numpy", mach.get("numpy")), ("python", mach.get("python"))],
    }


def render_html(s: Mapping[str, Any], figures: Mapping[str, str | None]) -> str:
    """The report page: headline numbers, gates, pictures, then tables. ``s`` is the JSON-safe summary."""
    return _env().get_template("report.html.j2").render(s=s, v=view(s), figures=figures)


# ---------------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------------


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else json_safe(r.get(k))) for k in CSV_FIELDS})


def write_files(summary: Mapping[str, Any], rows: list[dict], figures: Mapping[str, str | None], folder: Path) -> None:
    write_csv(rows, folder / "per_image.csv")
    safe = json_safe(summary)
    (folder / "summary.json").write_text(json.dumps(safe, indent=2, allow_nan=False))
    (folder / "report.html").write_text(render_html(safe, figures), encoding="utf-8")


def publish(staging: Path, out_dir: Path) -> None:
    """Move the finished report from ``staging`` into ``out_dir``.

    A fresh ``out_dir`` is one atomic rename. An existing one (Hydra's run folder, or an older report) gets
    each file by ``os.replace`` (atomic per file): figures first, then the CSV and summary.json, and
    report.html last, so the HTML never refers to a file that is not there yet.
    """
    if not out_dir.exists():
        try:
            os.rename(staging, out_dir)
            return
        except OSError:
            pass  # created meanwhile: fall back to per-file moves
    out_dir.mkdir(parents=True, exist_ok=True)
    files = sorted((p for p in staging.rglob("*") if p.is_file()),
                   key=lambda p: (p.name == "report.html", p.name == "summary.json", p.parent == staging, str(p)))
    for p in files:
        dest = out_dir / p.relative_to(staging)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(p, dest)
    shutil.rmtree(staging, ignore_errors=True)
