"""`contrastlab train clip --data emoji`: the task, a short run beating chance on the held-out emoji, and the
cross-modal evaluation in `RUN/eval.json`."""
from __future__ import annotations

import pytest
import torch

from contrastlab.io import read_json
from contrastlab.train.config import TrainConfig
from contrastlab.train.evaluate import evaluate_run
from contrastlab.train.evaluate_multimodal import chance_recall, zero_shot_prompts
from contrastlab.train.tasks import data_modality, training_names
from contrastlab.train.trainer import Trainer


def test_specs_are_routed_by_modality():
    assert data_modality("emoji") == "image_text"
    assert data_modality("captions:/some/folder") == "image_text"
    assert data_modality("digits") == "image"
    assert data_modality("fashion-mnist") == "image"


def test_chance_is_k_over_n_and_prompts_follow_the_groups():
    assert chance_recall(274) == {"recall@1": 1 / 274, "recall@5": 5 / 274, "recall@10": 10 / 274}
    assert chance_recall(4, ks=(10,)) == {"recall@10": 1.0}
    p = zero_shot_prompts(("A", "B"), ("a-x", "a-y", "b-z"), torch.tensor([0, 0, 1, 0]), torch.tensor([0, 1, 2, 0]))
    assert p == [["an emoji of A", "an emoji of a x", "an emoji of a y"], ["an emoji of B", "an emoji of b z"]]


@pytest.fixture(scope="module")
def emoji_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("clip")
    cfg = TrainConfig(method="clip", data="emoji", image_size=16, steps=50, batch_size=128, threads=1, seed=0,
                      final_eval=False, hyperparameters={"languages": "en,es", "embed_dim": 64})
    trainer = Trainer.from_config(cfg, run_dir, show_progress=False)
    trainer.fit()
    return trainer, run_dir


def test_tokenizer_sees_training_names_only(emoji_run, tmp_path):
    from contrastlab.models.text import TextTokenizer
    from contrastlab.train.tasks import ImageTextTask
    trainer, run_dir = emoji_run
    data = trainer.data
    names = training_names(data)
    test = data.test_indices().tolist()
    held_out = {data.texts["en"][i] for i in test} - set(names)
    assert held_out and not held_out & set(names)
    assert len(names) == sum(1 for v in data.texts.values() for i in data.train_indices().tolist() if v[i])
    assert not (run_dir / "tokenizer.json").exists()                  # the default text tower: wordllama's own
    cfg = TrainConfig(method="clip", data="emoji", image_size=16, steps=1, hyperparameters={"text_encoder": "bag"})
    ImageTextTask.build(cfg, data, tmp_path)                           # a tower of ours: a BPE fitted here
    tok = TextTokenizer.from_json((tmp_path / "tokenizer.json").read_text())
    train_words = {w for n in names for w in n.lower().split()}
    unseen = {w for n in held_out for w in n.lower().split()} - train_words      # words only held-out names use
    vocab = {t.lstrip("Ġ▁").lower() for t in tok.tokenizer.get_vocab()}
    assert unseen and not any(w in vocab for w in unseen if len(w) > 6)  # no whole held-out-only word learned


def test_short_run_beats_chance_and_eval_writes_the_table(emoji_run):
    trainer, run_dir = emoji_run
    data = trainer.data
    last = [r for r in trainer.run.metrics() if r["kind"] == "monitor"][-1]
    lines = []
    results = evaluate_run(run_dir, log=lines.append)
    cm = read_json(run_dir / "eval.json")["cross_modal"]
    assert cm == results["cross_modal"]
    n = int(data.split.sum())                                           # 274 held-out emoji, all with English names
    i2t = cm["image_to_text"]
    assert i2t["n"] == n and i2t["chance"]["recall@10"] == pytest.approx(10 / n)
    assert i2t["model"]["recall@10"] > 2.5 * i2t["chance"]["recall@10"]
    assert cm["text_to_image"]["model"]["recall@10"] > 2.5 * 10 / n
    zs = cm["zero_shot"]
    assert zs["classes"] == 9 and zs["chance"]["accuracy"] == pytest.approx(1 / 9)
    assert 0.0 <= zs["model"]["accuracy"] <= 1.0
    assert set(cm["cross_lingual"]) == {"es->ja", "fr->de"}
    assert {"model", "chance", "untrained"} <= set(cm["cross_lingual"]["es->ja"])
    assert "image to text" in lines[-1] and "names es->ja" in lines[-1]
    assert last["step"] == 50 and last["recall@10"] > 2 * 10 / n       # the online monitor agrees


def test_evaluation_rejects_bad_arguments(emoji_run):
    from contrastlab.train.evaluate_multimodal import evaluate_multimodal
    trainer, _ = emoji_run
    with pytest.raises(ValueError, match="`template` must be a str with one '{}'.*got 'an emoji'"):
        evaluate_multimodal(trainer, template="an emoji", log=lambda *a: None)
    with pytest.raises(ValueError, match="`pairs` must hold .*got \\('es', 'xx'\\)"):
        evaluate_multimodal(trainer, pairs=(("es", "xx"),), log=lambda *a: None)
    with pytest.raises(ValueError, match="`language` must be one of .*got 'xx'"):
        evaluate_multimodal(trainer, language="xx", log=lambda *a: None)


def test_snapshots_hold_both_modalities_with_their_pairs(emoji_run):
    import numpy as np
    trainer, run_dir = emoji_run
    with np.load(run_dir / "snapshots" / "probe.npz") as f:
        ids, modality, pair, texts = f["ids"], f["modality"], f["pair"], list(f["texts"])
        n_thumbs = f["thumbnails"].shape[0]
    p = len(ids) // 2
    assert len(ids) == 2 * p and modality.tolist() == [0] * p + [1] * p and n_thumbs == p
    assert (pair[pair] == np.arange(2 * p)).all() and (modality[pair] != modality).all()
    assert (ids[pair] == ids).all() and texts[:p] == texts[p:]
    snap = sorted((run_dir / "snapshots").glob("step-*.npz"))[-1]
    with np.load(snap) as f:
        z = f["embeddings"]
    assert z.shape[0] == 2 * p
    data = trainer.data
    names = trainer.method.embed_texts([data.texts["en"][i] for i in ids[p:]])
    assert np.allclose(z[p:], names.numpy(), atol=1e-4)              # the text rows are the names' embeddings
