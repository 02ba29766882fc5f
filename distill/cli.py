"""The ``hdr-distill`` command: one Hydra app per subcommand, sharing the config groups in conf/.

    hdr-distill train  teacher=local_laplacian train.steps=500
    hdr-distill bench  checkpoint=outputs/.../checkpoints/last.pt
    hdr-distill report checkpoint=...
    hdr-distill export checkpoint=... format=onnx
    hdr-distill apply  checkpoint=... input=photos/ output=out/

Everything after the subcommand is passed to Hydra (overrides, --multirun, --help, --cfg job, ...).

Errors: an expected one (the project's own error classes, a missing or unreadable file, a bad value, a bad
override or config) prints one line, ``hdr-distill <command>: error: <message>``, and exits with status 2;
Ctrl-C prints ``hdr-distill <command>: interrupted (Ctrl-C)`` and exits with 130. Anything else is a bug and
shows its traceback (status 1). ``HYDRA_FULL_ERROR=1`` shows the full traceback of every error.
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
        "the three common uses:\n"
        "  hdr-distill train teacher=python teacher.fn=my_pkg.ops:my_filter train=fast   (distill your operator)\n"
        "  hdr-distill bench checkpoint=pretrained/local_laplacian teachers=[local_laplacian] sizes=[1080p]  (speed)\n"
        "  hdr-distill report checkpoint=pretrained/local_laplacian                      (fidelity report)\n\n"
        "more:\n"
        "  hdr-distill train experiment=local_laplacian/demo        (recipes: conf/experiment/<teacher>/<recipe>)\n"
        "  hdr-distill train --multirun experiment=reinhard/embedded,mantiuk/embedded\n"
        "  hdr-distill apply checkpoint=pretrained/local_laplacian input=photos/ output=out/\n"
        "  hdr-distill <command> --help      (that command's full config)\n"
    )


# The project's own error classes ("module:Class"): a refusal with a message written for the user. Looked up
# in sys.modules only: an error can only be of a class whose module was imported.
PROJECT_ERRORS = (
    "distill.data.validate:ConfigError", "distill.data.validate:TeacherValidationError",
    "distill.data.pairs:PairError", "distill.train.checkpoint:CheckpointError", "distill.core.io:ImageError",
    "distill.eval.report:ReportError", "distill.deploy.export:ExportError", "teachers.command:CommandTeacherError",
    "teachers.python:PythonTeacherError", "students.fused:FusedUnavailable", "students.build:BuildError",
)
# Builtin classes whose messages in this project are refusals too (a bad value, a missing file, a bad import
# string); a bug that raises one of these prints one line as well: HYDRA_FULL_ERROR=1 shows where.
EXPECTED_BUILTINS = (ValueError, OSError, ImportError)
_WORKER_TB = "Original Traceback (most recent call last):"


def _project_error(e: BaseException) -> bool:
    for spec in PROJECT_ERRORS:
        mod, cls = spec.split(":")
        klass = getattr(sys.modules.get(mod), cls, None)
        if klass is not None and isinstance(e, klass):
            return True
    return False


def _hydra_config_error(e: BaseException) -> bool:
    """A bad override, an unknown config option, a missing mandatory value, a bad _target_ or argument."""
    try:
        from hydra.errors import CompactHydraException, InstantiationException
        from omegaconf.errors import OmegaConfBaseException
    except ImportError:  # pragma: no cover - hydra is a dependency
        return False
    if isinstance(e, InstantiationException):
        cause = e.__cause__
        return cause is None or isinstance(cause, (TypeError, *EXPECTED_BUILTINS)) or _expected(cause)
    return isinstance(e, (CompactHydraException, OmegaConfBaseException))


def _expected(e: BaseException) -> bool:
    return _project_error(e) or isinstance(e, EXPECTED_BUILTINS) or _hydra_config_error(e)


def error_line(e: BaseException) -> str:
    """The message of an expected error, as one line (the first line of a multi-line one, then its details)."""
    from hydra.errors import InstantiationException

    msg = str(e)
    if _WORKER_TB in msg:
        # A DataLoader worker's error, re-raised in the main process with the worker's traceback in the
        # message: keep the original message (the last "pkg.Class: message" line and what follows).
        tail = msg.split(_WORKER_TB, 1)[1]
        name = type(e).__name__
        lines = tail.splitlines()
        for i in range(len(lines) - 1, -1, -1):
            head, sep, rest = lines[i].partition(": ")
            if sep and head.split(".")[-1] == name:
                msg = "\n".join([rest, *lines[i + 1:]])
                break
    cause = e.__cause__
    if isinstance(e, InstantiationException) and cause is not None and (
            _project_error(cause) or isinstance(cause, EXPECTED_BUILTINS)):
        # the constructor's own message says what is wrong; Hydra's wrapper adds only where
        key = next((ln.split(":", 1)[1].strip() for ln in msg.splitlines() if ln.strip().startswith("full_key:")), "")
        return error_line(cause) + (f" (building {key})" if key else "")
    elif isinstance(e, FileNotFoundError) and not msg.strip():
        msg = f"file not found: {e.filename}"
    try:
        from omegaconf.errors import OmegaConfBaseException

        cause = e.__cause__
        if isinstance(cause, OmegaConfBaseException) and str(cause).strip():
            msg += "\n" + str(cause).splitlines()[0]
    except ImportError:  # pragma: no cover
        pass
    # Hydra's and OmegaConf's messages spread one thought over lines ("full_key: ...", "object_type=..."):
    # join them. The project's multi-line messages (a command's stderr tail) keep their details below.
    lines = [ln.strip() for ln in msg.strip().splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    if _project_error(e):
        return "\n".join([lines[0], *("  " + ln for ln in lines[1:])])
    if any(ln.startswith("Config search path:") for ln in lines):
        lines = lines[:next(i for i, ln in enumerate(lines) if ln.startswith("Config search path:"))]
    kept = []
    for ln in lines:
        if ln.startswith("object_type="):
            continue
        if ln.startswith("full_key:"):
            key = ln.split(":", 1)[1].strip()
            if not key or key in " ".join(kept):
                continue
            ln = f"(at {key})"
        kept.append(ln)
    lines = kept
    return " ".join(ln if ln.endswith((".", ":", ";")) or i == len(lines) - 1 else ln + ";"
                    for i, ln in enumerate(lines)) if len(lines) > 1 else lines[0]


class _Carried(BaseException):
    """An error of the task, carried past Hydra's job runner (which catches ``Exception``) to ``_run``."""

    def __init__(self, error: Exception):
        super().__init__(error)
        self.error = error


