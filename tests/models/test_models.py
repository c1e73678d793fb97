"""Encoders, heads, momentum encoders and the negative queue against hand-written references."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from contrastlab.models import (NegativeQueue, ProjectionHead, MomentumEncoder, Standardize, cosine_momentum,
                                create_encoder, ema_update, feature_dim, list_encoders)


@pytest.mark.parametrize("name, channels, size", [("small_cnn", 1, 28), ("small_cnn", 3, 32), ("resnet18", 3, 16)])
def test_encoders_map_images_to_out_dim_features(name, channels, size):
    enc = create_encoder(name, in_channels=channels, **({"width": 8} if name == "resnet18" else {}))
    out = enc(torch.rand(3, channels, size, size))
    assert out.shape == (3, enc.out_dim) and torch.isfinite(out).all()
    assert feature_dim(enc, in_channels=channels, image_size=(size, size)) == enc.out_dim


def test_small_cnn_grid_pool_keeps_position():
    enc = create_encoder("small_cnn", in_channels=1, pool="avg+grid")
    assert enc.out_dim == 5 * 128 and enc(torch.rand(2, 1, 28, 28)).shape == (2, 640)


def test_feature_dim_of_any_module():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 17))
    assert feature_dim(net, in_channels=3, image_size=(8, 8)) == 17


def test_standardize_matches_formula():
    x = torch.rand(2, 3, 4, 4, dtype=torch.float32)
    mean, std = [0.1, 0.2, 0.3], [0.5, 1.0, 2.0]
    ref = (x.double() - torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)) / \
        torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
    torch.testing.assert_close(Standardize(mean, std)(x).double(), ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="vit"), "`encoder` must be one of"),
    (dict(name="small_cnn", in_channels=0), "`in_channels` must be a positive int, got 0"),
    (dict(name="small_cnn", in_channels=1, mean=[0.1, 0.2]), "`mean` must have one value per channel (1)"),
    (dict(name="small_cnn", in_channels=1, std=[0.0]), "`std` must be > 0"),
    (dict(name="small_cnn", in_channels=1, widths=(8, 8)), "`widths` must be 4 positive ints"),
    (dict(name="small_cnn", in_channels=1, pool="max"), "`pool` must be 'avg' or 'avg+grid'"),
    (dict(name="resnet18", width=0), "`width` must be a positive int, got 0"),
])
def test_encoder_bad_arguments(kwargs, message):
    name = kwargs.pop("name")
    with pytest.raises(ValueError) as err:
        create_encoder(name, **kwargs)
    assert message in str(err.value)
    assert set(list_encoders()) >= {"small_cnn", "resnet18"}


def test_projection_head_is_linear_bn_relu_linear():
    head = ProjectionHead(16, hidden_dim=32, out_dim=8)
    kinds = [type(m).__name__ for m in head.net]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert ProjectionHead(16, num_layers=0)(torch.ones(2, 16)).shape == (2, 16)
    with pytest.raises(ValueError, match="`out_dim` must be a positive int, got 0"):
        ProjectionHead(16, out_dim=0)


def test_ema_update_matches_formula_and_copies_buffers():
    torch.manual_seed(0)
    online, target = torch.nn.BatchNorm1d(4), torch.nn.BatchNorm1d(4)
    with torch.no_grad():
        online.weight.uniform_(); online.running_mean.uniform_(); target.weight.uniform_()
    expected = 0.9 * target.weight.detach().double() + 0.1 * online.weight.detach().double()
    ema_update(target, online, momentum=0.9)
    torch.testing.assert_close(target.weight.detach().double(), expected, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(target.running_mean, online.running_mean)
    with pytest.raises(ValueError, match=r"`momentum` must be in \[0, 1\], got 1.5"):
        ema_update(target, online, momentum=1.5)


def test_momentum_encoder_has_no_gradients_and_cosine_schedule_ends_at_one():
    online = torch.nn.Linear(3, 2)
    key = MomentumEncoder(online, momentum=0.5)
    assert key(torch.ones(1, 3)).requires_grad is False
    assert cosine_momentum(0, 100, base=0.99) == pytest.approx(0.99)
    assert cosine_momentum(100, 100, base=0.99) == pytest.approx(1.0)
    assert cosine_momentum(50, 100, base=0.99) == pytest.approx(0.995)


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 9), batches=st.lists(st.integers(1, 9), min_size=1, max_size=8))
def test_queue_is_a_fifo_of_the_last_size_keys(size, batches):
    q, ref, counter = NegativeQueue(size=size, dim=1), [], 0
    for b in batches:
        keys = torch.arange(counter, counter + b, dtype=torch.float32).view(-1, 1)
        counter += b
        if b > size:
            with pytest.raises(ValueError, match=f"cannot enqueue {b} keys into a queue of size {size}"):
                q.enqueue(keys)
            counter -= b
            continue
        q.enqueue(keys)
        ref = (ref + keys.view(-1).tolist())[-size:]
    assert sorted(q.negatives().view(-1).tolist()) == sorted(ref)
    assert len(q) == len(ref) and q.dropped == counter - len(ref)


def test_queue_state_round_trips_through_state_dict():
    q = NegativeQueue(size=5, dim=2, with_labels=True)
    q.enqueue(torch.randn(3, 2), torch.tensor([1, 2, 3]))
    r = NegativeQueue(size=5, dim=2, with_labels=True)
    r.load_state_dict(q.state_dict())
    torch.testing.assert_close(r.negatives(), q.negatives())
    assert r.negative_labels().tolist() == [1, 2, 3] and int(r.ptr) == 3
    with pytest.raises(ValueError, match=r"`keys` must have shape \(B, 2\)"):
        q.enqueue(torch.randn(3, 4), torch.tensor([1, 2, 3]))
