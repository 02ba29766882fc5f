"""The operator suite: distill every operator of teachers/suite.py under one budget, score it, time it, one table.

    python -m benchmarks.operator_suite --steps 2000 --out runs/suite [--operators clahe,unsharp]
        [--device cpu|cuda] [--threads 2] [--data auto] [--max-side 1024] [train overrides ...]

For each operator ``<op>`` of ``teachers.suite.SUITE`` (or of ``--operators``), as a user would run it:
  1. distill, with the default recipe (conf/student/hdrnet.yaml, conf/train/default.yaml) and the same number
     of steps for every operator, its wall time measured around the command:
         hdr-distill train teacher=python teacher.fn=teachers.suite:<op> train.steps=N data=<data>
             device=<device> hydra.run.dir=OUT/<op>/train
  2. score it on the data's held-out photos (``data.val``, shrunk to --max-side): PSNR mean and worst, SSIM,
     CIEDE2000, and the do-nothing baseline beside them (the input itself against the teacher):
         hdr-distill report checkpoint=OUT/<op>/train/checkpoints/last.pt out_dir=OUT/<op>/report
  3. time the teacher (the operator itself) against the fused student at --bench-size: interleaved, medians,
     both on --threads CPU threads, with the functions ``hdr-distill bench`` uses
     (``distill.eval.report_speed.short_bench``; ``hdr-distill bench`` itself looks teachers up by their
     conf/teacher name, which a Python function has not). The timing is on the CPU even with --device cuda.
After each operator OUT/suite.json and OUT/suite.md are rewritten: a row per operator (held-out PSNR mean and
worst, do-nothing PSNR, SSIM, CIEDE2000, teacher ms, student ms, ratio, distillation wall time) and the
suite's mean. Resumable: an operator whose row exists is skipped; one whose training finished is not trained
again (an interrupted training continues from its last checkpoint, ``train.resume=true``). A folder whose rows
were made with other settings (steps, data, sizes, threads) is refused: use another --out, or --redo.

``--data auto`` is ``photos_leaves`` when .cache/photos holds the photo set (``make photos``), else
``embedded_leaves`` (the photos inside scikit-image and dead-leaves images). Arguments that are not flags are
Hydra overrides handed to every ``train`` (``train.num_workers=1``, ``data.pairs.crop_size=128``); they are
recorded in the settings, since they change the recipe.

Cost (estimated, 2 idle cores, 2000 steps): about 10-12 min per operator (training ~8, report ~2, timing ~1),
L0 smoothing ~30 (0.2-0.5 s per 256 px crop across a pool of ~4000 crops): 2-2.5 h for the ten. The pair cache
(``data.pairs.cache_dir``, default .cache/pairs) keeps each operator's crop pool, ~3 GB of float16 per operator;
``data.pairs.cache_dir=null`` trades that disk for recomputing the teacher on every visit.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from benchmarks._cli import comma_list, parser

ROOT = Path(__file__).resolve().parents[1]
FORMAT = "hdr-distill-operator-suite/1"
PSNR_TARGET = 33.0  # dB held out: issue 27's bar for the default recipe
# settings that make two rows comparable; a folder's rows must all share them
SETTING_KEYS = ("steps", "data", "device", "max_side", "bench_size", "threads", "overrides")


# ---- pure parts: settings, rows, the table, resuming ------------------------------------------------------

def choose_data(data: str, root: Path = ROOT) -> str:
    """``auto`` -> ``photos_leaves`` when ``root/.cache/photos`` holds images, else ``embedded_leaves``."""
    if data != "auto":
        return data
    photos = root / ".cache" / "photos"
    has = photos.is_dir() and any(p.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff")
                                  for p in photos.iterdir())
    return "photos_leaves" if has else "embedded_leaves"


def train_command(op: str, steps: int, data: str, device: str, run_dir: Path,
                  overrides: Sequence[str] = (), resume: bool = True) -> list[str]:
    """``hdr-distill train`` of one suite operator with the default recipe (only steps, data and device set).
    ``resume``: continue from the folder's last checkpoint if it has one; else replace whatever it holds."""
    again = ["train.resume=true"] if resume else ["train.resume=false", "train.overwrite=true"]
    return [sys.executable, "-m", "distill.cli", "train", "teacher=python", f"teacher.fn=teachers.suite:{op}",
            f"train.steps={steps}", f"data={data}", f"device={device}", *again,
            "train.progress=false", f"hydra.run.dir={run_dir}", *overrides]


