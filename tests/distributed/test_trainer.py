"""The trainer in two Gloo processes (issue #7): the same weights as one process on the same global batches, only
rank 0 writes, a 2-process checkpoint resumed by 1 process continues exactly, and a batch that the processes cannot
share is refused clearly. Plus `contrastlab train --nproc 2` end to end.

Why equality is provable here: the views are the identity (`strength=0`: no crop, flip, jitter or blur), and the
encoder and head hold no batch statistics (a linear encoder registered below, `proj_layers=1`), so each rank's
rows against every rank's embeddings give the full-batch loss, and averaging the ranks' gradients gives the
one-process gradient (up to float32 summation order). With BatchNorm, statistics would be per rank, as with
DistributedDataParallel. SGD keeps the update linear in the gradient.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from contrastlab.distributed import spawn_local
from contrastlab.io import load_checkpoint
from contrastlab.models import ENCODERS, register_encoder

ENCODER = "test_linear_no_bn"
STEPS, SPLIT_AT = 6, 3


class _Linear(nn.Module):
    """Flatten -> Linear -> tanh: no batch statistics, no dropout."""

    def __init__(self, *, in_channels=1, mean=None, std=None, pixels=64, out_dim=12):
        super().__init__()
        self.fc = nn.Linear(in_channels * pixels, out_dim)
        self.out_dim = out_dim

    def forward(self, x):                           # (B, C, 8, 8) -> (B, F)
        return torch.tanh(self.fc(x.flatten(1)))


def _register() -> None:
    if ENCODER not in ENCODERS:
        register_encoder(ENCODER)(_Linear)


@pytest.fixture(scope="module", autouse=True)
def _test_encoder():
    """The test encoder is in the registry only while this file's tests run."""
    _register()
    yield
    ENCODERS.pop(ENCODER, None)


def _config(**kw):
    from contrastlab.train import TrainConfig
    base = dict(method="simclr", data="digits", steps=STEPS, batch_size=64, optimizer="sgd", lr=0.5, warmup=0.0,
                strength=0.0, encoder=ENCODER, final_eval=False, checkpoint_every=SPLIT_AT, monitor_every=3,
                log_every=1, probe_size=50, monitor_bank=100, threads=1,
                hyperparameters={"proj_layers": 1, "proj_dim": 8, "temperature": 0.5})
    return TrainConfig(**{**base, **kw})


_WRITERS = ("create", "update_config", "append_metric", "write_snapshot", "write_probe", "status",
            "truncate_metrics", "remove_snapshots_after")


def _ranks(tmp: str) -> dict:
    """What each of the two ranks runs: a 6-step run (keeping a copy of its step-3 checkpoint) and a batch of 63."""
    from contrastlab import distributed as dist
    from contrastlab.train import Trainer, rundir
    from contrastlab.train import trainer as trainer_mod
    _register()
    writes = []
    if not dist.is_main():                          # record every write a non-main rank attempts
        for name in _WRITERS:
            setattr(rundir.RunDir, name, lambda self, *a, _n=name, **k: writes.append(_n))
        trainer_mod.save_checkpoint = lambda *a, **k: writes.append("save_checkpoint")
    run = Path(tmp) / "two"
    trainer = Trainer.from_config(_config(), run, show_progress=False)
    save = trainer.save

    def save_and_keep():
        save()
        if dist.is_main() and trainer.step == SPLIT_AT:
            shutil.copy(trainer.run.last_checkpoint, Path(tmp) / "step3.pt")
    trainer.save = save_and_keep
    trainer.fit()
    try:
        Trainer.from_config(_config(batch_size=63), Path(tmp) / "odd", show_progress=False)
        odd = None
    except ValueError as e:
        odd = str(e)
    return {"state": {k: v.clone() for k, v in trainer.method.state_dict().items()}, "writes": writes,
            "odd": odd, "local": trainer.local_indices(0).tolist(), "world": dist.world_size()}


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("two_ranks")
    return tmp, spawn_local(_ranks, nprocs=2, args=(str(tmp),), timeout_s=180, threads=1)


def _close(a: dict, b: dict, tol: float = 2e-5) -> list[str]:
    bad = []
    for k, v in a.items():
        if v.is_floating_point():
            err = float((v - b[k]).abs().max())
            if err > tol * max(1.0, float(v.abs().max())):
                bad.append(f"{k}: max error {err:.3g}")
    return bad


