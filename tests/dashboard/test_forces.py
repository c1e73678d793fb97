"""Pull and push from the library's losses by autograd, against float64 formulas written here."""

import numpy as np
import pytest
import torch

from contrastlab.dashboard.controls import defaults
from contrastlab.dashboard.forces import (anchor_distribution, entropy, forces_and_gradient, make_objective,
                                          pair_forces)


def unit(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)


def tangent(v, z):
    return v - (v * z).sum(1, keepdims=True) * z


def settings(**kw):
    return defaults() | kw


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


@pytest.mark.parametrize("beta", [0.0, 0.7])
def test_info_nce_anchor_forces_match_the_softmax_formula(beta):
    b, t = 6, 0.3
    z = unit(2 * b, 3, 0)
    objective, groups = make_objective(settings(temperature=t, hard_negative_beta=beta), labels=torch.zeros(2 * b))
    pull, push = pair_forces(objective, z, groups, scale=float(b), dtype=torch.float64)
    zn = z.numpy()
    a, p = zn[:b], zn[b:]
    for i in range(b):
        l = a[i] @ p.T / t                                              # (B,) logits of anchor i
        neg = np.arange(b) != i
        q = softmax((1 + beta) * l[neg])                                # hardness-weighted negatives
        r = softmax(beta * l[neg])
        mass = np.log(b - 1) + np.log(np.exp((1 + beta) * l[neg]).sum()) - np.log(np.exp(beta * l[neg]).sum())
        share_neg = np.exp(mass) / (np.exp(l[i]) + np.exp(mass))       # 1 - P(positive)
        d_neg = share_neg * ((1 + beta) * q - beta * r)                 # d L_i / d l_j for the negatives
        tan = lambda v: v - (v @ a[i]) * a[i]
        want_pull = share_neg / t * tan(p[i])
        want_push = -(d_neg[:, None] * np.stack([tan(v) for v in p[neg]])).sum(0) / t
        np.testing.assert_allclose(pull[i].numpy(), want_pull, atol=1e-8)
        np.testing.assert_allclose(push[i].numpy(), want_push, atol=1e-8)


LOSSES = [("info_nce", {}), ("info_nce", {"hard_negative_beta": 1.0}), ("nt_xent", {}), ("supcon", {}),
          ("triplet", {"mining": "batch_hard"}), ("triplet", {"mining": "batch_all"}),
          ("triplet", {"mining": "semi_hard"}), ("margin_contrastive", {}), ("logistic", {}),
          ("info_nce", {"no_negatives": True})]


@pytest.mark.parametrize("loss,extra", LOSSES)
def test_pull_plus_push_is_the_gradient_of_every_loss(loss, extra):
    b = 8
    z = unit(2 * b, 3, 1)
    labels = torch.arange(2 * b) % 3
    objective, groups = make_objective(settings(loss=loss, temperature=0.2, margin=0.6, **extra), labels=labels)
    loss_value, grad, pull, push = forces_and_gradient(objective, z, groups, scale=2.0, dtype=torch.float64)
    zz = z.clone().requires_grad_(True)
    (objective(zz) * 2.0).backward()                                    # plain autograd, no tags
    np.testing.assert_allclose(loss_value, float(objective(z)) * 2.0, rtol=1e-8)
    np.testing.assert_allclose(grad.numpy(), zz.grad.numpy(), atol=1e-8)
    np.testing.assert_allclose((pull + push).numpy(), -tangent(zz.grad, z).numpy(), atol=1e-8)


def test_float32_forces_are_close_to_float64():
    z = unit(32, 2, 2)
    objective, groups = make_objective(settings(temperature=0.1), labels=torch.zeros(32))
    p64, q64 = pair_forces(objective, z, groups, dtype=torch.float64)
    p32, q32 = pair_forces(objective, z.float(), groups)
    scale = max(float(p64.abs().max()), float(q64.abs().max()))
    assert float((p32.double() - p64).abs().max()) < 1e-4 * scale
    assert float((q32.double() - q64).abs().max()) < 1e-4 * scale


def test_a_subset_of_rows_gives_the_same_forces_for_those_rows():
    z = unit(20, 3, 3)
    objective, groups = make_objective(settings(loss="nt_xent"), labels=torch.zeros(20))
    full = pair_forces(objective, z, groups, dtype=torch.float64)
    rows = torch.tensor([0, 4, 13])
    part = pair_forces(objective, z, groups, rows=rows, dtype=torch.float64)
    for f, g in zip(full, part):
        np.testing.assert_allclose(g[rows].numpy(), f[rows].numpy(), atol=1e-9)
        assert float(g[[1, 2, 3]].abs().max()) == 0.0


def test_positives_pull_and_negatives_push_for_info_nce():
    b = 10
    z = unit(2 * b, 2, 4)
    objective, groups = make_objective(settings(temperature=0.5), labels=torch.zeros(2 * b))
    pull, push = pair_forces(objective, z, groups, dtype=torch.float64)
    a, p = z[:b], z[b:]
    # the pull on each anchor points toward its positive; the push, on average, away from the others
    assert bool(((pull[:b] * tangent(p, a)).sum(1) > 0).all())


def test_anchor_distribution_matches_softmax_and_the_beta_masses():
    g = torch.Generator().manual_seed(5)
    anchor, cands = torch.randn(4, generator=g), torch.randn(9, 4, generator=g)
    a = anchor.double().numpy()
    c = cands.double().numpy()
    cos = (c / np.linalg.norm(c, axis=1, keepdims=True)) @ (a / np.linalg.norm(a))
    np.testing.assert_allclose(anchor_distribution(anchor, cands, 2, temperature=0.25).numpy(), softmax(cos / 0.25),
                               atol=1e-12)
    beta, l = 1.5, cos / 0.25
    neg = np.arange(9) != 2
    masses = np.empty(9)
    masses[2] = np.exp(l[2])
    masses[neg] = 8 * np.exp((1 + beta) * l[neg]) / np.exp(beta * l[neg]).sum()
    got = anchor_distribution(anchor, cands, 2, temperature=0.25, hard_negative_beta=beta).numpy()
    np.testing.assert_allclose(got, masses / masses.sum(), atol=1e-12)


def test_entropy_in_nats():
    assert entropy(torch.tensor([0.25, 0.25, 0.25, 0.25])) == pytest.approx(np.log(4))
    assert entropy(torch.tensor([1.0, 0.0])) == pytest.approx(0.0)