def train_plan(op_dir: Path, settings: Mapping[str, Any]) -> str:
    """What to do with ``OUT/<op>/train``: ``"done"`` (finished with these settings: reuse it), ``"resume"``
    (started with these settings, interrupted: continue) or ``"fresh"`` (nothing there, or other settings:
    train from step 0 over it; the training loop's own resume check compares data and student, not steps)."""
    started = op_dir / "train_settings.json"
    if not started.exists() or json.loads(started.read_text()) != dict(settings):
        return "fresh"
    done = op_dir / "train" / "summary.json"
    if done.exists() and (op_dir / "train" / "checkpoints" / "last.pt").exists() and \
            json.loads(done.read_text()).get("steps") == settings["steps"]:
        return "done"
    return "resume"


def report_command(checkpoint: Path, out_dir: Path, max_side: int | None, threads: int, lpips: bool) -> list[str]:
    """``hdr-distill report`` on the checkpoint's own held-out set (``config.data.val``)."""
    return [sys.executable, "-m", "distill.cli", "report", f"checkpoint={checkpoint}", f"out_dir={out_dir}",
            f"max_side={'null' if max_side is None else max_side}", f"lpips={str(lpips).lower()}",
            f"threads={threads}", f"hydra.run.dir={out_dir}"]


def _num(v) -> float | None:
    """summary.json numbers: floats, None, or the strings "inf" / "-inf"."""
    if v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def make_row(op: str, report: Mapping[str, Any], speed: Mapping[str, Any] | None, train_summary: Mapping[str, Any],
             distill_wall_s: float, library: str = "", reference: str = "") -> dict[str, Any]:
    """One table row from the report's summary.json, the timing's speed summary and the training summary."""
    m = report.get("metrics") or {}

    def stat(metric: str, which: str) -> float | None:
        return _num((m.get(metric) or {}).get(which))

    head = (speed or {}).get("headline") or {}
    rows = [r for r in (speed or {}).get("rows") or [] if r.get("size") == head.get("size")]
    sp = rows[0] if rows else {}
    return {
        "operator": op, "library": library, "reference": reference,
        "psnr_mean": stat("psnr", "mean"), "psnr_worst": stat("psnr", "worst"),
        "psnr_worst_image": (report.get("headline") or {}).get("psnr_worst_image"),
        "baseline_psnr_mean": stat("psnr_input", "mean"), "baseline_psnr_worst": stat("psnr_input", "worst"),
        "ssim_mean": stat("ssim", "mean"), "ciede2000_mean": stat("ciede2000_mean", "mean"),
        "images": (report.get("images") or {}).get("count"),
        "teacher_ms": _num(sp.get("teacher_ms")), "student_ms": _num(sp.get("student_ms")),
        "student_method": sp.get("student_method"), "speedup": _num(sp.get("speedup")),
        "bench_size": sp.get("size"),
        "steps": train_summary.get("steps"), "train_loop_s": _num(train_summary.get("wall_time_s")),
        "distill_wall_s": round(float(distill_wall_s), 1),
        "resumed": train_summary.get("trained_steps_this_run") != train_summary.get("steps"),
        "val_psnr_db": _num(train_summary.get("val_psnr_db")),
        "checkpoint": train_summary.get("checkpoint"),
    }


