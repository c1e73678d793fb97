"""A rank killed mid-run (SIGKILL, as an out-of-memory kill or a lost machine would) under `--nproc 2`.

Without restarts the run stops with a non-zero exit and names its last checkpoint, and `contrastlab train --resume
RUN --nproc 2` continues it. With `--max-restarts 1` torchrun restarts both processes, which find the checkpoint and
resume by themselves. Either way the run ends with the weights and metrics of an uninterrupted 2-process run (every
draw is seeded by (seed, step, rank))."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from contrastlab.io import load_checkpoint

ARGS = ["simclr", "--data", "digits", "--steps", "40", "--no-eval", "--quiet", "--nproc", "2",
        "--set", "batch_size=64", "--set", "checkpoint_every=5", "--set", "monitor_every=100",
        "--set", "proj_hidden_dim=16", "--set", "proj_dim=8"]


def _launch(*args, fault=None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("CONTRASTLAB_FAULT", None)
    if fault is not None:
        env["CONTRASTLAB_FAULT"] = json.dumps(fault)
    return subprocess.Popen([sys.executable, "-m", "contrastlab", "train", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.mark.slow
@pytest.mark.parametrize("restarts", [0, 1])
def test_a_killed_rank_resumes_to_the_uninterrupted_result(tmp_path, restarts):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    ref = _launch(*ARGS, "--run", str(whole))
    # rank 1 SIGKILLs itself once step 12 is done (checkpoints at 0, 5, 10); only in the first attempt, so the
    # processes torchrun restarts run through
    proc = _launch(*ARGS, "--run", str(killed), *(["--max-restarts", str(restarts)] if restarts else []),
                   fault={"point": "after-step", "at": 12, "rank": 1})
    out, err = proc.communicate(timeout=600)
    if restarts:                                     # torchrun restarted both processes; they resumed by themselves
        assert proc.returncode == 0, err[-3000:]
        assert "restart 1: resuming" in out
    else:
        assert proc.returncode != 0
        ckpt = killed / "checkpoints" / "last.pt"
        assert f"its last checkpoint is {ckpt}" in err and f"contrastlab train --resume {killed} --nproc 2" in err
        assert load_checkpoint(ckpt)["step"] == 10
        resumed = _launch("--resume", str(killed), "--nproc", "2", "--quiet")
        out, err = resumed.communicate(timeout=600)
        assert resumed.returncode == 0, err[-3000:]
    assert ref.wait(timeout=600) == 0, ref.communicate()[1][-3000:]
    a, b = load_checkpoint(whole / "checkpoints" / "last.pt"), load_checkpoint(killed / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 40
    for k, v in a["method"].items():
        torch.testing.assert_close(b["method"][k], v, rtol=0, atol=1e-6, msg=k)
    losses = lambda run: [(r["step"], round(r["loss"], 5)) for r in map(json.loads, (run / "metrics.jsonl")  # noqa
                          .read_text().splitlines()) if r["kind"] == "train"]
    assert losses(killed) == losses(whole)