def test_two_processes_give_the_one_process_weights(two, tmp_path):
    from contrastlab.train import Trainer
    tmp, (r0, r1) = two
    assert r0["world"] == r1["world"] == 2
    assert sorted(r0["local"] + r1["local"]) == sorted(set(r0["local"] + r1["local"])) and len(r0["local"]) == 32
    one = Trainer.from_config(_config(), tmp_path / "one", show_progress=False)
    assert one.batch_indices(0).tolist() == r0["local"] + r1["local"]      # the ranks' slices make the batch
    start = {k: v.clone() for k, v in one.method.state_dict().items()}
    one.fit()
    moved = max(float((one.method.state_dict()[k] - v).abs().max()) for k, v in start.items())
    assert moved > 1e-3                                                     # training changed the weights
    assert _close(one.method.state_dict(), r0["state"]) == []
    assert _close(r0["state"], r1["state"], tol=0.0) == []                 # every rank holds the same model
    metrics = [json.loads(line) for line in (tmp / "two" / "metrics.jsonl").read_text().splitlines()]
    ref = [json.loads(line) for line in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    got = [m["loss"] for m in metrics if m["kind"] == "train"]
    want = [m["loss"] for m in ref if m["kind"] == "train"]
    assert len(got) == STEPS and max(abs(g - w) for g, w in zip(got, want)) < 1e-4   # the full-batch loss


def test_only_rank_zero_writes(two):
    tmp, (r0, r1) = two
    assert r1["writes"] == []
    run = tmp / "two"
    assert json.loads((run / "status.json").read_text())["state"] == "done"
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == STEPS
    assert sorted(p.name for p in (run / "snapshots").glob("step-*.npz")) == [
        f"step-{s:08d}.npz" for s in (0, 3, 6)]


def test_one_process_resumes_a_two_process_checkpoint_exactly(two, tmp_path):
    from contrastlab.train import Trainer
    tmp, (r0, _) = two
    run = tmp_path / "resumed"
    shutil.copytree(tmp / "two", run)
    shutil.copy(tmp / "step3.pt", run / "checkpoints" / "last.pt")
    trainer = Trainer.resume(run, show_progress=False)
    assert trainer.step == SPLIT_AT
    trainer.fit()
    assert trainer.step == STEPS
    assert _close(trainer.method.state_dict(), r0["state"]) == []
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "train"]
    assert steps == list(range(1, STEPS + 1))                               # no duplicated or missing lines


def test_a_batch_the_processes_cannot_share_is_refused(two):
    _, (r0, r1) = two
    for r in (r0, r1):
        assert r["odd"] is not None and "`batch_size` is the global batch and must be divisible by the number of " \
                                        "processes (2), got 63" in r["odd"] and "[1, 3, 7, 9, 21, 63]" in r["odd"]


def _cli(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "contrastlab", "train", *args], env=env, capture_output=True,
                          text=True, timeout=240)


@pytest.mark.slow
def test_cli_nproc_trains_and_a_failed_launch_names_the_checkpoint(two, tmp_path):
    run = tmp_path / "cli"
    args = ["simclr", "--data", "digits", "--steps", "1", "--run", str(run), "--no-eval", "--quiet", "--nproc", "2",
            "--set", "batch_size=64", "--set", "proj_hidden_dim=16", "--set", "proj_dim=8"]
    p = _cli(*args)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "in 2 processes" in p.stdout and p.stdout.count("trained 1 steps") == 1
    assert load_checkpoint(run / "checkpoints" / "last.pt")["world_size"] == 2
    p = _cli(*args)                                                         # refused before any launch
    assert p.returncode == 2 and "already holds a run" in p.stderr and "--nproc 2" in p.stderr
    two_run = two[0] / "two"
    p = _cli("--resume", str(two_run), "--nproc", "3", "--quiet")          # 64 is not divisible by 3
    assert p.returncode != 0
    assert "must be divisible by the number of processes (3), got 64" in p.stderr
    assert "the 3-process run failed" in p.stderr and str(two_run / "checkpoints" / "last.pt") in p.stderr


def _one_step(tmp: Path, **kw) -> dict:
    from contrastlab.train import Trainer
    trainer = Trainer.from_config(_config(steps=1, monitor_every=1, **kw), tmp, show_progress=False)
    trainer.fit()
    return trainer.method.state_dict()


def test_micro_batch_step_equals_the_direct_step(tmp_path):
    direct = _one_step(tmp_path / "direct")
    cached = _one_step(tmp_path / "cached", micro_batch=10)                # chunks of 10, 10, ..., 4
    assert _close(direct, cached, tol=1e-5) == []
    assert max(float((direct[k] - cached[k]).abs().max()) for k in direct) < 1e-5


def test_micro_batch_with_a_method_that_cannot_split_is_a_clear_error(tmp_path):
    from contrastlab.train import Trainer
    with pytest.raises(ValueError, match=r"`micro_batch` \(gradient caching\) needs .* 'moco' does not .*'simclr'"):
        Trainer.from_config(_config(method="moco", micro_batch=8, hyperparameters={"queue_size": 128}),
                            tmp_path / "m", show_progress=False)
