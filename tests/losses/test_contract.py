"""Contract tests, parametrized over the registry: every loss behaves the same way at its edges."""

import pytest
import torch

from contrastlab.losses import LOSSES, create_loss, list_losses

from .conftest import make_inputs

# In-batch losses: a batch of one pair has no negatives and must be refused.
IN_BATCH = ["info_nce", "debiased_info_nce", "nt_xent", "n_pair", "logistic", "clip"]


def _tensors(inputs):
    return [x for x in inputs if torch.is_tensor(x) and x.is_floating_point()]


def test_registry_lists_every_loss_once():
    assert list_losses() == sorted(LOSSES)
    assert {"info_nce", "nt_xent", "supcon", "triplet", "n_pair", "margin_contrastive", "logistic", "clip",
            "debiased_info_nce"} <= set(LOSSES)
    for spec in LOSSES.values():
        assert spec.paper and spec.module.registry_name == spec.name


def test_finite_scalar_and_gradients_flow(spec):
    inputs = make_inputs(spec.inputs)
    loss = create_loss(spec.name)(*inputs)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    for x in _tensors(inputs):
        assert x.grad is not None and torch.isfinite(x.grad).all()
        assert x.grad.abs().sum() > 0


def test_module_equals_function(spec):
    inputs = make_inputs(spec.inputs, dtype=torch.float64)
    module = create_loss(spec.name)
    if spec.name == "clip":
        expected = spec.function(*inputs, logit_scale=module.logit_scale())
    else:
        expected = spec.function(*inputs)
    torch.testing.assert_close(module(*inputs), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_dtype_and_device_kept(spec, dtype):
    inputs = make_inputs(spec.inputs, dtype=dtype)
    loss = create_loss(spec.name)(*inputs)
    assert loss.dtype == dtype and loss.device == inputs[0].device
    assert torch.isfinite(loss.float())
    loss.float().backward()
    assert all(x.grad.dtype == dtype and torch.isfinite(x.grad.float()).all() for x in _tensors(inputs))


def test_low_precision_large_logits_do_not_overflow(spec):
    """fp16 inputs with a low temperature: logits far beyond fp16's range are computed in fp32."""
    inputs = make_inputs(spec.inputs, dtype=torch.float16)
    kwargs = {"temperature": 0.01} if "temperature" in create_loss(spec.name).__dict__ else {}
    loss = create_loss(spec.name, **kwargs)(*inputs)
    ref = create_loss(spec.name, **kwargs)(*make_inputs(spec.inputs, dtype=torch.float32))
    assert torch.isfinite(loss.float())
    torch.testing.assert_close(loss.float(), ref, rtol=2e-2, atol=2e-2)


def test_zero_vectors_give_no_nan(spec):
    inputs = make_inputs(spec.inputs, requires_grad=False)
    zeroed = []
    for x in inputs:
        if torch.is_tensor(x) and x.is_floating_point():
            x = x.clone()
            x[0] = 0.0
            x.requires_grad_()
        zeroed.append(x)
    loss = create_loss(spec.name)(*zeroed)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(x.grad).all() for x in _tensors(zeroed))


@pytest.mark.parametrize("name", IN_BATCH)
def test_batch_of_one_is_refused(name):
    inputs = make_inputs(LOSSES[name].inputs, b=1)
    with pytest.raises(ValueError, match="at least 2"):
        create_loss(name)(*inputs)


def test_non_finite_embeddings_are_refused(spec):
    inputs = list(make_inputs(spec.inputs, requires_grad=False))
    inputs[0] = inputs[0].clone()
    inputs[0].view(-1)[3] = float("nan")
    with pytest.raises(ValueError, match="finite.*NaN or Inf"):
        create_loss(spec.name)(*inputs)


def test_integer_embeddings_are_refused(spec):
    inputs = list(make_inputs(spec.inputs, requires_grad=False))
    inputs[0] = inputs[0].round().long()
    with pytest.raises(TypeError, match="floating-point.*torch.int64"):
        create_loss(spec.name)(*inputs)


def test_batch_permutation_invariance(spec):
    """Permuting the batch (with labels and flags) leaves every mean loss unchanged."""
    inputs = make_inputs(spec.inputs, b=10, dtype=torch.float64, requires_grad=False)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    permuted = [x[perm] if torch.is_tensor(x) else x for x in inputs]
    fn = create_loss(spec.name)
    torch.testing.assert_close(fn(*permuted), fn(*inputs))


@pytest.mark.parametrize("shape", [(5, 6), (8, 5, 6)], ids=["shared", "per-query"])
@pytest.mark.parametrize("name", ["info_nce", "debiased_info_nce"])
def test_explicit_negatives_with_mixed_dtypes(name, shape):
    q, p = make_inputs("pairs", dtype=torch.float16)
    negatives = torch.randn(*shape, dtype=torch.float32, requires_grad=True)
    loss = create_loss(name)(q, p, negatives)
    loss.backward()
    assert loss.dtype == torch.float16 and torch.isfinite(negatives.grad).all() and negatives.grad.abs().sum() > 0
