"""Training through the CLI and the Python API on digits, the run directory it writes, and `contrastlab eval`."""
import json

import numpy as np
import pytest
import torch

from contrastlab.cli import main
from contrastlab.data import load_images
from contrastlab.eval import embed, knn_top1
from contrastlab.train import RunDir, TrainConfig, Trainer


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "supervised"
    assert main(["train", "supervised", "--data", "digits", "--steps", "60", "--run", str(path), "--no-eval", "--quiet",
                 "--set", "batch_size=64", "--set", "optimizer=adamw", "--set", "lr=0.003"]) == 0
    return path


def test_run_directory_follows_the_contract(run):
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["method"] == "supervised" and cfg["total_steps"] == 60 and cfg["classes"] == [str(i) for i in range(10)]
    assert json.loads((run / "status.json").read_text())["state"] == "done"
    lines = RunDir(run).metrics()
    train = [r for r in lines if r["kind"] == "train"]
    assert [r["step"] for r in train] == list(range(10, 61, 10))
    assert all(np.isfinite(r["loss"]) and r["lr"] >= 0 and r["throughput"] > 0 for r in train)
    monitors = [r for r in lines if r["kind"] == "monitor"]
    assert monitors[0]["step"] == 0 and monitors[-1]["step"] == 60
    probe = np.load(run / "snapshots" / "probe.npz")
    assert probe["ids"].shape == probe["labels"].shape and probe["thumbnails"].dtype == np.uint8
    snaps = sorted((run / "snapshots").glob("step-*.npz"))
    assert len(snaps) == len(monitors)
    emb = np.load(snaps[-1])["embeddings"]
    assert emb.shape[0] == len(probe["ids"]) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    # training used the labels: the online kNN monitor rose well above chance
    assert monitors[-1]["knn_top1"] > 0.8


def test_eval_command_writes_eval_json_matching_an_independent_knn(run, capsys):
    assert main(["eval", str(run), "--knn"]) == 0
    out = capsys.readouterr().out
    assert "kNN top-1" in out
    result = json.loads((run / "eval.json").read_text())
    assert result["step"] == 60 and set(result) >= {"knn_top1", "knn"}
    # recompute with the encoder from the checkpoint and a brute-force weighted kNN in float64
    trainer = Trainer.resume(run, show_progress=False)
    data = load_images("digits")
    feats = trainer.features()
    tr = torch.nn.functional.normalize(embed(feats, data.x).double(), dim=1)
    te = torch.nn.functional.normalize(embed(feats, data.x_test).double(), dim=1)
    sim = te @ tr.T
    top, idx = sim.topk(200, dim=1)
    votes = torch.zeros(len(te), 10, dtype=torch.float64)
    votes.scatter_add_(1, data.y[idx], (top / 0.1).exp())
    ref = (votes.argmax(1) == data.y_test).double().mean().item()
    assert result["knn_top1"] == pytest.approx(ref, abs=2 / len(te))


@pytest.mark.parametrize("argv, message", [
    (["eval", "/nonexistent/run"], "is not a run directory"),
    (["eval", "x", "--label-fractions", "0.5,2"], "every fraction must be in (0, 1]"),
    (["eval", "x", "--k", "0"], "must be a positive integer, got 0"),
])
def test_eval_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


def test_minutes_budget_is_turned_into_a_fixed_step_count(tmp_path):
    cfg = TrainConfig(method="simclr", data="digits", minutes=0.1, batch_size=32, final_eval=False, threads=1,
                      hyperparameters={"proj_hidden_dim": 32, "proj_dim": 16})
    trainer = Trainer.from_config(cfg, tmp_path / "r", show_progress=False)
    trainer.fit()
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["total_steps"] == trainer.step >= 1 and saved["monitor_every"] >= 1
    assert trainer.elapsed < 60                      # a 6-second budget does not turn into minutes


def test_unsupervised_method_on_unlabelled_npz(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(80, 12, 12), dtype=np.uint8)
    np.savez(tmp_path / "u.npz", x=x)
    cfg = TrainConfig(method="simclr", data=str(tmp_path / "u.npz"), steps=4, batch_size=16, final_eval=False,
                      hyperparameters={"proj_hidden_dim": 16, "proj_dim": 8})
    trainer = Trainer.from_config(cfg, tmp_path / "r", show_progress=False)
    trainer.fit()
    monitors = [r for r in RunDir(tmp_path / "r").metrics() if r["kind"] == "monitor"]
    assert monitors and "knn_top1" not in monitors[-1] and "uniformity" in monitors[-1]
    with pytest.raises(ValueError, match="method 'supcon' needs labels"):
        Trainer.from_config(TrainConfig(method="supcon", data=str(tmp_path / "u.npz"), steps=2, batch_size=16),
                            tmp_path / "s", show_progress=False)
    with pytest.raises(ValueError, match="`batch_size` must be at most the number of training examples \\(80\\)"):
        Trainer.from_config(TrainConfig(method="simclr", data=str(tmp_path / "u.npz"), steps=2, batch_size=128),
                            tmp_path / "t", show_progress=False)


def test_multi_instance_training_with_groups(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(60, 10, 10), dtype=np.uint8)
    np.savez(tmp_path / "g.npz", x=x, y=np.arange(60) % 3, group=np.arange(60) // 3)
    cfg = TrainConfig(method="multi_instance", data=str(tmp_path / "g.npz"), steps=3, batch_size=12,
                      final_eval=False, hyperparameters={"proj_hidden_dim": 16, "proj_dim": 8})
    trainer = Trainer.from_config(cfg, tmp_path / "r", show_progress=False)
    assert trainer.fit()["step"] == 3


def test_any_module_as_encoder_through_the_python_api(tmp_path):
    from contrastlab.methods import SimCLR
    data = load_images("digits")
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU())
    method = SimCLR(encoder, feature_dim=32, proj_hidden_dim=32, proj_dim=16)
    cfg = TrainConfig(method="simclr", data="digits", steps=5, batch_size=64, final_eval=False)
    trainer = Trainer(method, data, cfg, tmp_path / "r", show_progress=False)
    assert trainer.fit()["step"] == 5
    from contrastlab.train import evaluate
    res = evaluate(trainer, parts=("knn", "label_fractions"), log=lambda s: None)
    assert 0.3 < res["knn_top1"] <= 1 and "custom encoder" in res["skipped"]["label_fractions"]
