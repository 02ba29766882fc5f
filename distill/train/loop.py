"""Training loop: pairs on the fly -> HDRNet student, L2 loss, Adam; validation PSNR; atomic, resumable checkpoints."""
from __future__ import annotations

import copy
import csv
import io
import logging
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader
from tqdm import tqdm

from distill.train import dist
from distill.core.atomic import atomic_write_json, atomic_write_text
from distill.train.checkpoint import CheckpointError, check_teacher, load_checkpoint, save_checkpoint
from distill.core.io import downscale_max_side
from distill.data.pairs import PairDataset, StepBatchSampler, image_pair, worker_init
from distill.data.validate import ConfigError, check_train_config
from distill.eval.plots import curves_png
from distill.core.protocols import teacher_identity
from students.hdrnet import gather_pixels

log = logging.getLogger(__name__)

LOSSES = {"l2": F.mse_loss, "l1": F.l1_loss, "smooth_l1": F.smooth_l1_loss}
HISTORY_FIELDS = ["step", "loss", "val_psnr", "pairs_per_s", "elapsed_s"]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def psnr_tensor(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = F.mse_loss(a.clamp(0, 1), b.clamp(0, 1)).item()
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def make_val_pairs(teacher, source, max_side) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    pairs = []
    for i in range(len(source)):
        item = source[i]
        x, y = image_pair(teacher, downscale_max_side(item.linear, max_side))
        pairs.append((item.name, x, y))
    return pairs


@torch.inference_mode()
def evaluate(student, pairs, device) -> float:
    """Mean PSNR (dB) of the clamped student output against the teacher over whole held-out images."""
    student.eval()
    vals = [psnr_tensor(student(x.to(device)), y.to(device)) for _, x, y in pairs]
    student.train()
    return float(np.mean(vals)) if vals else float("nan")


def write_history(rows: list[dict], path: Path) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in HISTORY_FIELDS})
    atomic_write_text(path, buf.getvalue())


def lr_factor(step: int, steps: int, schedule: str | None, floor: float = 0.1) -> float:
    """Learning-rate multiplier at ``step``: a pure function of the step, so resuming needs no scheduler state."""
    if not schedule or schedule == "none":
        return 1.0
    if schedule == "cosine":
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, steps) / max(steps, 1)))
    raise ValueError(f"train.lr_schedule='{schedule}' is not one of none, cosine")


