"""``hdr-distill pairs``: run the teacher ahead of training and fill the on-disk pair cache.

Slow teachers dominate distillation. This generates every pair of the training pool once, possibly split
over machines (``pregen.shard`` of ``pregen.num_shards``, or one shard per rank under torchrun), into
``data.pairs.cache_dir``; any number of training runs with the same teacher, data and seed then read pairs
instead of computing them. It takes the training config (same teacher/data groups and overrides).
"""
from __future__ import annotations

import logging
import os
import time

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from distill.core.io import ImageError
from distill.data.pairs import PairDataset, worker_init
from distill.data.validate import ConfigError, check_pairs_config

log = logging.getLogger(__name__)


class _Fill(Dataset):
    """Item i of a shard -> (1 if its pair was computed and stored, 0 if it was already cached, -1 if its image
    could not be read; the reading error or None)."""

    def __init__(self, pairs: PairDataset, indices: list[int]):
        self.pairs, self.indices = pairs, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[int, str | None]:
        try:
            return int(self.pairs.ensure_cached(self.indices[i])), None
        except ImageError as e:  # a bad file: named, counted and skipped, as apply does
            return -1, str(e)


def shard_of(pregen) -> tuple[int, int]:
    """(shard, num_shards): from the config, else from torchrun's RANK / WORLD_SIZE, else (0, 1)."""
    n = pregen.get("num_shards")
    n = int(os.environ.get("WORLD_SIZE", 1)) if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"pregen.num_shards={n!r}: must be an integer >= 1 (or null: torchrun's WORLD_SIZE, else 1)")
    k = pregen.get("shard")
    k = int(os.environ.get("RANK", 0)) if k is None else k
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < n:
        raise ConfigError(f"pregen.shard={k!r} must be an integer in 0..{n - 1} (pregen.num_shards={n})")
    return k, int(n)


def run(cfg: DictConfig) -> dict:
    pc = OmegaConf.to_container(cfg.data.pairs, resolve=True)
    if not pc.get("cache_dir"):
        raise ConfigError("data.pairs.cache_dir is null, so there is nothing to fill; "
                          "set data.pairs.cache_dir=<folder>")
    # The whole config first: a bad value costs a second, not the teacher's start-up or a partial fill.
    check_pairs_config(pc)
    shard, n = shard_of(cfg.pregen)
    workers = cfg.pregen.get("workers", 0)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ConfigError(f"pregen.workers={workers!r}: must be an integer >= 0")
    teacher = instantiate(cfg.teacher)
    pairs = PairDataset(instantiate(cfg.data.train), teacher, seed=int(cfg.seed), **pc)
    indices = list(range(shard, len(pairs), n))
    loader = DataLoader(_Fill(pairs, indices), batch_size=None, num_workers=workers,
                        worker_init_fn=worker_init if workers else None,
                        multiprocessing_context="spawn" if workers else None)
    t0 = time.perf_counter()
    made, skipped, bad = 0, 0, []
    for flag, err in tqdm(loader, total=len(indices), desc=f"pairs shard {shard}/{n}", unit="pair",
                          disable=not cfg.pregen.get("progress", True)):
        if flag < 0:
            skipped += 1
            if err not in bad:
                bad.append(err)
                log.warning("skipped (unreadable image): %s", err)
            continue
        made += int(flag)
    if skipped and skipped == len(indices):
        raise ImageError(f"none of the {len(indices)} pairs could be made: every image failed to read; first: {bad[0]}")
    wall = time.perf_counter() - t0
    summary = {"shard": shard, "num_shards": n, "pairs": len(indices), "computed": made,
               "already_cached": len(indices) - made - skipped, "skipped": skipped, "bad_images": bad,
               "wall_time_s": round(wall, 2),
               "pairs_per_s": round(made / wall, 2) if wall > 0 else None,
               "cache": ", ".join(str(c.dir) for c in pairs.caches)}
    log.info("shard %d/%d: %d pairs (%d computed, %d already cached, %d skipped) in %.1f s -> %s", shard, n,
             len(indices), made, summary["already_cached"], skipped, wall, summary["cache"])
    return summary
