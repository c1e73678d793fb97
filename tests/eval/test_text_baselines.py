"""Text baselines against formulas written out here: BM25 (bm25s' lucene variant), TF-IDF, popularity."""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from contrastlab.data.text import RetrievalData
from contrastlab.eval.text_baselines import (bm25_rank, bm25_scores, frozen_embedding_rank, popularity_rank,
                                             text_baselines, tfidf_rank, word_tokens)
from contrastlab.models.text.base import TextEncoder


def reference_order(scores, k):
    return sorted(range(len(scores)), key=lambda j: (-scores[j], j))[:k]


def bm25_reference(queries: list[list[str]], corpus: list[list[str]], k1: float, b: float) -> np.ndarray:
    """BM25 as bm25s' docs define method="lucene": idf = ln(1 + (N - df + .5) / (df + .5)), and each query word
    (repeats included) adds idf * tf / (tf + k1 * (1 - b + b * |d| / avgdl)); float64, one term at a time."""
    n = len(corpus)
    avgdl = sum(len(d) for d in corpus) / n
    out = np.zeros((len(queries), n))
    for i, query in enumerate(queries):
        for word in query:
            df = sum(1 for d in corpus if word in d)
            if df == 0:
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            for j, d in enumerate(corpus):
                tf = d.count(word)
                out[i, j] += idf * tf / (tf + k1 * (1 - b + b * len(d) / avgdl))
    return out


CORPUS3 = ["The cat sat on the mat", "A dog chased the cat and the cat ran", "Stocks fell as markets closed"]
QUERIES3 = ["cat on a mat", "the the dog", "markets", "zebra"]


@pytest.mark.parametrize("k1, b", [(1.5, 0.75), (1.2, 0.0), (0.9, 1.0)])
def test_bm25_scores_equal_the_formula_on_three_documents(k1, b):
    data = RetrievalData(queries=QUERIES3, corpus=CORPUS3, relevant=[[0]] * 4)
    got = bm25_scores(data, k1=k1, b=b)
    want = bm25_reference([word_tokens(t) for t in QUERIES3], [word_tokens(t) for t in CORPUS3], k1, b)
    assert got.shape == (4, 3) and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    assert (got[3] == 0).all() and got[0, 0] > got[0, 1] > 0 == got[0, 2]


def test_bm25_rank_follows_the_formula_with_low_index_ties():
    rng = np.random.default_rng(0)
    vocab = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]
    corpus = [" ".join(rng.choice(vocab, size=rng.integers(1, 7))) for _ in range(30)]
    queries = [" ".join(rng.choice(vocab, size=rng.integers(1, 4))) for _ in range(12)]
    data = RetrievalData(queries=queries, corpus=corpus, relevant=[[0]] * 12)
    got = bm25_rank(data, k=35)
    scores = bm25_reference([word_tokens(t) for t in queries], [word_tokens(t) for t in corpus], 1.5, 0.75)
    assert got.shape == (12, 35) and (got[:, 30:] == -1).all()
    for i in range(12):
        want = reference_order(list(np.round(scores[i], 12)), 30)              # equal up to rounding = tied
        assert got[i, :30].tolist() == want


def char_wb_grams(text: str, lo: int, hi: int) -> Counter:
    """Character n-grams inside space-padded words (every word here is >= 3 letters)."""
    grams = Counter()
    for word in text.lower().split():
        padded = f" {word} "
        for n in range(lo, hi + 1):
            grams.update(padded[i:i + n] for i in range(len(padded) - n + 1))
    return grams


def test_tfidf_rank_equals_a_numpy_reference():
    corpus = ["economics of markets", "the economic market market market", "cats and kittens", "kitten food",
              "market stalls sell food", "quantum physics lecture"]
    queries = ["economic", "kittens eat food", "physical market", "zzz qqq", "markets markets economics"]
    docs = [char_wb_grams(t, 3, 5) for t in corpus]
    vocab = sorted(set().union(*docs))
    col = {g: j for j, g in enumerate(vocab)}
    n = len(corpus)
    df = np.array([sum(1 for d in docs if g in d) for g in vocab], dtype=np.float64)
    idf = np.log((1 + n) / (1 + df)) + 1                                       # smoothed idf

    def vectors(grams_list):
        m = np.zeros((len(grams_list), len(vocab)))
        for i, grams in enumerate(grams_list):
            for g, tf in grams.items():
                if g in col:
                    m[i, col[g]] = (1 + math.log(tf)) * idf[col[g]]           # sublinear tf
        norms = np.linalg.norm(m, axis=1, keepdims=True)
        return m / np.where(norms == 0, 1, norms)

    sims = vectors([char_wb_grams(t, 3, 5) for t in queries]) @ vectors(docs).T
    data = RetrievalData(queries=queries, corpus=corpus, relevant=[[0]] * len(queries))
    got = tfidf_rank(data, k=n)
    for i in range(len(queries)):
        assert got[i].tolist() == reference_order(list(np.round(sims[i], 12)), n)
    assert got[3].tolist() == list(range(n))                                   # no shared n-gram: index order


