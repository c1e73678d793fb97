"""The `retrieval` evaluation part of image runs: its rows, each checked against the metric computed on another
path to the same features (pixels straight from the tensor, a freshly built trainer's initial encoder, a streamed
copy of the test split), skips with reasons, bad parts, eval.json and the CLI flag."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from contrastlab.data import ImageData
from contrastlab.data.stream import ImageSource, is_source
from contrastlab.eval import embed, metric_retrieval
from contrastlab.train import Trainer, TrainConfig, evaluate_run
from contrastlab.train.evaluate import evaluate

SCORES = ("precision@1", "precision@10", "r_precision", "map@r")
QUIET = dict(log=lambda *a: None)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Every number of this module at one torch thread: the tests compare tables computed at different times, and a
    matrix product split over another number of threads can rank near-ties the other way."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _config(method="simclr", steps=20):
    return TrainConfig(method=method, data="digits", steps=steps, batch_size=64, final_eval=False, monitor_every=steps,
                       hyperparameters={"proj_hidden_dim": 32, "proj_dim": 16})      # one online monitor: fast


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    trainer = Trainer.from_config(_config(), tmp_path_factory.mktemp("ret") / "run", show_progress=False)
    trainer.fit()
    return trainer


@pytest.fixture(scope="module")
def results(trained):
    return evaluate(trained, parts=("retrieval",), **QUIET)


def _scores(z, y):
    m = metric_retrieval(z, y)
    return {k: m[k] for k in SCORES}


def test_the_table_has_pixels_untrained_and_the_trained_encoder(trained, results):
    r = results["retrieval"]
    assert list(r["table"]) == ["pixels", "untrained", "simclr"] and r["skipped"] == {}
    n = len(trained.data.x_test)
    assert (r["items"], r["queries"], r["singletons"], r["ks"]) == (n, n, 0, [1, 10])
    for row in r["table"].values():
        assert set(row) == set(SCORES) and all(0.0 <= v <= 1.0 for v in row.values())
    assert results["skipped"] == {} and "knn_top1" not in results          # only the part asked for


def test_pixels_row_is_the_metric_on_the_raw_test_pixels(trained, results):
    x, y = trained.data.x_test, trained.data.y_test
    direct = _scores(x.reshape(len(x), -1).float() / 255, y)                 # (N, 64) straight from the tensor
    assert results["retrieval"]["table"]["pixels"] == direct


def test_untrained_row_is_the_runs_own_initial_encoder(trained, results, tmp_path):
    fresh = Trainer.from_config(_config(), tmp_path / "fresh", show_progress=False)   # built, never trained
    z = embed(fresh.features(), trained.data.x_test)
    assert results["retrieval"]["table"]["untrained"] == pytest.approx(_scores(z, trained.data.y_test), abs=1e-12)
    assert results["retrieval"]["table"]["untrained"] != results["retrieval"]["table"]["simclr"]


def test_trained_row_is_the_metric_on_the_eval_features(trained, results):
    z = embed(trained.features(), trained.data.x_test)
    assert results["retrieval"]["table"]["simclr"] == pytest.approx(_scores(z, trained.data.y_test), abs=1e-12)


class _Stack(ImageSource):
    """A tensor's images, decoded one at a time as if from disk."""

    def __init__(self, x):
        super().__init__(n=len(x), channels=x.shape[1], size=tuple(x.shape[2:]), name="stack")
        self.pixels = x.numpy()

    def decode(self, i):
        return np.ascontiguousarray(self.pixels[i])


def test_streamed_test_images_give_the_same_table(trained, monkeypatch):
    d = trained.data
    streamed = ImageData(name=d.name, x=_Stack(d.x), y=d.y, x_test=_Stack(d.x_test), y_test=d.y_test,
                         classes=d.classes)
    assert streamed.streamed and is_source(streamed.x_test)
    # the in-memory table again, here: another test of this process may have changed torch's thread count, and
    # with another split of the matrix products near-ties can rank the other way
    table = evaluate(trained, parts=("retrieval",), **QUIET)["retrieval"]["table"]
    monkeypatch.setattr(trained, "data", streamed)
    again = evaluate(trained, parts=("retrieval",), **QUIET)["retrieval"]["table"]
    assert again == table                                                  # the same pixels, the same numbers


