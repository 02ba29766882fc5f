"""Report stage 2, speed: the bench row that belongs to the checkpoint's teacher, matched by the teacher
identity bench.json records (never by rebuilding configs), and the speed-ups; or a short bench run here."""
from __future__ import annotations

from typing import Any, Mapping

import torch

from distill.core.protocols import teacher_identity


def teacher_methods(bench: Mapping[str, Any]) -> list[str]:
    return list(dict.fromkeys(r["method"] for r in bench["results"] if not r["method"].startswith("student")))


def match_teacher(bench: Mapping[str, Any], mine: Mapping[str, Any]) -> tuple[str | None, str]:
    """Which timed teacher is the checkpoint's: (method name or None, how it was matched or why not).

    ``mine`` is the identity the checkpoint recorded; a bench row matches only when bench.json recorded the
    very same identity for it.
    """
    methods = teacher_methods(bench)
    name = mine.get("name")
    known = bench.get("teacher_identity")
    if not isinstance(known, Mapping) or not known:
        return None, (f"this bench.json records no teacher identities (written by an older `hdr-distill bench`), "
                      f"so its teacher rows ({', '.join(methods) or 'none'}) cannot be matched to the checkpoint's "
                      f"teacher '{name}'; rerun `hdr-distill bench`")
    for m in methods:
        if known.get(m) == mine:
            return m, "the checkpoint's own teacher: same teacher and parameters (identity recorded by bench)"
    for m in methods:
        ident = known.get(m)
        if isinstance(ident, Mapping) and ident.get("name") == name:
            theirs, ours = ident.get("params") or {}, mine.get("params") or {}
            diff = [k for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)]
            return None, (f"bench timed '{m}', the same operator with other settings than the checkpoint's teacher "
                          f"({', '.join(diff) or 'colour spaces'}): not this teacher")
    return None, f"bench timed {', '.join(methods) or 'no teachers'}; none is the checkpoint's teacher '{name}'"


def speed_summary(bench: Mapping[str, Any], mine: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Teacher vs fastest student per image size, and the speed-ups, from a bench.json dict.

    ``mine``: the checkpoint's teacher identity; rows of other teachers are never used.
    """
    method, match = match_teacher(bench, mine)
    results = bench["results"]
    rows = []
    for size in dict.fromkeys(r["size"] for r in results):
        at = [r for r in results if r["size"] == size]
        students = [r for r in at if r["method"].startswith("student")]
        teach = [r for r in at if method is not None and r["method"] == method]
        if not students or not teach:
            continue
        best = min(students, key=lambda r: r["median_ms"])
        t = teach[0]
        mem = bench.get("memory") or {}
        extra = {f"{who}_extra_mb": mem[k]["extra_mb"] for who, k in (("teacher", f"{method}@{size}"),
                                                                      ("student", f"{best['method']}@{size}"))
                 if isinstance(mem.get(k), dict) and "extra_mb" in mem[k]}
        rows.append({"size": size, "megapixels": best.get("megapixels"), "teacher_ms": t["median_ms"],
                     "student_method": best["method"], "student_ms": best["median_ms"],
                     "speedup": t["median_ms"] / best["median_ms"], **extra})
    headline = next((r for r in rows if r["size"] == "1080p"), rows[-1] if rows else None)
    return {
        "source": source, "teacher_method": method, "match": match, "rows": rows,
        "min_speedup": min((r["speedup"] for r in rows), default=None),
        "headline": {"size": headline["size"], "speedup": headline["speedup"]} if headline else None,
        "machine": bench.get("machine"), "results": results, "memory_method": bench.get("memory_method"),
    }


def short_bench(teacher, model: torch.nn.Module, size: str = "1080p", repeats: int = 5, warmup: int = 1,
                budget_s: float = 5.0) -> dict[str, Any]:
    """A short ``hdr-distill bench`` of this checkpoint's teacher against its student at one size.

    Same functions as ``distill.eval.bench`` (same timing rules); the plain torch student is left out (it is the
    slow training path, ~1 s at 1080p). Returns a dict in bench.json's format.
    """
    from distill.eval import bench as B

    h, w = B.size_of(size)
    lab = B.size_label(size)
    img = B.test_image(h, w, teacher.input_space)
    methods = {k: v for k, v in B.student_callables(model, img).items() if k != "student (torch)"}
    if not methods:  # not an HDRNet: FastStudent refused it; time the torch path instead
        methods = B.student_callables(model, img)
    ident = teacher_identity(teacher)
    methods[ident["name"]] = B.teacher_callable(teacher, img)
    results = []
    for m, r in B.time_interleaved(methods, repeats, warmup, budget_s).items():
        r.update(method=m, size=lab, height=h, width=w, megapixels=h * w / 1e6)
        results.append(r)
    return {"machine": B.machine_info(torch.get_num_threads()), "results": results, "memory": {},
            "teacher_identity": {ident["name"]: ident}}
