"""Text training end to end on a planted translation task: a lexicon maps each "English" word to a "Spanish" word
that shares no characters with it, so the pairing can only be learned, never read off the surface (BM25 stays at
chance). Trained with in-batch negatives, held-out sentences are retrieved far above chance; the run resumes
exactly, evaluates against BM25 in one table, and its embedder serves the index."""
import json
import random

import numpy as np
import pytest
import torch

from contrastlab.cli import main
from contrastlab.data import load_text
from contrastlab.models.text import encode_texts
from contrastlab.search import load_embedder
from contrastlab.text.mining import mine_hard_negatives
from contrastlab.train import TrainConfig, Trainer, evaluate_run

VOCAB = 120


def _sentence(rng):
    return rng.sample(range(VOCAB), 5)


@pytest.fixture(scope="module")
def pair_file(tmp_path_factory):
    rng = random.Random(0)
    rows = []
    for _ in range(900):
        words = _sentence(rng)
        spanish = words[:]
        rng.shuffle(spanish)
        rows.append({"query": " ".join(f"en{w}" for w in words), "positive": " ".join(f"es{w}" for w in spanish)})
    path = tmp_path_factory.mktemp("pairs") / "lexicon.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _config(path, **kw):
    base = dict(method="pairs", data=str(path), steps=150, batch_size=64, final_eval=False, tokenizer="words",
                encoder_options={"dim": 32, "bigram_buckets": 0, "token_dropout": 0.0}, lr=0.02, threads=1,
                log_every=5, monitor_every=50, probe_size=200, monitor_bank=200)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def trained(pair_file, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "lexicon"
    trainer = Trainer.from_config(_config(pair_file), run, show_progress=False)
    before = trainer.monitor()["recall@1"]
    trainer.fit()
    return trainer, before


def test_learns_the_lexicon_far_above_chance(trained):
    trainer, before = trained
    test = trainer.data.test
    chance = 1 / len(test.corpus)
    after = [r for r in trainer.run.metrics() if r["kind"] == "monitor"][-1]["recall@1"]
    assert before < 10 * chance                          # an untrained encoder is near chance
    assert after > 0.9, after                            # the pairing is learned from in-batch negatives alone


def test_evaluation_puts_bm25_in_the_same_table(trained):
    trainer, _ = trained
    results = evaluate_run(trainer.run.path, log=lambda *a: None)
    table = results["retrieval"]["table"]
    assert table["model"]["recall@1"] > 0.9
    assert table["bm25"]["recall@1"] < 0.2               # no shared words: BM25 cannot do this task
    saved = json.loads((trainer.run.path / "eval.json").read_text())
    assert saved["retrieval"]["table"]["model"]["ndcg@10"] == pytest.approx(table["model"]["ndcg@10"])


def test_embedder_of_the_run_matches_the_trained_encoder(trained):
    trainer, _ = trained
    texts = trainer.data.test.queries[:20]
    expected = encode_texts(trainer.method.encoder, texts).double().numpy()
    got = load_embedder(trainer.run.path).encode(texts)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose((got.astype(np.float64) ** 2).sum(1), 1.0, atol=1e-5)


def test_resume_is_exact(pair_file, tmp_path):
    cfg = dict(steps=12, monitor_every=6, checkpoint_every=3)
    straight = Trainer.from_config(_config(pair_file, **cfg), tmp_path / "a", show_progress=False)
    straight.fit()
    stopped = Trainer.from_config(_config(pair_file, **cfg), tmp_path / "b", show_progress=False)

    def interrupt(*, step, total_steps):                 # Ctrl-C inside step 7, before it is done: the trainer
        if step == 7:                                    # keeps the checkpoint of step 6 and re-raises
            raise KeyboardInterrupt
    stopped.method.after_step = interrupt
    with pytest.raises(KeyboardInterrupt):
        stopped.fit()
    resumed = Trainer.resume(tmp_path / "b", show_progress=False)
    assert resumed.step == 6
    resumed.fit()
    for (k, a), b in zip(straight.method.state_dict().items(), resumed.method.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)


def test_mining_leaves_out_likely_false_negatives():
    from contrastlab.data.text import PairData
    pairs = PairData(["red apple pie", "green pear tart", "red apple cake"],
                     ["red apple pie recipe", "green pear tart recipe", "red apple cake recipe"])
    # BM25 (lucene, k1=1.5, b=0.75, equal lengths) of the query "red apple pie": idf(red) = idf(apple) =
    # ln(1 + 1.5/2.5) = 0.470, idf(pie) = ln(1 + 2.5/1.5) = 0.981, each matched word x 1/(1 + 1.5) = 0.4.
    # Positive: 0.4 x 1.921 = 0.768; "red apple cake recipe": 0.4 x 0.940 = 0.376 = 0.49 x the positive's.
    # margin 0.4: it is a likely false negative (0.376 >= 0.307) and left out; the pear recipe (score 0) is kept.
    mined, stats = mine_hard_negatives(pairs, count=2, margin=0.4)
    assert "red apple cake recipe" not in mined.negatives[0]
    assert mined.negatives[0] == ["green pear tart recipe"]
    assert stats["false_negatives_left_out"] >= 1
    kept, _ = mine_hard_negatives(pairs, count=2, margin=0.6)      # 0.49 < 0.6: now a legitimate hard negative
    assert kept.negatives[0][0] == "red apple cake recipe"


def test_cli_trains_evaluates_indexes_and_searches(pair_file, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "pairs", "--data", str(pair_file), "--steps", "40", "--run", str(run), "--quiet",
                 "--set", "tokenizer=words", "--set", "batch_size=64", "--set", "lr=0.02", "--no-eval"]) == 0
    assert main(["eval", str(run), "--retrieval"]) == 0
    assert "bm25" in capsys.readouterr().out
    corpus = tmp_path / "corpus.jsonl"
    docs = load_text(str(pair_file)).test.corpus[:50]
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(docs)))
    assert main(["index", str(run), "--corpus", str(corpus), "--out", str(tmp_path / "idx"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["search", str(tmp_path / "idx"), docs[3], "-k", "3"]) == 0
    assert "d3" in capsys.readouterr().out                  # a document finds itself among the top 3


def test_recommendation_evaluation_excludes_history_and_scores_popularity(tmp_path):
    # 5 items; popularity from the training positives: i_a x3, i_b x2, i_c x1. User 1 saw i_a: popularity must
    # recommend i_b first (its own item excluded), which is its held-out item -> recall@1 = 1. User 2 saw i_b and
    # holds out i_c: the list is i_a, i_c -> hit at rank 2 -> MRR 0.5.
    from types import SimpleNamespace

    from contrastlab.data.text import PairData, RetrievalData, TextData
    from contrastlab.train.evaluate_text import evaluate_text
    train = PairData(anchors=["i_x", "i_y", "i_z", "i_x i_y", "i_y i_z", "i_z i_x"],
                     positives=["i_a", "i_a", "i_a", "i_b", "i_b", "i_c"])
    test = RetrievalData(queries=["i_a", "i_b"], corpus=["i_a", "i_b", "i_c", "i_d", "i_e"], relevant=[[1], [2]])
    data = TextData("toy-rec", train, test, tokenizer="words", baselines=("popularity",), exclude_history=True)
    trainer = SimpleNamespace(data=data, step=0, config=SimpleNamespace(method="pairs", data="toy-rec"))
    row = evaluate_text(trainer, parts=("baselines",), log=lambda *a: None)["retrieval"]["table"]["popularity"]
    assert row["recall@1"] == pytest.approx(0.5) and row["mrr@10"] == pytest.approx(0.75)
