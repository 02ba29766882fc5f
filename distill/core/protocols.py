"""The two protocols everything else is built on.

Teacher: a callable ``teacher(images[B,3,H,W]) -> [B,3,H,W]`` (float32 torch tensors) that declares the
colour space it expects and returns, plus its name and parameters (its *identity*; checkpoints store it so
that a student is never silently used with another teacher).

Colour spaces (the value of ``input_space`` / ``output_space``):
  * ``"srgb"``   display-referred, sRGB-encoded, values in [0, 1].
  * ``"linear"`` scene-linear RGB, LDR, values in [0, 1].
  * ``"hdr"``    scene-linear RGB radiance, values >= 0, normalised per image to a maximum of 1 by
                 ``distill.core.color.to_space`` (HDR teachers are exposure-invariant, so this changes nothing for
                 them; it gives the student a fixed range).

The pair stream converts each linear source image into ``teacher.input_space`` before handing it to the
teacher, and the student sees exactly the same tensor, so teacher and student always agree on the input.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

COLOR_SPACES = ("srgb", "linear", "hdr")


@runtime_checkable
class Teacher(Protocol):
    name: str
    input_space: str
    output_space: str

    def params(self) -> dict[str, Any]: ...

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


def teacher_identity(teacher: Teacher) -> dict[str, Any]:
    """Name + parameters + colour spaces: what a checkpoint records about the teacher it learned from."""
    return {
        "name": teacher.name,
        "params": _jsonable(teacher.params()),
        "input_space": teacher.input_space,
        "output_space": teacher.output_space,
    }


def identity_key(identity: dict[str, Any]) -> str:
    """Stable short hash of a teacher identity (used in cache keys)."""
    blob = json.dumps(identity, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.generic,)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def check_images(images: torch.Tensor, who: str) -> None:
    """Validate a teacher/student input batch once, at the public boundary."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{who}: expected a torch.Tensor [B,3,H,W], got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{who}: expected shape [B,3,H,W], got {tuple(images.shape)}")
    if not torch.isfinite(images).all():
        raise ValueError(f"{who}: input contains NaN or Inf values")


class NumpyTeacher:
    """Adapter base: subclasses implement ``apply_np(img[H,W,3] float32) -> [H,W,3] float32``.

    ``__call__`` handles batching, torch <-> numpy, dtype, and input validation, so a teacher written with
    NumPy/OpenCV is a single method.
    """

    name: str = "numpy_teacher"
    input_space: str = "srgb"
    output_space: str = "srgb"

    def params(self) -> dict[str, Any]:
        return {}

    def apply_np(self, img: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images, f"teacher '{self.name}'")
        arr = images.detach().to("cpu", torch.float32).permute(0, 2, 3, 1).numpy()
        outs = []
        for img in arr:
            out = np.asarray(self.apply_np(np.ascontiguousarray(img)), dtype=np.float32)
            if out.shape != img.shape:
                raise ValueError(
                    f"teacher '{self.name}' returned shape {out.shape} for an input of shape {img.shape}"
                )
            outs.append(out)
        res = torch.from_numpy(np.stack(outs)).permute(0, 3, 1, 2).contiguous()
        return res.to(images.device)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params()})"
