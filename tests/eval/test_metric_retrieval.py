"""Metric-learning retrieval (P@k, R-precision, MAP@R) against a float64 brute-force reference, hand-worked cases
and pytorch-metric-learning's AccuracyCalculator."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from contrastlab.eval import metric_retrieval

from .conftest import DEVICES


def reference(z: np.ndarray, y: np.ndarray, ks) -> dict:
    """Every score from Musgrave et al. 2020 sec. 3.2, one query and one rank at a time, in float64 numpy."""
    z = z.astype(np.float64)
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    zn = z / np.where(norms > 0, norms, 1.0)
    sums = {f"precision@{k}": 0.0 for k in ks} | {"r_precision": 0.0, "map@r": 0.0}
    scored = 0
    for q in range(len(z)):
        r = int((y == y[q]).sum()) - 1
        if r == 0:
            continue
        scored += 1
        sims = zn @ zn[q]
        sims[q] = -np.inf
        order = np.argsort(-sims, kind="stable")[:-1]                 # self (last) dropped; ties: lower index
        rel = [1.0 if y[j] == y[q] else 0.0 for j in order]
        for k in ks:
            sums[f"precision@{k}"] += sum(rel[:k]) / k
        sums["r_precision"] += sum(rel[:r]) / r
        ap, hits = 0.0, 0
        for i in range(r):
            if rel[i]:
                hits += 1
                ap += hits / (i + 1)
        sums["map@r"] += ap / r
    return {k: v / scored for k, v in sums.items()} | {"queries": scored, "singletons": len(z) - scored}


def random_case(seed: int, n: int = 240, d: int = 8, classes: int = 12):
    g = np.random.default_rng(seed)
    y = g.integers(0, classes, n)
    y[:3] = classes + np.arange(3)                                    # three singleton classes
    centres = g.normal(size=(classes + 3, d))
    z = centres[y] + g.normal(scale=1.5, size=(n, d))                 # (N, D) clustered, overlapping
    return z.astype(np.float32), y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_float64_reference_on_random_data(seed):
    z, y = random_case(seed)
    got = metric_retrieval(torch.from_numpy(z), torch.from_numpy(y), ks=(1, 5, 10))
    want = reference(z, y, (1, 5, 10))
    assert got["queries"] == want["queries"] == len(z) - 3 and got["singletons"] == 3 and got["items"] == len(z)
    for key in ("precision@1", "precision@5", "precision@10", "r_precision", "map@r"):
        assert got[key] == pytest.approx(want[key], abs=1e-12), key


@pytest.mark.parametrize("device", DEVICES)
def test_embeddings_on_any_device(device):
    z, y = random_case(6, n=120)
    got = metric_retrieval(torch.from_numpy(z).to(device), torch.from_numpy(y).to(device), chunk_size=50)
    want = reference(z, y, (1, 10))
    for key in ("precision@1", "precision@10", "r_precision", "map@r"):
        assert got[key] == pytest.approx(want[key], abs=1e-12)


@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
def test_the_chunk_size_does_not_change_the_scores(chunk_size):
    z, y = random_case(3, n=90)
    want = reference(z, y, (1, 10))
    got = metric_retrieval(torch.from_numpy(z), torch.from_numpy(y), chunk_size=chunk_size)
    for key in ("precision@1", "precision@10", "r_precision", "map@r"):
        assert got[key] == pytest.approx(want[key], abs=1e-12)


def test_float64_and_numpy_inputs():
    z, y = random_case(4, n=60)
    got = metric_retrieval(z.astype(np.float64), y, ks=(1,))            # numpy arrays, float64 compute
    assert got["map@r"] == pytest.approx(reference(z, y, (1,))["map@r"], abs=1e-12)


def test_a_perfect_embedding_scores_one_everywhere():
    y = torch.arange(60) % 4                                           # 15 per class, R = 14 >= 10
    z = torch.nn.functional.one_hot(y, 4).float() + 0.01 * torch.randn(60, 4, generator=torch.Generator().manual_seed(0))
    m = metric_retrieval(z, y)
    assert (m["precision@1"], m["precision@10"], m["r_precision"], m["map@r"]) == (1.0, 1.0, 1.0, 1.0)
    assert (m["queries"], m["singletons"], m["items"]) == (60, 0, 60)


def test_a_worked_example():
    """Points on the unit circle; similarity falls with the angle between them. Class A at 0, 10 and 40 degrees,
    B at 27 and 75, and a lone C at 180 (last in every list; its own query is left out).

    query  neighbours by angle      rel      R  P@1  P@2  R-prec  MAP@R
    0 A    10A 27B 40A 75B          1 0 1 0  2   1   1/2   1/2     (1/2)(1/1)       = 1/2
    10 A   0A 27B 40A 75B           1 0 1 0  2   1   1/2   1/2     1/2
    27 B   40A 10A 0A 75B           0 0 0 1  1   0   0     0       0
    40 A   27B 10A 75B 0A           0 1 0 1  2   0   1/2   1/2     (1/2)(1/2)       = 1/4
    75 B   40A 27B 10A 0A           0 1 0 0  1   0   1/2   0       0
    """
    deg = torch.tensor([0.0, 10.0, 27.0, 40.0, 75.0, 180.0]) * math.pi / 180
    z = torch.stack([deg.cos(), deg.sin()], 1).double()                 # (6, 2)
    y = torch.tensor([0, 0, 1, 0, 1, 2])
    m = metric_retrieval(z, y, ks=(1, 2))
    assert m["precision@1"] == pytest.approx(2 / 5)
    assert m["precision@2"] == pytest.approx(2 / 5)
    assert m["r_precision"] == pytest.approx(1.5 / 5)
    assert m["map@r"] == pytest.approx(1.25 / 5)
    assert (m["queries"], m["singletons"]) == (5, 1)


def test_ties_rank_the_lower_index_first():
    """Rows 1 and 2 are orthogonal to row 0 (similarity 0, a tie), rows 0 and 3 to rows 1 and 2. Lower index
    first: query 0 gets row 1 (a miss), query 2 row 0 (a hit), query 3 row 1 (a miss); row 1's class is lone.
    Higher index first would hit all three."""
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [-1.0, 0.0]])
    m = metric_retrieval(z, torch.tensor([0, 1, 0, 0]), ks=(1,))
    assert m["precision@1"] == pytest.approx(1 / 3) and m["singletons"] == 1


PML = """
import json, sys
import numpy as np, torch
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN
case = np.load(sys.argv[1])
z, y = torch.from_numpy(case["z"]), torch.from_numpy(case["y"])
calc = AccuracyCalculator(include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
                          k="max_bin_count", device=torch.device("cpu"), knn_func=CustomKNN(CosineSimilarity()))
