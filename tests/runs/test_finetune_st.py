"""Fine-tuning a sentence-transformers model's own weights with `contrastlab train pairs --set encoder=st:PATH`: a
tiny BERT built from a config (nothing downloaded) trains (its loss falls, its weights move), and the run exports
back to a sentence-transformers folder that embeds as the run does. Bad model folders are clear errors."""
from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest
import torch

from contrastlab import devices
from contrastlab.cli import main
from contrastlab.export import export_run
from contrastlab.models.text import load_text_encoder_from
from contrastlab.runs import load_run
from tests.runs.test_export import WORDS, _tiny_bert


@pytest.fixture(scope="module")
def st_bert(tmp_path_factory):
    """A tiny BERT as a sentence-transformers folder (Transformer + mean Pooling), and its transformers folder."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    root = tmp_path_factory.mktemp("st-bert")
    bert = _tiny_bert(root / "bert")
    SentenceTransformer(modules=[Transformer(str(bert)), Pooling(16, "mean")], device=str(devices.CPU)).save(
        str(root / "st"))
    return root / "st", bert


def _pairs_file(path):
    """Pairs whose positive shares one rare 'key' word with its anchor (learnable by word identity alone)."""
    rng = random.Random(0)
    with open(path, "w") as f:
        for i in range(96):
            key = WORDS[i % len(WORDS)]
            anchor = " ".join([key] + [str(rng.randrange(10)) for _ in range(3)])
            positive = " ".join([str(rng.randrange(10)) for _ in range(3)] + [key])
            f.write(json.dumps({"query": anchor, "positive": positive}) + "\n")
    return path


def test_pairs_fine_tunes_a_sentence_transformers_model_and_exports_it_back(st_bert, tmp_path):
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer
    folder, _ = st_bert
    data = _pairs_file(tmp_path / "pairs.jsonl")
    run = tmp_path / "run"
    code = main(["train", "pairs", "--data", str(data), "--run", str(run), "--steps", "40", "--no-eval", "--quiet",
                 "--set", f"encoder=st:{folder}", "--set", "batch_size=16", "--set", "lr=0.001",
                 "--set", "threads=1", "--set", "log_every=2", "--set", "micro_batch=8", "--device", "cpu"])
    assert code == 0
    losses = [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
              if r.get("kind") == "train" and "loss" in r]
    assert len(losses) >= 8 and np.mean(losses[-4:]) < np.mean(losses[:4]) - 0.2, losses

    before = load_file(str(folder / "model.safetensors"))                          # the model the run started from
    trained = load_run(run, device=devices.CPU)
    after = trained.method.encoder.model[0].auto_model.state_dict()
    layers = [k for k in before if k.startswith("encoder.layer.") and k.endswith(".weight")]
    assert layers and all(not torch.equal(before[k], after[k]) for k in layers)    # every layer's weights moved

    export_run(run, format="sentence-transformers", out=tmp_path / "exported")
    texts = ["river 1 2 3", "3 2 1 stone", "an unseen line"]
    got = SentenceTransformer(str(tmp_path / "exported"), device=str(devices.CPU), local_files_only=True).encode(
        texts, convert_to_numpy=True)
    np.testing.assert_allclose(got, trained.embedder().encode_texts(texts), atol=1e-5)


def test_a_folder_that_is_not_a_sentence_transformers_model_is_refused(st_bert, tmp_path):
    _, bert = st_bert
    with pytest.raises(FileNotFoundError, match=r"`path` must be a local model directory containing modules.json, "
                                                r"got '.*bert'"):
        load_text_encoder_from(f"st:{bert}")                                      # a transformers folder, not ST
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "modules.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"is not a sentence-transformers folder: its modules.json is not readable "
                                         r"JSON"):
        load_text_encoder_from(f"st:{tmp_path / 'bad'}")
    (tmp_path / "bad" / "modules.json").write_text("[]")
    with pytest.raises(ValueError, match=r"is not a sentence-transformers folder: its modules.json must list the "
                                         r"model's modules, got '\[\]'"):
        load_text_encoder_from(f"st:{tmp_path / 'bad'}")


@pytest.mark.parametrize("kind", ["hf", "st"])
def test_a_model_without_its_tokenizer_is_refused(st_bert, tmp_path, kind):
    folder, bert = st_bert
    broken = tmp_path / "broken"
    shutil.copytree(bert if kind == "hf" else folder, broken)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (broken / name).unlink(missing_ok=True)
    with pytest.raises(FileNotFoundError, match=rf"`path` '.*broken' has no tokenizer: none of tokenizer.json, "
                                                rf"tokenizer_config.json, vocab.txt, .* is in '.*broken'; save the "
                                                rf"model's tokenizer there"):
        load_text_encoder_from(f"{kind}:{broken}")
