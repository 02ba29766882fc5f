"""Pretrained students shipped in ``pretrained/``: slim checkpoints and a manifest of their measured numbers.

A slim checkpoint is a training checkpoint without the optimizer and the raw (pre-EMA) weights: the student's
weights (stored as float16 when that moves the output by at most ``FP16_TOLERANCE``), the resolved config, the
teacher's identity and the training history. ``pretrained/manifest.json`` holds, per student, the recipe that
trained it and the held-out numbers and speed ratios that ``hdr-distill report`` / ``bench`` measured for it.

Every command that takes ``checkpoint=`` accepts a shipped student by name:

    hdr-distill report checkpoint=pretrained/local_laplacian
    hdr-distill apply  checkpoint=pretrained/durand_robust input=scenes/ output=out/

Adding one (what made the shipped files):

    python -m distill.train.pretrained add local_laplacian --checkpoint runs/ll/checkpoints/last.pt \\
        --recipe local_laplacian/photos_detail --teacher-config local_laplacian \\
        --report runs/ll/report/summary.json --bench runs/ll/bench/bench.json
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from distill.core.atomic import atomic_write_json
from distill.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

PRETRAINED_DIR = Path(__file__).resolve().parents[2] / "pretrained"
MANIFEST = "manifest.json"
FP16_TOLERANCE = 1e-3  # max abs output change (display values in [0, 1]) allowed for float16 storage
_PREFIXES = ("pretrained/", "pretrained:")


def manifest(root: Path = PRETRAINED_DIR) -> dict[str, Any]:
    """``{name: entry}`` from ``root/manifest.json`` (empty when nothing ships)."""
    f = root / MANIFEST
    if not f.is_file():
        return {}
    try:
        return json.loads(f.read_text())["students"]
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{f}: not a pretrained manifest ({e})") from e


def names(root: Path = PRETRAINED_DIR) -> list[str]:
    return sorted(p.stem for p in root.glob("*.pt"))


def resolve(path: str | os.PathLike, root: Path = PRETRAINED_DIR) -> Path:
    """A checkpoint path, or ``pretrained/<name>`` / ``pretrained:<name>`` for a shipped student.

    A file that exists at the given path always wins, so a user's own ``pretrained/`` folder still works.
    """
    p = Path(path)
    s = str(path)
    if p.exists() or not s.startswith(_PREFIXES):
        return p
    name = s[len("pretrained/"):].removesuffix(".pt")
    f = root / f"{name}.pt"
    if not f.is_file():
        shipped = ", ".join(names(root)) or "none"
        raise CheckpointError(f"no pretrained student '{name}' (shipped: {shipped}); "
                              f"use checkpoint=pretrained/<name> or a path to a .pt file")
    return f


def slim(ckpt: dict[str, Any], half: bool) -> dict[str, Any]:
    """The parts of a training checkpoint a user needs to run, report and export the student."""
    sd = ckpt["state_dict"]
    if half:
        sd = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
    keep = {k: ckpt[k] for k in ("step", "config", "teacher", "history") if k in ckpt}
    return {**keep, "state_dict": sd, "weights_dtype": "float16" if half else "float32"}


def fp16_error(ckpt: dict[str, Any], images: list[torch.Tensor]) -> float:
    """Max abs difference of the student's output with its weights rounded to float16, over ``images``."""
    from distill.train.checkpoint import build_student

    full = build_student(ckpt)
    half = build_student({**ckpt, "state_dict": {k: v.half().float() if v.is_floating_point() else v
                                                 for k, v in ckpt["state_dict"].items()}})
    err = 0.0
    with torch.inference_mode():
        for x in images:
            err = max(err, float((full(x) - half(x)).abs().max()))
    return err


def _probe_images(ckpt: dict[str, Any]) -> list[torch.Tensor]:
    """Two natural-looking images in the student's input space, at sizes with odd tails."""
    from distill.data.validate import make_probe

    space = ckpt.get("teacher", {}).get("input_space", "srgb")
    return [make_probe(space, 96)[:1], make_probe(space, 64)[1:]]


def add(name: str, checkpoint: str | os.PathLike, recipe: str, teacher_config: str,
        report: str | os.PathLike | None = None, bench: str | os.PathLike | None = None,
        root: Path = PRETRAINED_DIR, notes: str = "") -> dict[str, Any]:
    """Write ``root/<name>.pt`` from a training checkpoint and record it in the manifest."""
    ckpt = load_checkpoint(checkpoint)
    err = fp16_error(ckpt, _probe_images(ckpt))
    half = err <= FP16_TOLERANCE
    root.mkdir(parents=True, exist_ok=True)
    out = save_checkpoint(root / f"{name}.pt", slim(ckpt, half))
    entry: dict[str, Any] = {
        "file": out.name, "teacher": ckpt["teacher"]["name"], "teacher_config": teacher_config, "recipe": recipe,
        "train_command": f"hdr-distill train experiment={recipe}", "steps": ckpt.get("step"),
        "weights_dtype": "float16" if half else "float32", "fp16_max_abs_diff": err,
        "size_bytes": out.stat().st_size, "added": time.strftime("%Y-%m-%d"),
    }
    if notes:
        entry["notes"] = notes
    if report:
        entry["held_out"] = held_out_numbers(json.loads(Path(report).read_text()))
        entry["report_command"] = f"hdr-distill report checkpoint=pretrained/{name}"
    if bench:
        entry["speed"] = speed_numbers(json.loads(Path(bench).read_text()))
        entry["bench_command"] = (f"hdr-distill bench checkpoint=pretrained/{name} "
                                  f"teachers=[{teacher_config}] sizes=[1080p,12MP] memory=false")
    students = manifest(root)
    students[name] = entry
    atomic_write_json(root / MANIFEST, {"format": "hdr-distill-pretrained/1", "students": dict(sorted(students.items()))})
    return entry


