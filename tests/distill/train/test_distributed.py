"""torch.distributed training: 2 gloo processes x batch b/2 take the same steps as 1 process x batch b.

The two ranks are spawned with torch.multiprocessing and given torchrun's environment variables
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), then call the same ``train(cfg)`` as
``hdr-distill train``. Each rank is handed its *own* out_dir: rank 0's folder is broadcast to the group,
so rank 1's folder must stay absent (rank 0 alone writes files).
"""
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from distill.train.checkpoint import load_checkpoint
from distill.train.dist import DistContext, RankBatchSampler
from distill.data.pairs import StepBatchSampler

# Same global batch in both runs: 1 process x 4 == 2 processes x 2. Plain SGD: the gradients of the two runs
# differ only in float summation order (~1e-9 measured after 3 steps, weights ~0.1-1), and SGD passes that on
# as it is. (With Adam, a parameter whose gradient is ~0 moves by ~lr in the direction of the rounding noise's
# sign, so the runs drift apart by up to ~1e-4 after a few steps at lr 1e-3: the same step, amplified noise.)
# The loss is the default pixel-sampled one: its random pixels are drawn for the global batch, then sliced.
# Constant LR: the group run is resumed with a larger train.steps, which would change a cosine schedule.
GLOBAL = ["train.batch_size=4", "train.validate_teacher=false", "~data.val",
          "train.val_every=100", "train.ckpt_every=100", "train.optimizer._target_=torch.optim.SGD",
          "train.optimizer.lr=0.1", "train.lr_schedule=none"]
ATOL = 1e-6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, root: str) -> None:
    """One rank: 2 steps, then resume to 4 steps (a group resume), in the same process group."""
    import torch.distributed as tdist

    from distill.train.loop import train
    from tests.distill.train.test_train import _cfg

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    # The group is created here so that it outlives both train() calls (train leaves a group it did not create).
    tdist.init_process_group("gloo", init_method="env://", rank=rank, world_size=world)
    try:
        out = Path(root) / f"rank{rank}"
        train(_cfg(out, *GLOBAL, "train.steps=2"))
        train(_cfg(out, *GLOBAL, "train.steps=4", "train.resume=true"))
    finally:
        tdist.destroy_process_group()


def test_rank_batch_sampler_splits_each_global_batch():
    base = StepBatchSampler(n=50, batch_size=6, seed=3, start_step=0, total_steps=4)
    shares = [list(RankBatchSampler(base, r, 3)) for r in range(3)]
    for s, batch in enumerate(base):
        assert sum((sh[s] for sh in shares), []) == batch  # the shares, in rank order, are the global batch
    with pytest.raises(ValueError, match="divisible"):
        RankBatchSampler(StepBatchSampler(50, 5, 0, 0, 4), 0, 2)


def test_single_process_context_is_a_no_op():
    ctx = DistContext()
    sampler = StepBatchSampler(10, 2, 0, 0, 3)
    module = torch.nn.Linear(2, 2)
    assert ctx.is_main and not ctx.active
    assert ctx.shard(sampler) is sampler and ctx.wrap(module) is module and ctx.broadcast("x") == "x"
    assert ctx.mean(torch.tensor(0.25)) == 0.25
    t = torch.arange(8)
    assert ctx.local_share(t) is t
    shares = [DistContext(rank=r, world=4).local_share(t).tolist() for r in range(4)]
    assert shares == [[0, 1], [2, 3], [4, 5], [6, 7]]


def test_two_gloo_processes_match_one_process_and_only_rank0_writes(tmp_path):
    from distill.train.loop import train
    from tests.distill.train.test_train import _cfg

    mp.spawn(_rank_main, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    single = tmp_path / "single"
    train(_cfg(single, *GLOBAL, "train.steps=4"))

    assert not (tmp_path / "rank1").exists(), "rank 1 wrote files"
    assert {p.name for p in (tmp_path / "rank0").iterdir()} >= {"checkpoints", "history.csv", "summary.json"}
    dist_ck = load_checkpoint(tmp_path / "rank0" / "checkpoints" / "last.pt")
    one_ck = load_checkpoint(single / "checkpoints" / "last.pt")
    assert dist_ck["step"] == one_ck["step"] == 4
    diffs = {k: (dist_ck["state_dict"][k] - one_ck["state_dict"][k]).abs().max().item() for k in one_ck["state_dict"]}
    assert max(diffs.values()) < ATOL, diffs
    # the weights moved (to_grid starts at zero): two runs that trained nothing would also "match"
    assert one_ck["state_dict"]["to_grid.weight"].abs().max() > 100 * ATOL
    # logged loss is the mean over ranks: the global batch's loss
    la = [r["loss"] for r in dist_ck["history"]]
    lb = [r["loss"] for r in one_ck["history"]]
    assert la == pytest.approx(lb, rel=1e-5)
