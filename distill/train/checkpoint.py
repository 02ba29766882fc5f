"""Checkpoints: weights + optimizer + step + resolved config + the teacher's identity, written atomically."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import torch

from distill.core.atomic import atomic_write

FORMAT = "hdr-distill-checkpoint/1"

# Modules that moved when distill/ was split by stage: configs saved before the split name the old paths.
_MOVED = {"color": "core", "io": "core", "atomic": "core", "protocols": "core", "sources": "data",
          "pairs": "data", "pregen": "data", "hdr_synth": "data", "dead_leaves": "data", "photo_set": "data",
          "validate": "data", "dist": "train", "checkpoint": "train", "metrics": "eval", "bench": "eval",
          "report": "eval", "plots": "eval", "export": "deploy", "apply": "deploy"}
_OLD_TARGET = re.compile(r"^distill\.(" + "|".join(_MOVED) + r")\.")


def upgrade_targets(node: Any) -> Any:
    """Rewrite ``_target_`` paths of the flat distill/ layout (``distill.sources.X``) to the staged one."""
    if isinstance(node, dict):
        return {k: (_OLD_TARGET.sub(lambda m: f"distill.{_MOVED[m.group(1)]}.{m.group(1)}.", v)
                    if k == "_target_" and isinstance(v, str) else upgrade_targets(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [upgrade_targets(v) for v in node]
    return node


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable, or belongs to another teacher."""


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` via a temp file in the same folder and an atomic rename.

    An interrupted write leaves the previous checkpoint intact.
    """
    return atomic_write(path, lambda tmp: torch.save({"format": FORMAT, **payload}, tmp))


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint; ``pretrained/<name>`` names a shipped student (distill.train.pretrained)."""
    from distill.train.pretrained import resolve

    path = resolve(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an hdr-distill checkpoint (expected format {FORMAT})")
    if ckpt.get("weights_dtype") == "float16":  # a slim pretrained file: computed in float32 as trained
        ckpt["state_dict"] = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    if isinstance(ckpt.get("config"), dict):
        ckpt["config"] = upgrade_targets(ckpt["config"])
    ckpt["path"] = str(path)
    return ckpt


def check_teacher(ckpt: dict[str, Any], identity: dict[str, Any], where: str = "") -> None:
    """Refuse to pair a student with a teacher other than the one it was distilled from."""
    theirs = ckpt.get("teacher", {})
    if theirs != identity:
        diff = []
        for k in sorted(set(theirs) | set(identity)):
            if theirs.get(k) != identity.get(k):
                diff.append(f"{k}: checkpoint has {theirs.get(k)!r}, current teacher has {identity.get(k)!r}")
        raise CheckpointError(
            f"checkpoint {ckpt.get('path', where)} was distilled from teacher '{theirs.get('name')}', "
            f"not from the current teacher '{identity.get('name')}'. Differences: " + "; ".join(diff)
        )


def build_student(ckpt: dict[str, Any]) -> torch.nn.Module:
    """Rebuild the student network from a checkpoint and load its weights (eval mode).

    A checkpoint that lacks weights or a student config, or whose weights do not fit the student its config
    describes, is refused in one line (``CheckpointError``) instead of a ``KeyError`` or torch's list of every
    mismatched tensor; so is a removed student option set to a non-default value (``_student_config``)."""
    from hydra.utils import instantiate

    where = ckpt.get("path", "the checkpoint")
    if not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{where} has no 'state_dict' (the student's weights): not a trained student's "
                              f"checkpoint, or a damaged one")
    student_cfg = (ckpt.get("config") or {}).get("student")
    if not isinstance(student_cfg, dict):
        raise CheckpointError(f"{where} has no config.student: it does not say which student its weights are for")
    student = instantiate(_student_config(ckpt))
    try:
        student.load_state_dict(ckpt["state_dict"])
        return student.eval()
    except RuntimeError as e:
        if "size mismatch" not in str(e) and "Missing key" not in str(e) and "Unexpected key" not in str(e):
            raise
    shapes = {k: tuple(v.shape) for k, v in student.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in ckpt["state_dict"].items() if hasattr(v, "shape")}
    differ = [k for k in shapes if k in theirs and shapes[k] != theirs[k]]
    missing, extra = sorted(set(shapes) - set(theirs)), sorted(set(theirs) - set(shapes))
    arch = ", ".join(f"{k}={student_cfg[k]}" for k in ("width", "grid_size", "lowres", "luma_bins") if k in student_cfg)
    if differ:
        k = differ[0]
        detail = (f"'{k}' is {list(theirs[k])} in the weights but {list(shapes[k])} in the student its config "
                  f"describes ({arch}); {len(differ)} tensor(s) differ")
    else:
        detail = (f"{len(missing)} tensor(s) missing ({', '.join(missing[:3])}) and {len(extra)} unexpected "
                  f"({', '.join(extra[:3])}) for the student its config describes ({arch})")
    raise CheckpointError(f"{where}: its weights do not fit its student config: {detail}. The checkpoint was "
                          f"edited or assembled from two runs")


def _student_config(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's student config. A student option that was removed since (students.options.REMOVED) is
    dropped when the checkpoint has it at its default, and refused with a CheckpointError naming it and the
    commit that had it otherwise."""
    from students.options import RemovedOption, drop_removed

    cfg = ckpt["config"]["student"]
    if str(cfg.get("_target_", "")).startswith("students."):
        try:
            cfg = drop_removed(cfg)
        except RemovedOption as e:
            raise CheckpointError(f"checkpoint {ckpt.get('path', '')}: {e}") from e
    return cfg


def build_teacher(ckpt: dict[str, Any]):
    from hydra.utils import instantiate

    return instantiate(ckpt["config"]["teacher"])


def file_sha256(path: str | os.PathLike) -> str:
    from distill.train.pretrained import resolve

    path = resolve(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