def test_unlabelled_images_are_skipped_with_a_reason(trained, monkeypatch):
    d = trained.data
    monkeypatch.setattr(trained, "data", ImageData(name=d.name, x=d.x, y=None, x_test=d.x_test, y_test=None,
                                                   classes=None))
    out = evaluate(trained, parts=("retrieval",), **QUIET)
    assert out["skipped"] == {"retrieval": "needs labelled train and test images"} and "retrieval" not in out


def test_a_test_split_of_lone_classes_is_skipped_with_a_reason(trained, monkeypatch):
    d = trained.data
    lone = dataclasses.replace(d, x_test=d.x_test[:10], y_test=torch.arange(10))
    monkeypatch.setattr(trained, "data", lone)
    out = evaluate(trained, parts=("retrieval",), **QUIET)
    assert out["skipped"] == {"retrieval": "needs 2 test images of some class (a query needs another image of "
                                           "its class)"}


def test_a_custom_encoder_skips_the_untrained_row(trained, monkeypatch):
    monkeypatch.setattr(trained, "make_encoder", None)
    r = evaluate(trained, parts=("retrieval",), **QUIET)["retrieval"]
    assert list(r["table"]) == ["pixels", "simclr"]
    assert r["skipped"] == {"untrained": "a custom encoder: give Trainer(make_encoder=...) to build a fresh one"}


def test_the_random_state_is_left_alone(trained):
    torch.manual_seed(123)
    want = torch.rand(3)
    torch.manual_seed(123)
    evaluate(trained, parts=("retrieval",), **QUIET)
    assert torch.equal(torch.rand(3), want)


def test_bad_parts_are_named(trained):
    with pytest.raises(ValueError, match=r"unknown evaluation parts \['bogus'\]; choose from \[.*'retrieval'\]"):
        evaluate(trained, parts=("retrieval", "bogus"), **QUIET)
    with pytest.raises(ValueError, match=r"`baselines` is for text runs; an image run's `retrieval` part has its "
                                         r"baselines"):
        evaluate_run(trained.run.path, parts=["baselines"], **QUIET)


def test_eval_json_and_the_cli_flag(trained, capsys):
    from contrastlab.cli import main
    assert main(["eval", str(trained.run.path), "--retrieval", "--knn"]) == 0
    saved = json.loads((trained.run.path / "eval.json").read_text())
    assert list(saved["retrieval"]["table"]) == ["pixels", "untrained", "simclr"] and "knn_top1" in saved
    out = capsys.readouterr().out
    assert "P@1" in out and "MAP@R" in out and "kNN top-1" in out
    x, y = trained.data.x_test, trained.data.y_test
    assert saved["retrieval"]["table"]["pixels"] == pytest.approx(_scores(x.reshape(len(x), -1).float() / 255, y))


def test_a_supcon_run_gets_the_supervised_baseline(tmp_path):
    trainer = Trainer.from_config(_config("supcon", steps=5), tmp_path / "supcon", show_progress=False)
    trainer.fit()
    torch.manual_seed(7)
    want = torch.rand(3)
    torch.manual_seed(7)
    r = evaluate(trainer, parts=("retrieval",), **QUIET)["retrieval"]
    assert torch.equal(torch.rand(3), want)                                   # training the baseline left it alone
    assert list(r["table"]) == ["pixels", "untrained", "supcon", "supervised"]
    # the baseline is the `supervised` method trained as the run was (same steps, data, seed): train it here too
    base = Trainer.from_config(TrainConfig(method="supervised", data="digits", steps=5, batch_size=64,
                                           final_eval=False, monitor_every=5), tmp_path / "sup", show_progress=False)
    base.fit()
    z = embed(base.features(), trainer.data.x_test)
    assert r["table"]["supervised"] == pytest.approx(_scores(z, trainer.data.y_test), abs=1e-12)
