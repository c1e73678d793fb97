"""The playground engine: temperature and softmax sharpness, collapse without negatives, controls
applied at once, frames consistent with numpy recomputations."""

import math

import numpy as np
import pytest

from contrastlab.dashboard.playground import MAX_STEP, Playground


def np_uniformity(z, t=2.0):
    """log mean_{i != j} exp(-t |z_i - z_j|^2), in float64."""
    z = z.astype(np.float64)
    d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    n = len(z)
    off = ~np.eye(n, dtype=bool)
    return float(np.log(np.exp(-t * d2[off]).mean()))


def np_alignment(pg):
    a, p = pg._eval_pairs
    z = pg.frame().positions.astype(np.float64)
    return float(((z[a.numpy()] - z[p.numpy()]) ** 2).sum(1).mean())


def test_lower_temperature_gives_a_sharper_anchor_softmax():
    pg = Playground(points=128, batch_size=32, seed=3)
    pg.step(10)
    entropies, tops = [], []
    for t in (2.0, 0.5, 0.1, 0.02):
        pg.update(temperature=t)                     # positions fixed: no step in between
        f = pg.frame()
        probs = np.array(f.anchor["probabilities"])
        # the bars are the softmax of the anchor's cosines / t (float64 reference from the positions)
        a = f.positions[pg.anchor].astype(np.float64)
        cands = f.positions[pg._batch[1].numpy()].astype(np.float64)
        logits = cands @ a / t
        ref = np.exp(logits - logits.max())
        np.testing.assert_allclose(probs, ref / ref.sum(), atol=1e-6)
        assert f.anchor["entropy"] == pytest.approx(float(-(ref / ref.sum() * np.log(ref / ref.sum())).sum()), abs=1e-5)
        entropies.append(f.anchor["entropy"])
        tops.append(probs.max())
    assert entropies == sorted(entropies, reverse=True) and entropies[0] - entropies[-1] > 1.0
    assert tops == sorted(tops)


SETTINGS = {"points": 64, "batch_size": 16, "noise": 0.4, "lr": 0.5, "seed": 0}


def test_without_negatives_the_points_collapse():
    pg = Playground(no_negatives=True, **SETTINGS)
    u0 = np_uniformity(pg.frame().positions)
    a0 = np_alignment(pg)
    pg.step(200)
    u1 = np_uniformity(pg.frame().positions)
    a1 = np_alignment(pg)
    assert a0 > 1.0 and a1 < 0.05                    # positives coincide
    assert u0 < -1.3 and u1 > -0.15                  # and so does everything else: uniformity -> 0
    m = pg.frame().metrics                           # the engine's own curves say the same
    assert m["alignment"] < 0.05 and m["uniformity"] > -0.15


def test_with_negatives_uniformity_stays_low():
    pg = Playground(no_negatives=False, **SETTINGS)
    pg.step(200)
    assert np_uniformity(pg.frame().positions) < -1.2


def test_controls_apply_at_once_without_restarting():
    pg = Playground(points=64, batch_size=16, seed=1)
    pg.step(5)
    before = pg.frame().positions.copy()
    for name, value in [("temperature", 0.5), ("loss", "supcon"), ("hard_negative_beta", 2.0), ("lr", 0.3),
                        ("batch_size", 8), ("noise", 0.5), ("no_negatives", True), ("loss", "triplet"),
                        ("mining", "semi_hard"), ("margin", 1.0), ("steps_per_frame", 3)]:
        pg.update(**{name: value})
        f = pg.frame()
        assert f.step == 5 and f.settings[name] == value                # same run, new value
        np.testing.assert_array_equal(f.positions, before)
    pg.step(1)
    assert pg.frame().step == 6
    for name, value in [("seed", 4), ("points", 80), ("clusters", 3), ("hard_pair", True), ("dim", 3)]:
        epoch = pg.epoch
        pg.update(**{name: value})
        f = pg.frame()
        assert f.step == 0 and f.epoch == epoch + 1 and f.settings[name] == value   # data regenerated
    assert f.positions.shape == (80, 3)


@pytest.mark.parametrize("loss,extra", [("info_nce", {}), ("nt_xent", {}), ("supcon", {}),
                                        ("triplet", {"mining": "batch_all"}), ("margin_contrastive", {}),
                                        ("logistic", {}), ("info_nce", {"no_negatives": True})])
def test_every_loss_trains_and_gives_a_consistent_frame(loss, extra):
    pg = Playground(points=60, batch_size=12, loss=loss, dim=3, seed=2, **extra)
    pg.step(3)
    f = pg.frame()
    n = 60
    assert f.positions.shape == (n, 3) and f.pull.shape == f.push.shape == (2 * 12, 3)
    np.testing.assert_allclose(np.linalg.norm(f.positions, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(f.batch, np.concatenate([pg._batch[0].numpy(), pg._batch[1].numpy()]))
    assert np.isfinite(f.pull).all() and np.isfinite(f.push).all() and np.abs(f.pull).max() > 0
    rows, cols = f.similarity_rows, f.similarity_cols
    z = f.positions.astype(np.float64)
    np.testing.assert_allclose(f.similarity, z[rows] @ z[cols].T, atol=1e-5)
    assert math.isfinite(f.metrics["loss"]) and f.text.startswith("Loss:")
    assert f.anchor["point"] == pg.anchor and f.anchor["positive"]["point"] in cols


def test_a_step_moves_no_point_farther_than_the_cap():
    pg = Playground(points=64, batch_size=32, lr=2.0, temperature=0.01, seed=0)
    before = pg.frame().positions.astype(np.float64)
    pg.step(1)
    after = pg.frame().positions.astype(np.float64)
    angle = np.arccos(np.clip((before * after).sum(1), -1, 1))
    assert angle.max() <= MAX_STEP + 1e-4 and angle.max() > 0.1


def test_same_seed_same_run_and_reset_restarts_it():
    a, b = Playground(points=48, batch_size=8, seed=7), Playground(points=48, batch_size=8, seed=7)
    a.step(4)
    b.step(4)
    np.testing.assert_array_equal(a.frame().positions, b.frame().positions)
    c = Playground(points=48, batch_size=8, seed=8)
    assert not np.allclose(c.frame().positions, Playground(points=48, batch_size=8, seed=7).frame().positions)
    start = Playground(points=48, batch_size=8, seed=7).frame().positions
    a.reset()
    np.testing.assert_array_equal(a.frame().positions, start)
    assert a.frame().step == 0


def test_the_chosen_anchor_joins_every_batch_and_history_is_streamed_once():
    pg = Playground(points=64, batch_size=8, seed=0)
    pg.select_anchor(41)
    for _ in range(3):
        pg.step(2)
        assert 41 in pg._batch[0].tolist()
        assert pg.frame().anchor["point"] == 41
    pg2 = Playground(points=32, batch_size=8)
    first = pg2.frame().history
    assert first["replace"] and first["step"] == []
    pg2.step(3)
    h = pg2.frame().history
    assert h["step"] == [3] and not h["replace"] and pg2.frame().history["step"] == []
