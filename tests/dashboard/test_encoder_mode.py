"""Encoder mode of the playground: the input data, the views, batches that never touch held-out points, one step
equal to a float64 reference (the InfoNCE of the batch written by hand, its gradient back through a copy of the
MLP), the field equal to the encoder on the grid, learning that generalises to held-out points, and the frame's
binary layout."""
from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

from contrastlab.dashboard.controls import check_consistent, defaults, training_points
from contrastlab.dashboard.encoder_mode import (EXTENT, HELD_OUT, INPUTS, InputEncoder, augment_inputs, field, grid,
                                                make_inputs)
from contrastlab.dashboard.playground import Playground
from contrastlab.dashboard.protocol import HEADER, encode_frame
from contrastlab.dashboard.toy_data import sample_batch


@pytest.mark.parametrize("kind", sorted(INPUTS))
def test_every_input_kind_stays_in_the_plane_and_holds_out_a_fifth_of_each_class(kind):
    x, labels, held = make_inputs(kind, points=203, clusters=3, hard_pair=False,
                                  generator=torch.Generator().manual_seed(4))
    k = 2 if kind == "moons" else 3
    assert x.shape == (203, 2) and x.dtype == torch.float32 and bool((x.abs() < EXTENT).all())
    assert sorted(labels.unique().tolist()) == list(range(k))
    for c in range(k):
        n_c = int((labels == c).sum())
        assert int(held[labels == c].sum()) == round(HELD_OUT * n_c)
    again = make_inputs(kind, points=203, clusters=3, hard_pair=False, generator=torch.Generator().manual_seed(4))
    assert torch.equal(again[0], x) and torch.equal(again[2], held)
    assert training_points({**defaults(), "mode": "encoder", "inputs": kind, "points": 203, "clusters": 3}) == \
        int((~held).sum())


def test_views_grow_with_the_strength_and_vanish_without_it():
    x = torch.randn(500, 2)
    assert torch.allclose(augment_inputs(x, strength=0.0, generator=torch.Generator().manual_seed(0)), x)
    moved = [float((augment_inputs(x, strength=s, generator=torch.Generator().manual_seed(0)) - x).norm(dim=1).mean())
             for s in (0.1, 0.4, 0.8)]
    assert moved[0] < moved[1] < moved[2]


def test_batches_leave_held_out_points_out_and_snap_views_to_the_nearest_input():
    x, labels, held = make_inputs("clusters", points=120, clusters=4, hard_pair=False,
                                  generator=torch.Generator().manual_seed(0))
    a, p = sample_batch(x, batch_size=40, noise=0.3, generator=torch.Generator().manual_seed(5), exclude=held,
                        augment=augment_inputs, metric="euclidean")
    rows = torch.cat([a, p])
    assert rows.unique().numel() == 80 and not bool(held[rows].any())
    g = torch.Generator().manual_seed(5)                                   # the same draws, by hand
    allowed = torch.nonzero(~held).squeeze(1)
    anchors = allowed[torch.randperm(allowed.shape[0], generator=g)[:40]]
    assert torch.equal(anchors, a)
    views = augment_inputs(x[anchors], strength=0.3, generator=g).double().numpy()
    free = set(torch.nonzero(~held).squeeze(1).tolist()) - set(anchors.tolist())
    for i, v in enumerate(views):                                          # greedy, in anchor order
        options = sorted(free, key=lambda j: float(((x[j].double().numpy() - v) ** 2).sum()))
        assert options[0] == int(p[i])
        free.remove(options[0])


def test_held_out_batch_sizes_are_checked_against_the_training_points():
    s = {**defaults(), "mode": "encoder", "points": 100, "batch_size": 50}
    with pytest.raises(ValueError, match=r"`batch_size` must be at most points / 2 = 40 of the 80 training points "
                                         r"\(20 held out\).*got 50"):
        check_consistent(s)


def _info_nce64(z, b, temperature):
    logits = z[:b] @ z[b:].t() / temperature                             # (B, B): anchor i against positive j
    return -(logits.diagonal() - torch.logsumexp(logits, 1)).mean()


