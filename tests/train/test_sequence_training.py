"""Sequence runs through the trainer and the CLI: a ts2vec run killed with SIGKILL and resumed ends bit-identical
to the uninterrupted run (the faults of `contrastlab.faults`, no sleeps); cpc trains and evaluates; the final
evaluation's 1-NN baseline agrees with a float64 reference; the benchmark's smoke run."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from contrastlab.io import load_checkpoint
from tests.train.test_resume import _killed, _metrics, _train
from tests.waves import write_waves

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def series_file(tmp_path_factory):
    """40 + 20 two-channel series of two classes (a sine and a square wave with noise), 32 steps."""
    return write_waves(tmp_path_factory.mktemp("series") / "waves.npz")[0]


def _args(path, method="ts2vec"):
    return [method, "--data", f"series:{path}", "--steps", "16", "--seed", "2", "--no-eval", "--quiet",
            "--set", "batch_size=8", "--set", "checkpoint_every=5", "--set", "monitor_every=6", "--set", "log_every=2",
            "--set", "probe_size=10", "--set", "monitor_bank=20", "--set", "threads=1", "--set", "lr=0.001"]


def _final(run: Path):
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    lines = _metrics(run)
    return (state, [(r["step"], r["loss"]) for r in lines if r["kind"] == "train"],
            [(r["step"], r.get("knn_top1")) for r in lines if r["kind"] == "monitor"],
            sorted(p.name for p in (run / "snapshots").glob("step-*.npz")))


@pytest.mark.slow
def test_a_killed_ts2vec_run_resumes_to_the_uninterrupted_run(tmp_path, series_file):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    p = _train(*_args(series_file), "--run", str(whole))
    out, err = p.communicate()
    assert p.returncode == 0, err
    _killed(_train(*_args(series_file), "--run", str(killed), fault={"point": "after-step", "at": 12}))
    assert load_checkpoint(killed / "checkpoints" / "last.pt")["step"] == 10
    p = _train("--resume", str(killed))
    out, err = p.communicate()
    assert p.returncode == 0, err
    s_ref, train_ref, mon_ref, snaps_ref = _final(whole)
    s_res, train_res, mon_res, snaps_res = _final(killed)
    assert s_ref["step"] == s_res["step"] == 16
    for k, v in s_ref["method"].items():
        assert torch.equal(v, s_res["method"][k]), k
    assert train_res == train_ref and mon_res == mon_ref and snaps_res == snaps_ref
    assert json.loads((killed / "status.json").read_text())["state"] == "done"
    config = json.loads((whole / "config.json").read_text())
    assert config["model"]["encoder"] == "dilated_cnn" and config["model"]["options"]["causal"] is False
    assert config["model"]["options"]["dropout"] == 0.1                # the paper's encoder for ts2vec


def test_cpc_trains_and_evaluates_through_the_trainer(tmp_path, series_file):
    from contrastlab.data import load_sequences
    from contrastlab.train import Trainer, TrainConfig
    from contrastlab.train.evaluate import evaluate_run
    cfg = TrainConfig(method="cpc", data=f"series:{series_file}", steps=3, batch_size=8, probe_size=10,
                      monitor_bank=20, monitor_every=3, encoder_options={"depth": 2, "hidden": 8, "out_dim": 16},
                      hyperparameters={"prediction_steps": 2, "anchors": 64}, final_eval=False, threads=1)
    trainer = Trainer.from_config(cfg, tmp_path / "cpc", show_progress=False)
    assert trainer.method.encoder.causal is True                     # cpc's encoder is built causal
    record = trainer.fit()
    assert record["step"] == 3 and 0.0 <= record["knn_top1"] <= 1.0
    lines = []
    results = evaluate_run(tmp_path / "cpc", log=lines.append)
    for key in ("svm_top1", "linear_top1", "untrained_svm_top1", "untrained_linear_top1"):
        assert 0.0 <= results[key] <= 1.0
    assert sorted(results["label_fraction"]) == [0.1, 0.5]
    assert all(0.0 <= v <= 1.0 for arms in results["label_fraction"].values() for v in arms.values())
    data = load_sequences(f"series:{series_file}")
    a, b = data.x.flatten(1).double().numpy(), data.x_test.flatten(1).double().numpy()
    nearest = ((b[:, None] - a[None]) ** 2).sum(2).argmin(1)             # float64 1-NN Euclidean
    assert results["one_nn_euclidean_top1"] == float((data.y.numpy()[nearest] == data.y_test.numpy()).mean())
    assert "1-NN Euclidean (raw)" in lines[-1]
    with pytest.raises(ValueError, match="a sequence run is evaluated as a whole"):
        evaluate_run(tmp_path / "cpc", parts=["knn"], log=lines.append)


def test_the_benchmark_smoke_run(series_file):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sequences.py"), "--smoke",
                        "--datasets", f"series:{series_file}", "--methods", "ts2vec", "cpc", "simclr", "supcon"],
                       env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "1-NN Eucl." in p.stdout and "50% labels pre/scr." in p.stdout
    assert all(f"{m}: beats 1-NN Euclidean" in p.stdout for m in ("ts2vec", "cpc", "simclr", "supcon"))
    assert "best of ts2vec, cpc, simclr per dataset" in p.stdout


def _nt_xent64(a, b, temperature):
    """NT-Xent (SimCLR) in float64 by its definition: 2B anchors, each against its partner and the 2B - 2 others."""
    z = torch.nn.functional.normalize(torch.cat([a, b]).double(), dim=1)
    n = a.shape[0]
    sim = z @ z.T / temperature
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        others = [k for k in range(2 * n) if k != i]
        total += -(sim[i, j] - torch.logsumexp(sim[i, others], 0))
    return total / (2 * n)


def _supcon64(z, labels, temperature):
    """SupCon L_out (Khosla et al. 2020, eq. 2) in float64: every other view of the same label is a positive."""
    b, v, _ = z.shape
    f = torch.nn.functional.normalize(z.reshape(b * v, -1).double(), dim=1)
    y = labels.repeat_interleave(v)
    sim = f @ f.T / temperature
    total = 0.0
    for i in range(b * v):
        others = [k for k in range(b * v) if k != i]
        positives = [k for k in others if y[k] == y[i]]
        log_prob = sim[i] - torch.logsumexp(sim[i, others], 0)
        total += -log_prob[positives].mean()
    return total / (b * v)


@pytest.mark.parametrize("name", ["simclr", "supcon"])
def test_simclr_and_supcon_train_on_series_unchanged(tmp_path, series_file, name):
    """The image methods take series as they are: two augmented views of every series (B, 2, C, T), a centred
    encoder, the loss equal to its float64 definition on the batch's projections, then training and the sequence
    evaluation."""
    from contrastlab.train import Trainer, TrainConfig
    cfg = TrainConfig(method=name, data=f"series:{series_file}", steps=4, batch_size=8, probe_size=10,
                      monitor_bank=20, monitor_every=4, encoder_options={"depth": 2, "hidden": 8, "out_dim": 16},
                      hyperparameters={"proj_hidden_dim": 16, "proj_dim": 8}, final_eval=False, threads=1)
    trainer = Trainer.from_config(cfg, tmp_path / name, show_progress=False)
    method = trainer.method
    assert method.encoder.causal is False                             # the methods that do not ask get a centred one
    batch = trainer.make_batch(method, 0)
    data = trainer.data
    views, idx = batch["views"], batch["index"]
    assert views.shape == (8, 2, data.channels, data.length)
    assert not torch.equal(views[:, 0], views[:, 1])                 # two different draws of the series views
    assert torch.equal(trainer.make_batch(method, 0)["views"], views)   # and the same draws for the same step
    raw = data.x[idx]
    assert float((views[:, 0] - raw).abs().mean()) < float((views[:, 0] - raw.roll(1, 0)).abs().mean())
    with torch.no_grad():
        z, = method.embeddings(batch)                                 # (B, 2, P)
        loss = float(method(batch).loss)
    expected = (_nt_xent64(z[:, 0], z[:, 1], method.temperature) if name == "simclr"
                else _supcon64(z, batch["labels"], method.temperature))
    assert loss == pytest.approx(float(expected), rel=1e-5, abs=1e-6)
    record = trainer.fit()
    assert record["step"] == 4 and 0.0 <= record["knn_top1"] <= 1.0
    from contrastlab.train.evaluate import evaluate_run
    results = evaluate_run(tmp_path / name, log=lambda *_: None)
    assert 0.0 <= results["svm_top1"] <= 1.0 and 0.0 <= results["untrained_svm_top1"] <= 1.0


def test_a_sequence_run_starts_from_pretrained_weights_and_can_freeze_them(tmp_path, series_file):
    """`pretrained` and `freeze_encoder` apply to sequence encoders as to image ones: the run's encoder starts from
    the file's weights (compared tensor by tensor with the file), and a frozen one is not changed by training."""
    from contrastlab.models import create_encoder
    from contrastlab.train import Trainer, TrainConfig
    small = {"depth": 2, "hidden": 8, "out_dim": 16}
    torch.manual_seed(5)
    source = create_encoder("dilated_cnn", in_channels=2, causal=False, **small)
    weights = tmp_path / "encoder.pt"
    torch.save(source.state_dict(), weights)
    common = dict(method="simclr", data=f"series:{series_file}", steps=2, batch_size=8, probe_size=10,
                  monitor_bank=20, encoder_options=small, hyperparameters={"proj_hidden_dim": 16, "proj_dim": 8},
                  final_eval=False, threads=1, pretrained=str(weights))
    trainer = Trainer.from_config(TrainConfig(**common), tmp_path / "warm", show_progress=False)
    state = trainer.method.encoder.state_dict()
    assert all(torch.equal(state[k], v) for k, v in source.state_dict().items())
    frozen = Trainer.from_config(TrainConfig(**common, freeze_encoder=True), tmp_path / "frozen", show_progress=False)
    frozen.fit()
    after = {k.removeprefix("encoder."): v for k, v in frozen.method.encoder.state_dict().items()}
    assert all(torch.equal(after[k], v) for k, v in source.state_dict().items())
