"""Fine-tuning options of `contrastlab train pairs --set encoder=st:PATH|hf:PATH` (a tiny BERT built from a config,
nothing downloaded): the learning-rate warm-up, `max_length`, mixed precision on the CPU, and a run directory that
keeps the model's folder, so the run loads (and resumes) after the original folder is gone."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from contrastlab import devices
from contrastlab.cli import main
from contrastlab.models.text import load_text_encoder_from
from contrastlab.runs import load_run
from contrastlab.train import TrainConfig
from tests.runs.test_finetune_st import _pairs_file, st_bert  # noqa: F401  (st_bert: a fixture)

TEXTS = ["river 1 2 3", "3 2 1 stone light market garden winter paper", "an unseen line"]


def _train(run, data, spec, *sets, steps=4):
    args = ["train", "pairs", "--data", str(data), "--run", str(run), "--steps", str(steps), "--no-eval", "--quiet",
            "--device", "cpu", "--set", f"encoder={spec}", "--set", "batch_size=8", "--set", "lr=0.001",
            "--set", "threads=1", "--set", "log_every=1"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r.get("kind") == "train"]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return _pairs_file(tmp_path_factory.mktemp("pairs") / "pairs.jsonl")


def test_warmup_ramps_the_learning_rate_linearly_then_decays_by_cosine(st_bert, pairs, tmp_path):
    folder, _ = st_bert
    records = _train(tmp_path / "run", pairs, f"st:{folder}", "warmup=0.3", steps=10)
    total, warm, base = 10, 3, 1e-3                       # int(0.3 x 10) warm-up steps
    want = [base * (s + 1) / warm if s < warm else
            base * 0.5 * (1 + math.cos(math.pi * (s - warm) / (total - warm))) for s in range(total)]
    assert [r["step"] for r in records] == list(range(1, total + 1))
    np.testing.assert_allclose([r["lr"] for r in records], want, rtol=1e-12)


@pytest.mark.parametrize("kind", ["st", "hf"])
def test_max_length_truncates_the_models_own_tokenizer_and_is_kept_by_the_run(st_bert, pairs, tmp_path, kind):
    folder, bert = st_bert
    run = tmp_path / "run"
    _train(run, pairs, f"{kind}:{folder if kind == 'st' else bert}", "max_length=5", steps=2)
    assert json.loads((run / "config.json").read_text())["model"]["max_length"] == 5
    encoder = load_run(run, device=devices.CPU).method.encoder
    ids = encoder.tokenize(TEXTS)["input_ids"]                # (3, T): [CLS] + 3 words + [SEP] at most
    assert ids.shape == (3, 5)
    longest = load_text_encoder_from(f"{kind}:{folder if kind == 'st' else bert}").tokenize(TEXTS)["input_ids"]
    assert longest.shape[1] == 2 + len(TEXTS[1].split())     # without max_length: the whole text (+ CLS, SEP)


def test_bad_max_length_is_refused():
    with pytest.raises(ValueError, match=r"`max_length` must be a positive int or none, got 0"):
        TrainConfig(method="pairs", data="verses-en-es", steps=1, max_length=0)
    with pytest.raises(ValueError, match=r"`max_length` must be a positive int or None, got -3"):
        load_text_encoder_from("wordllama", max_length=-3)


@pytest.mark.parametrize("kind", ["st", "hf"])
def test_the_run_keeps_the_model_and_loads_after_its_folder_is_deleted(st_bert, pairs, tmp_path, kind):
    folder, bert = st_bert
    original = tmp_path / "original"
    shutil.copytree(folder if kind == "st" else bert, original)
    run = tmp_path / "run"
    _train(run, pairs, f"{kind}:{original}", steps=3)
    before = load_run(run, device=devices.CPU).embedder().encode_texts(TEXTS)
    assert json.loads((run / "config.json").read_text())["model"]["model_folder"] == "model"
    shutil.rmtree(original)                                   # the run needs it no more
    after = load_run(run, device=devices.CPU).embedder().encode_texts(TEXTS)
    np.testing.assert_array_equal(after, before)
    from contrastlab.train import Trainer
    assert Trainer.resume(run, for_training=False, show_progress=False, device="cpu").step == 3   # rebuilt offline
    assert not any(p.name.startswith(".model-") for p in run.iterdir())   # no temporary folder left


def test_bf16_on_the_cpu_trains_and_auto_stays_fp32(st_bert, pairs, tmp_path):
    from contrastlab.train import Trainer
    folder, _ = st_bert
    records = _train(tmp_path / "bf16", pairs, f"st:{folder}", "precision=bf16", "micro_batch=4", steps=3)
    assert len(records) == 3 and all(math.isfinite(r["loss"]) for r in records)
    cfg = TrainConfig(method="pairs", data=str(pairs), steps=1, batch_size=8, encoder=f"st:{folder}", device="cpu",
                      final_eval=False)
    assert Trainer.from_config(cfg, tmp_path / "auto", show_progress=False).amp.precision == "fp32"
