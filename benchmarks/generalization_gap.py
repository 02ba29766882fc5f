"""Seen vs unseen: a trained student's PSNR on its training images and on the held-out ones, whole images.

With ``benchmarks.grid_ceiling`` this tells the three limits of a student apart:
  ceiling (free grid per image)  >>  training images   -> the network under-fits (capacity, steps)
  training images                >>  held-out images   -> it does not generalise (data)
Every image is run whole at its native size, and also shrunk so that its short side is 256 and 384 px
(the teacher recomputed at that size): a gap that closes at small sizes points at scale, not content.

    python -m benchmarks.generalization_gap runs/ll/checkpoints/last.pt [--max-seen 16] [--leaves] [--squares]
        [--shorts 256,384,native]

(before: ``python benchmarks/generalization_gap.py runs/ll/checkpoints/last.pt [max_seen=16] [leaves=1]
[squares=1] [shorts=256,384,native]``: ``max_seen=N`` is now ``--max-seen N``, ``shorts=...`` is
``--shorts ...``, and ``leaves=1`` / ``squares=1`` are the switches ``--leaves`` / ``--squares``)

``--shorts`` lists the short sides to run (``native``: as stored; larger than native means upsampled). Sizes
that are not powers of two matter to teachers whose pyramid depth follows the size: the automatic-depth local
Laplacian's residual is 4 px at 512 or 1024 px but 2.5 px at 640.

``--squares`` also runs the left, centre and right squares (side = the short side) of each image, teacher
recomputed on each. A square differs from the whole image in shape (the student's low-res copy squashes a
2:3 image) and in extent (the teacher's coarsest pyramid levels, whole-image exposure statistics): a student
that does much better on the squares is failing on one of those, not on the content.

The images come from the checkpoint's own data config (``data.train`` and ``data.val``), so HDR students
are measured on the synthetic HDR scenes they trained on. Dead-leaves images are skipped unless
``--leaves`` (they are not photographs, and the question is how photos generalise).
"""
from __future__ import annotations

import sys

import cv2
import numpy as np
import torch
from hydra.utils import instantiate

from benchmarks._cli import comma_list, parser, refuse_old_keys
from distill.data.pairs import image_pair
from distill.train.checkpoint import build_student, build_teacher, load_checkpoint
from distill.train.loop import psnr_tensor


def pick(source, limit: int | None = None, skip_prefix: str | None = "leaves_") -> list:
    """Items of ``source`` in order, skipping names that start with ``skip_prefix``, at most ``limit``."""
    items = []
    for i in range(len(source)):
        if limit is not None and len(items) >= limit:
            break
        item = source[i]
        if skip_prefix and item.name.startswith(skip_prefix):
            continue
        items.append(item)
    return items


def square_crops(linear: np.ndarray) -> dict[str, np.ndarray]:
    """Left / centre / right (or top / centre / bottom) squares of side ``min(H, W)``."""
    h, w = linear.shape[:2]
    s = min(h, w)
    if w >= h:
        return {"left": linear[:, :s], "centre": linear[:, (w - s) // 2:(w - s) // 2 + s], "right": linear[:, w - s:]}
    return {"top": linear[:s], "centre": linear[(h - s) // 2:(h - s) // 2 + s], "bottom": linear[h - s:]}


def resize_short(linear: np.ndarray, short: int | None) -> np.ndarray:
    if short is None:
        return linear
    h, w = linear.shape[:2]
    s = short / min(h, w)
    return cv2.resize(linear, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def score(student, teacher, linear: np.ndarray) -> float:
    """PSNR of the student against the teacher on one whole image."""
    x, y = image_pair(teacher, linear)
    return psnr_tensor(student(x), y)


def short_side(text: str) -> int | None:
    """One ``--shorts`` entry: a short side in px, or ``native`` (None: as stored)."""
    return None if text == "native" else int(text)


def main(argv: list[str] | None = None) -> int:
    ap = parser("benchmarks.generalization_gap", __doc__)
    ap.add_argument("checkpoint", help="a trained student (runs/<run>/checkpoints/last.pt)")
    ap.add_argument("--max-seen", type=int, default=16, help="at most this many training images")
    ap.add_argument("--leaves", action="store_true", help="keep the dead-leaves training images")
    ap.add_argument("--squares", action="store_true", help="also score the left / centre / right squares")
    ap.add_argument("--shorts", type=comma_list(short_side), default="256,384,native",
                    help="short sides (px, or native) to run, comma-separated; the last is the mean's column")
    args, extra = ap.parse_known_args(argv)
    refuse_old_keys(ap, [args.checkpoint, *extra], {"max_seen": "--max-seen {value}", "leaves": "--leaves",
                                                    "squares": "--squares", "shorts": "--shorts {value}"})
    if extra:
        ap.error(f"unrecognized arguments: {' '.join(extra)}")
    return gap(args.checkpoint, args.max_seen, args.leaves, args.squares, args.shorts)


@torch.inference_mode()
def gap(path: str, max_seen: int, leaves: bool, squares: bool, shorts: list[int | None]) -> int:
    """Print the seen / held-out table of one checkpoint (see the module docstring)."""
    ckpt = load_checkpoint(path)
    student, teacher = build_student(ckpt).eval(), build_teacher(ckpt)
    data = ckpt["config"]["data"]
    skip = None if leaves else "leaves_"
    groups = {"seen": pick(instantiate(data["train"]), max_seen, skip),
              "held-out": pick(instantiate(data["val"]), None, None)}
    print(f"{'image':26s} {'':8s} " + " ".join(f"{'native' if s is None else f'short {s}':>10s}" for s in shorts))
    for kind, items in groups.items():
        last = []  # the last size column, native by default
        for item in items:
            row = [score(student, teacher, resize_short(item.linear, short)) for short in shorts]
            last.append(row[-1])
            line = f"{item.name:26s} {kind:8s} " + " ".join(f"{v:7.2f} dB" for v in row)
            if squares:
                sq = {n: score(student, teacher, c) for n, c in square_crops(item.linear).items()}
                line += "   squares: " + " / ".join(f"{n} {v:.2f}" for n, v in sq.items())
            print(line, flush=True)
        if last:
            col = "native" if shorts[-1] is None else f"short {shorts[-1]}"
            print(f"mean {col} PSNR, {kind}: {np.mean(last):.2f} dB over {len(last)} image(s)")
    return 0


if __name__ == "__main__":
    torch.set_num_threads(2)
    sys.exit(main())
