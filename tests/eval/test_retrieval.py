"""Retrieval ranking and metrics against hand-computed values and float64 brute-force references."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from contrastlab.data.text import RetrievalData
from contrastlab.eval.retrieval import evaluate_retrieval, rank, retrieval_metrics, top_k

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None)


# ---------------------------------------------------------------------------------------------------- references

def reference_metrics(ranked: list[list[int]], relevant: list[list[int]], ks, cutoff: int) -> dict[str, float]:
    """Every metric from its definition, one query and one position at a time, in Python floats (float64)."""
    q = len(ranked)
    sums: dict[str, float] = {}

    def add(key, value):
        sums[key] = sums.get(key, 0.0) + value

    for docs, rel in zip(ranked, relevant):
        rel = set(rel)
        for k in ks:
            found = sum(1 for d in docs[:k] if d in rel)
            add(f"recall@{k}", found / len(rel))
            add(f"success@{k}", 1.0 if found else 0.0)
        rr = 0.0
        for i, d in enumerate(docs[:cutoff]):
            if d in rel:
                rr = 1.0 / (i + 1)
                break
        add(f"mrr@{cutoff}", rr)
        dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(docs[:cutoff]) if d in rel)
        idcg = sum(1.0 / math.log2(i + 2) for i in range(min(len(rel), cutoff)))
        add(f"ndcg@{cutoff}", dcg / idcg)
        ap, found = 0.0, 0
        for i, d in enumerate(docs):
            if d in rel:
                found += 1
                ap += found / (i + 1)
        add(f"map@{len(docs)}", ap / len(rel))
    return {key: value / q for key, value in sums.items()}


def reference_order(scores: list[float], k: int) -> list[int]:
    return sorted(range(len(scores)), key=lambda j: (-scores[j], j))[:k]


# ------------------------------------------------------------------------------------------------------ metrics

def test_metrics_hand_computed_example():
    # query 0: relevant {0, 1} found at places 2 and 4; query 1: its one relevant document (7) is never ranked
    ranked = torch.tensor([[2, 0, 5, 1], [4, 3, 1, 0]])
    m = retrieval_metrics(ranked, [[0, 1], [7]], ks=(1, 2, 4), cutoff=4)
    ndcg0 = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    expected = {"recall@1": 0.0, "recall@2": 0.25, "recall@4": 0.5, "success@1": 0.0, "success@2": 0.5,
                "success@4": 0.5, "mrr@4": 0.25, "ndcg@4": ndcg0 / 2, "map@4": (0.5 * (1 / 2 + 2 / 4)) / 2}
    assert m.keys() == expected.keys()
    for key, value in expected.items():
        assert m[key] == pytest.approx(value, abs=1e-12), key


def test_one_relevant_beyond_the_cut_scores_zero():
    m = retrieval_metrics(torch.arange(100).unsqueeze(0), [[150]], ks=(1, 10, 100))
    assert all(v == 0.0 for v in m.values())
    m = retrieval_metrics(torch.arange(12).unsqueeze(0), [[10]], ks=(1, 10), cutoff=10)   # at place 11
    assert m["recall@10"] == m["success@10"] == m["mrr@10"] == m["ndcg@10"] == 0.0
    assert m["map@12"] == pytest.approx(1 / 11)


def test_all_relevant_on_top_scores_one():
    ranked = torch.tensor([[5, 3, 9, 0, 1, 2, 4, 6, 7, 8, 10, 11]])
    m = retrieval_metrics(ranked, [[3, 5, 9]], ks=(3, 10), cutoff=10)
    assert all(v == pytest.approx(1.0) for v in m.values()), m
    assert retrieval_metrics(ranked, [[3, 5, 9]], ks=(1,), cutoff=10)["recall@1"] == pytest.approx(1 / 3)


@st.composite
def rankings(draw):
    q = draw(st.integers(1, 5))
    n = draw(st.integers(1, 25))
    width = draw(st.integers(1, 12))
    rows, rel = [], []
    for _ in range(q):
        perm = draw(st.permutations(list(range(n))))
        row = list(perm[:width]) + [-1] * max(0, width - n)                   # -1 pads lists longer than N
        rows.append(row)
        rel.append(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=6)))  # may repeat: a set
    ks = sorted(set(draw(st.lists(st.integers(1, width), min_size=1, max_size=3))))
    cutoff = draw(st.integers(1, width))
    return rows, rel, ks, cutoff, n


@SETTINGS
@given(rankings())
def test_metrics_equal_brute_force_reference(case):
    rows, rel, ks, cutoff, n = case
    got = retrieval_metrics(np.array(rows), rel, ks=ks, cutoff=cutoff, num_docs=n)
    want = reference_metrics(rows, rel, ks, cutoff)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-12, abs=1e-15), key


ONE = {"ks": (1,), "cutoff": 1}
T01 = torch.tensor([[0, 1]])


@pytest.mark.parametrize("ranked, relevant, kwargs, error, match", [
    (T01, [[0], [1]], ONE, ValueError, r"one list per row of `ranked` \(1\), got 2"),
    (T01, [[]], ONE, ValueError, r"`relevant\[0\]` must be a non-empty list"),
    (torch.tensor([[0, -2]]), [[0]], ONE, ValueError, r"indices >= 0 \(or -1.*got -2"),
    (T01, [[-1]], ONE, ValueError, r"`relevant\[0\]` must hold document indices >= 0, got -1"),
    (torch.tensor([[0, 5]]), [[0]], {**ONE, "num_docs": 5}, ValueError, r"`ranked` must hold .* < num_docs = 5, got 5"),
    (T01, [[9]], {**ONE, "num_docs": 5}, ValueError, r"`relevant` must hold .* < num_docs = 5, got 9"),
    (T01, [[0]], {"ks": (1, 10), "cutoff": 1}, ValueError, r"at least max\(ks, cutoff\) = 10 columns, got K = 2"),
    (T01, [[0]], {"ks": (1,), "cutoff": 3}, ValueError, r"= 3 columns, got K = 2"),
    (torch.tensor([[3, 1, 3]]), [[0]], ONE, ValueError, r"row 0 must not list a document twice, got 3"),
    (torch.tensor([[0.0, 1.0]]), [[0]], ONE, TypeError, r"integer tensor .* got dtype torch.float32"),
    (T01, [[0.5]], ONE, TypeError, r"`relevant\[0\]` must hold int"),
    (T01, [[0]], {"ks": (0,), "cutoff": 1}, ValueError, r"`ks` must be a positive int, got 0"),
    (T01, [[0]], {"ks": (), "cutoff": 1}, ValueError, r"`ks` must be a non-empty sequence"),
])
def test_metrics_reject_bad_input(ranked, relevant, kwargs, error, match):
    with pytest.raises(error, match=match):
        retrieval_metrics(ranked, relevant, **kwargs)


def test_metrics_do_not_modify_inputs():
    ranked, rel = torch.tensor([[2, 0, 1]]), [[1, 1, 0]]
    retrieval_metrics(ranked, rel, ks=(1, 3), cutoff=3)
    assert ranked.tolist() == [[2, 0, 1]] and rel == [[1, 1, 0]]


# --------------------------------------------------------------------------------------------------------- rank

@SETTINGS
@given(st.integers(1, 4), st.integers(1, 30), st.integers(1, 35), st.integers(0, 2**31 - 1))
def test_top_k_orders_by_score_then_index(m, n, k, seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 4, (m, n), generator=g).double()                  # many ties
    got = top_k(scores, k=k)
    assert got.shape == (m, k) and got.dtype == torch.int64
    for row, want in zip(got.tolist(), (reference_order(s, k) for s in scores.tolist())):
        assert row == want + [-1] * (k - len(want))


def _cosines(q: torch.Tensor, d: torch.Tensor) -> np.ndarray:
    qn = q.double().numpy() / np.linalg.norm(q.double().numpy(), axis=1, keepdims=True)
    dn = d.double().numpy() / np.linalg.norm(d.double().numpy(), axis=1, keepdims=True)
    return qn @ dn.T                                                             # (Q, N) float64


def test_rank_equals_float64_cosine_reference():
    g = torch.Generator().manual_seed(0)
    q, d = torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randn(40, 5, generator=g, dtype=torch.float64)
    d[13] = d[4] * 4.0                                    # same direction, exactly the same unit vector: a tie
    q[0], q[1] = d[4], d[4] + 0.3 * d[0]                   # queries that rank the tied pair high
    got = rank(q, d, k=10)
    sims = _cosines(q, d)
    tied = 0
    for i in range(7):
        want = reference_order(list(sims[i]), 10)
        assert got[i].tolist() == want
        if 13 in want:                                    # the tie goes to the lower index
            assert want.index(4) == want.index(13) - 1
            tied += 1
    assert tied > 0


def test_rank_float32_finds_the_reference_top_k():
    g = torch.Generator().manual_seed(2)
    q, d = torch.randn(20, 16, generator=g), torch.randn(300, 16, generator=g)
    got = rank(q, d, k=25, chunk_size=7)
    sims = _cosines(q, d)
    for i in range(20):
        want = reference_order(list(sims[i]), 25)
        np.testing.assert_allclose(sims[i, got[i].numpy()], sims[i, want], atol=1e-6)


def test_rank_is_the_same_in_any_chunking_and_pads_past_n():
    g = torch.Generator().manual_seed(1)
    q, d = torch.randn(9, 4, generator=g), torch.randn(6, 4, generator=g)
    full = rank(q, d, k=8)
    assert full.shape == (9, 8) and (full[:, 6:] == -1).all()
    assert torch.equal(rank(q, d, k=8, chunk_size=1), full)
    assert torch.equal(rank(q.numpy(), d.numpy(), k=8, chunk_size=4), full)   # numpy arrays work too


def test_rank_dot_uses_length_cosine_ignores_it():
    q = torch.tensor([[1.0, 0.0]])
    d = torch.tensor([[1.0, 0.0], [10.0, 5.0]])
    assert rank(q, d, k=1).tolist() == [[0]]
    assert rank(q, d, k=1, similarity="dot").tolist() == [[1]]


@pytest.mark.parametrize("kwargs, error, match", [
    ({"k": 0}, ValueError, r"`k` must be a positive int, got 0"),
    ({"k": 1, "similarity": "l2"}, ValueError, r"`similarity` must be one of \('cosine', 'dot'\), got 'l2'"),
    ({"k": 1, "chunk_size": 0}, ValueError, r"`chunk_size` must be a positive int, got 0"),
])
def test_rank_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        rank(torch.ones(2, 3), torch.ones(4, 3), **kwargs)


def test_rank_rejects_mismatched_or_non_finite_embeddings():
    with pytest.raises(ValueError, match="same feature size"):
        rank(torch.ones(2, 3), torch.ones(4, 2), k=1)
    with pytest.raises(ValueError, match="`doc_emb` must be finite"):
        rank(torch.ones(2, 3), torch.full((4, 3), float("nan")), k=1)


# ---------------------------------------------------------------------------------------------------- evaluate

def test_evaluate_retrieval_with_any_callable():
    data = RetrievalData(queries=["aab", "bbb", "ab"], corpus=["bb", "aa", "ab", "ba"], relevant=[[1], [0], [2, 3]])
    bag = lambda texts: np.array([[t.count("a"), t.count("b")] for t in texts], dtype=np.float32)
    m = evaluate_retrieval(bag, bag, data, ks=(1, 2), cutoff=4)
    # cosines: "aab" -> aa .894, ab/ba .949 (tie: 2 first), bb .447; "bbb" -> bb first; "ab" -> ab, ba tie at 1
    assert m["recall@1"] == pytest.approx((0 + 1 + 0.5) / 3)
    assert m["recall@2"] == pytest.approx((0 + 1 + 1) / 3)
    assert m["mrr@4"] == pytest.approx((1 / 3 + 1 + 1) / 3)


def test_evaluate_retrieval_checks_the_callables():
    data = RetrievalData(queries=["a"], corpus=["a", "b"], relevant=[[0]])
    with pytest.raises(ValueError, match=r"`encode_docs` must return one row per input string \(2\), got 1"):
        evaluate_retrieval(lambda t: torch.ones(len(t), 2), lambda t: torch.ones(1, 2), data, ks=(1,), cutoff=1)
    with pytest.raises(TypeError, match="`encode_queries` must return a"):
        evaluate_retrieval(lambda t: [[1.0]], lambda t: torch.ones(len(t), 1), data, ks=(1,), cutoff=1)
