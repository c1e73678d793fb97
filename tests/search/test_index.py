"""VectorIndex: exact search against a float64 brute-force reference, measured recall of the approximate kinds,
filtering by ids, and clear errors."""
from __future__ import annotations

import faiss
import numpy as np
import pytest

from contrastlab.search import VectorIndex, exact_top_k, recall_at_k

from .helpers import assert_same_ranking, clustered, reference_top_k


def ids_of(n):
    return [f"doc{i}" for i in range(n)]


@pytest.fixture(scope="module")
def corpus():
    return clustered(3000, 24, clusters=30, seed=1)


@pytest.fixture(scope="module")
def approx(corpus):
    return {kind: VectorIndex.build(corpus, ids_of(len(corpus)), kind=kind) for kind in ("hnsw", "ivf")}


def test_exact_search_equals_float64_brute_force():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 16)) * rng.uniform(0.5, 3, (500, 1))     # not normalised: the index does it
    q = rng.standard_normal((7, 16))
    index = VectorIndex.build(x, ids_of(500))
    assert index.kind == "exact" and index.meta["recall"] is None
    scores, ids = index.search(q, 12)
    ref_scores, ref_rows = reference_top_k(x, q, 12)
    assert scores.shape == (7, 12) and scores.dtype == np.float32
    assert_same_ranking(scores, ids, ref_scores, ref_rows, ids_of(500))


def test_hand_computed_example_and_k_larger_than_the_corpus():
    index = VectorIndex.build(np.array([[1.0, 0], [0, 1], [1, 1]]), ["x", "y", "xy"])
    scores, ids = index.search(np.array([[1.0, 0.0]]), 10)
    assert ids == [["x", "xy", "y"]]                                      # cos = 1, 1/sqrt(2), 0
    np.testing.assert_allclose(scores[0], [1, 2 ** -0.5, 0], atol=1e-6)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_recall_is_measured_and_close_to_one(approx, corpus, kind):
    index = approx[kind]
    meta = index.meta
    assert meta["kind"] == kind and meta["recall_k"] == 10 and meta["recall_queries"] == 1000
    assert meta["recall"] >= 0.95
    # an independent measurement on other queries (perturbed corpus rows) against the float64 reference
    rng = np.random.default_rng(5)
    q = corpus[rng.choice(len(corpus), 200, replace=False)] + 0.05 * rng.standard_normal((200, corpus.shape[1]))
    _, ids = index.search(q, 10)
    _, truth = reference_top_k(corpus, q, 10)
    hits = [len(set(found) & {f"doc{j}" for j in row}) / 10 for found, row in zip(ids, truth)]
    assert np.mean(hits) >= 0.9


def test_recall_is_the_worst_of_corpus_and_mixed_queries_or_measured_on_given_ones(approx, corpus):
    meta = approx["hnsw"].meta
    assert set(meta["recall_by_queries"]) == {"corpus", "mixed"} and meta["recall_queries"] == 1000
    assert meta["recall"] == min(meta["recall_by_queries"].values())
    rng = np.random.default_rng(7)
    queries = rng.standard_normal((300, corpus.shape[1]))                # far from the data: a hard case
    index = VectorIndex.build(corpus, ids_of(len(corpus)), kind="hnsw", ef_search=16, tune_queries=queries)
    assert list(index.meta["recall_by_queries"]) == ["given"] and index.meta["recall_queries"] == 300
    _, ids = index.search(queries, 10)                                   # the same measurement, independently
    ref_scores, _ = reference_top_k(corpus, queries, 10)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    found = np.array([[corpus[int(d[3:])] @ qn[i] for d in row] for i, row in enumerate(ids)])
    assert abs(np.mean(found >= ref_scores[:, -1:] - 1e-5) - index.meta["recall"]) < 1e-3


def test_auto_kind_switches_at_the_threshold(corpus):
    assert VectorIndex.build(corpus, ids_of(3000), exact_max=3000).kind == "exact"
    index = VectorIndex.build(corpus, ids_of(3000), exact_max=2999)
    assert index.kind == "hnsw" and index.meta["distances_per_query"] <= 0.1 * 3000


