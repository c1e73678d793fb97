"""`load_run` round-trips every method: a run trained a few steps is rebuilt from its directory alone (no training
data: the loaders are made to fail), its weights equal the checkpoint's bit for bit, and its embedder gives the
vectors of the trained method in memory (the independent path: the Trainer's own method and eval features)."""
from __future__ import annotations

import dataclasses
import json
import random

import pytest
import torch
import torch.nn.functional as F

from contrastlab import devices
from contrastlab.data import load_images
from contrastlab.data.text import PairData, TextData
from contrastlab.io import load_checkpoint
from contrastlab.methods import METHODS
from contrastlab.models.text import encode_texts
from contrastlab.runs import RunDir, RunIncomplete, load_run
from contrastlab.train import TrainConfig, Trainer, tasks
from tests.methods.test_clip import toy_data

#: Every registered method, with what it trains on here; the image-text method twice: a text tower of ours (a
#: fitted tokenizer in the run) and the default one.
CASES = {"simclr": {}, "moco": {"queue_size": 64}, "supcon": {}, "triplet": {}, "multi_instance": {},
         "supervised": {}, "pairs": {}, "simcse": {}, "clip": {"text_encoder": "bag", "embed_dim": 8},
         "clip-default-text": {"embed_dim": 8}, "ts2vec": {}, "cpc": {"prediction_steps": 2, "anchors": 32}}


def test_every_registered_method_has_a_case():
    assert {c.split("-")[0] for c in CASES} == set(METHODS)


@pytest.fixture(scope="module")
def digits():
    return load_images("digits")


def _text_data():
    rng = random.Random(0)
    anchors = [" ".join(f"w{rng.randrange(50)}" for _ in range(5)) for _ in range(64)]
    return TextData("toy-text", PairData(anchors=anchors, positives=[a[::-1] for a in anchors]), None,
                    tokenizer="words")


def _data_for(method: str, digits):
    cls = METHODS[method]
    if cls.modalities[0] == "image_text":
        return toy_data()
    if cls.modalities[0] == "text":
        return _text_data()
    if cls.modalities[0] == "sequence":
        from contrastlab.data import SequenceData
        g = torch.Generator().manual_seed(0)
        return SequenceData("toy-series", torch.randn(32, 2, 24, generator=g), torch.arange(32) % 2, None, None, None)
    return dataclasses.replace(digits, group=torch.arange(len(digits)) // 4) if cls.needs_groups else digits


def _train(case: str, digits, run_dir, **kw) -> Trainer:
    method = case.split("-")[0]
    extra = {"encoder_options": {"dim": 16}} if METHODS[method].modalities[0] == "text" else {}
    if METHODS[method].modalities[0] == "sequence":
        extra = {"encoder_options": {"depth": 2, "hidden": 8, "out_dim": 16}}
    cfg = TrainConfig(**{"method": method, "data": "toy", "steps": 3, "batch_size": 16, "final_eval": False,
                         "threads": 1, "hyperparameters": CASES[case], "probe_size": 32, "monitor_bank": 64,
                         "checkpoint_minutes": 100.0, **extra, **kw})
    trainer = Trainer.from_config(cfg, run_dir, show_progress=False, data=_data_for(method, digits))
    trainer.fit()
    return trainer


def _refuse(*args, **kwargs):
    raise AssertionError("load_run touched the training data (or rebuilt the model from it)")


@pytest.mark.parametrize("case", sorted(CASES))
def test_load_run_round_trips(case, digits, tmp_path, monkeypatch):
    trainer = _train(case, digits, tmp_path / case)
    trained = trainer.method.eval()
    before = torch.get_rng_state()
    with monkeypatch.context() as m:                                   # no data, no task's build
        m.setattr(tasks, "load_data", _refuse)
        for task in tasks.TASKS.values():
            m.setattr(task, "build", staticmethod(_refuse))
        run = load_run(tmp_path / case, device=devices.CPU)
    assert torch.equal(torch.get_rng_state(), before)                  # building drew no global random numbers
    assert run.step == 3 and run.modality == METHODS[run.config.method].modalities[0]
    assert run.config == trainer.config and not run.method.training
    assert devices.module_device(run.method) == devices.CPU

    saved = load_checkpoint(RunDir(tmp_path / case).last_checkpoint)["method"]
    mine = run.method.state_dict()
    assert list(mine) == list(saved) == list(trained.state_dict())
    for k, v in saved.items():                                          # bit for bit, also the trained model's
        assert mine[k].dtype == v.dtype and torch.equal(mine[k], v), k
        assert torch.equal(trained.state_dict()[k].cpu(), v), k

    data = trainer.data
    if run.modality == "sequence":                                     # no search embedder: the method's features
        with torch.no_grad():
            assert torch.equal(run.method.embed(data.x[:5]), trained.embed(data.x[:5]))
        with pytest.raises(ValueError, match="is a sequence run: search embeds image, image_text, text runs only"):
            run.embedder()
        return
    embedder = run.embedder()
    with torch.no_grad():
        if run.modality in ("image", "image_text"):
            x = (data.x if run.modality == "image" else data.images)[:5]                     # (5, C, H, W) uint8
            want = F.normalize(trained.embed(x.float() / 255).double(), dim=1)               # (5, F)
            got = torch.from_numpy(embedder.encode_images(x.numpy())).double()
            assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5)
            assert embedder.dim == want.shape[1]
        if run.modality in ("text", "image_text"):
            texts = ["w1 w2 w3", "w7", "red 3"] if run.modality == "text" else list(data.texts["en"][:5])
            want = (encode_texts(trained.encoder, texts) if run.modality == "text"
                    else trained.embed_texts(texts)).double()                                # (N, D) unit rows
            got = torch.from_numpy(embedder.encode_texts(texts)).double()
            assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5)
            assert torch.allclose(got.norm(dim=1), torch.ones(len(texts), dtype=torch.float64), atol=1e-5)
    assert hasattr(embedder, "encode_texts") == (run.modality != "image")
    assert hasattr(embedder, "encode_images") == (run.modality != "text")


