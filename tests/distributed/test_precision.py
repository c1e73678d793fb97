"""Mixed precision on CPU: bf16 autocast, the fp32 logits guard, the fp16 gradient scaler, clear errors."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from contrastlab.losses import nt_xent
from contrastlab.train import precision as P


def _ce_logits(a, b):
    """Softmax cross-entropy over cosine logits at temperature 0.05 (logits up to 20)."""
    return F.cross_entropy(F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / 0.05, torch.arange(a.shape[0]))


@pytest.mark.parametrize("precision,dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16),
                                             ("fp16", torch.float16)])
def test_autocast_context_sets_the_matmul_dtype(precision, dtype):
    with P.autocast_context("cpu", precision):
        assert torch.mm(torch.randn(3, 4), torch.randn(4, 2)).dtype == dtype


def test_bf16_loss_is_close_to_fp32():
    torch.manual_seed(0)
    net, x_a, x_b = torch.nn.Linear(32, 16), torch.randn(64, 32), torch.randn(64, 32)
    full = float(nt_xent(net(x_a), net(x_b), temperature=0.1).detach())
    with P.autocast_context("cpu", "bf16"):
        z_a, z_b = net(x_a), net(x_b)
        low = float(P.fp32_loss(nt_xent)(z_a, z_b, temperature=0.1).detach())
    assert z_a.dtype == torch.bfloat16
    assert abs(low - full) < 0.02 * abs(full)


def test_fp32_guard_keeps_logits_exact():
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(128, 32, generator=g).bfloat16() for _ in range(2))      # encoder outputs in bf16
    exact = float(_ce_logits(a.double(), b.double()))
    with P.autocast_context("cpu", "bf16"):
        guarded = P.fp32_loss(_ce_logits)(a, b)
        unguarded = _ce_logits(a, b)
    assert guarded.dtype == torch.float32
    assert abs(float(guarded) - exact) < 1e-5
    assert abs(float(unguarded) - exact) > 1e-3          # what the guard prevents: bf16 logits at 1/t = 20


def test_fp16_scaler_scales_and_steps_with_unscaled_gradients():
    torch.manual_seed(0)
    w0 = torch.randn(4)
    amp = P.MixedPrecision("cpu", "fp16")
    w = torch.nn.Parameter(w0.clone())
    opt = torch.optim.SGD([w], lr=0.5)
    loss = (w ** 2).sum()
    assert float(amp.scale(loss).detach()) == pytest.approx(float(loss.detach()) * amp.scaler.get_scale())
    amp.backward(loss)
    assert amp.step(opt) is True
    torch.testing.assert_close(w.detach(), w0 - 0.5 * 2 * w0)                  # the step of d/dw sum w^2 = 2w


def test_fp16_scaler_skips_a_step_with_inf_gradients():
    amp = P.MixedPrecision("cpu", "fp16")
    w = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([w], lr=0.1)
    scale = amp.scaler.get_scale()
    amp.backward((w * torch.tensor([float("inf"), 1.0])).sum())
    assert amp.step(opt) is False
    assert torch.equal(w.detach(), torch.ones(2)) and amp.scaler.get_scale() == scale / 2


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_scaler_is_a_no_op_without_fp16(precision):
    amp = P.MixedPrecision("cpu", precision)
    loss = torch.tensor(3.0, requires_grad=True)
    assert amp.scale(loss) is loss and not amp.scaler.is_enabled()
    assert amp.state_dict() == {"precision": precision, "scaler": {}}


def test_clipping_and_state_round_trip():
    amp = P.MixedPrecision("cpu", "fp16")
    w = torch.nn.Parameter(torch.zeros(2))
    amp.backward((w * torch.tensor([30.0, 40.0])).sum())                     # gradient norm 50
    amp.step(torch.optim.SGD([w], lr=1.0), max_grad_norm=5.0)
    torch.testing.assert_close(w.detach(), torch.tensor([-3.0, -4.0]))
    other = P.MixedPrecision("cpu", "fp16")
    other.load_state_dict(amp.state_dict())
    assert other.scaler.get_scale() == amp.scaler.get_scale()
    with pytest.raises(ValueError, match="checkpoint precision 'fp16' differs from 'bf16'"):
        P.MixedPrecision("cpu", "bf16").load_state_dict(amp.state_dict())


def test_bad_input():
    with pytest.raises(ValueError, match=r"`precision` must be one of \['fp32', 'bf16', 'fp16'\], got 'fp8'"):
        P.autocast_context("cpu", "fp8")
    with pytest.raises(ValueError, match="`device` must be a torch device"):
        P.MixedPrecision("toaster", "bf16")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="`device` 'cuda' is not available"):
            P.autocast_context("cuda", "bf16")


def test_maybe_compile(monkeypatch):
    net = torch.nn.Linear(2, 2)
    assert P.maybe_compile(net, enabled=False) is net
    seen = {}
    monkeypatch.setattr(torch, "compile", lambda m, **kw: seen.update(kw) or m)
    assert P.maybe_compile(net, enabled=True, mode="max-autotune") is net
    assert seen == {"backend": "inductor", "mode": "max-autotune"}
