"""multiple_negatives_ranking against a float64 reference written from its definition."""
import math

import pytest
import torch

from contrastlab.losses import multiple_negatives_ranking


def reference(q, d, n, t, ids, symmetric):
    q = [v / v.norm() for v in q.double()]
    d = [v / v.norm() for v in d.double()]
    n = [] if n is None else [v / v.norm() for v in n.double()]
    b = len(q)
    ids = list(range(b)) if ids is None else ids.tolist()

    def one(rows, cols, extra, i):
        pos = float(rows[i] @ cols[i]) / t
        terms = [pos] + [float(rows[i] @ cols[j]) / t for j in range(b) if ids[j] != ids[i]]
        terms += [float(rows[i] @ e) / t for e in extra]
        return math.log(sum(math.exp(x) for x in terms)) - pos

    out = []
    for i in range(b):
        v = one(q, d, n, i)
        if symmetric:
            v = 0.5 * (v + one(d, q, [], i))
        out.append(v)
    return sum(out) / b


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("with_negatives", [False, True])
@pytest.mark.parametrize("with_ids", [False, True])
def test_matches_float64_reference(symmetric, with_negatives, with_ids):
    g = torch.Generator().manual_seed(0)
    q, d = torch.randn(9, 5, generator=g, dtype=torch.float64), torch.randn(9, 5, generator=g, dtype=torch.float64)
    n = torch.randn(4, 5, generator=g, dtype=torch.float64) if with_negatives else None
    ids = torch.tensor([0, 1, 2, 1, 3, 4, 2, 5, 6]) if with_ids else None
    if with_ids:                      # duplicates: the same document appears for two queries
        d[3], d[6] = d[1], d[2]
    got = multiple_negatives_ranking(q, d, n, temperature=0.1, symmetric=symmetric, document_ids=ids)
    assert float(got) == pytest.approx(reference(q, d, n, 0.1, ids, symmetric), rel=1e-10, abs=1e-12)


def test_gradient_matches_plain_cross_entropy():
    g = torch.Generator().manual_seed(1)
    q = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    d = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    multiple_negatives_ranking(q, d, temperature=0.2).backward()
    gq, gd = q.grad.clone(), d.grad.clone()
    q.grad = d.grad = None
    logits = torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(d, dim=1).T / 0.2
    torch.nn.functional.cross_entropy(logits, torch.arange(6)).backward()
    assert torch.allclose(gq, q.grad, atol=1e-12) and torch.allclose(gd, d.grad, atol=1e-12)


def test_duplicates_are_not_pushed_apart():
    # two queries share one document: with ids, ranking the duplicate first costs nothing extra
    d = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    q = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    with_ids = multiple_negatives_ranking(q, d, temperature=0.05, document_ids=torch.tensor([7, 7, 8]),
                                          reduction="none")
    without = multiple_negatives_ranking(q, d, temperature=0.05, reduction="none")
    assert with_ids[0] < 1e-6 and without[0] > math.log(2) - 1e-6


@pytest.mark.parametrize("kwargs, match", [
    ({"temperature": 0.0}, "temperature"),
    ({"document_ids": torch.tensor([1, 2])}, "document_ids"),
    ({"reduction": "avg"}, "reduction"),
])
def test_bad_input(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        multiple_negatives_ranking(torch.randn(3, 4), torch.randn(3, 4), **kwargs)
