"""Recall measurement: query sets, the leave-one-out corpus queries, and tie-aware recall against exact search."""
from __future__ import annotations

import numpy as np
import pytest

from contrastlab.search import VectorIndex
from contrastlab.search.recall import measure_recall, query_sets, tie_aware_recall

from .helpers import clustered, reference_top_k


@pytest.fixture(scope="module")
def x():
    return clustered(800, 16, seed=9).astype(np.float32)


def exact_search(x):
    def search(q, k):
        return reference_top_k(x, q, k)[1]                              # float64 brute force rows
    return search


def test_query_sets_are_half_corpus_rows_and_half_unit_mixtures(x):
    sets = query_sets(x, count=101, seed=0)
    (corpus, rows), (mixed, none) = sets["corpus"], sets["mixed"]
    assert corpus.shape == (51, 16) and np.array_equal(corpus, x[rows]) and none is None
    assert mixed.shape == (50, 16) and np.allclose(np.linalg.norm(mixed, axis=1), 1, atol=1e-5)
    given = np.ones((3, 16), np.float32)
    assert list(query_sets(x, count=10, queries=given)) == ["given"]


def test_an_exact_search_has_recall_one_and_finding_only_itself_does_not_count(x):
    sets = query_sets(x, count=200, seed=1)
    recalls, _ = measure_recall(exact_search(x), x, sets, 10)
    assert recalls == {"corpus": 1.0, "mixed": 1.0}

    def self_then_random(q, k):                                         # the query row itself, then noise
        rows = exact_search(x)(q, 1)
        return np.concatenate([rows, np.random.default_rng(0).integers(0, len(x), (len(q), k - 1))], axis=1)

    recalls, _ = measure_recall(self_then_random, x, {"corpus": sets["corpus"]}, 10)
    assert recalls["corpus"] < 0.2                                      # the trivial self hit is left out


def test_tie_aware_recall_counts_any_of_the_tied_documents():
    # the true 2nd best is 0.5, shared by two documents; finding either one is a full answer
    assert tie_aware_recall(np.array([[0.9, 0.5]]), np.array([0.5])) == 1.0
    assert tie_aware_recall(np.array([[0.9, 0.4]]), np.array([0.5])) == 0.5


def test_tune_sets_the_search_effort_and_refuses_an_exact_index(x):
    index = VectorIndex.build(x, [str(i) for i in range(len(x))], kind="hnsw", ef_search=16)
    index.tune(fixed=200)
    assert index.meta["params"]["ef_search"] == 200 and index.meta["recall"] >= 0.99
    index.tune(queries=x[:20] + 0.1, target_recall=0.5)
    assert index.meta["params"]["ef_search"] == 16 and list(index.meta["recall_by_queries"]) == ["given"]
    with pytest.raises(ValueError, match="`tune` is for approximate indexes"):
        VectorIndex.build(x, [str(i) for i in range(len(x))]).tune()
