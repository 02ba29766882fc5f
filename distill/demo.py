"""``make demo``: distill the local Laplacian teacher on the embedded photos, time it, write a report.

Runs the same commands a user would type (printed as it goes), in ``demo_out/``. Interrupted? Run it again:
training resumes from its last checkpoint.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

BIN = str(Path(sys.executable).with_name("hdr-distill"))


def step(title: str, args: list[str]) -> None:
    print(f"\n=== {title}\n$ hdr-distill {' '.join(shlex.quote(a) for a in args)}", flush=True)
    r = subprocess.run([BIN, *args])
    if r.returncode != 0:
        raise SystemExit(f"demo: step '{title}' failed with exit code {r.returncode}")


def _set_aside_if_other_settings(train_dir: Path, ckpt: Path) -> None:
    """A demo_out/train from an older demo config cannot be resumed: move it aside (never delete it)."""
    if not ckpt.exists():
        return
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from distill.train.checkpoint import load_checkpoint
    from distill.cli import CONF_DIR
    from distill.train.loop import config_mismatch

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["experiment=local_laplacian/demo", f"hydra.run.dir={train_dir}"])
    saved = load_checkpoint(ckpt).get("config", {})
    current = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("data", "student")}
    diffs = config_mismatch(saved, current)
    if diffs:
        aside = train_dir.with_name(f"{train_dir.name}.previous-{time.strftime('%Y%m%d-%H%M%S')}")
        train_dir.rename(aside)
        print(f"demo: {train_dir} was trained with other settings ({'; '.join(diffs[:3])}); moved it to {aside} "
              "and training anew", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the demo experiment's)")
    a = p.parse_args(argv)
    out = Path(a.out).resolve()
    t0 = time.perf_counter()
    train_dir, bench_dir, report_dir = out / "train", out / "bench", out / "report"
    ckpt = train_dir / "checkpoints" / "last.pt"

    extra = [f"train.steps={a.steps}"] if a.steps else []
    _set_aside_if_other_settings(train_dir, ckpt)
    step("1/3 distill the local Laplacian teacher (detail enhancement) on the embedded photos",
         ["train", "experiment=local_laplacian/demo", "train.resume=true", f"hydra.run.dir={train_dir}", *extra])
    step("2/3 time student vs teacher at 1080p (same process, same threads)",
         ["bench", f"checkpoint={ckpt}", "teachers=[local_laplacian]", "sizes=[1080p]", "memory=false",
          "repeats=10", f"hydra.run.dir={bench_dir}"])
    step("3/3 fidelity report on the held-out photos",
         ["report", f"checkpoint={ckpt}", f"bench={bench_dir / 'bench.json'}", f"out_dir={report_dir}",
          f"hydra.run.dir={report_dir}"])

    summary = json.loads((train_dir / "summary.json").read_text())
    bench = json.loads((bench_dir / "bench.json").read_text())
    times = {r["method"]: r["median_ms"] for r in bench["results"]}
    fused = next((v for k, v in times.items() if k.startswith("student (fused")), None)
    teacher_ms = times.get("local_laplacian")
    print("\n=== demo summary")
    print(f"  held-out PSNR        {summary['val_psnr_db']:.2f} dB on {', '.join(summary['val_images'])}"
          f" after {summary['steps']} steps")
    if fused and teacher_ms:
        print(f"  1080p, {bench['machine']['threads']} threads   teacher {teacher_ms:.1f} ms, student {fused:.1f} ms"
              f" -> {teacher_ms / fused:.1f}x faster")
    print(f"  report               {report_dir / 'report.html'}")
    print(f"  checkpoint           {ckpt}")
    print(f"  demo wall time       {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
