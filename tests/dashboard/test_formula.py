"""The formula panel's numbers: the anchor's InfoNCE terms agree with the engine's loss and with a float64
formula written here, for plain InfoNCE and with a hard-negative beta."""

import math

import numpy as np
import pytest

from contrastlab.dashboard.formula import SHOWN_NEGATIVES, anchor_formula
from contrastlab.dashboard.playground import Playground


def float64_info_nce(pg, beta=0.0):
    """-log(e^{l+} / (e^{l+} + sum_j w_j e^{l_j})) for the anchor, from positions and batch, in numpy float64."""
    a, p = (x.numpy() for x in pg.batch)
    z = pg.embeddings.numpy().astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    i = int(np.flatnonzero(a == pg.anchor)[0])
    t = pg.settings["temperature"]
    logits = z[p] @ z[pg.anchor] / t
    neg = np.delete(logits, i)
    w = len(neg) * np.exp(beta * neg) / np.exp(beta * neg).sum() if beta else np.ones_like(neg)
    terms = w * np.exp(neg)
    den = math.exp(logits[i]) + terms.sum()
    return -math.log(math.exp(logits[i]) / den), terms / terms.sum(), den


@pytest.mark.parametrize("beta", [0.0, 1.5])
@pytest.mark.parametrize("temperature", [0.05, 0.3, 1.0])
def test_the_formula_agrees_with_the_engine_and_a_float64_formula(temperature, beta):
    pg = Playground(points=96, batch_size=24, temperature=temperature, hard_negative_beta=beta, seed=1)
    pg.step(20)
    pg.select_anchor(17)
    f = anchor_formula(pg)
    ref, shares, den = float64_info_nce(pg, beta)
    assert f["anchor"] == 17 and f["n_negatives"] == 23 and f["trained"]
    assert f["loss"] == pytest.approx(ref, abs=1e-9)
    assert f["engine_loss"] == pytest.approx(ref, abs=1e-4)                # float32, as the engine trains
    assert f["loss"] == pytest.approx(f["engine_loss"], abs=1e-4)
    assert f["denominator"] == pytest.approx(den, rel=1e-9)
    assert len(f["negatives"]) == SHOWN_NEGATIVES
    top = np.sort(shares)[::-1][:SHOWN_NEGATIVES]
    np.testing.assert_allclose([n["share"] for n in f["negatives"]], top, rtol=1e-9)
    total = f["positive"]["exp"] + sum(n["exp"] for n in f["negatives"]) + f["rest_exp"]
    assert total == pytest.approx(f["denominator"], rel=1e-9)           # the written terms add up
    # the batch mean of the per-anchor losses is the loss the engine reports
    assert f["engine_batch_loss"] == pytest.approx(pg.metrics()["loss"], abs=1e-4)
    assert len(f["plot"]["cos"]) == 23


def test_for_other_losses_the_panel_says_it_is_not_the_trained_loss():
    pg = Playground(points=64, batch_size=16, loss="supcon", seed=0)
    f = anchor_formula(pg)
    assert not f["trained"] and f["loss_name"] == "supcon"
    assert f["loss"] == pytest.approx(float64_info_nce(pg)[0], abs=1e-9)
    assert pg.frame().formula["trained"] is False