def test_one_encoder_step_follows_the_float64_gradient_of_the_batch_loss():
    pg = Playground(mode="encoder", inputs="moons", points=128, batch_size=16, temperature=0.2, seed=3)
    before = copy.deepcopy(pg.encoder).double()
    pg.step(1)
    a, p = pg.batch
    rows = torch.cat([a, p])
    z = before(pg.inputs[rows].double())                                  # (2B, 2) float64, the step's positions
    loss = 16 * _info_nce64(z, 16, 0.2)                                   # summed over anchors, as the engine
    want = torch.autograd.grad(loss, list(before.parameters()))
    got = [q.grad for q in pg.encoder.parameters()]
    for w, g in zip(want, got):
        np.testing.assert_allclose(g.double().numpy(), w.numpy(), rtol=2e-4, atol=2e-6)
    assert pg.metrics()["loss"] == pytest.approx(float(loss.detach()) / 16, rel=1e-5)   # the batch's loss, reported
    with torch.no_grad():                                                  # every point re-embedded by the new f
        np.testing.assert_allclose(pg.embeddings.numpy(), pg.encoder(pg.inputs).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="held-out point"):
        pg.select_anchor(int(torch.nonzero(pg.held_out)[0, 0]))


def test_the_field_is_the_encoder_on_the_grid_and_the_frame_carries_it():
    pg = Playground(mode="encoder", inputs="rings", points=96, batch_size=16, dim=3, seed=1)
    pg.step(2)
    frame = pg.frame()
    f = InputEncoder(dim=3, seed=0)
    g = grid(6)
    assert g[0].tolist() == pytest.approx([-EXTENT + EXTENT / 6, EXTENT - EXTENT / 6])      # top-left cell first
    assert g[1, 0] > g[0, 0] and g[6, 1] < g[0, 1]                                          # then right, then down
    with torch.no_grad():
        np.testing.assert_allclose(field(f, size=6).numpy(), f(g).numpy())
        side = int(math.isqrt(frame.field.shape[0]))
        np.testing.assert_allclose(frame.field, pg.encoder(grid(side)).numpy(), atol=1e-6)
    meta, blob = encode_frame(frame, seq=4, running=True)
    v = np.frombuffer(blob, "<f4")
    n, dim, s = 96, 3, frame.similarity.shape[0]
    assert v[7] == side
    b = frame.batch.shape[0] // 2
    o = HEADER + n * dim + 2 * b * (1 + 2 * dim) + s * s
    np.testing.assert_array_equal(v[o:o + 2 * n], frame.inputs.ravel())
    np.testing.assert_array_equal(v[o + 2 * n:o + 3 * n], frame.held_out.astype(np.float32))
    np.testing.assert_array_equal(v[o + 3 * n:], frame.field.ravel())
    assert json.loads(meta)["extent"] == EXTENT
    free = Playground(points=64, batch_size=8).frame()                      # free mode: no plane
    assert free.field is None and np.frombuffer(encode_frame(free, seq=1, running=True)[1], "<f4")[7] == 0


def test_the_encoder_learns_a_function_that_places_held_out_points_with_their_class():
    """At the start the random MLP sends the whole plane to about one direction (its class centroids nearly
    coincide); after 300 steps the classes are apart and held-out points, never trained on, sit with theirs."""
    pg = Playground(mode="encoder", inputs="clusters", points=256, batch_size=32, seed=0, noise=0.15)
    y, held = pg.labels, pg.held_out

    def read(w):
        nearest = (w[held] @ w[~held].t()).argmax(1)                      # a held-out point's nearest training point
        same = float((y[~held][nearest] == y[held]).float().mean())
        cent = torch.stack([torch.nn.functional.normalize(w[~held][y[~held] == c].mean(0), dim=0) for c in range(4)])
        closest = float((cent @ cent.t()).fill_diagonal_(-1).max())       # the two most similar class centroids
        cos = w[held] @ cent.t()                                          # (H, 4)
        own = cos.gather(1, y[held][:, None]).squeeze(1)
        other = cos.masked_fill(torch.nn.functional.one_hot(y[held], 4).bool(), -9.0).max(1).values
        return same, closest, float((own - other > 0.5).float().mean())
    same0, closest0, clear0 = read(pg.embeddings.clone())
    pg.step(300)
    same, closest, clear = read(pg.embeddings)
    assert closest0 > 0.9 and clear0 == 0.0
    assert closest < 0.5 and clear > 0.6 and same >= 0.95 and same > same0
    assert pg.metrics()["uniformity"] < -1.0                               # spread out, not collapsed
