"""Multi-process training with PyTorch's own stack: torchrun, a process group, DistributedDataParallel.

``train()`` calls these helpers; without torchrun (``WORLD_SIZE`` unset or 1) every one of them is a no-op
that returns its input, so single-process training is unchanged bit for bit.

Under ``torchrun --nproc_per_node=N`` (see docs/distributed.md):

* every rank joins one process group (gloo on the CPU, NCCL on CUDA, one GPU per local rank);
* the global batch of step s (``StepBatchSampler.batch(s)``, a pure function of (seed, s)) is cut into N
  equal contiguous shares, one per rank, and each rank's DataLoader workers run the teacher on its share
  only; DDP averages the gradients, so N processes x batch b/N take the same step as 1 process x batch b
  (up to float summation order);
* rank 0 alone writes checkpoints, history, curves and the summary, and runs validation; its output folder
  and, on resume, its checkpoint are broadcast to the others (no shared filesystem needed).

Example:
    >>> ctx = init(torch.device("cpu"))   # doctest: +SKIP
    >>> sampler = ctx.shard(StepBatchSampler(n, batch_size=8, seed=0, start_step=0, total_steps=100))
    >>> student = ctx.wrap(student)       # DDP-backed when WORLD_SIZE > 1
"""
from __future__ import annotations

import inspect
import logging
import os
from typing import Any

import torch
import torch.distributed as tdist
import torch.nn as nn
from torch.utils.data import Sampler

log = logging.getLogger(__name__)


def env_world_size() -> int:
    """``WORLD_SIZE`` as set by torchrun (1 when not launched by it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


class RankBatchSampler(Sampler):
    """This rank's share of every global batch: contiguous slice ``[rank*k, (rank+1)*k)`` with k = b / world.

    Args:
        sampler: a batch sampler yielding global batches (lists of indices) of a fixed size b.
        rank, world: this process's rank and the number of processes; b must be divisible by world.
    """

    def __init__(self, sampler, rank: int, world: int):
        b = int(sampler.batch_size)
        if b % world:
            raise ValueError(f"train.batch_size={b} is the global batch; it must be divisible by the number of "
                             f"processes ({world}) so that every rank gets an equal share")
        self.sampler, self.rank, self.world, self.share = sampler, rank, world, b // world
        self.batch_size = self.share

    def __iter__(self):
        lo = self.rank * self.share
        for batch in self.sampler:
            yield batch[lo:lo + self.share]

    def __len__(self) -> int:
        return len(self.sampler)


class _Router(nn.Module):
    """The module DDP wraps: forwards ``forward`` or another method (e.g. ``forward_points``) of the student,
    so that every training computation goes through DDP's forward (which prepares the gradient reduction)."""

    def __init__(self, student: nn.Module):
        super().__init__()
        self.student = student

    def forward(self, *args, _method: str = "forward", **kwargs):
        return getattr(self.student, _method)(*args, **kwargs)


class DDPStudent:
    """The student, with its training forward passes routed through DistributedDataParallel.

    Calls with gradients enabled in training mode (``student(x)``, ``student.forward_points(...)``) go
    through DDP; evaluation (no grad or eval mode, rank 0 only) and every other attribute (``state_dict``,
    ``parameters``, ``train``, ``eval``, ...) go to the plain student, so checkpoints keep plain keys.
    """

    ROUTED = ("forward", "forward_points")

    def __init__(self, student: nn.Module, ddp: nn.parallel.DistributedDataParallel):
        self.module, self.ddp = student, ddp

    def _training(self) -> bool:
        return torch.is_grad_enabled() and self.module.training

    def __call__(self, *args, **kwargs):
        return self.ddp(*args, **kwargs) if self._training() else self.module(*args, **kwargs)

    def __getattr__(self, name: str):
        attr = getattr(self.module, name)
        if name in self.ROUTED and callable(attr):
            def routed(*args, **kwargs):
                if self._training():
                    return self.ddp(*args, _method=name, **kwargs)
                return attr(*args, **kwargs)
            return routed
        return attr