@pytest.mark.parametrize("rank_fn", [
    lambda d: bm25_rank(d, k=3),
    lambda d: tfidf_rank(d, k=3),
    lambda d: tfidf_rank(d, k=3, analyzer="word", ngram_range=(1, 2)),
], ids=["bm25", "tfidf-char", "tfidf-word"])
def test_a_query_sharing_words_with_one_document_ranks_it_first(rank_fn):
    corpus = ["river boat engine", "mountain goat cheese", "violin concerto orchestra", "desert sand dunes"]
    queries = ["the orchestra played", "goat milk", "sand storm"]
    data = RetrievalData(queries=queries, corpus=corpus, relevant=[[2], [1], [3]])
    assert rank_fn(data)[:, 0].tolist() == [2, 1, 3]


def test_popularity_order_matches_counts():
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 6, size=40)                                       # many ties
    want = sorted(range(40), key=lambda i: (-counts[i], i))
    assert popularity_rank(counts, k=40).tolist() == [want]
    assert popularity_rank(torch.from_numpy(counts), k=45).tolist() == [want + [-1] * 5]
    history = [list(rng.choice(40, size=s, replace=False)) for s in (0, 3, 39, 40, 10)]
    got = popularity_rank(counts, k=8, exclude=history)
    assert got.shape == (5, 8)
    for row, seen in zip(got.tolist(), history):
        rest = [i for i in want if i not in set(seen)][:8]
        assert row == rest + [-1] * (8 - len(rest))


@pytest.mark.parametrize("counts, kwargs, error, match", [
    ([], {"k": 1}, ValueError, r"`item_counts` must be a non-empty 1-d array"),
    ([1, -2], {"k": 1}, ValueError, r"`item_counts` must be finite and >= 0, got min -2"),
    ([1, 2], {"k": 0}, ValueError, r"`k` must be a positive int, got 0"),
    ([1, 2], {"k": 1, "exclude": [[0], [2]]}, ValueError, r"`exclude\[1\]` must hold item ids in \[0, 2\), got 2"),
    ([1, 2], {"k": 1, "exclude": [[0.5]]}, TypeError, r"`exclude\[0\]` must hold int item ids"),
])
def test_popularity_rejects_bad_input(counts, kwargs, error, match):
    with pytest.raises(error, match=match):
        popularity_rank(counts, **kwargs)


class BagOfLetters(TextEncoder):
    """Counts of 'a', 'b', 'c': a deterministic encoder to check the wiring."""
    out_dim = 3

    def tokenize(self, texts):
        return {"counts": torch.tensor([[t.count(c) for c in "abc"] for t in texts], dtype=torch.float32)}

    def forward(self, tokens):
        return tokens["counts"]


def test_frozen_embedding_rank_ranks_by_cosine_of_the_encoder():
    corpus, queries = ["aaa", "bbb", "ccc", "abab"], ["ab", "cc"]
    data = RetrievalData(queries=queries, corpus=corpus, relevant=[[3], [2]])
    got = frozen_embedding_rank(BagOfLetters(), data, k=4, batch_size=1)
    # "ab": cosines abab 1, aaa .707, bbb .707 (tie: 0 first), ccc 0; "cc": ccc 1, others 0 in index order
    assert got.tolist() == [[3, 0, 1, 2], [2, 0, 1, 3]]


def test_text_baselines_runs_all_three_and_checks_arguments():
    corpus = ["a cat sleeps on the warm sofa", "the stock market fell sharply today",
              "fresh bread from the bakery", "a violin plays a slow melody", "rain is expected tomorrow"]
    queries = ["warm cat sofa", "market fell", "bakery bread", "violin melody", "rain tomorrow"]
    data = RetrievalData(queries=queries, corpus=corpus, relevant=[[0], [1], [2], [3], [4]])
    out = text_baselines(data, k=5, ks=(1, 5), cutoff=5)
    assert sorted(out) == ["bm25", "tfidf", "wordllama"]
    for name, m in out.items():
        assert {"recall@1", "recall@5", "success@1", "mrr@5", "ndcg@5", "map@5", "seconds"} <= m.keys()
        assert m["recall@5"] == 1.0, name                                       # 5 documents, ranked all
    assert out["bm25"]["recall@1"] == out["tfidf"]["recall@1"] == 1.0
    assert out["wordllama"]["recall@1"] >= 0.6                                   # chance is 0.2
    with pytest.raises(ValueError, match=r"`which` must name baselines from \['bm25', 'tfidf', 'wordllama'\]"):
        text_baselines(data, k=5, which=("bm26",), ks=(1,), cutoff=1)
    with pytest.raises(ValueError, match=r"`k` must be >= max\(ks, cutoff\) = 100, got 5"):
        text_baselines(data, k=5)
    with pytest.raises(TypeError, match="`data` must be a contrastlab.data.text.RetrievalData"):
        text_baselines({"queries": []}, k=5, ks=(1,), cutoff=1)
