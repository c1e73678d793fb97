"""contrastlab.distributed in one process (no process group) and the global losses' single-process path."""
from __future__ import annotations

import pytest
import torch

from contrastlab import distributed as dist
from contrastlab.losses import distributed as G

from . import _reference as R


def test_single_process_fast_path():
    assert (dist.world_size(), dist.rank(), dist.is_main(), dist.is_distributed()) == (1, 0, True, False)
    dist.barrier()
    x = torch.randn(3, 2, requires_grad=True)
    assert dist.all_gather_with_grad(x) is x
    y = dist.gather_no_grad(x)
    assert torch.equal(y, x) and not y.requires_grad
    assert dist.gather_sizes(3) == [3]
    assert dist.all_reduce_sum(torch.tensor(2.5)) == 2.5 and dist.all_reduce_mean(4) == 4.0
    p = torch.nn.Parameter(torch.ones(2))
    p.grad = torch.tensor([1.0, -2.0])
    dist.average_gradients([p])
    assert p.grad.tolist() == [1.0, -2.0]


def test_seed_for_rank():
    seeds = {dist.seed_for_rank(s, rank=r) for s in range(20) for r in range(8)}
    assert len(seeds) == 160                                      # no two (seed, rank) pairs collide
    assert dist.seed_for_rank(5) == dist.seed_for_rank(5, rank=0) == 5


def test_init_from_env(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert dist.init_from_env() is False
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert dist.init_from_env() is False
    monkeypatch.setenv("WORLD_SIZE", "2")
    for k in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(RuntimeError, match=r"WORLD_SIZE=2 but the environment variables \['RANK', 'MASTER_ADDR', "
                                           r"'MASTER_PORT'\] are missing"):
        dist.init_from_env()
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "1")
    with pytest.raises(ValueError, match="`backend` must be 'gloo', 'nccl' or None, got 'mpi'"):
        dist.init_from_env("mpi")
    assert dist.default_device() == (torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu"))


def test_global_losses_in_one_process_are_the_plain_losses():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    neg = torch.randn(6, 3, 4, generator=g, dtype=torch.float64)
    views, labels = torch.stack([a, b], 1), torch.tensor([0, 1, 0, 2, 1, 3])
    cases = [(G.global_nt_xent(a, b, temperature=0.3), R.nt_xent(a, b, 0.3)),
             (G.global_supcon(views, labels, temperature=0.2), R.supcon(views, labels, 0.2)),
             (G.global_info_nce(a, b, temperature=0.2), R.info_nce(a, b, None, 0.2)),
             (G.global_info_nce(a, b, neg, temperature=0.2), R.info_nce(a, b, neg, 0.2)),
             (G.global_clip_loss(a, b, logit_scale=5.0), R.clip(a, b, 5.0))]
    for got, want in cases:
        assert abs(float(got) - float(want)) < 1e-12


def _fails():
    raise ArithmeticError("rank failed on purpose")


def test_spawn_local_reports_a_failing_rank():
    with pytest.raises(Exception, match="rank failed on purpose"):
        dist.spawn_local(_fails, nprocs=1, timeout_s=60, threads=1)
    with pytest.raises(ValueError, match="`nprocs` must be a positive int, got 0"):
        dist.spawn_local(_fails, nprocs=0)
