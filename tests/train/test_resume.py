"""A run killed with SIGKILL and resumed ends exactly where an uninterrupted run ends; bad runs fail clearly."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from contrastlab.io import CheckpointError, load_checkpoint

ARGS = ["simclr", "--data", "digits", "--steps", "150", "--seed", "3", "--no-eval", "--quiet",
        "--set", "batch_size=64", "--set", "checkpoint_every=7", "--set", "monitor_every=25",
        "--set", "proj_hidden_dim=64", "--set", "proj_dim=32", "--set", "threads=1"]


def _train(*args, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "contrastlab", "train", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _final(run: Path):
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    train = [(r["step"], r["loss"], r["lr"]) for r in lines if r["kind"] == "train"]
    monitor = [(r["step"], r.get("knn_top1"), r["alignment"], r["uniformity"]) for r in lines if r["kind"] == "monitor"]
    snaps = sorted(p.name for p in (run / "snapshots").glob("step-*.npz"))
    return state, train, monitor, snaps


@pytest.mark.slow
def test_sigkill_and_resume_matches_an_uninterrupted_run(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    ref = _train(*ARGS, "--run", str(whole))
    proc = _train(*ARGS, "--run", str(killed))
    ckpt = killed / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:          # wait for a checkpoint past the first one
        status = killed / "status.json"
        if ckpt.exists() and status.exists() and json.loads(status.read_text() or "{}").get("step", 0) >= 40:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.communicate()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(ckpt)["step"]
    assert 0 < killed_at < 150
    assert ref.wait() == 0, ref.communicate()
    resumed = _train("--resume", str(killed))
    out, err = resumed.communicate()
    assert resumed.returncode == 0, err
    assert f"resuming {killed} at step {killed_at} of 150" in out

    s_ref, train_ref, mon_ref, snaps_ref = _final(whole)
    s_res, train_res, mon_res, snaps_res = _final(killed)
    assert s_ref["step"] == s_res["step"] == 150
    for k, v in s_ref["method"].items():
        assert torch.equal(v, s_res["method"][k]), k                 # bit-identical weights, BN stats, ...
    assert train_res == train_ref                                    # no duplicated or missing lines
    assert mon_res == mon_ref and snaps_res == snaps_ref
    assert json.loads((killed / "status.json").read_text())["state"] == "done"


def test_bad_inputs_give_clear_errors(tmp_path):
    def run(*args):
        p = _train(*args)
        out, err = p.communicate()
        return p.returncode, err

    code, err = run("simclr", "--data", "digits", "--steps", "5", "--set", "tempreature=0.1", "--run", str(tmp_path / "a"))
    assert code == 2 and "--set tempreature: unknown key" in err and "Traceback" not in err
    code, err = run("simclr", "--data", "digits", "--steps", "5", "--set", "batch_size=0", "--run", str(tmp_path / "a"))
    assert code == 2 and "`batch_size` must be an int >= 2, got 0" in err
    code, err = run("simclr", "--data", "digits", "--steps", "5", "--set", "temperature=-1", "--run", str(tmp_path / "a"))
    assert code == 2 and "`temperature` must be > 0, got -1.0" in err
    code, err = run("simclr", "--data", str(tmp_path / "missing.npz"), "--steps", "5", "--run", str(tmp_path / "a"))
    assert code == 2 and "missing.npz" in err and "Traceback" not in err
    code, err = run("--resume", str(tmp_path / "nothing"))
    assert code == 2 and "is not a run directory" in err
    code, err = run("simclr", "--resume", str(tmp_path / "nothing"))
    assert code == 2 and "do not also give method" in err
    code, err = run("simclr", "--data", "digits", "--run", str(tmp_path / "a"))
    assert code == 2 and "give a budget" in err


def test_truncated_and_foreign_checkpoints_are_refused(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"format": 1, "step": 3}, good)
    assert load_checkpoint(good)["step"] == 3
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(trunc)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(junk)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds a list"):
        load_checkpoint(tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="lacks \\['method'\\]"):
        load_checkpoint(good, required=("method",))
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")


def test_resume_from_a_truncated_checkpoint_is_a_clear_error(tmp_path):
    run = tmp_path / "run"
    p = _train("simclr", "--data", "digits", "--steps", "3", "--no-eval", "--quiet", "--set", "batch_size=32",
               "--run", str(run))
    assert p.wait() == 0, p.communicate()
    ckpt = run / "checkpoints" / "last.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    p = _train("--resume", str(run))
    out, err = p.communicate()
    assert p.returncode == 2 and "is truncated or corrupt" in err and "Traceback" not in err
    p = _train("simclr", "--data", "digits", "--steps", "3", "--run", str(run))
    out, err = p.communicate()
    assert p.returncode == 2 and "already holds a run; resume it with" in err
