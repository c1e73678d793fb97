"""A rank killed mid-run (SIGKILL, as an out-of-memory kill or a lost machine would) under `--nproc 2`.

Without restarts the run stops with a non-zero exit and names its last checkpoint, and `contrastlab train --resume
RUN --nproc 2` continues it. With `--max-restarts 1` torchrun restarts both processes, which find the checkpoint and
resume by themselves. Either way the run ends with the weights and metrics of an uninterrupted 2-process run (every
draw is seeded by (seed, step, rank))."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from contrastlab.io import load_checkpoint

ARGS = ["simclr", "--data", "digits", "--steps", "300", "--no-eval", "--quiet", "--nproc", "2",
        "--set", "batch_size=64", "--set", "checkpoint_every=5", "--set", "monitor_every=100",
        "--set", "proj_hidden_dim=16", "--set", "proj_dim=8"]


def _launch(*args) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "contrastlab", "train", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _rank_pid(run: Path, rank: int) -> int | None:
    """The worker process of `rank` training into `run` (torchrun's child), found through /proc."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().split(b"\0")
            env = Path(f"/proc/{d}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(run).encode() in cmd and b"torch.distributed.run" not in b" ".join(cmd) \
                and f"RANK={rank}".encode() in env and b"LOCAL_RANK=" + str(rank).encode() in env:
            return int(d)
    return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc to find the rank process")
@pytest.mark.parametrize("restarts", [0, 1])
def test_a_killed_rank_resumes_to_the_uninterrupted_result(tmp_path, restarts):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    ref = _launch(*ARGS, "--run", str(whole))
    proc = _launch(*ARGS, "--run", str(killed), *(["--max-restarts", str(restarts)] if restarts else []))
    status = killed / "status.json"
    deadline, victim = time.time() + 180, None
    while time.time() < deadline and proc.poll() is None:            # wait for a checkpoint past step 10
        try:
            step = json.loads(status.read_text() or "{}").get("step", 0)
        except (OSError, ValueError):
            step = 0
        if step >= 12 and (killed / "checkpoints" / "last.pt").exists():
            victim = _rank_pid(killed, 1)
            if victim:
                break
        time.sleep(0.05)
    assert victim, f"no rank-1 process to kill: {proc.poll()} {proc.communicate()[1][-2000:] if proc.poll() else ''}"
    os.kill(victim, signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    if restarts:                                     # torchrun restarted both processes; they resumed by themselves
        assert proc.returncode == 0, err[-3000:]
        assert "restart 1: resuming" in out
    else:
        assert proc.returncode != 0
        ckpt = killed / "checkpoints" / "last.pt"
        assert f"its last checkpoint is {ckpt}" in err and f"contrastlab train --resume {killed} --nproc 2" in err
        assert 10 <= load_checkpoint(ckpt)["step"] < 300
        resumed = _launch("--resume", str(killed), "--nproc", "2", "--quiet")
        out, err = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, err[-3000:]
    assert ref.wait(timeout=300) == 0, ref.communicate()[1][-3000:]
    a, b = load_checkpoint(whole / "checkpoints" / "last.pt"), load_checkpoint(killed / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 300
    for k, v in a["method"].items():
        torch.testing.assert_close(b["method"][k], v, rtol=0, atol=1e-6, msg=k)
    losses = lambda run: [(r["step"], round(r["loss"], 5)) for r in map(json.loads, (run / "metrics.jsonl")  # noqa
                          .read_text().splitlines()) if r["kind"] == "train"]
    assert losses(killed) == losses(whole)