def test_a_text_run_loads_without_its_corpus(tmp_path):
    """A run trained on a pairs file still loads (and embeds) after the file is gone."""
    rng = random.Random(1)
    rows = [{"query": " ".join(f"en{rng.randrange(40)}" for _ in range(4)), "positive": f"es{i}"} for i in range(80)]
    corpus = tmp_path / "pairs.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = TrainConfig(method="pairs", data=str(corpus), steps=2, batch_size=16, final_eval=False, threads=1,
                      tokenizer="words", encoder_options={"dim": 16}, probe_size=16, monitor_bank=16)
    trainer = Trainer.from_config(cfg, tmp_path / "run", show_progress=False)
    trainer.fit()
    corpus.unlink()
    got = load_run(tmp_path / "run").embedder().encode_texts(["en1 en2", "en3"])
    want = encode_texts(trainer.method.encoder, ["en1 en2", "en3"])
    assert torch.allclose(torch.from_numpy(got), want.cpu(), atol=1e-6)


# -- bad runs: one clear message each --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def image_run(digits, tmp_path_factory):
    path = tmp_path_factory.mktemp("image") / "run"
    _train("simclr", digits, path)
    return path


def _copy(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return RunDir(dst)


def test_not_a_run_directory(tmp_path):
    with pytest.raises(ValueError, match=r"is not a run directory \(no readable config.json\)"):
        load_run(tmp_path)


def test_a_config_not_written_by_the_trainer(tmp_path):
    run = RunDir(tmp_path)
    run.config_file.write_text(json.dumps({"model": {}}))
    with pytest.raises(ValueError, match=r"was not written by `contrastlab train` \(no 'train' section\)"):
        load_run(tmp_path)


def test_an_unknown_modality(image_run, tmp_path):
    run = _copy(image_run, tmp_path / "r")
    run.update_config(model={**run.config()["model"], "modality": "audio"})
    with pytest.raises(ValueError, match=r"the model's modality must be one of \['image', 'image_text', 'sequence', 'text'\], "
                                         r"got 'audio'"):
        load_run(run.path)


def test_a_run_without_a_checkpoint(image_run, tmp_path):
    run = _copy(image_run, tmp_path / "r")
    run.last_checkpoint.unlink()
    with pytest.raises(ValueError, match=r"has no checkpoint yet .*last.pt is missing\): train or resume it first"):
        load_run(run.path)


def test_an_older_run_that_does_not_describe_its_model(image_run, tmp_path):
    run = _copy(image_run, tmp_path / "r")
    model = run.config()["model"]
    run.update_config(model={k: v for k, v in model.items() if k not in ("mean", "std")})
    with pytest.raises(RunIncomplete, match=r"does not describe the model \(mean, std missing from 'model'\): it "
                                            r"was written by an older contrastlab; re-train the run to load it"):
        load_run(run.path)


def test_a_checkpoint_of_another_model(image_run, tmp_path):
    run = _copy(image_run, tmp_path / "r")
    run.update_config(train={**run.config()["train"], "hyperparameters": {"proj_hidden_dim": 8, "proj_dim": 4}})
    with pytest.raises(RunIncomplete, match=r"last.pt does not match the run's model"):
        load_run(run.path)


def test_a_missing_tokenizer(digits, tmp_path):
    _train("clip", digits, tmp_path / "clip")
    RunDir(tmp_path / "clip").tokenizer_file.unlink()
    with pytest.raises(RunIncomplete, match=r"is incomplete: tokenizer.json is missing \(the text tower's tokenizer\)"):
        load_run(tmp_path / "clip")


# -- hard-negative mining by a text run: the caller builds the run's embedder -----------------------------------
def test_mining_by_a_run_uses_the_embedder_the_caller_built(digits, tmp_path):
    first = _train("pairs", digits, tmp_path / "first")
    embedder = load_run(first.run.path).embedder()
    cfg = dataclasses.replace(first.config, mine=str(first.run.path), mine_count=1)
    trainer = Trainer.from_config(cfg, tmp_path / "second", show_progress=False, data=_text_data(),
                                  first_stage=embedder)
    assert any(n.startswith(f"mined up to 1 hard negatives per pair with {first.run.path.resolve()}")
               for n in trainer.data.notes)
    assert all(len(n) <= 1 for n in trainer.data.train.negatives)
    assert sum(len(n) for n in trainer.data.train.negatives) > 0


def test_mining_by_a_run_without_its_embedder_says_what_to_pass(digits, tmp_path):
    cfg = TrainConfig(method="pairs", data="toy", steps=1, batch_size=16, final_eval=False, mine=str(tmp_path / "r"))
    with pytest.raises(ValueError, match=r"`mine` names a run directory \('.*r'\): the trainer needs its embedder, "
                                         r"built by the caller: `Trainer.from_config\(config, run, first_stage="
                                         r"contrastlab.runs.load_run\('.*r'\).embedder\(\)\)`"):
        Trainer.from_config(cfg, tmp_path / "run", show_progress=False, data=_text_data())


def test_a_run_of_a_method_built_in_code(image_run, tmp_path):
    run = _copy(image_run, tmp_path / "r")
    run.update_config(model={"encoder": "SmallCNN", "custom": True})
    with pytest.raises(RunIncomplete, match=r"was trained with a method built in code \(`Trainer\(method, \.\.\.\)`\), "
                                            r"not from its configuration: its config.json cannot rebuild it"):
        load_run(run.path)