def test_auto_falls_back_to_exact_where_hnsw_saves_little():
    """Random 64-d vectors have no neighbourhood structure: HNSW computes a large share of all distances."""
    x = np.random.default_rng(0).standard_normal((3000, 64))
    hnsw = VectorIndex.build(x, ids_of(3000), kind="hnsw", recall_queries=300)
    assert hnsw.meta["distances_per_query"] > 0.1 * 3000
    auto = VectorIndex.build(x, ids_of(3000), exact_max=100, recall_queries=300)
    assert auto.kind == "exact" and "exact search is used" in auto.meta["note"]
    scores, ids = auto.search(x[:4], 5)
    ref_scores, ref_rows = reference_top_k(x, x[:4], 5)
    assert_same_ranking(scores, ids, ref_scores, ref_rows, ids_of(3000))


def test_fixed_search_effort_is_kept_and_recall_still_measured(corpus):
    index = VectorIndex.build(corpus[:800], ids_of(800), kind="hnsw", ef_search=16, recall_queries=300)
    assert index.meta["params"]["ef_search"] == 16 and index.meta["recall_queries"] == 300
    assert 0 < index.meta["recall"] <= 1


def test_recall_at_k_by_hand():
    assert recall_at_k(np.array([[0, 1, 2], [5, -1, 7]]), np.array([[2, 1, 9], [7, 8, 9]])) == pytest.approx(0.5)


def test_exact_top_k_breaks_ties_by_row():
    v = np.array([[1.0, 0], [1, 0], [0, 1]])
    scores, rows = exact_top_k(v, np.array([[1.0, 0]]), 2)
    assert rows.tolist() == [[0, 1]] and scores.tolist() == [[1.0, 1.0]]


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf"])
@pytest.mark.parametrize("path", ["subset", "selector"])
def test_filter_returns_only_allowed_ids_and_matches_the_reference(approx, corpus, kind, path):
    built = approx[kind] if kind != "exact" else VectorIndex.build(corpus, ids_of(len(corpus)))
    index = VectorIndex(built.faiss, built.ids, None, built.meta,       # force one of the two code paths
                        filter_exact_max=10_000 if path == "subset" else 0)
    rng = np.random.default_rng(2)
    allowed_rows = np.sort(rng.choice(len(corpus), 1500 if path == "selector" else 40, replace=False))
    allowed = [f"doc{j}" for j in allowed_rows]
    q = corpus[rng.choice(len(corpus), 6, replace=False)] + 0.1 * rng.standard_normal((6, corpus.shape[1]))
    scores, ids = index.search(q, 8, allowed_ids=allowed)
    assert all(d in set(allowed) for row in ids for d in row)
    ref_scores, ref_rows = reference_top_k(corpus[allowed_rows], q, 8)
    if kind == "exact" or path == "subset":
        assert_same_ranking(scores, ids, ref_scores, ref_rows, allowed)
    else:                                                                # approximate: most true neighbours found
        found = np.mean([len(set(f) & {allowed[j] for j in r}) / 8 for f, r in zip(ids, ref_rows)])
        assert found >= 0.8


def test_a_tiny_filter_on_hnsw_through_the_selector_is_answered_in_full(approx, corpus):
    """HNSW with a very selective IDSelector finds fewer than k hits; those queries are redone exactly."""
    hnsw = approx["hnsw"]
    index = VectorIndex(hnsw.faiss, hnsw.ids, None, hnsw.meta, filter_exact_max=0)
    allowed = ["doc3", "doc700", "doc1999", "doc2500"]
    rows = index.faiss.search(corpus[:3].astype(np.float32), 4,
                              params=index._params(4, faiss.IDSelectorBatch(np.array([3, 700, 1999, 2500]))))[1]
    assert (rows < 0).any()                                  # the case this test is about does happen
    scores, ids = index.search(corpus[:3], 4, allowed_ids=allowed)
    ref_scores, ref_rows = reference_top_k(corpus[[3, 700, 1999, 2500]], corpus[:3], 4)
    assert_same_ranking(scores, ids, ref_scores, ref_rows, allowed)