def _multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:  # noqa: BLE001 - no Hydra config: not a sweep
        return False


def _run(command: str) -> None:
    import hydra
    from omegaconf import DictConfig

    config_name, target, _ = COMMANDS[command]
    mod_name, fn_name = target.split(":")

    @hydra.main(version_base="1.3", config_path=CONF_DIR, config_name=config_name)
    def app(cfg: DictConfig):
        fn = getattr(importlib.import_module(mod_name), fn_name)
        try:
            return fn(cfg)
        except Exception as e:
            if _multirun():
                raise  # Hydra names the failing job ("Error executing job with overrides: ...")
            raise _Carried(e) from e  # past Hydra's job runner, which would print a line of its own

    full = os.environ.get("HYDRA_FULL_ERROR") == "1"
    # Hydra prints its own (trimmed) traceback for any error unless HYDRA_FULL_ERROR=1; with it set, every
    # error reaches us and is reported here, in one line or, for a bug, with its traceback.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        try:
            app()
        except _Carried as c:
            c.error.__suppress_context__ = True  # keeps its __cause__ (``from None`` would clear it)
            raise c.error
    except KeyboardInterrupt:
        if full:
            raise
        print(f"hdr-distill {command}: interrupted (Ctrl-C)", file=sys.stderr)
        raise SystemExit(130) from None
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - the one place that turns errors into exit statuses
        if full:
            raise
        if not _expected(e):
            import traceback

            traceback.print_exc()
            print(f"hdr-distill {command}: internal error (a bug; the traceback is above): {type(e).__name__}: {e}",
                  file=sys.stderr)
            raise SystemExit(1) from None
        print(f"hdr-distill {command}: error: {error_line(e)}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        os.environ["HYDRA_FULL_ERROR"] = "1" if full else "0"


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
    if command in ("train", "pairs"):
        # DataLoader workers run teachers beside torch's threads; spinning OpenMP waits then cost 10-100x.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.argv = [f"hdr-distill {command}"] + argv[1:]
    _run(command)


if __name__ == "__main__":
    main()