def ema_decay_at(decay: float, step: int) -> float:
    """The averaging weight after ``step`` optimizer steps: ``decay``, warmed up as ``(1+step)/(10+step)``
    so that the average is not dominated by the random initial weights in a short run."""
    return min(float(decay), (1.0 + step) / (10.0 + step))


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * model``, parameter by parameter (buffers copied)."""
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.lerp_(p.detach(), 1.0 - decay)
    for be, b in zip(ema.buffers(), model.buffers()):
        be.copy_(b)


def _flatten(d, prefix=""):
    out = {}
    for k, v in (d or {}).items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


RESUME_MUST_MATCH = ("data", "student")  # a resumed run is the same run: same images, same network
RESUME_IGNORED = {"data.pairs.cache_dir"}  # where pairs are cached does not change them


def config_mismatch(saved: dict, current: dict) -> list[str]:
    """Keys of ``data``/``student`` whose values differ between a checkpoint's config and this run's
    (a key missing on one side matches null or false, so configs that gained an optional key or an off-by-
    default switch still match)."""
    diffs = []
    missing = object()
    for group in RESUME_MUST_MATCH:
        a, b = _flatten(saved.get(group), f"{group}."), _flatten(current.get(group), f"{group}.")
        for k in sorted(set(a) | set(b)):
            va, vb = a.get(k, missing), b.get(k, missing)
            if missing in (va, vb) and (vb if va is missing else va) in (None, False):
                continue
            if k not in RESUME_IGNORED and va != vb:
                diffs.append(f"{k}: {a.get(k)!r} -> {b.get(k)!r}")
    return diffs


def _resume_path(resume, out_dir: Path) -> Path | None:
    if resume in (False, None, "false", ""):
        return None
    if resume is True or resume == "true":
        p = out_dir / "checkpoints" / "last.pt"
        if not p.exists():
            log.warning("train.resume=true, but %s holds no checkpoint (no %s): starting from step 0", out_dir, p)
            return None
        return p
    return Path(str(resume))


def _existing_checkpoint_problem(out_dir: Path, resume_from: Path | None, overwrite: bool,
                                 flag: str = "train.overwrite=true") -> str | None:
    """Why this run must not start in ``out_dir``, or None: a run that does not resume from the folder's own
    ``last.pt`` would write its first checkpoint (an earlier step, or another run's) over it."""
    last = out_dir / "checkpoints" / "last.pt"
    if overwrite or not last.exists():
        return None
    if resume_from is not None and Path(resume_from).resolve() == last.resolve():
        return None
    try:
        step = f"step {int(load_checkpoint(last)['step'])}"
    except Exception:  # noqa: BLE001 - unreadable: still not ours to destroy
        step = "an unreadable step"
    return (f"{out_dir} already holds a checkpoint at {step} ({last}); this run would write over it. Continue "
            f"it with train.resume=true, train into a new hydra.run.dir, or set {flag} to replace it")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Distill ``cfg.teacher`` into ``cfg.student``. Returns a summary dict (also written to summary.json)."""
    check_train_config(cfg)  # every bad value refused here: before the teacher runs and before any write
    tc = cfg.train
    ctx = dist.init(resolve_device(cfg.device))  # under torchrun: join the process group; alone: a no-op
    out_dir = Path(ctx.broadcast(str(cfg.out_dir)))  # rank 0's folder; only rank 0 writes files
    resume_from = _resume_path(tc.resume, out_dir) if ctx.is_main else None
    flag = ("" if "overwrite" in tc else "+") + "train.overwrite=true"  # '+' while conf/ lacks the key
    problem = ctx.broadcast(_existing_checkpoint_problem(out_dir, resume_from, bool(tc.get("overwrite", False)),
                                                         flag) if ctx.is_main else None)
    if problem:
        ctx.close()
        raise ConfigError(problem)
    if ctx.is_main:
        (out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    if tc.threads:
        torch.set_num_threads(int(tc.threads))
    seed_everything(int(cfg.seed))
    device = ctx.device

    teacher = instantiate(cfg.teacher)
    identity = teacher_identity(teacher)
    if tc.get("validate_teacher", True):
        from distill.data.validate import validate_teacher

        validate_teacher(teacher)
    student = instantiate(cfg.student).to(device)
    optimizer = instantiate(tc.optimizer)(params=student.parameters())  # _partial_: true
    if tc.loss not in LOSSES:
        raise ValueError(f"train.loss='{tc.loss}' is not one of {sorted(LOSSES)}")
    loss_fn = LOSSES[tc.loss]

    start_step, history = 0, []
    ckpt_path = ctx.broadcast(resume_from)
    if ckpt_path is not None:
        ckpt = ctx.broadcast(load_checkpoint(ckpt_path) if ctx.is_main else None)
        check_teacher(ckpt, identity)
        diffs = config_mismatch(ckpt.get("config", {}), OmegaConf.to_container(cfg, resolve=True))
        if diffs:
            raise ValueError(f"cannot resume from {ckpt_path}: it was trained with other settings ("
                             + "; ".join(diffs[:6]) + ("; ..." if len(diffs) > 6 else "")
                             + "). Train into a new hydra.run.dir, or set train.resume=false to start over.")
        for key in ("state_dict", "optimizer", "step"):
            if key not in ckpt:
                raise CheckpointError(f"cannot resume from {ckpt_path}: it has no '{key}' (a damaged checkpoint, or "
                                      f"not one written by training)")
        try:
            student.load_state_dict(ckpt.get("train_state_dict", ckpt["state_dict"]))
        except RuntimeError as e:  # torch lists every mismatched tensor; one line says it
            first = next((ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()), str(e))
            raise CheckpointError(f"cannot resume from {ckpt_path}: its weights do not fit the configured student "
                                  f"({first})") from None
        optimizer.load_state_dict(ckpt["optimizer"])
        start_step, history = int(ckpt["step"]), list(ckpt.get("history", []))
        log.info("resumed from %s at step %d", ckpt_path, start_step)
    # Exponential moving average of the weights: what validation, checkpoints and inference use when
    # train.ema_decay is set. Held-out PSNR of the raw weights swings by +-0.5 dB between checkpoints.
    decay = float(tc.get("ema_decay") or 0.0)
    ema = None
    if decay > 0:
        ema = copy.deepcopy(student).eval().requires_grad_(False)
        if ckpt_path is not None and "train_state_dict" in ckpt:
            ema.load_state_dict(ckpt["state_dict"])
    net = student
    student = ctx.wrap(student)  # DistributedDataParallel under torchrun

    train_src = instantiate(cfg.data.train)
    val_src = instantiate(cfg.data.val) if cfg.data.get("val") else []
    pc = OmegaConf.to_container(cfg.data.pairs, resolve=True)
    dataset = PairDataset(train_src, teacher, seed=int(cfg.seed), **pc)
    val_pairs = make_val_pairs(teacher, val_src, cfg.data.get("val_max_side")) if len(val_src) and ctx.is_main else []
    steps = int(tc.steps)
    sampler = ctx.shard(StepBatchSampler(len(dataset), int(tc.batch_size), int(cfg.seed), start_step, steps,
                                         groups=len(dataset.crop_shapes)))
    nw = int(tc.num_workers)
    # spawn, not fork: a forked worker inherits the parent's OpenMP thread pool state and can deadlock.
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=nw, worker_init_fn=worker_init if nw else None,
                        prefetch_factor=4 if nw else None, multiprocessing_context="spawn" if nw else None)

    def checkpoint(step: int, name: str = "last.pt") -> Path | None:
        if not ctx.is_main:
            return None
        payload = {
            "state_dict": (net if ema is None else ema).state_dict(), "optimizer": optimizer.state_dict(), "step": step,
            "config": OmegaConf.to_container(cfg, resolve=True), "teacher": identity, "history": history,
        }
        if ema is not None:  # the raw weights, to resume training from
            payload["train_state_dict"] = net.state_dict()
        return save_checkpoint(out_dir / "checkpoints" / name, payload)

    npix = int(tc.get("pixels_per_crop") or 0)
    base_lrs = [g.get("initial_lr", g["lr"]) for g in optimizer.param_groups]
    for g, lr in zip(optimizer.param_groups, base_lrs):
        g["initial_lr"] = lr  # kept in the optimizer state, so a resumed run knows the base rate
    t0 = time.perf_counter()
    step = start_step
    student.train()
    bar = tqdm(total=steps, initial=start_step, desc=f"distill {identity['name']}", unit="step",
               disable=not tc.get("progress", True) or not ctx.is_main, dynamic_ncols=True)
    last_t, last_step = time.perf_counter(), start_step
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        for group, lr in zip(optimizer.param_groups, base_lrs):
            group["lr"] = lr * lr_factor(step, steps, tc.get("lr_schedule"))
        if npix:
            # Loss on a random sample of pixels per crop (an unbiased estimate of the full-image loss).
            g = torch.Generator().manual_seed(int(cfg.seed) * 1_000_003 + step)
            b, _, h, w = x.shape
            # drawn for the global batch, this rank's rows taken: N ranks x b == 1 process x N*b
            flat = ctx.local_share(torch.randint(0, h * w, (b * ctx.world, npix), generator=g)).to(device)
            rows, cols = flat // w, flat % w
            loss = loss_fn(student.forward_points(x, rows, cols), gather_pixels(y, rows, cols))
        else:
            loss = loss_fn(student(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if ema is not None:
            ema_update(ema, net, ema_decay_at(decay, step))
        step += 1
        row = {"step": step, "loss": ctx.mean(loss)}  # mean over ranks
        if step % int(tc.log_every) == 0 or step == steps:
            now = time.perf_counter()
            row["pairs_per_s"] = (step - last_step) * int(tc.batch_size) / max(now - last_t, 1e-9)
            row["elapsed_s"] = now - t0
            last_t, last_step = now, step
        if val_pairs and (step % int(tc.val_every) == 0 or step == steps):
            row["val_psnr"] = evaluate(student if ema is None else ema, val_pairs, device)
            log.info("step %d/%d  loss %.3e  held-out PSNR %.2f dB  (%.0f s)", step, steps, row["loss"],
                     row["val_psnr"], time.perf_counter() - t0)
        history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.2e}",
                        val=f"{next((r['val_psnr'] for r in reversed(history) if 'val_psnr' in r), float('nan')):.2f}dB")
        bar.update(1)
        if step % int(tc.ckpt_every) == 0 and step != steps:
            checkpoint(step)
    bar.close()
    wall = time.perf_counter() - t0
    if not ctx.is_main:
        ctx.close()
        return {"rank": ctx.rank, "steps": step}

    final = checkpoint(step)
    write_history(history, out_dir / "history.csv")
    curves_png([{k: r.get(k, "") for k in HISTORY_FIELDS} for r in history], out_dir / "curves.png")
    last = history[-1] if history else {}
    if not val_pairs:
        val_psnr = float("nan")
    elif last.get("step") == step and "val_psnr" in last:
        val_psnr = last["val_psnr"]  # the loop just validated this very step
    else:  # e.g. resumed a finished run
        val_psnr = evaluate(student if ema is None else ema, val_pairs, device)
    summary = {
        "teacher": identity, "steps": step, "trained_steps_this_run": step - start_step,
        "wall_time_s": round(wall, 2), "val_psnr_db": round(val_psnr, 3),
        "val_images": [n for n, _, _ in val_pairs], "checkpoint": str(final), "device": str(device),
        "threads": torch.get_num_threads(), "cache_hits": dataset.cache_hits if nw == 0 else None,
    }
    atomic_write_json(out_dir / "summary.json", summary)
    log.info("held-out PSNR %.2f dB after %d steps (%.0f s); checkpoint %s", val_psnr, step, wall, final)
    ctx.close()
    return summary
