"""Same output: a checkpoint's student through the torch and the fused path on seeded images, saved or compared.

A restructure that claims "behaviour unchanged" runs this on the old commit and on the new one:

    python -m benchmarks.same_output CKPT [CKPT ...] --save before.npz      # on the old code
    python -m benchmarks.same_output CKPT [CKPT ...] --compare before.npz   # on the new code: max abs difference

Images: two seeded images per checkpoint (smooth colour fields with edges and texture, at sizes with odd tails),
in the checkpoint's teacher input space (HDR ones spread over 12 stops). Outputs: ``HDRNet.forward`` and
``FastStudent``. It imports only names that exist in both the flat and the staged layout of distill/.
"""
from __future__ import annotations

import sys

import numpy as np
import torch

from benchmarks._cli import parser

SIZES = ((301, 457), (480, 641))


def _imports():
    try:
        from distill.train.checkpoint import build_student, load_checkpoint
    except ImportError:  # the flat layout, before distill/ was split by stage
        from distill.checkpoint import build_student, load_checkpoint
    from students.fused import FastStudent
    return build_student, load_checkpoint, FastStudent


def images(space: str, seed: int) -> list[np.ndarray]:
    """Seeded HxWx3 float32 test images in ``space``."""
    import cv2

    rng = np.random.default_rng(seed)
    out = []
    for h, w in SIZES:
        base = cv2.resize(rng.random((6, 8, 3), dtype=np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        tex = 0.08 * rng.standard_normal((h, w, 3)).astype(np.float32)
        img = np.clip(base + tex, 0, 1)
        img[h // 3: h // 2, w // 4: w // 2] *= 0.2  # an edge
        if space == "hdr":
            img = (2.0 ** (12 * (img - 1))).astype(np.float32)
        out.append(np.ascontiguousarray(img, dtype=np.float32))
    return out


def outputs(paths: list[str]) -> dict[str, np.ndarray]:
    build_student, load_checkpoint, FastStudent = _imports()
    res: dict[str, np.ndarray] = {}
    for k, path in enumerate(paths):
        ckpt = load_checkpoint(path)
        model = build_student(ckpt)
        fast = FastStudent(model, threads=2)
        for i, img in enumerate(images(ckpt["teacher"]["input_space"], seed=k)):
            with torch.inference_mode():
                res[f"{k}/{i}/torch"] = model(torch.from_numpy(img).permute(2, 0, 1)[None])[0].numpy()
            res[f"{k}/{i}/fused"] = np.asarray(fast(img))
        print(f"{path}: {ckpt['teacher']['name']} student, engine {fast.engine}", flush=True)
    return res


def main(argv: list[str] | None = None) -> None:
    p = parser("benchmarks.same_output", __doc__)
    p.add_argument("checkpoints", nargs="+", help="checkpoints (or pretrained/<name>)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--save", help="write the outputs to this .npz")
    g.add_argument("--compare", help="compare with the outputs in this .npz")
    p.add_argument("--tol", type=float, default=1e-6, help="largest allowed max abs difference")
    a = p.parse_args(argv)
    res = outputs(a.checkpoints)
    if a.save:
        np.savez_compressed(a.save, **res)
        print(f"same_output: wrote {len(res)} outputs to {a.save}")
        return
    ref = np.load(a.compare)
    worst = 0.0
    for key in sorted(ref.files):
        d = float(np.abs(ref[key].astype(np.float64) - res[key]).max())
        worst = max(worst, d)
        print(f"  {key:<14} max abs difference {d:.3g}")
    print(f"same_output: {len(ref.files)} outputs, worst max abs difference {worst:.3g} (tolerance {a.tol:g})")
    if worst > a.tol or set(ref.files) != set(res):
        sys.exit(1)


if __name__ == "__main__":
    main()
