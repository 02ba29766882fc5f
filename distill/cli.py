"""The ``hdr-distill`` command: one Hydra app per subcommand, sharing the config groups in conf/.

    hdr-distill train  teacher=local_laplacian train.steps=500
    hdr-distill bench  checkpoint=outputs/.../checkpoints/last.pt
    hdr-distill report checkpoint=...
    hdr-distill export checkpoint=... format=onnx
    hdr-distill apply  checkpoint=... input=photos/ output=out/

Everything after the subcommand is passed to Hydra (overrides, --multirun, --help, --cfg job, ...).
"""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")

# subcommand -> (primary config name, "module:function", one-line help)
COMMANDS = {
    "train": ("config", "distill.train.loop:train", "distill a teacher into a student (writes checkpoints, curves)"),
    "pairs": ("config", "distill.data.pregen:run", "run the teacher ahead of training into the pair cache (sharded)"),
    "bench": ("bench", "distill.eval.bench:run", "time student vs teachers at 1080p / 12 MP, peak memory, plot"),
    "report": ("report", "distill.eval.report:run", "fidelity report: PSNR, SSIM, CIEDE2000, LPIPS, pictures"),
    "export": ("export", "distill.deploy.export:run", "export a student to TorchScript / ONNX"),
    "apply": ("apply", "distill.deploy.apply:run", "run a trained student over a folder of images"),
}


def _groups() -> str:
    lines = []
    for group in sorted(p for p in Path(CONF_DIR).iterdir() if p.is_dir() and not p.name.startswith(("_", "hydra"))):
        opts = sorted(f.relative_to(group).with_suffix("").as_posix() for f in group.rglob("*.yaml"))
        lines.append(f"  {group.name + '/':<12} {', '.join(opts)}")
    return "\n".join(lines)


def usage() -> str:
    cmds = "\n".join(f"  {name:<8} {h}" for name, (_, _, h) in COMMANDS.items())
    return (
        "usage: hdr-distill <command> [key=value ...] [--multirun] [--help]\n\n"
        "Distill slow image operators into real-time bilateral-grid (HDRNet) students.\n\n"
        f"commands:\n{cmds}\n\n"
        f"config groups (choose with group=option, e.g. teacher=reinhard):\n{_groups()}\n\n"
        "examples:\n"
        "  hdr-distill train teacher=local_laplacian train=fast\n"
        "  hdr-distill train teacher=reinhard data=synthetic_hdr student=hdrnet_hdr\n"
        "  hdr-distill train --multirun teacher=reinhard,drago,mantiuk\n"
        "  hdr-distill train teacher=python teacher.fn=my_pkg.ops:my_filter\n"
        "  hdr-distill report checkpoint=outputs/train/<run>/checkpoints/last.pt\n"
        "  hdr-distill <command> --help      (that command's full config)\n"
    )


def _run(command: str) -> None:
    import hydra
    from omegaconf import DictConfig

    config_name, target, _ = COMMANDS[command]
    mod_name, fn_name = target.split(":")

    @hydra.main(version_base="1.3", config_path=CONF_DIR, config_name=config_name)
    def app(cfg: DictConfig):
        fn = getattr(importlib.import_module(mod_name), fn_name)
        return fn(cfg)

    app()


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return
    command = argv[0]
    if command not in COMMANDS:
        print(f"hdr-distill: unknown command '{command}'\n", file=sys.stderr)
        print(usage(), file=sys.stderr)
        raise SystemExit(2)
    os.environ.setdefault("HYDRA_FULL_ERROR", "0")
    if command in ("train", "pairs"):
        # DataLoader workers run teachers beside torch's threads; spinning OpenMP waits then cost 10-100x.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.argv = [f"hdr-distill {command}"] + argv[1:]
    _run(command)


if __name__ == "__main__":
    main()
