"""Where a student's held-out error lies: a global level, a global contrast, or local structure (at which scale).

Per held-out image of the checkpoint's own data config, at native size, output clamped as in training:
  psnr         the student against the teacher
  level        after the best whole-image level (one factor on the output's linear luminance)
  contrast     after the best whole-image exponent and level: a*log10 L + b fitted by least squares on the
               output's log luminance (pixels clipped in either image left out), colour kept by ratios
  low / high   the error's PSNR below and above a Gaussian blur of ``sigma`` px, for each sigma
  edges        the error's PSNR over the flatter half of the pixels and over the 10 % and 2 % with the
               strongest input edges (a guide that mixes an edge's two sides loses at the edges)
  detail       how much of the input's fine detail (log luminance above a 1 px blur) the student and the
               teacher pass on (least-squares slope, pixels clipped or black in either output left out); a
               student below its teacher flattens texture
If ``contrast`` is far above ``psnr``, a student that computes that whole-image quantity (as
``student.white_percentile`` computes the white level) would help; if not, the error is local.

    python -m benchmarks.error_anatomy runs/durand/checkpoints/last.pt [more.pt ...] [--sigmas 2,8,32]

(before: ``python benchmarks/error_anatomy.py runs/durand/checkpoints/last.pt [sigmas=2,8,32]``: the
checkpoints stay positional, ``sigmas=...`` is now ``--sigmas ...``)
"""
from __future__ import annotations

import sys

import cv2
import numpy as np
import torch
from hydra.utils import instantiate

from benchmarks._cli import comma_list, parser, refuse_old_keys
from distill.core.color import linear_to_srgb, luminance, srgb_to_linear
from distill.eval.metrics import psnr
from distill.train.checkpoint import build_student, build_teacher, load_checkpoint
from distill.train.loop import make_val_pairs

LOG_FLOOR = 1e-5  # luminance floor for the log fit (sRGB 8-bit black is ~3e-4)


def global_fit(p: torch.Tensor, y: torch.Tensor, exponent: bool = True) -> tuple[float, float, torch.Tensor]:
    """Best whole-image (a, b) with log10 L_p' = a log10 L_p + b against the teacher's log luminance.

    ``p``, ``y``: sRGB ``[1,3,H,W]`` in [0, 1]. ``exponent=False`` fits the level alone (a = 1). Returns
    (a, b, p re-rendered with it, colour kept by ratios, clipped and sRGB-encoded)."""
    lin_p = srgb_to_linear(p)
    lp = torch.log10(luminance(lin_p).clamp_min(LOG_FLOOR)).flatten().double()
    ly = torch.log10(luminance(srgb_to_linear(y)).clamp_min(LOG_FLOOR)).flatten().double()
    keep = ((p < 0.999).all(1) & (y < 0.999).all(1)).flatten()
    if not keep.any():
        raise ValueError("global_fit: every pixel is clipped in the student or the teacher output")
    lp_k, ly_k = lp[keep], ly[keep]
    if exponent:
        design = torch.stack([lp_k, torch.ones_like(lp_k)], 1)
        a, b = (float(v) for v in torch.linalg.lstsq(design, ly_k[:, None]).solution[:, 0])
    else:
        a, b = 1.0, float((ly_k - lp_k).mean())
    gain = 10 ** ((a - 1) * lp + b)  # L' / L per pixel
    return a, b, linear_to_srgb(lin_p * gain.view(1, 1, *p.shape[2:]).float())


def log2_luminance(lin: torch.Tensor) -> np.ndarray:
    """``[H,W]`` float32 log2 of the luminance of a linear ``[1,3,H,W]`` image, floored at ``LOG_FLOOR``."""
    return np.log2(luminance(lin).squeeze().numpy().clip(LOG_FLOOR)).astype(np.float32)


