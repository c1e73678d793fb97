"""Inputs a hostile or clumsy user gives `contrastlab train` end in a clear error (exit code 2, one message, no
traceback) or train with a warning: non-finite hyperparameters, a huge seed, a huge image size, labels that are
all different, pairs that share one query, one class for SupCon, 1x1 images, and an unknown dataset."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from contrastlab.cli import main
from contrastlab.data import limits
from contrastlab.data.text import PairData, TextData
from contrastlab.train import TrainConfig

FAST = ["--steps", "2", "--quiet", "--set", "batch_size=16", "--set", "probe_size=50", "--set", "monitor_bank=50",
        "--set", "threads=1"]


def _cli(capsys, *args):
    try:
        code = main(["train", *args])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def _pairs_file(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize("method, setting, message", [
    ("simclr", "temperature=nan", "`temperature` must be a finite number > 0, got nan"),
    ("simclr", "temperature=inf", "`temperature` must be a finite number > 0, got inf"),
    ("supcon", "temperature=-inf", "`temperature` must be a finite number > 0, got -inf"),
    ("moco", "temperature=nan", "`temperature` must be a finite number > 0, got nan"),
    ("moco", "momentum=nan", "`momentum` must be in [0, 1], got nan"),
    ("triplet", "margin=nan", "`margin` must be a finite number >= 0, got nan"),
    ("simclr", "lr=inf", "`lr` must be a finite number > 0, got inf"),
    ("simclr", "weight_decay=inf", "`weight_decay` must be a finite number >= 0, got inf"),
    ("simclr", "checkpoint_minutes=inf", "`checkpoint_minutes` must be a finite number > 0, got inf"),
    ("simclr", "image_size=100000", "`image_size` must be an int in [4, 1024], got 100000"),
    ("simclr", "vocab_size=1000000000000", "`vocab_size` must be an int in [10, 1000000], got 1000000000000"),
    ("moco", "queue_size=1000000000000", "does not fit in memory (one tensor alone needs 512.0 TB)"),
])
def test_non_finite_and_unbounded_settings_are_clear_errors(tmp_path, capsys, method, setting, message):
    code, _, err = _cli(capsys, method, "--data", "digits", *FAST, "--set", setting, "--run", str(tmp_path / "r"))
    assert code == 2 and message in err, err


def test_text_methods_refuse_a_non_finite_temperature(tmp_path, capsys):
    data = _pairs_file(tmp_path / "p.jsonl", [{"query": f"q{i}", "positive": f"d{i}"} for i in range(40)])
    for method in ("pairs", "simcse"):
        code, _, err = _cli(capsys, method, "--data", data, *FAST, "--set", "temperature=inf",
                            "--run", str(tmp_path / method))
        assert code == 2 and "`temperature` must be a finite number > 0, got inf" in err, err


@pytest.mark.parametrize("seed", [2 ** 70, 10 ** 30, 2 ** 63, -1])
def test_a_seed_out_of_range_is_a_clear_error(tmp_path, capsys, seed):
    code, _, err = _cli(capsys, "simclr", "--data", "digits", *FAST, "--seed", str(seed), "--run", str(tmp_path / "r"))
    assert code == 2 and f"`seed` must be an int in [0, 2**63-1], got {seed}" in err, err
    TrainConfig(steps=1, seed=2 ** 63 - 1)                         # the largest seed is fine


@pytest.mark.parametrize("budget", ["--minutes", "--epochs"])
def test_an_infinite_budget_is_a_clear_error(tmp_path, capsys, budget):
    code, _, err = _cli(capsys, "simclr", "--data", "digits", budget, "inf", "--run", str(tmp_path / "r"))
    assert code == 2 and "must be a finite positive number, got inf" in err, err


def test_other_commands_refuse_infinite_numbers_and_huge_seeds(tmp_path, capsys):
    for argv, message in ((["losses", "--demo", "--seed", str(10 ** 30)], "must be an int in [0, 2**63-1], got 1"),
                          (["eval", str(tmp_path), "--knn-temperature", "inf"], "must be a finite positive number")):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and message in capsys.readouterr().err


def test_a_batch_of_views_too_large_for_memory_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(limits, "available_memory", lambda: 16_000_000)   # the 7.4 MB dataset fits, 8.4 MB views not
    code, _, err = _cli(capsys, "simclr", "--data", "digits", "--steps", "2", "--set", "image_size=64",
                        "--set", "batch_size=256", "--run", str(tmp_path / "r"))
    assert code == 2 and "512 views in a batch of 1x64x64 need 8.4 MB" in err, err
    assert "choose a smaller `image_size` or batch_size" in err


def test_labels_that_are_all_different_train_and_evaluate_with_a_warning(tmp_path, capsys):
    path = tmp_path / "distinct.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.integers(0, 256, (60, 8, 8), dtype=np.uint8), y=np.arange(60))
    with pytest.warns(UserWarning, match="every label of `y` is distinct"):    # the default probe: all 60 images
        code, out, err = _cli(capsys, "simclr", "--data", str(path), "--steps", "2", "--quiet", "--set",
                              "batch_size=16", "--set", "threads=1", "--run", str(tmp_path / "r"))
    assert code == 0, err
    evaluation = json.loads((tmp_path / "r" / "eval.json").read_text())
    assert "knn" in evaluation["skipped"] and math.isfinite(evaluation["alignment"])


def test_pairs_sharing_one_query_are_a_clear_error(tmp_path, capsys):
    data = _pairs_file(tmp_path / "one.jsonl", [{"query": "same", "positive": f"doc {i}"} for i in range(400)])
    code, _, err = _cli(capsys, "pairs", "--data", data, *FAST, "--run", str(tmp_path / "r"))
    assert code == 2 and "needs at least 2 distinct queries and 2 distinct documents" in err, err
    assert "got 1 distinct queries and 400 distinct documents in 400 pairs" in err, err


def test_a_batch_left_with_one_pair_gives_a_zero_loss_not_a_crash():
    from contrastlab.methods import create_method
    from contrastlab.models.text import TextTokenizer, create_text_encoder
    pairs = PairData(anchors=["a"] * 9 + ["b"], positives=[f"d{i}" for i in range(10)])
    data = TextData("toy", pairs)
    enc = create_text_encoder("bag", tokenizer=TextTokenizer.train(pairs.texts(), kind="words"), dim=8)
    method = create_method("pairs", enc, feature_dim=8)
    method.check_data(data)                                           # two queries: trainable
    out = method(method.make_batch(data, torch.arange(4), None, torch.Generator().manual_seed(0)))  # all "a"
    assert out.loss.item() == 0.0 and out.loss.requires_grad and out.metrics["pairs"] == 1


def test_supcon_on_one_class_warns(tmp_path, capsys):
    path = tmp_path / "one.npz"
    np.savez(path, x=np.random.default_rng(0).integers(0, 256, (60, 8, 8), dtype=np.uint8), y=np.zeros(60, int))
    with pytest.warns(UserWarning, match="method 'supcon': the training labels hold a single class"):
        code, _, err = _cli(capsys, "supcon", "--data", str(path), *FAST, "--no-eval", "--run", str(tmp_path / "r"))
    assert code == 0, err


def test_one_class_data_evaluates_with_the_label_parts_skipped(tmp_path, capsys):
    path = tmp_path / "one.npz"
    np.savez(path, x=np.random.default_rng(0).integers(0, 256, (60, 8, 8), dtype=np.uint8), y=np.zeros(60, int))
    with pytest.warns(UserWarning, match="single class"):
        code, _, err = _cli(capsys, "supcon", "--data", str(path), *FAST, "--run", str(tmp_path / "r"))
    assert code == 0, err
    skipped = json.loads((tmp_path / "r" / "eval.json").read_text())["skipped"]
    assert skipped["verification"] == skipped["knn"] == "needs at least 2 classes, the labels hold 1"


def test_images_smaller_than_4x4_are_refused(tmp_path, capsys):
    path = tmp_path / "tiny.npz"
    np.savez(path, x=np.zeros((60, 1, 1), np.uint8), y=np.arange(60) % 3)
    code, _, err = _cli(capsys, "simclr", "--data", str(path), *FAST, "--run", str(tmp_path / "r"))
    assert code == 2 and "images must be at least 4x4 pixels to train on, got 1x1" in err, err
    assert "--set image_size=" in err


@pytest.mark.parametrize("method, listed", [("pairs", "verses-en-es"), ("simcse", "wordnet"), ("clip", "emoji"),
                                            ("simclr", "fashion-mnist")])
def test_an_unknown_dataset_lists_what_the_method_trains_on(tmp_path, capsys, method, listed):
    code, _, err = _cli(capsys, method, "--data", "garbage", "--steps", "2", "--run", str(tmp_path / "r"))
    assert code == 2 and "got 'garbage'" in err and listed in err, err


def test_the_command_line_shows_no_traceback(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for extra in (["--set", "temperature=nan"], ["--seed", str(10 ** 30)]):
        p = subprocess.run([sys.executable, "-m", "contrastlab", "train", "simclr", "--data", "digits", *FAST, *extra,
                            "--run", str(tmp_path / "r")], env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 2 and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
