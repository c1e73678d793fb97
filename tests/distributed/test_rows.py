"""The row-subset ("local loss") forms in one process: the shares of a partition sum to the full-batch loss.

Each rank of a distributed run computes one share; here the partition is simulated with uneven parts, and the
value and every input gradient are compared with the textbook float64 formulas of ``_reference``.
"""
from __future__ import annotations

import pytest
import torch

from contrastlab.losses.rows import clip_loss_rows, info_nce_rows, nt_xent_rows, supcon_rows

from . import _reference as R

PARTS = [(0, 2), (2, 5), (5, 7)]              # uneven "ranks" over a batch of 7


def _inputs(*shapes, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=dtype, requires_grad=True) for s in shapes]


def _check(shares, reference, leaves, tol=1e-10):
    total = sum(shares)
    grads = torch.autograd.grad(total, leaves)
    ref_grads = torch.autograd.grad(reference, leaves)
    assert abs(float(total.detach()) - float(reference.detach())) < tol
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=0, atol=tol)


@pytest.mark.parametrize("decoupled", [False, True])
def test_nt_xent_rows_partition(decoupled):
    a, b = _inputs((7, 5), (7, 5))
    shares = [nt_xent_rows(a[i:j], b[i:j], a, b, offset=i, temperature=0.3, decoupled=decoupled) for i, j in PARTS]
    _check(shares, R.nt_xent(a, b, 0.3, decoupled), [a, b])


@pytest.mark.parametrize("labelled", [True, False])
def test_supcon_rows_partition(labelled):
    (v,) = _inputs((7, 3, 5))
    lab = torch.tensor([0, 1, 0, 2, 1, 5, 0]) if labelled else None    # class 2 and 5: anchors without a positive
    shares = [supcon_rows(v[i:j], lab[i:j] if labelled else None, v, lab, offset=i, temperature=0.2)
              for i, j in PARTS]
    _check(shares, R.supcon(v, lab, 0.2), [v])


def test_supcon_rows_part_without_positives_is_zero_but_connected():
    (v,) = _inputs((4, 1, 3))
    lab = torch.tensor([0, 0, 1, 2])
    share = supcon_rows(v[2:], lab[2:], v, lab, offset=2, temperature=0.1)      # labels 1 and 2: alone
    assert float(share.detach()) == 0.0 and share.requires_grad


@pytest.mark.parametrize("with_negatives", [False, True])
def test_info_nce_rows_partition(with_negatives):
    q, p, n = _inputs((7, 5), (7, 5), (7, 4, 5))
    shares = [info_nce_rows(q[i:j], p[i:j], p, n[i:j] if with_negatives else None, temperature=0.2)
              for i, j in PARTS]
    _check(shares, R.info_nce(q, p, n if with_negatives else None, 0.2), [q, p, n] if with_negatives else [q, p])


def test_clip_loss_rows_partition_with_learnable_scale():
    a, b = _inputs((7, 5), (7, 5))
    s = torch.tensor(4.0, dtype=torch.float64, requires_grad=True)
    shares = [clip_loss_rows(a[i:j], b[i:j], a, b, logit_scale=s) for i, j in PARTS]
    _check(shares, R.clip(a, b, s), [a, b, s])


def test_float32_inputs_stay_float32_and_close():
    a, b = _inputs((7, 5), (7, 5), dtype=torch.float32)
    share = sum(nt_xent_rows(a[i:j], b[i:j], a, b, offset=i, temperature=0.3) for i, j in PARTS)
    assert share.dtype == torch.float32
    assert abs(float(share.detach()) - float(R.nt_xent(a.double(), b.double(), 0.3).detach())) < 1e-5


def test_bad_input_names_the_argument():
    a, b = _inputs((4, 3), (4, 3))
    with pytest.raises(ValueError, match=r"`offset` must be an int in \[0, 2\].*got 3"):
        nt_xent_rows(a[:2], b[:2], a, b, offset=3)
    with pytest.raises(ValueError, match="`labels` and `key_labels` must both be given"):
        supcon_rows(a[:2, None], torch.tensor([0, 1]), a[:, None], None, offset=0)
    with pytest.raises(ValueError, match=r"`negatives` must have shape \(b, M, D\) with b = 2"):
        info_nce_rows(a[:2], b[:2], b, torch.zeros(3, 2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least 2 examples in the whole batch"):
        clip_loss_rows(a[:1], b[:1], a[:1], b[:1], logit_scale=10.0)
    with pytest.raises(ValueError, match="`logit_scale` must be a finite number > 0, got -1.0"):
        clip_loss_rows(a, b, a, b, logit_scale=-1.0)
