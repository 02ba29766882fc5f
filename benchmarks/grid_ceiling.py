"""Representational ceiling of a bilateral-grid student for one teacher.

Fits a free grid of affine coefficients (no network) plus the guide directly to each image's teacher output:
the PSNR it reaches bounds what any student of that grid size can reach on that image. It tells a capacity
limit (raise grid_size/grid_depth) apart from a data limit (more training photos). The default 300 steps
give a quick lower bound, not the ceiling: Durand-Dorsey's 16x8 fit went from 35.2 / 32.1 dB (coffee /
rocket) at 300 steps to 39.0 / 39.2 dB at 2000 (about 5 minutes per fit on 2 cores).

    python -m benchmarks.grid_ceiling teacher=local_laplacian --sizes 16x8,32x16 --steps 400 [--images coffee]

(before: ``python benchmarks/grid_ceiling.py teacher=local_laplacian sizes=16x8,32x16 steps=400``: the Hydra
overrides of conf/config.yaml (``teacher=...``, ``experiment=...``, ``data=...``) stay positional; the
script's own ``sizes=``, ``steps=`` and ``images=`` are now ``--sizes``, ``--steps`` and ``--images``)
"""
from __future__ import annotations

import pathlib
import time

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from benchmarks._cli import comma_list, parser, refuse_old_keys
from distill.data.pairs import image_pair
from distill.eval.metrics import psnr
from distill.train.loop import lr_factor
from students.grid import apply_coeffs, identity_grid, slice_grid
from students.hdrnet import HDRNet, encode_input


def fit(x, y, gs, gd, steps, encoding):
    net = HDRNet(grid_size=gs, grid_depth=gd, lowres=gs * 2, input_encoding=encoding)  # net unused: guide only
    xe = encode_input(x, encoding)
    grid = torch.nn.Parameter(identity_grid(1, gd, gs, gs).clone())
    gparams = [net.ccm, net.ccm_bias, net.shifts, net.slopes, net.mix, net.mix_bias]
    base_lrs = (2e-2, 2e-3)
    opt = torch.optim.Adam([{"params": [grid], "lr": base_lrs[0]}, {"params": gparams, "lr": base_lrs[1]}])
    for i in range(steps):
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * lr_factor(i, steps, "cosine", floor=0.05)
        out = apply_coeffs(slice_grid(grid, net.guide(xe)), xe)
        loss = ((out - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        out = apply_coeffs(slice_grid(grid, net.guide(xe)), xe).clamp(0, 1)
    return psnr(out, y)


def grid_shape(text: str) -> tuple[int, ...]:
    """One ``--sizes`` entry: ``SIZExDEPTH`` (grid cells across, intensity bins) -> ``(size, depth)``."""
    return tuple(int(v) for v in text.split("x"))


def main(argv: list[str] | None = None) -> None:
    ap = parser("benchmarks.grid_ceiling", __doc__)
    ap.add_argument("overrides", nargs="*", metavar="override",
                    help="Hydra overrides of conf/config.yaml: teacher=..., experiment=..., data=...")
    ap.add_argument("--sizes", type=comma_list(grid_shape), default="16x8",
                    help="grids SIZExDEPTH to fit, comma-separated")
    ap.add_argument("--steps", type=int, default=300, help="Adam steps per fit")
    ap.add_argument("--images", type=comma_list(), default=None,
                    help="held-out image names to fit, comma-separated (default: all of data.val)")
    args = ap.parse_intermixed_args(argv)
    refuse_old_keys(ap, args.overrides, {k: f"--{k} {{value}}" for k in ("sizes", "steps", "images")})
    overrides, sizes, steps, names = args.overrides, args.sizes, args.steps, args.images
    with initialize_config_dir(str(pathlib.Path(__file__).resolve().parents[1] / "conf"), version_base=None):
        cfg = compose("config", overrides=overrides)
    teacher = instantiate(cfg.teacher)
    val = instantiate(cfg.data.val)
    enc = cfg.student.get("input_encoding", "none")
    for k in range(len(val)):
        im = val[k]
        if names and im.name not in names:
            continue
        x, y = image_pair(teacher, im.linear)
        base = psnr(x.clamp(0, 1), y) if x.max() <= 1.0 else float("nan")
        res = []
        for gs, gd in sizes:
            t = time.perf_counter()
            res.append(f"{gs}x{gd}: {fit(x, y, gs, gd, steps, enc):.2f} dB ({time.perf_counter() - t:.0f}s)")
        print(f"{im.name} {tuple(x.shape[2:])} do-nothing {base:.2f} | " + " | ".join(res), flush=True)


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
