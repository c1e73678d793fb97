"""Training on a folder streamed from disk is the same run as training on it in memory: bit-identical weights for
the same seed, and a run SIGKILLed mid-epoch resumes at the same example. The folder holds 2,000 PNGs; the runs kill
themselves at a named step (`contrastlab.faults`), so nothing races the clock."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from contrastlab.io import load_checkpoint
from contrastlab.train import TrainConfig, Trainer
from contrastlab.train.evaluate import DEFAULT_PARTS, evaluate

N_PER_CLASS, CLASSES, SIDE = 500, ("circle", "cross", "noise", "stripes"), 12


def _image(cls: str, rng) -> np.ndarray:
    yy, xx = np.mgrid[:SIDE, :SIDE]
    base = rng.integers(0, 60, (SIDE, SIDE, 3))
    shape = {"circle": (yy - 6) ** 2 + (xx - 6) ** 2 < rng.integers(9, 30),
             "cross": (abs(yy - xx) < 2) | (abs(yy + xx - SIDE) < 2),
             "noise": rng.random((SIDE, SIDE)) < 0.5,
             "stripes": (yy + rng.integers(0, 4)) % 4 < 2}[cls]
    return np.clip(base + shape[..., None] * rng.integers(120, 190, 3), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """2,000 PNGs in 4 class folders."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for cls in CLASSES:
        (root / cls).mkdir()
        for i in range(N_PER_CLASS):
            Image.fromarray(_image(cls, rng)).save(root / cls / f"{i:04d}.png")
    return root


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def _config(photos, **kw):
    return TrainConfig(method="simclr", data=f"folder:{photos}", steps=30, batch_size=64, seed=5, final_eval=False,
                       probe_size=64, monitor_bank=256, monitor_every=10, log_every=5, threads=1,
                       hyperparameters={"proj_hidden_dim": 32, "proj_dim": 16}, **kw)


def test_streamed_and_in_memory_training_give_bit_identical_weights(photos, tmp_path):
    runs = {}
    for stream, workers in ((False, 0), (True, 2)):
        trainer = Trainer.from_config(_config(photos, stream=stream, workers=workers), tmp_path / f"run-{stream}",
                                      show_progress=False)
        assert trainer.data.streamed is stream and len(trainer.data) == 1667
        assert trainer.steps_per_epoch == 26                              # 30 steps: into the second epoch
        trainer.fit()
        runs[stream] = trainer
    assert runs[True].data.x.read_ahead >= 25                         # the batches came from the workers
    mem, st = (runs[k].method.state_dict() for k in (False, True))
    for k, v in mem.items():
        assert torch.equal(v, st[k]), k
    metrics = [[json.loads(line) for line in (runs[k].run.path / "metrics.jsonl").read_text().splitlines()]
               for k in (False, True)]
    assert [{k: v for k, v in r.items() if k not in ("time", "throughput")} for r in metrics[0]] == \
           [{k: v for k, v in r.items() if k not in ("time", "throughput")} for r in metrics[1]]
    results = [evaluate(runs[k], parts=DEFAULT_PARTS + ("label_fractions",), label_fractions=(0.1,), k=20,
                        finetune_steps=5, log=lambda *_: None) for k in (False, True)]
    for r in results:
        r.pop("seconds"), r.pop("evaluated")
    assert results[0]["skipped"] == {} and {"knn_top1", "linear_top1", "robustness", "label_fraction"} <= set(results[1])
    assert results[0] == results[1]                                       # every number, streamed or in memory


ARGS = ["simclr", "--steps", "40", "--seed", "2", "--no-eval", "--quiet", "--set", "batch_size=64",
        "--set", "checkpoint_every=8", "--set", "monitor_every=10", "--set", "log_every=4", "--set", "probe_size=64",
        "--set", "monitor_bank=256", "--set", "proj_hidden_dim=32", "--set", "proj_dim=16", "--set", "threads=1",
        "--set", "stream=true", "--set", "workers=2"]


def _train(args, env, fault=None):
    env = {**env, "OMP_NUM_THREADS": "1"}
    env.pop("CONTRASTLAB_FAULT", None)
    if fault is not None:
        env["CONTRASTLAB_FAULT"] = json.dumps(fault)
    p = subprocess.run([sys.executable, "-m", "contrastlab", "train", *args], env=env, capture_output=True, text=True)
    return p


@pytest.mark.slow
def test_sigkill_mid_epoch_resumes_at_the_same_example(photos, tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    p = _train([*ARGS, "--data", f"folder:{photos}", "--run", str(whole)], env)
    assert p.returncode == 0, p.stderr[-3000:]
    p = _train([*ARGS, "--data", f"folder:{photos}", "--run", str(killed)], env,
               fault={"point": "after-step", "at": 13})                  # mid-epoch: 26 steps per epoch
    assert p.returncode == -signal.SIGKILL, p.stderr[-3000:]
    assert load_checkpoint(killed / "checkpoints" / "last.pt")["step"] == 8
    p = _train(["--resume", str(killed)], env)
    assert p.returncode == 0, p.stderr[-3000:]
    ref, res = (load_checkpoint(r / "checkpoints" / "last.pt") for r in (whole, killed))
    assert ref["step"] == res["step"] == 40
    for k, v in ref["method"].items():
        assert torch.equal(v, res["method"][k]), k
    lines = [[json.loads(s) for s in (r / "metrics.jsonl").read_text().splitlines()] for r in (whole, killed)]
    assert [(r["step"], r["loss"]) for r in lines[0] if r["kind"] == "train"] == \
           [(r["step"], r["loss"]) for r in lines[1] if r["kind"] == "train"]