print(json.dumps({k: float(v) for k, v in calc.get_accuracy(z, y, z, y, ref_includes_query=True).items()}))
"""


def test_matches_pytorch_metric_learning(tmp_path):
    # in its own interpreter: importing PML's accuracy calculator patches faiss's Index.search for torch tensors
    # (faiss.contrib.torch_utils), which would change faiss for every later test of this process
    import json
    import subprocess
    import sys
    pytest.importorskip("pytorch_metric_learning", reason="pytorch-metric-learning is not installed")
    z, y = random_case(5, n=300, d=16)
    np.savez(tmp_path / "case.npz", z=z, y=y)
    p = subprocess.run([sys.executable, "-c", PML, str(tmp_path / "case.npz")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    theirs = json.loads(p.stdout.strip().splitlines()[-1])
    mine = metric_retrieval(torch.from_numpy(z), torch.from_numpy(y), ks=(1,))
    assert mine["precision@1"] == pytest.approx(theirs["precision_at_1"], abs=1e-6)
    assert mine["r_precision"] == pytest.approx(theirs["r_precision"], abs=1e-6)
    assert mine["map@r"] == pytest.approx(theirs["mean_average_precision_at_r"], abs=1e-6)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(embeddings=[[1.0, 0.0]]), TypeError, r"`embeddings` must be a torch.Tensor of shape \(N, F\), got list"),
    (dict(embeddings=torch.ones(4, 2, dtype=torch.int64)), TypeError, r"`embeddings` must be a floating-point tensor"),
    (dict(embeddings=torch.ones(4)), ValueError, r"`embeddings` must have shape \(N, F\), got a 1-d tensor"),
    (dict(embeddings=torch.tensor([[1.0, float("nan")]] * 4)), ValueError, r"`embeddings` must be finite, got 4 NaN or Inf value\(s\) in shape \(4, 2\)"),
    (dict(embeddings=torch.ones(1, 2), labels=torch.zeros(1, dtype=torch.long)), ValueError,
     r"`embeddings` must have at least 2 rows \(a query needs another item\), got 1"),
    (dict(labels=[0, 0, 1, 1]), TypeError, r"`labels` must be a torch.Tensor of integer class ids with shape \(4,\), got list"),
    (dict(labels=torch.zeros(4)), TypeError, r"`labels` must be an integer tensor of class ids, got dtype torch.float32"),
    (dict(labels=torch.zeros(3, dtype=torch.long)), ValueError,
     r"`labels` must have shape \(4,\), one label per row of `embeddings`, got \(3,\)"),
    (dict(labels=torch.tensor([0, -1, 1, 1])), ValueError, r"`labels` must hold class ids >= 0, got -1"),
    (dict(labels=torch.arange(4)), ValueError,
     r"`labels` must put at least 2 items in some class .* got 4 items in 4 distinct classes"),
    (dict(ks=(1, 4)), ValueError, r"`ks` must be at most N - 1 = 3 \(the other items a query can retrieve\), got 4"),
    (dict(ks=()), ValueError, r"`ks` must be a non-empty sequence of positive ints, got \(\)"),
    (dict(ks="1"), ValueError, r"`ks` must be a non-empty sequence of positive ints, got '1'"),
    (dict(ks=(0,)), ValueError, r"`ks` must be a positive int, got 0"),
    (dict(ks=(1.5,)), TypeError, r"`ks` must be a positive int, got float 1.5"),
    (dict(chunk_size=0), ValueError, r"`chunk_size` must be a positive int, got 0"),
])
def test_bad_inputs_are_named(kwargs, error, message):
    args = dict(embeddings=torch.randn(4, 2), labels=torch.tensor([0, 0, 1, 1]), ks=(1,)) | kwargs
    with pytest.raises(error, match=message):
        metric_retrieval(args.pop("embeddings"), args.pop("labels"), **args)


def test_the_table_formatter_lists_rows_columns_and_skips():
    from contrastlab.eval import format_metric_retrieval
    text = format_metric_retrieval({"items": 5, "singletons": 1, "skipped": {"untrained": "a custom encoder"},
                                    "table": {"pixels": {"precision@1": 0.4, "r_precision": 0.3, "map@r": 0.25},
                                              "simclr": {"precision@1": 1.0, "precision@10": 0.5}}})
    lines = text.splitlines()
    assert lines[0] == "retrieval: 5 test images query each other (cosine, self excluded; 1 alone in their class left out)"
    assert lines[1].split() == ["encoder", "P@1", "P@10", "R-precision", "MAP@R"]
    assert lines[3].split() == ["pixels", "40.0%", "-", "30.0%", "25.0%"]
    assert lines[4].split() == ["simclr", "100.0%", "50.0%", "-", "-"]
    assert lines[5] == "skipped: untrained (a custom encoder)"


@pytest.mark.parametrize("bad", [[0.5], {"items": 3}])
def test_the_table_formatter_names_bad_input(bad):
    from contrastlab.eval import format_metric_retrieval
    with pytest.raises(TypeError, match=r"`retrieval` must be a mapping with a 'table' of rows, got (list|dict)"):
        format_metric_retrieval(bad)
