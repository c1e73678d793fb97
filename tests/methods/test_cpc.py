"""CPC and TS2Vec: their losses against float64 references written here from the papers' definitions, the encoders'
shapes and causality, and the methods' checks."""
import math

import numpy as np
import pytest
import torch

from contrastlab.losses.temporal import grouped_pair_loss, hierarchical_contrastive_loss
from contrastlab.methods import CPC, TS2Vec, create_method
from contrastlab.models import create_encoder


def _ref_pair_loss(a: np.ndarray, b: np.ndarray) -> float:
    """Per group: 2N anchors, -log softmax of the partner among the other 2N - 1, raw dot products."""
    total, count = 0.0, 0
    for za, zb in zip(a, b):
        z = np.concatenate([za, zb])
        n = len(za)
        for i in range(2 * n):
            logits = [z[i] @ z[j] for j in range(2 * n) if j != i]
            others = [j for j in range(2 * n) if j != i]
            pos = logits[others.index((i + n) % (2 * n))]
            total += -(pos - math.log(sum(math.exp(v) for v in logits)))
            count += 1
    return total / count


def _pool(z: np.ndarray) -> np.ndarray:                                     # (B, T, D) -> (B, T // 2, D)
    t = z.shape[1] // 2 * 2
    return z[:, :t].reshape(z.shape[0], t // 2, 2, z.shape[2]).max(2)


def _ref_hierarchical(a, b, alpha=0.5):
    total, levels = 0.0, 0
    while a.shape[1] > 1:
        total += alpha * _ref_pair_loss(a.transpose(1, 0, 2), b.transpose(1, 0, 2))   # instance: per time step
        total += (1 - alpha) * _ref_pair_loss(a, b)                                    # temporal: per series
        levels += 1
        a, b = _pool(a), _pool(b)
    total += alpha * _ref_pair_loss(a.transpose(1, 0, 2), b.transpose(1, 0, 2))
    return total / (levels + 1)


def test_grouped_pair_loss_matches_the_float64_reference():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 5, 4, generator=g, dtype=torch.float64), torch.randn(3, 5, 4, generator=g, dtype=torch.float64)
    assert math.isclose(float(grouped_pair_loss(a, b)), _ref_pair_loss(a.numpy(), b.numpy()), rel_tol=1e-10)
    assert math.isclose(float(grouped_pair_loss(a.float(), b.float())), _ref_pair_loss(a.numpy(), b.numpy()),
                        rel_tol=1e-5)


@pytest.mark.parametrize("t", [1, 7, 16])
def test_hierarchical_loss_matches_the_float64_reference(t):
    g = torch.Generator().manual_seed(t)
    a, b = (torch.randn(4, t, 3, generator=g, dtype=torch.float64) for _ in range(2))
    assert math.isclose(float(hierarchical_contrastive_loss(a, b, alpha=0.3)),
                        _ref_hierarchical(a.numpy(), b.numpy(), alpha=0.3), rel_tol=1e-10)


def test_loss_bad_input():
    with pytest.raises(ValueError, match="needs at least 2 pairs per group"):
        grouped_pair_loss(torch.zeros(2, 1, 3), torch.zeros(2, 1, 3))
    with pytest.raises(ValueError, match=r"`alpha` must be in \[0, 1\], got 2"):
        hierarchical_contrastive_loss(torch.zeros(2, 3, 2), torch.zeros(2, 3, 2), alpha=2)
    with pytest.raises(ValueError, match="same shape"):
        hierarchical_contrastive_loss(torch.zeros(2, 3, 2), torch.zeros(2, 4, 2))


def _cpc(steps=3, anchors=40):
    torch.manual_seed(0)
    enc = create_encoder("dilated_cnn", in_channels=2, depth=2, hidden=8, out_dim=6)
    return CPC(enc, feature_dim=6, prediction_steps=steps, context_dim=5, anchors=anchors, temperature=0.2).double()


