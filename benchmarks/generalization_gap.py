"""Seen vs unseen: a trained student's PSNR on its training photos and on the held-out ones, whole images.

With ``grid_ceiling.py`` this tells the three limits of a student apart:
  ceiling (free grid per image)  >>  training photos   -> the network under-fits (capacity, steps)
  training photos                >>  held-out photos   -> it does not generalise (data)
Every image is run whole at its native size, and also shrunk so that its short side is 256 and 384 px
(the teacher recomputed at that size): a gap that closes at small sizes points at scale, not content.

    python benchmarks/generalization_gap.py runs/ll/checkpoints/last.pt [names=astronaut,chelsea,coffee]

Names default to the checkpoint's training photos (its config's EmbeddedSource entries, held-out excluded)
plus the held-out set. Synthetic training images (dead leaves, HDR scenes) are not listed: they are
training data the student has seen at their native size already.
"""
from __future__ import annotations

import sys

import cv2
import numpy as np
import torch

from distill.checkpoint import build_student, build_teacher, load_checkpoint
from distill.pairs import image_pair
from distill.sources import EMBEDDED_GREY_NAMES, EMBEDDED_NAMES, HELDOUT_NAMES, EmbeddedSource
from distill.train import psnr_tensor

SHORT_SIDES = (256, 384, None)  # None: native size


def training_names(cfg: dict) -> list[str]:
    """Embedded photos the checkpoint trained on, found in its data config (nested ConcatSource included)."""
    found: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if str(node.get("_target_", "")).endswith("EmbeddedSource"):
                names = node.get("names") or (EMBEDDED_NAMES + (EMBEDDED_GREY_NAMES if node.get("include_grey") else ()))
                found.extend(n for n in names if n not in set(node.get("exclude") or ()))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(cfg.get("data", {}).get("train", {}))
    return list(dict.fromkeys(found))


def resize_short(linear: np.ndarray, short: int | None) -> np.ndarray:
    if short is None:
        return linear
    h, w = linear.shape[:2]
    s = short / min(h, w)
    return cv2.resize(linear, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


@torch.inference_mode()
def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__)
        return 2
    ckpt = load_checkpoint(argv[0])
    opts = dict(a.split("=", 1) for a in argv[1:] if "=" in a)
    student, teacher = build_student(ckpt).eval(), build_teacher(ckpt)
    seen = training_names(ckpt.get("config", {}))
    names = opts["names"].split(",") if "names" in opts else seen + [n for n in HELDOUT_NAMES if n not in seen]
    src = EmbeddedSource(names=names, include_grey=True)
    print(f"{'image':22s} {'':8s} " + " ".join(f"{'native' if s is None else f'short {s}':>10s}" for s in SHORT_SIDES))
    groups: dict[str, list[float]] = {"seen": [], "held-out": []}
    for i in range(len(src)):
        item = src[i]
        row = []
        for short in SHORT_SIDES:
            x, y = image_pair(teacher, resize_short(item.linear, short))
            row.append(psnr_tensor(student(x), y))
        kind = "seen" if item.name in seen else "held-out"
        groups[kind].append(row[-1])
        print(f"{item.name:22s} {kind:8s} " + " ".join(f"{v:7.2f} dB" for v in row), flush=True)
    for kind, vals in groups.items():
        if vals:
            print(f"mean native PSNR, {kind}: {np.mean(vals):.2f} dB over {len(vals)} image(s)")
    return 0


if __name__ == "__main__":
    torch.set_num_threads(2)
    sys.exit(main(sys.argv[1:]))