def held_out_numbers(summary: dict[str, Any]) -> dict[str, Any]:
    """Mean and worst PSNR, the other metrics' means, the images and the gates, from a report's summary.json."""
    metrics = summary.get("metrics", {})
    return {
        "source": summary.get("images", {}).get("source"),
        "images": [r.get("name") for r in summary.get("per_image", [])],
        "psnr_mean": summary.get("headline", {}).get("psnr_mean"),
        "psnr_worst": summary.get("headline", {}).get("psnr_worst"),
        "psnr_worst_image": summary.get("headline", {}).get("psnr_worst_image"),
        "means": {k: v.get("mean") for k, v in metrics.items() if isinstance(v, dict) and "mean" in v},
        "gates": [{k: g.get(k) for k in ("gate", "value", "threshold", "status")} for g in summary.get("gates", [])],
        "machine": summary.get("machine"),
    }


def speed_numbers(bench: dict[str, Any]) -> dict[str, Any]:
    """Per size: the student's and the teacher's median ms, which implementation was timed, and the ratio."""
    rows = bench.get("results", [])
    out: dict[str, Any] = {"machine": bench.get("machine", {})}
    by_size: dict[str, dict[str, float]] = {}
    for r in rows:
        by_size.setdefault(r.get("size", "?"), {})[r["method"]] = r.get("median_ms")
    for size, t in by_size.items():
        student = {k: v for k, v in t.items() if k.startswith("student")}
        teachers = {k: v for k, v in t.items() if not k.startswith("student")}
        if not student or not teachers:
            continue
        s_name, s_ms = min(student.items(), key=lambda kv: kv[1])
        out[size] = {"student": s_name, "student_ms": s_ms,
                     "teachers": {k: {"ms": v, "ratio": v / s_ms} for k, v in teachers.items()}}
    return out


def table(students: dict[str, Any]) -> str:
    """The README's table: one line per shipped student, from the manifest."""
    lines = ["| `checkpoint=` | teacher | recipe | held-out PSNR mean / worst | images | speed-up 1080p / 12 MP |",
             "|---|---|---|---|---|---|"]
    for name, e in students.items():
        h = e.get("held_out", {})
        sp = e.get("speed", {})

        def ratio(size: str) -> str:
            t = sp.get(size, {}).get("teachers", {})
            return " / ".join(f"{v['ratio']:.1f}x ({k})" for k, v in t.items()) or "not measured"

        psnr = (f"{h['psnr_mean']:.2f} / {h['psnr_worst']:.2f} dB" if h.get("psnr_mean") is not None
                else "not measured")
        lines.append(f"| `pretrained/{name}` | {e['teacher']} | `{e['recipe']}`, {e['steps']} steps | {psnr} | "
                     f"{len(h.get('images', []))} | {ratio('1080p')} / {ratio('12MP')} |")
    return "\n".join(lines)


MARK_BEGIN, MARK_END = "<!-- pretrained-table -->", "<!-- /pretrained-table -->"


def update_readme(readme: Path, students: dict[str, Any]) -> None:
    """Replace what lies between the README's two markers (or after the first) with ``table``."""
    text = readme.read_text()
    if MARK_BEGIN not in text:
        raise SystemExit(f"{readme}: no {MARK_BEGIN} line to put the table under")
    head, rest = text.split(MARK_BEGIN, 1)
    tail = rest.split(MARK_END, 1)[1] if MARK_END in rest else rest
    readme.write_text(f"{head}{MARK_BEGIN}\n{table(students)}\n{MARK_END}{tail}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("add", help="write pretrained/<name>.pt from a training checkpoint, record it in the manifest")
    a.add_argument("name")
    a.add_argument("--checkpoint", required=True, help="a checkpoint written by hdr-distill train")
    a.add_argument("--recipe", required=True, help="the experiment that trained it, e.g. local_laplacian/photos_detail")
    a.add_argument("--teacher-config", required=True, help="conf/teacher/<name>.yaml it was distilled from")
    a.add_argument("--report", help="summary.json of hdr-distill report on it")
    a.add_argument("--bench", help="bench.json of hdr-distill bench on it")
    a.add_argument("--notes", default="")
    sub.add_parser("list", help="the shipped students and their held-out numbers")
    t = sub.add_parser("table", help="print the README's table of shipped students (--readme: write it there)")
    t.add_argument("--readme", help="README.md whose <!-- pretrained-table --> section to rewrite")
    args = p.parse_args(argv)
    if args.cmd == "add":
        e = add(args.name, args.checkpoint, args.recipe, args.teacher_config, args.report, args.bench, notes=args.notes)
        print(json.dumps(e, indent=1))
    elif args.cmd == "table":
        if args.readme:
            update_readme(Path(args.readme), manifest())
        print(table(manifest()))
    else:
        for n, e in manifest().items():
            print(f"{n:<18} teacher {e['teacher']:<16} recipe {e['recipe']:<32} {e['file']}")


if __name__ == "__main__":
    main()