def test_cpc_loss_matches_the_float64_reference():
    m = _cpc()
    x = torch.randn(4, 2, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    anchors = torch.stack([torch.randperm(4 * (12 - k), generator=torch.Generator().manual_seed(k))[:30]
                           for k in (1, 2, 3)])
    loss = m({"views": x[:, None], "anchors": anchors}).loss
    with torch.no_grad():
        z = m.encoder.timesteps(x).numpy()                                   # (B, T, D)
        c = m.context(torch.from_numpy(z))[0]
    ref = []
    for k in (1, 2, 3):
        rows = anchors[k - 1].numpy()
        s, t = rows // (12 - k), rows % (12 - k)
        q = m.predict[k - 1](c[s, t]).detach().numpy()
        p = z[s, t + k]
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        p /= np.linalg.norm(p, axis=1, keepdims=True)
        logits = q @ p.T / 0.2                                               # row i: query i, column j: target j
        ref.append(np.mean([-(logits[i, i] - math.log(np.exp(logits[i]).sum())) for i in range(len(rows))]))
    assert math.isclose(float(loss.detach()), float(np.mean(ref)), rel_tol=1e-9)


def test_cpc_batch_draws_distinct_anchors_deterministically():
    from contrastlab.data import SequenceData
    data = SequenceData("toy", torch.randn(6, 2, 10), None, None, None, None)
    m = _cpc(anchors=1000)
    b1 = m.make_batch(data, torch.arange(4), None, torch.Generator().manual_seed(5))
    b2 = m.make_batch(data, torch.arange(4), None, torch.Generator().manual_seed(5))
    assert torch.equal(b1["anchors"], b2["anchors"]) and b1["anchors"].shape == (3, 4 * (10 - 3))
    assert all(len(set(r.tolist())) == len(r) for r in b1["anchors"])


def test_cpc_refuses_a_centred_encoder_and_too_short_series():
    enc = create_encoder("dilated_cnn", in_channels=1, depth=1, hidden=4, out_dim=4, causal=False)
    with pytest.raises(ValueError, match="method 'cpc' needs a causal encoder"):
        CPC(enc, feature_dim=4)
    from contrastlab.data import SequenceData
    with pytest.raises(ValueError, match="need more than 4 time steps; toy has 3"):
        _cpc(steps=4).check_data(SequenceData("toy", torch.zeros(4, 2, 3), None, None, None, None))
    with pytest.raises(ValueError, match="needs an encoder with per-timestep features"):
        CPC(torch.nn.Linear(2, 2), feature_dim=2)


@pytest.mark.parametrize("name, options", [("dilated_cnn", dict(depth=3, hidden=8, out_dim=12)),
                                           ("gru", dict(hidden=12))])
def test_encoders_shapes_and_causality(name, options):
    torch.manual_seed(0)
    enc = create_encoder(name, in_channels=3, **options)
    x = torch.randn(2, 3, 30)
    h = enc.timesteps(x)
    assert h.shape == (2, 30, 12) and enc(x).shape == (2, 12) and torch.equal(enc(x), h.amax(1))
    y = x.clone()
    y[..., 20:] += 5.0                                                       # change the future only
    assert torch.allclose(enc.timesteps(y)[:, :20], h[:, :20], atol=1e-6)


def test_centred_cnn_sees_both_sides():
    enc = create_encoder("dilated_cnn", in_channels=1, depth=2, hidden=4, out_dim=4, causal=False)
    x = torch.randn(1, 1, 20)
    y = x.clone()
    y[..., 15] += 3.0
    assert not torch.allclose(enc.timesteps(y)[:, 14], enc.timesteps(x)[:, 14])


def test_ts2vec_batch_and_step():
    from contrastlab.data import SequenceData
    from contrastlab.views.series import series_preset
    torch.manual_seed(0)
    data = SequenceData("toy", torch.randn(6, 1, 25), torch.tensor([0, 1] * 3), None, None, None)
    enc = create_encoder("dilated_cnn", in_channels=1, depth=2, hidden=8, out_dim=8, causal=False)
    m = create_method("ts2vec", enc, feature_dim=8)
    batch = m.make_batch(data, torch.arange(4), series_preset("ts2vec"), torch.Generator().manual_seed(0))
    n = int(batch["overlap"])
    assert batch["a"].shape[:2] == (4, 1) and batch["a"].shape[2] >= n and batch["b"].shape[2] >= n
    out = m(batch)
    out.loss.backward()
    assert out.loss.ndim == 0 and all(p.grad is not None for p in enc.parameters())
    with pytest.raises(ValueError, match=r"`alpha` must be a number in \[0, 1\], got -0.1"):
        TS2Vec(enc, feature_dim=8, alpha=-0.1)


def test_ts2vec_evaluates_the_mean_of_its_weights():
    """The mean of the weights after every step, as the paper's code keeps it: torch's AveragedModel updated after
    each step (its first update copies), and a float64 mean of the weights seen."""
    from torch.optim.swa_utils import AveragedModel
    torch.manual_seed(0)
    enc = create_encoder("dilated_cnn", in_channels=1, depth=1, hidden=4, out_dim=4, causal=False)
    m = TS2Vec(enc, feature_dim=4)
    swa = AveragedModel(enc)
    x = torch.randn(2, 1, 10)
    assert torch.equal(m.embed(x), enc(x))                    # before any step: the initial weights
    seen = []
    for step in (1, 2, 3):
        with torch.no_grad():
            for p in enc.parameters():
                p.add_(torch.randn_like(p))
        seen.append([p.detach().clone() for p in enc.parameters()])
        m.after_step(step=step, total_steps=3)
        swa.update_parameters(enc)
    for mean, ref, *values in zip(m.averaged.parameters(), swa.module.parameters(), *seen):
        assert torch.allclose(mean, torch.stack(values).double().mean(0).float(), atol=1e-6)
        assert torch.allclose(mean, ref, atol=1e-6)
    assert torch.equal(m.embed(x), m.averaged(x)) and int(m.averaged_steps) == 3
    plain = TS2Vec(enc, feature_dim=4, average=False)
    assert torch.equal(plain.embed(x), enc(x)) and not hasattr(plain, "averaged")


def test_feature_dropout_acts_only_while_training():
    """``dropout`` zeroes per-step features with its probability and scales the rest by 1 / (1 - p) while training;
    in eval mode the encoder equals the same weights without dropout."""
    torch.manual_seed(0)
    enc = create_encoder("dilated_cnn", in_channels=1, depth=1, hidden=8, out_dim=64, causal=False, dropout=0.5)
    plain = create_encoder("dilated_cnn", in_channels=1, depth=1, hidden=8, out_dim=64, causal=False)
    plain.load_state_dict(enc.state_dict())
    x = torch.randn(16, 1, 40)
    assert torch.equal(enc.eval().timesteps(x), plain.eval().timesteps(x))
    full, dropped = plain.timesteps(x), enc.train().timesteps(x)
    zero = dropped == 0
    assert 0.45 < float(zero.double().mean()) < 0.55                # 40,960 draws of p = 0.5
    assert torch.allclose(dropped[~zero], 2 * full[~zero], atol=1e-6)
    with pytest.raises(ValueError, match=r"`dropout` must be a number in \[0, 1\), got 1.0"):
        create_encoder("dilated_cnn", dropout=1.0)
