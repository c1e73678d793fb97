"""GradCache: the cached step's parameter gradients equal those of a direct backward (float64).

"Direct" is written out here: the same chunks encoded with their graphs kept, concatenated, one backward. For a
model without batch coupling (LayerNorm, BatchNorm in eval mode) and without dropout that is also one unsplit
forward of the whole batch, which is checked too.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from contrastlab.losses import LearnableTemperature, clip_loss, nt_xent
from contrastlab.train.gradcache import grad_cache_step, split_batch

DT = torch.float64


def _net(norm: str = "none", dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Linear(8, 16, dtype=DT)]
    if norm == "layer":
        layers.append(nn.LayerNorm(16, dtype=DT))
    if norm == "batch":
        layers.append(nn.BatchNorm1d(16, dtype=DT))
    layers += [nn.Tanh(), nn.Dropout(dropout), nn.Linear(16, 4, dtype=DT)]
    return nn.Sequential(*layers)


def _views(n=12):
    return torch.randn(n, 2, 8, dtype=DT, generator=torch.Generator().manual_seed(1))


def _simclr(net):
    return lambda v: net(v.flatten(0, 1)).unflatten(0, v.shape[:2])        # (b, 2, 8) -> (b, 2, 4)


def _loss(z):
    return nt_xent(z[:, 0], z[:, 1], temperature=0.2)


def _grads(net):
    out = [p.grad.clone() for p in net.parameters()]
    net.zero_grad(set_to_none=True)
    return out


def _direct(encode, chunks, loss_fn):
    outs = [encode(c) for c in chunks]
    if isinstance(outs[0], tuple):
        loss = loss_fn(*(torch.cat(o) for o in zip(*outs)))
    else:
        loss = loss_fn(torch.cat(outs))
    loss.backward()
    return loss.detach()


def _assert_same(g1, g2, tol=1e-12):
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=0, atol=tol)


def test_dropout_is_replayed_and_gradients_equal_direct():
    net, chunks = _net(dropout=0.3), split_batch(_views(), 5)                 # chunks of 5, 5, 2
    torch.manual_seed(7)
    ref_loss = _direct(_simclr(net), chunks, _loss)
    ref, ref_rng = _grads(net), torch.get_rng_state()
    torch.manual_seed(7)
    loss = grad_cache_step(_simclr(net), chunks, _loss)
    assert abs(float(loss) - float(ref_loss)) < 1e-12
    _assert_same(_grads(net), ref)
    assert torch.equal(torch.get_rng_state(), ref_rng), "the RNG must end where a direct step leaves it"


def test_without_replay_dropout_differs_and_the_check_catches_it():
    net, chunks = _net(dropout=0.3), split_batch(_views(), 4)
    torch.manual_seed(7)
    _direct(_simclr(net), chunks, _loss)
    ref = _grads(net)
    torch.manual_seed(7)
    grad_cache_step(_simclr(net), chunks, _loss, replay_rng=False, check_replay=None)
    assert max(float((a - b).abs().max()) for a, b in zip(_grads(net), ref)) > 1e-3
    with pytest.raises(RuntimeError, match="chunk 0's replayed embeddings differ .* not replayed"):
        grad_cache_step(_simclr(net), chunks, _loss, replay_rng=False)


def test_caller_generator_is_replayed():
    """A random augmentation inside `encode` that draws from the caller's generator."""
    net, chunks = _net(), split_batch(_views(), 4)
    gen = torch.Generator()

    def encode(v):
        return _simclr(net)(v + 0.5 * torch.randn(v.shape, generator=gen, dtype=DT))
    gen.manual_seed(3)
    _direct(encode, chunks, _loss)
    ref = _grads(net)
    gen.manual_seed(3)
    grad_cache_step(encode, chunks, _loss, generators=[gen])
    _assert_same(_grads(net), ref)
    with pytest.raises(RuntimeError, match="pass its torch.Generator in `generators`"):
        grad_cache_step(encode, chunks, _loss)


@pytest.mark.parametrize("norm", ["layer", "batch-eval"])
def test_equals_one_unsplit_batch_without_batch_coupling(norm):
    net = _net("layer" if norm == "layer" else "batch")
    if norm == "batch-eval":
        net.eval()
    views = _views()
    _loss(_simclr(net)(views)).backward()                                     # one forward, no chunks
    ref = _grads(net)
    grad_cache_step(_simclr(net), split_batch(views, 5), _loss)
    _assert_same(_grads(net), ref)


def test_batchnorm_in_train_mode_caveat_and_buffers_advance_once():
    net, views = _net("batch"), _views()
    bn = net[1]
    _loss(_simclr(net)(views)).backward()
    unsplit = _grads(net)
    bn.reset_running_stats()
    chunks = split_batch(views, 4)
    _direct(_simclr(net), chunks, _loss)
    direct, direct_mean = _grads(net), bn.running_mean.clone()
    bn.reset_running_stats()
    grad_cache_step(_simclr(net), chunks, _loss, module=net)
    cached = _grads(net)
    _assert_same(cached, direct)                                               # exact for the chunked model ...
    assert max(float((a - b).abs().max()) for a, b in zip(cached, unsplit)) > 1e-4   # ... not the unsplit one
    torch.testing.assert_close(bn.running_mean, direct_mean, rtol=0, atol=1e-15)
    assert int(bn.num_batches_tracked) == len(chunks)


def test_two_towers_with_learnable_temperature():
    torch.manual_seed(0)
    q_net, d_net = nn.Linear(8, 4, dtype=DT), nn.Linear(6, 4, dtype=DT)
    scale = LearnableTemperature(initial_temperature=0.1).double()
    params = [*q_net.parameters(), *d_net.parameters(), *scale.parameters()]
    g = torch.Generator().manual_seed(2)
    batch = {"query": torch.randn(10, 8, dtype=DT, generator=g), "doc": torch.randn(10, 6, dtype=DT, generator=g)}

    def encode(c):
        return q_net(c["query"]), d_net(c["doc"])

    def loss_fn(q, d):
        return clip_loss(q, d, logit_scale=scale())
    loss_fn(*encode(batch)).backward()
    ref = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    grad_cache_step(encode, split_batch(batch, 3), loss_fn)
    _assert_same([p.grad for p in params], ref)


def test_bad_input():
    with pytest.raises(ValueError, match="`size` must be a positive int .* got 0"):
        split_batch(torch.zeros(4, 2), 0)
    with pytest.raises(ValueError, match="must share their first axis"):
        split_batch({"a": torch.zeros(4), "b": torch.zeros(3)}, 2)
    with pytest.raises(ValueError, match="`chunks` must hold at least one chunk"):
        grad_cache_step(lambda c: c, [], lambda z: z.sum())
    with pytest.raises(ValueError, match="`loss_fn` must return a scalar tensor"):
        grad_cache_step(lambda c: c * 1.0, [torch.ones(2, 3)], lambda z: z)
    assert [t.tolist() for t in split_batch((torch.arange(3), torch.arange(3) * 2), 2)[1]] == [[2], [4]]