def test_k_is_capped_by_the_allowed_subset():
    index = VectorIndex.build(np.eye(4), ["a", "b", "c", "d"])
    scores, ids = index.search(np.eye(4)[:1], 3, allowed_ids=["d", "a", "a"])
    assert ids == [["a", "d"]] and scores.shape == (1, 2)


@pytest.mark.parametrize("call, message", [
    (lambda: VectorIndex.build(np.eye(3), ["a", "b"]), "`ids` must be a list with one id per vector (3), got 2"),
    (lambda: VectorIndex.build(np.eye(3), ["a", "b", "a"]), "`ids` must be unique, got 'a' more than once"),
    (lambda: VectorIndex.build(np.eye(3), ["a", 2, "c"]), "`ids[1]` must be a non-empty string, got 2"),
    (lambda: VectorIndex.build(np.zeros((2, 3)), ["a", "b"]), "`vectors` row 0 is all zeros"),
    (lambda: VectorIndex.build(np.array([[1.0, np.nan]]), ["a"]), "`vectors` must be finite; row 0 has NaN"),
    (lambda: VectorIndex.build(np.ones(3), ["a"]), "`vectors` must be a 2-D array of shape (N, D)"),
    (lambda: VectorIndex.build(np.eye(2), ["a", "b"], kind="lsh"), "`kind` must be one of auto, exact, hnsw, "
                                                                   "ivf, got 'lsh'"),
    (lambda: VectorIndex.build(np.eye(2), ["a", "b"], ef_search=0), "`ef_search` must be a positive int, got 0"),
    (lambda: VectorIndex.build(np.eye(2), ["a", "b"], auto_max_work=0), "`auto_max_work` must be in (0, 1], got 0"),
    (lambda: VectorIndex.build(np.eye(2), ["a", "b"]).search(np.eye(2), 0), "`k` must be a positive int, got 0"),
    (lambda: VectorIndex.build(np.eye(2), ["a", "b"]).search(np.eye(3), 1),
     "`queries` must be a 2-D array of shape (N, 2), got shape (3, 3)"),
    (lambda: VectorIndex.build(np.eye(2), ["a", "b"]).search(np.eye(2), 1, allowed_ids=["a", "zz"]),
     "`allowed_ids` holds 1 ids not in the index, e.g. ['zz']"),
    (lambda: VectorIndex.build(np.eye(2), ["a", "b"]).search(np.eye(2), 1, allowed_ids=[]),
     "`allowed_ids` must hold at least one id"),
    (lambda: VectorIndex.build(np.eye(2), ["a", "b"]).search(np.eye(2), 1, allowed_ids="a"),
     "`allowed_ids` must be a list of ids, got str"),
    (lambda: VectorIndex(faiss.IndexFlatIP(2), [], None, {}, filter_exact_max=-1),
     "`filter_exact_max` must be an int >= 0, got -1"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError) as e:
        call()
    assert message in str(e.value)


def test_recall_counts_tied_documents_as_correct():
    """Every vector three times under different ids: exact search lists one tied triple, HNSW may list another."""
    base = clustered(400, 16, clusters=10, seed=4)
    x = np.repeat(base, 3, axis=0)                                       # (1200, 16), rows 3i..3i+2 equal
    index = VectorIndex.build(x, ids_of(len(x)), kind="hnsw", recall_queries=200)
    assert index.meta["recall"] >= 0.95
    q = base[:50] + 0.02 * np.random.default_rng(0).standard_normal((50, 16))
    _, ids = index.search(q, 10)
    ref_scores, _ = reference_top_k(x, q, 10)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    found = np.array([[x[int(d[3:])] @ qn[i] for d in row] for i, row in enumerate(ids)])   # float64 true scores
    assert np.mean(found >= ref_scores[:, -1:] - 1e-6) >= 0.9
