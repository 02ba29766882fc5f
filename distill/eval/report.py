"""``hdr-distill report``: how close and how fast a trained student is, as numbers, pictures and PASS/FAIL lines.

    hdr-distill report checkpoint=outputs/train/<run>/checkpoints/last.pt [images=photos/val] [bench=.../bench.json]

Stages, one module each:
  1. collect (``report_collect``): the checkpoint, its teacher (checked against the identity the checkpoint
     recorded) and student (the fused C++ path when available), the held-out images (``config.data.val`` or
     ``images=``, shrunk to ``max_side``), bench.json, the training history;
  2. measure (``report_measure``, ``report_speed``): each image through teacher and student
     (``distill.data.pairs.image_pair``), both outputs made display-referred (sRGB-encoded, clipped to
     [0, 1]), metrics from ``distill.eval.metrics``; the bench row of the checkpoint's own teacher, matched by
     the teacher identity bench.json records; the gates (PASS / FAIL / NOT MEASURED);
  3. pick examples (``report_examples``): the worst, median and best image, each with its largest-error crop;
  4. render (``report_render``, ``templates/report.html.j2``): ``report.html``, ``summary.json``,
     ``per_image.csv`` and ``figures/*.png``, written in a temp folder and moved into place file by file
     (``report.html`` last), so a reader never sees a half-written report.

``run_report(...)`` is the plain function; ``run(cfg)`` is the Hydra entry point (conf/report.yaml).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import torch

from distill.eval import metrics as M
from distill.eval import report_examples, report_render
from distill.eval.report_collect import DEFAULT_GATES, ReportError, check_args, collect, training_info
from distill.eval.report_measure import evaluate_gates, identity_gate, measure
from distill.eval.report_speed import short_bench, speed_summary

__all__ = ["DEFAULT_GATES", "ReportError", "run", "run_report"]


def run_report(ckpt_path: str | os.PathLike, out_dir: str | os.PathLike, images: Any = None,
               max_side: int | None = 1024, bench: str | os.PathLike | None = None,
               gates: Mapping[str, Any] | None = None, lpips: bool = True, *, run_bench: bool = False,
               bench_size: str = "1080p", heat_vmax: float | str = "auto", crop_size: int = 128,
               lpips_metric: M.LPIPSMetric | None = None, progress: bool = True) -> dict[str, Any]:
    """Write a fidelity report for a checkpoint into ``out_dir`` and return its summary.

    Args:
        ckpt_path: a checkpoint written by ``hdr-distill train``.
        out_dir: report folder (created; existing files of the same names are replaced).
        images: None for the checkpoint's held-out set (``config.data.val``), or a folder / file / list.
        max_side: longest image side; larger images are shrunk (area) first. None: full size.
        bench: a bench.json from ``hdr-distill bench`` (or its folder) for the speed table and gate.
        gates: ``{"psnr_min", "psnr_worst_min", "speedup_min"}`` thresholds (None values are skipped);
            None: ``DEFAULT_GATES``.
        lpips: compute LPIPS (AlexNet) when its weights are in the torch hub cache.
        run_bench: time this checkpoint's teacher against its student at ``bench_size`` here (short run).
        heat_vmax: top of the error heat-map scale in dE00, or "auto" (the largest 99th percentile of the
            example images' error, rounded up to 1-2-5; at least 1, about one just-noticeable difference).
        crop_size: side of the zoomed crops, pixels.
        lpips_metric: an ``LPIPSMetric`` to use instead of building one (tests: a random backbone).
        progress: print one line per image.

    Returns:
        The summary (as written to summary.json, before inf is made JSON-safe) plus ``"out_dir"``.

    Raises:
        CheckpointError: the checkpoint is missing or unreadable (the message names it).
        FileNotFoundError: an image path does not exist or a folder holds no images (named).
        ReportError: other bad arguments.
    """
    t_start = time.perf_counter()
    ckpt_path, out_dir = Path(ckpt_path), Path(out_dir)
    check_args(max_side, crop_size, bench, run_bench, heat_vmax)
    gates_cfg = dict(DEFAULT_GATES if gates is None else gates)
    evaluate_gates({}, None, gates_cfg)  # unknown gate names fail now, not after the work

    c = collect(ckpt_path, images, max_side, bench, lpips, lpips_metric)
    rows, stats = measure(c, progress)
    speed = None
    if c.bench is not None:
        speed = speed_summary(c.bench[0], c.ckpt.get("teacher") or {}, str(c.bench[1]))
    elif run_bench:
        if progress:
            print(f"  timing teacher vs student at {bench_size} ...", flush=True)
        speed = speed_summary(short_bench(c.teacher, c.model, bench_size), c.ckpt.get("teacher") or {},
                              f"a short bench in this run ({bench_size})")
    gate_rows = evaluate_gates(stats, speed, gates_cfg)
    trivial = identity_gate(rows)
    if trivial is not None:
        gate_rows.append(trivial)
        print(f"report: WARNING: {trivial['text']}", flush=True)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        figs = staging / "figures"
        figs.mkdir()
        examples, notes, vmax = report_examples.examples(c, rows, stats, heat_vmax, int(crop_size), figs)
        if c.skipped:
            notes = [f"{len(c.skipped)} held-out image(s) could not be read and are left out of every number: "
                     + "; ".join(f"{f}: {why}" for f, why in c.skipped)] + list(notes)
            print(f"report: WARNING: {len(c.skipped)} unreadable held-out image(s) skipped", flush=True)
        history, train_info = training_info(c.ckpt, ckpt_path)
        figures = report_render.plots(rows, history, speed, gates_cfg.get("psnr_min"), figs)
        summary = report_render.build_summary(c, rows, stats, speed, gate_rows, examples, notes, vmax, train_info,
                                              curves=figures["curves"] is not None)
        summary["wall_time_s"] = round(time.perf_counter() - t_start, 2)
        report_render.write_files(summary, rows, figures, staging)
        report_render.publish(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    passed = summary["passed"]
    print(f"report: {out_dir / 'report.html'}  ({'all gates pass' if passed else 'GATE FAILED'})", flush=True)
    return {**summary, "out_dir": str(out_dir)}


def run(cfg) -> dict[str, Any]:
    """``hdr-distill report`` (conf/report.yaml). Exits with status 1 when a gate fails and ``fail_on_gate``."""
    from omegaconf import OmegaConf

    c = OmegaConf.to_container(cfg, resolve=True)
    if c.get("threads"):
        torch.set_num_threads(int(c["threads"]))
    # Expected errors (a bad checkpoint, image or argument) reach distill.cli, which prints one line and exits 2
    # like every other subcommand.
    summary = run_report(
        c["checkpoint"], c["out_dir"], images=c.get("images"), max_side=c.get("max_side"),
        bench=c.get("bench"), gates=c.get("gates"), lpips=bool(c.get("lpips", True)),
        run_bench=bool(c.get("run_bench", False)), bench_size=str(c.get("bench_size", "1080p")),
        heat_vmax=c.get("heat_vmax", "auto"), crop_size=int(c.get("crop_size", 128)))
    for g in summary["gates"]:
        print(f"  {g['status']:<12} {g['text']}")
    if c.get("fail_on_gate") and not summary["passed"]:
        raise SystemExit(1)
    return summary