def detail_gains(x: torch.Tensor, keep: np.ndarray, *outs: torch.Tensor, sigma: float = 1.0) -> list[float]:
    """Slope of each output's fine log2 luminance on the input's: both high-passed by a Gaussian blur of
    ``sigma`` px, fitted over the pixels in ``keep`` ``[H,W]``. ``x`` is linear, ``outs`` sRGB, all
    ``[1,3,H,W]``; the input's detail is computed once for all of them."""
    def fine(lin):
        lum = log2_luminance(lin)
        return (lum - cv2.GaussianBlur(lum, (0, 0), sigma))[keep].astype(np.float64)
    fx = fine(x)
    if not keep.any() or not np.any(fx):
        raise ValueError("detail_gain: no unclipped pixel with input detail")
    return [float((fine(srgb_to_linear(o)) * fx).sum() / (fx * fx).sum()) for o in outs]


def edge_split(err: np.ndarray, x: torch.Tensor, tops: tuple[float, ...] = (10.0, 2.0)) -> list[float]:
    """PSNR (dB) of an error image ``[H,W,C]`` over the flatter half of the pixels, then over the ``tops`` %
    with the strongest edges; edge strength is the gradient magnitude of the linear input ``x [1,3,H,W]``'s
    log2 luminance after a 2 px blur. A guide that mixes an edge's two sides shows up in the tops."""
    lum = cv2.GaussianBlur(log2_luminance(x), (0, 0), 2.0)
    grad = np.hypot(cv2.Sobel(lum, cv2.CV_32F, 1, 0), cv2.Sobel(lum, cv2.CV_32F, 0, 1))
    masks = [grad <= np.percentile(grad, 50)] + [grad >= np.percentile(grad, 100 - t) for t in tops]
    return [_db(err[m]) for m in masks]


def scale_split(err: np.ndarray, sigma: float) -> tuple[float, float]:
    """PSNR (dB, peak 1) of an error image ``[H,W,C]`` below and above a Gaussian blur of ``sigma`` px."""
    err = np.ascontiguousarray(err, dtype=np.float32)
    low = cv2.GaussianBlur(err, (0, 0), sigma).reshape(err.shape)
    return _db(low), _db(err - low)


def _db(e: np.ndarray) -> float:
    mse = float(np.mean(np.square(e, dtype=np.float64)))
    return float("inf") if mse == 0 else -10 * np.log10(mse)


def main(argv: list[str] | None = None) -> int:
    ap = parser("benchmarks.error_anatomy", __doc__)
    ap.add_argument("checkpoints", nargs="+", metavar="checkpoint", help="trained students (checkpoints/last.pt)")
    ap.add_argument("--sigmas", type=comma_list(float), default="2,8,32",
                    help="Gaussian blurs (px) of the low / high split, comma-separated")
    args = ap.parse_intermixed_args(argv)
    refuse_old_keys(ap, args.checkpoints, {"sigmas": "--sigmas {value}"})
    return anatomy(args.checkpoints, args.sigmas)


@torch.inference_mode()
def anatomy(paths: list[str], sigmas: list[float]) -> int:
    """Print one line per held-out image of each checkpoint (the columns of the module docstring)."""
    for path in paths:
        ckpt = load_checkpoint(path)
        student, teacher = build_student(ckpt).eval(), build_teacher(ckpt)
        data = ckpt["config"]["data"]
        print(path)
        for name, x, y in make_val_pairs(teacher, instantiate(data["val"]), data.get("val_max_side")):
            p, y = student(x).clamp(0, 1), y.clamp(0, 1)
            _, b0, lev = global_fit(p, y, exponent=False)
            a, b, con = global_fit(p, y)
            err = (p - y)[0].permute(1, 2, 0).numpy()
            split = "  ".join(f"s{s:g} {lo:.2f}/{hi:.2f}" for s in sigmas for lo, hi in [scale_split(err, s)])
            edges = "flat half {:.2f}  top 10% {:.2f}  top 2% {:.2f}".format(*edge_split(err, x))
            keep = (((p < 0.99) & (y < 0.99)).all(1) & ((p > 0.02) & (y > 0.02)).all(1))[0].numpy()
            print(f"  {name:14s} psnr {psnr(p, y):6.2f}  level {psnr(lev, y):6.2f} (b {b0:+.3f})  "
                  f"contrast {psnr(con, y):6.2f} (a {a:.3f}, b {b:+.3f})  low/high {split}  edges {edges}  "
                  "detail {:.3f}/{:.3f}".format(*detail_gains(x, keep, p, y)))
    return 0


if __name__ == "__main__":
    torch.set_num_threads(2)
    sys.exit(main())