class DistContext:
    """Rank, world size and device of this process, with the few collective helpers training needs.

    ``world == 1``: every helper returns its input unchanged.
    """

    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0, device: torch.device | None = None,
                 owns_group: bool = False):
        self.rank, self.world, self.local_rank = rank, world, local_rank
        self.device = device or torch.device("cpu")
        self.owns_group = owns_group

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and validates."""
        return self.rank == 0

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (any picklable object; tensors included)."""
        if not self.active:
            return obj
        box = [obj if self.is_main else None]
        tdist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        return box[0]

    def shard(self, batch_sampler):
        """Wrap a global batch sampler so that this rank iterates over its share of each batch."""
        return RankBatchSampler(batch_sampler, self.rank, self.world) if self.active else batch_sampler

    def local_share(self, t: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a tensor drawn for the whole global batch (dim 0 = global batch), e.g. the
        random pixels of a pixel-sampled loss: drawing for the global batch and slicing keeps N ranks equal
        to one process."""
        if not self.active:
            return t
        if t.shape[0] % self.world:
            raise ValueError(f"local_share: dim 0 ({t.shape[0]}) is not divisible by the {self.world} ranks")
        k = t.shape[0] // self.world
        return t[self.rank * k:(self.rank + 1) * k]

    def wrap(self, student: nn.Module):
        """The student for training: DDP-backed (``DDPStudent``) in a group, else the student itself."""
        if not self.active:
            return student
        ids = [self.device.index] if self.device.type == "cuda" else None
        # No buffer sync in forward: the student's buffers are constants, and rank 0 alone runs validation
        # forwards, which must not wait for a buffer broadcast from the other ranks.
        ddp_cls = nn.parallel.DistributedDataParallel
        # torch >= 2.14 renamed broadcast_buffers to forward_sync_buffers (the old name warns)
        no_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(ddp_cls).parameters
                   else {"broadcast_buffers": False})
        ddp = ddp_cls(_Router(student), device_ids=ids, **no_sync)
        return DDPStudent(student, ddp)

    def mean(self, value: torch.Tensor) -> float:
        """Mean of a scalar over the ranks, as a float (``value.item()`` when alone)."""
        if not self.active:
            return float(value.item())
        t = value.detach().reshape(1).to(self.device, torch.float64)
        tdist.all_reduce(t, op=tdist.ReduceOp.SUM)  # gloo has no AVG
        return float(t.item() / self.world)

    def close(self) -> None:
        """Wait for every rank (rank 0 finishes its files), then leave the group if ``init`` created it."""
        if not self.active:
            return
        tdist.barrier()
        if self.owns_group:
            tdist.destroy_process_group()


def init(device: torch.device) -> DistContext:
    """Join torchrun's process group when ``WORLD_SIZE > 1``; else a single-process context on ``device``.

    Args:
        device: the device training would use alone (``resolve_device(cfg.device)``). CUDA -> NCCL with
            ``cuda:LOCAL_RANK``; CPU -> gloo.

    Returns:
        a ``DistContext``. Ranks other than 0 log warnings only.
    """
    world = env_world_size()
    if world <= 1:
        return DistContext(device=device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"rank {rank}: LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} CUDA "
                               "device(s); use --nproc_per_node <= the number of GPUs")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    owns = not tdist.is_initialized()
    if owns:
        tdist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world)
    elif tdist.get_world_size() != world or tdist.get_rank() != rank:
        raise RuntimeError(f"a process group exists with rank {tdist.get_rank()}/{tdist.get_world_size()}, but the "
                           f"environment says {rank}/{world}")
    if rank != 0:
        logging.getLogger("distill").setLevel(logging.WARNING)
    log.info("process group: %s, %d ranks, this is rank %d on %s", backend, world, rank, device)
    return DistContext(rank, world, local_rank, device, owns_group=owns)