def suite_stats(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The suite's means over operators, and how many reach the target."""
    def mean(key: str) -> float | None:
        vals = [r[key] for r in rows if r.get(key) is not None and math.isfinite(r[key])]
        return sum(vals) / len(vals) if vals else None

    psnrs = [r.get("psnr_mean") for r in rows if r.get("psnr_mean") is not None]
    return {"operators": len(rows), "psnr_mean": mean("psnr_mean"), "psnr_worst_mean": mean("psnr_worst"),
            "baseline_psnr_mean": mean("baseline_psnr_mean"), "ssim_mean": mean("ssim_mean"),
            "at_or_above_target": sum(p >= PSNR_TARGET for p in psnrs), "target_db": PSNR_TARGET,
            "beyond_baseline": sum(1 for r in rows if None not in (r.get("psnr_mean"), r.get("baseline_psnr_mean"))
                                   and r["psnr_mean"] > r["baseline_psnr_mean"])}


def _f(v, fmt: str = ".2f", none: str = "n/a") -> str:
    if v is None:
        return none
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return format(v, fmt)


COLUMNS = ["operator", "library", "PSNR mean", "PSNR worst", "do-nothing", "SSIM", "dE00", "teacher ms",
           "student ms", "ratio", "distill s"]


def table_lines(rows: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    out = []
    for r in rows:
        out.append([r["operator"], r.get("library") or "", _f(r.get("psnr_mean")), _f(r.get("psnr_worst")),
                    _f(r.get("baseline_psnr_mean")), _f(r.get("ssim_mean"), ".4f"), _f(r.get("ciede2000_mean")),
                    _f(r.get("teacher_ms"), ".1f"), _f(r.get("student_ms"), ".1f"),
                    _f(r.get("speedup"), ".1f") + ("x" if r.get("speedup") is not None else ""),
                    _f(r.get("distill_wall_s"), ".0f")])
    return out


def markdown(state: Mapping[str, Any]) -> str:
    """suite.md: the settings, the table, the suite's mean, the failures."""
    s, rows, st = state["settings"], list(state["rows"].values()), state.get("suite") or suite_stats(
        list(state["rows"].values()))
    lines = [
        "# Operator suite",
        "",
        f"Default recipe (conf/student/hdrnet.yaml, conf/train/default.yaml), **{s['steps']} steps** per operator, "
        f"data `{s['data']}`, trained on `{s['device']}`" + (f", overrides `{' '.join(s['overrides'])}`"
                                                             if s.get("overrides") else "") + ".",
        f"Held out: the data's `data.val` photos, shrunk to {s['max_side']} px. PSNR is display-referred, dB; "
        f"*do-nothing* is the input itself against the teacher. Speed: the operator itself vs the fused student "
        f"at {s['bench_size']}, {s['threads']} CPU threads, medians; *ratio* = teacher / student. "
        f"*distill s*: wall time of `hdr-distill train`.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
        *("| " + " | ".join(cells) + " |" for cells in table_lines(rows)),
        "",
        f"Suite mean PSNR {_f(st['psnr_mean'])} dB (do-nothing {_f(st['baseline_psnr_mean'])} dB) over "
        f"{st['operators']} operator{'s' if st['operators'] != 1 else ''}; {st['at_or_above_target']} of {st['operators']} at or above "
        f"{st['target_db']:g} dB; {st['beyond_baseline']} beyond doing nothing.",
    ]
    if state.get("failed"):
        lines += ["", "Failed (no row; rerun to retry):", *(f"- `{k}`: {v}" for k, v in state["failed"].items())]
    lines += ["", f"Generated by `{state.get('command') or 'python -m benchmarks.operator_suite'}`."]
    return "\n".join(lines) + "\n"


def text_table(rows: Sequence[Mapping[str, Any]]) -> str:
    body = [COLUMNS, *table_lines(rows)]
    widths = [max(len(r[i]) for r in body) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in body)


def load_state(out: Path, settings: Mapping[str, Any], redo: bool = False) -> dict[str, Any]:
    """OUT/suite.json, or a fresh state. Raises ``SystemExit`` when its rows were made with other settings."""
    path = out / "suite.json"
    fresh = {"format": FORMAT, "settings": dict(settings), "rows": {}, "failed": {}}
    if not path.exists():
        return fresh
    state = json.loads(path.read_text())
    if state.get("format") != FORMAT:
        raise SystemExit(f"operator_suite: {path} is not an operator-suite file (format {state.get('format')!r})")
    old = state.get("settings") or {}
    diff = [f"{k}: {old.get(k)!r} here, {settings.get(k)!r} now" for k in SETTING_KEYS if old.get(k) != settings.get(k)]
    if diff and state.get("rows"):
        if not redo:
            raise SystemExit(f"operator_suite: {path} holds rows made with other settings ({'; '.join(diff)}); "
                             f"they would not be comparable. Use another --out, or --redo to replace them")
        return fresh
    state["settings"] = dict(settings)
    state.setdefault("rows", {})
    state.setdefault("failed", {})
    return state


def pending(operators: Sequence[str], state: Mapping[str, Any]) -> list[str]:
    """The operators that have no row yet, in order."""
    return [op for op in operators if op not in state["rows"]]


def save_state(out: Path, state: dict[str, Any]) -> None:
    from distill.core.atomic import atomic_write_json, atomic_write_text

    state["suite"] = suite_stats(list(state["rows"].values()))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "suite.json", state)
    atomic_write_text(out / "suite.md", markdown(state))


# ---- the work: train, report, time ------------------------------------------------------------------------

def _run_logged(cmd: list[str], log: Path) -> float:
    """Run ``cmd`` from the repository root, output to ``log``; its wall time in s. Raises with the log's tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        f.write(" ".join(cmd[2:] if cmd[:2] == [sys.executable, "-m"] else cmd) + "\n\n")
        f.flush()
        rc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - t0
    if rc != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise RuntimeError(f"hdr-distill {cmd[3]} exited with status {rc} (log {log}):\n{tail}")
    return wall


def time_operator(checkpoint: Path, size: str, threads: int, repeats: int, budget_s: float) -> dict[str, Any]:
    """The checkpoint's teacher vs its fused student at ``size`` on ``threads`` threads: speed_summary's dict."""
    import cv2
    import torch

    from distill.eval.report_speed import short_bench, speed_summary
    from distill.train.checkpoint import build_student, build_teacher, load_checkpoint

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    ckpt = load_checkpoint(checkpoint)
    model, teacher = build_student(ckpt), build_teacher(ckpt)
    bench = short_bench(teacher, model, size, repeats=repeats, warmup=1, budget_s=budget_s)
    return speed_summary(bench, ckpt.get("teacher") or {}, f"operator_suite: {size}, {threads} threads")


def run_operator(op: str, settings: Mapping[str, Any], out: Path, opts: Mapping[str, Any]) -> dict[str, Any]:
    """Distill, score and time one operator; its row."""
    from teachers.suite import LIBRARY, REFERENCE

    run_dir, rep_dir = out / op / "train", out / op / "report"
    ckpt = run_dir / "checkpoints" / "last.pt"
    wall_path = out / op / "distill_wall_s.json"
    plan = train_plan(out / op, settings)
    if plan == "done":
        print(f"[{op}] training already finished ({ckpt}); not trained again", flush=True)
        wall = json.loads(wall_path.read_text())["wall_s"] if wall_path.exists() else float("nan")
    else:
        (out / op).mkdir(parents=True, exist_ok=True)
        (out / op / "train_settings.json").write_text(json.dumps(dict(settings)))
        cmd = train_command(op, settings["steps"], settings["data"], settings["device"], run_dir,
                            settings["overrides"], resume=plan == "resume")
        print(f"[{op}] distilling: hdr-distill {' '.join(cmd[3:])}", flush=True)
        wall = _run_logged(cmd, out / op / "train.log")
        wall_path.write_text(json.dumps({"wall_s": wall}))
    done = json.loads((run_dir / "summary.json").read_text())
    print(f"[{op}] trained {done['steps']} steps in {wall:.0f} s (held-out PSNR during training "
          f"{done.get('val_psnr_db')} dB); scoring on held-out photos", flush=True)
    _run_logged(report_command(ckpt, rep_dir, settings["max_side"], settings["threads"], opts["lpips"]),
                out / op / "report.log")
    report = json.loads((rep_dir / "summary.json").read_text())
    print(f"[{op}] timing teacher vs student at {settings['bench_size']}", flush=True)
    speed = time_operator(ckpt, settings["bench_size"], settings["threads"], opts["repeats"], opts["budget_s"])
    return make_row(op, report, speed, done, wall, LIBRARY.get(op, ""), REFERENCE.get(op, ""))


def run_suite(operators: Sequence[str], settings: Mapping[str, Any], out: Path, opts: Mapping[str, Any],
              redo: bool = False, command: str | None = None,
              work: Callable[..., dict[str, Any]] = run_operator) -> dict[str, Any]:
    """Every operator without a row: ``work(op, settings, out, opts)`` -> row; state saved after each."""
    state = load_state(out, settings, redo)
    state["command"] = command
    todo = pending(operators, state)
    skipped = [op for op in operators if op not in todo]
    if skipped:
        print(f"already measured (skipped): {', '.join(skipped)}", flush=True)
    for op in todo:
        try:
            state["rows"][op] = work(op, settings, out, opts)
            state["failed"].pop(op, None)
        except Exception as e:  # noqa: BLE001 - one operator's failure is recorded, the others still run
            print(f"[{op}] FAILED: {e}", flush=True)
            state["failed"][op] = str(e).splitlines()[0] if str(e) else type(e).__name__
        save_state(out, state)
    if not todo:
        save_state(out, state)
    return state


def main(argv: list[str] | None = None) -> int:
    from teachers.suite import SUITE

    ap = parser("benchmarks.operator_suite", __doc__)
    ap.add_argument("overrides", nargs="*", metavar="override",
                    help="Hydra overrides for every `hdr-distill train` (e.g. train.num_workers=1)")
    ap.add_argument("--steps", type=int, default=2000, help="training steps per operator (the same for all)")
    ap.add_argument("--out", type=Path, default=Path("runs/operator_suite"), help="output folder")
    ap.add_argument("--operators", type=comma_list(), default=None,
                    help=f"comma-separated subset of: {','.join(SUITE)} (default: all)")
    ap.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu", help="training device")
    ap.add_argument("--data", default="auto", help="conf/data option, or auto (photos_leaves if .cache/photos)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for scoring and for timing both sides")
    ap.add_argument("--max-side", type=int, default=1024, help="held-out images shrunk to this longest side")
    ap.add_argument("--bench-size", default="1080p", help="image size of the timing (1080p, 12MP, megapixels)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per method (at least 3)")
    ap.add_argument("--budget-s", type=float, default=8.0, help="stop repeating a method after this many seconds")
    ap.add_argument("--lpips", action="store_true", help="also LPIPS in the reports (needs AlexNet weights)")
    ap.add_argument("--redo", action="store_true", help="replace rows made with other settings")
    args = ap.parse_intermixed_args(argv)
    ops = list(args.operators or SUITE)
    unknown = [o for o in ops if o not in SUITE]
    if unknown:
        ap.error(f"--operators: unknown {', '.join(unknown)} (known: {', '.join(SUITE)})")
    if args.steps < 1 or args.threads < 1 or args.repeats < 1:
        ap.error("--steps, --threads and --repeats must be >= 1")
    out = args.out if args.out.is_absolute() else Path.cwd() / args.out
    settings = {"steps": args.steps, "data": choose_data(args.data), "device": args.device,
                "max_side": args.max_side, "bench_size": args.bench_size, "threads": args.threads,
                "overrides": list(args.overrides)}
    opts = {"repeats": args.repeats, "budget_s": args.budget_s, "lpips": args.lpips}
    command = "python -m benchmarks.operator_suite " + " ".join(argv if argv is not None else sys.argv[1:])
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    t0 = time.perf_counter()
    state = run_suite(ops, settings, out, opts, args.redo, command)
    rows = [state["rows"][o] for o in ops if o in state["rows"]]
    st = suite_stats(rows)
    print(f"\n{text_table(rows)}\n\nsuite mean PSNR {_f(st['psnr_mean'])} dB (do-nothing "
          f"{_f(st['baseline_psnr_mean'])} dB), {st['at_or_above_target']}/{st['operators']} >= {PSNR_TARGET:g} dB; "
          f"{settings['steps']} steps, data {settings['data']}; {time.perf_counter() - t0:.0f} s this run\n"
          f"wrote {out / 'suite.json'} and {out / 'suite.md'}", flush=True)
    failed = [o for o in ops if o in state["failed"]]
    if failed:
        print(f"failed: {', '.join(failed)} (rerun the same command to retry them)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
