"""How the report writes values: printed numbers (``fmt``), JSON-safe values, the sort order of PSNRs."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

_DIGITS = {"psnr": 2, "ssim": 4, "ciede2000_mean": 2, "ciede2000_p95": 2, "lpips": 4, "speedup": 1, "ms": 1, "mp": 2, "mb": 0}


def fmt(kind: str, v: Any) -> str:
    """How the report prints a value of ``kind`` (a metric name, ``"speedup"``, ``"ms"``, ``"g"``...)."""
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    v = float(v)
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if kind == "g":
        return f"{v:g}"
    return f"{v:.{_DIGITS.get(kind, 3)}f}"


def json_safe(obj: Any) -> Any:
    """Replace non-finite floats so the JSON is valid: inf -> "inf", -inf -> "-inf", NaN -> None."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.generic,)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, Path):
        return str(obj)
    return obj


def metric_value(s: Mapping[str, Any], key: str) -> Any:
    """Walk a dotted path in the summary ("metrics.psnr.mean", "per_image.3.ssim")."""
    cur: Any = s
    for part in key.split("."):
        cur = cur[int(part)] if isinstance(cur, list) else cur[part]
    return cur


def sort_key(v: Any) -> float:
    """A JSON-safe PSNR as a number for sorting: "inf" last, None first."""
    if v == "inf":
        return math.inf
    return -math.inf if v is None else float(v)


def same(a: float, b: float) -> bool:
    """Two PSNRs of one image agree (to display precision, or both infinite)."""
    return a == b or (math.isfinite(a) and math.isfinite(b) and abs(a - b) < 1e-4)
