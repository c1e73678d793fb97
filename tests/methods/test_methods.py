"""Every method behind the one interface; MoCo's queue, momentum and shuffled BN; multi-instance partners."""
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from contrastlab.losses import nt_xent
from contrastlab.methods import METHODS, create_method, list_methods, method_hyperparameters
from contrastlab.models import create_encoder
from contrastlab.views import preset


def _data(n=24, labelled=True, groups=True):
    g = torch.Generator().manual_seed(0)
    return SimpleNamespace(name="toy", x=torch.randint(0, 256, (n, 1, 16, 16), dtype=torch.uint8, generator=g),
                           y=(torch.arange(n) % 3) if labelled else None,
                           group=(torch.arange(n) // 4) if groups else None)


def _method(name, **kw):
    torch.manual_seed(0)
    enc = create_encoder("small_cnn", in_channels=1, widths=(4, 8, 8, 16))
    hp = {"queue_size": 64} if name == "moco" else {}
    return create_method(name, enc, feature_dim=enc.out_dim, num_classes=3, **{**hp, **kw})


IMAGE_METHODS = [n for n in list_methods() if "image" in METHODS[n].modalities]


@pytest.mark.parametrize("name", IMAGE_METHODS)
def test_every_method_trains_through_one_interface(name):
    data, m = _data(), _method(name)
    m.check_data(data)
    batch = m.make_batch(data, torch.arange(8), preset("gray"), torch.Generator().manual_seed(1))
    assert batch["views"].shape == (8, m.n_views, 1, 16, 16)
    out = m(batch)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for p in m.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    m.after_step(step=1, total_steps=10)
    assert torch.isfinite(m.embed(batch["views"][:, 0])).all()


def test_registry_and_hyperparameters():
    assert set(METHODS) == {"simclr", "moco", "supcon", "triplet", "multi_instance", "supervised", "pairs", "simcse",
                            "clip", "ts2vec", "cpc"}
    assert {n for n in METHODS if "text" in METHODS[n].modalities} == {"pairs", "simcse"}
    hp = method_hyperparameters("moco")
    assert {"temperature", "queue_size", "momentum", "symmetric"} <= set(hp) and "feature_dim" not in hp
    with pytest.raises(ValueError, match="`method` must be one of"):
        create_method("byol", torch.nn.Identity(), feature_dim=4)


@pytest.mark.parametrize("name, data, message", [
    ("supcon", _data(labelled=False), "method 'supcon' needs labels"),
    ("supervised", _data(labelled=False), "method 'supervised' needs labels"),
    ("multi_instance", _data(groups=False), "needs a `group` array"),
])
def test_methods_say_what_data_they_need(name, data, message):
    with pytest.raises(ValueError, match=message):
        _method(name).check_data(data)


def test_simclr_loss_is_nt_xent_of_projected_views():
    m = _method("simclr", temperature=0.3)
    views = torch.rand(6, 2, 1, 16, 16)
    m.eval()
    z = F.normalize(m.head(m.encoder(views.flatten(0, 1))), dim=-1).unflatten(0, (6, 2))
    torch.testing.assert_close(m({"views": views}).loss, nt_xent(z[:, 0], z[:, 1], temperature=0.3))


def test_moco_queue_momentum_and_shuffled_keys():
    m = _method("moco", momentum=0.9, symmetric=True)
    views = torch.rand(8, 2, 1, 16, 16)
    m({"views": views, "shuffle": torch.randperm(8)}).loss.backward()
    assert len(m.queue) == 16                                      # symmetric: both views' keys
    assert all(p.grad is None for p in m.key_net.parameters())     # the key encoder gets no gradient
    before = [p.detach().clone() for p in m.key_net.parameters()]
    with torch.no_grad():
        for p in m.encoder.parameters():
            p.add_(1.0)
    online = [p.detach().clone() for p in list(m.encoder.parameters()) + list(m.head.parameters())]
    m.after_step(step=1, total_steps=10)
    for b, o, a in zip(before, online, m.key_net.parameters()):
        torch.testing.assert_close(a, 0.9 * b + 0.1 * o)
    # with frozen BN statistics the chunked, shuffled key pass equals a plain pass: the un-shuffle is exact
    m.eval()
    x = torch.rand(8, 1, 16, 16)
    plain = F.normalize(m.key_net(x), dim=-1)
    torch.testing.assert_close(m._keys(x, torch.randperm(8)), plain)


def test_moco_uses_the_queue_as_negatives_once_filled():
    m = _method("moco", queue_size=8)
    m({"views": torch.rand(4, 2, 1, 16, 16), "shuffle": torch.arange(4)})
    assert len(m.queue) == 4
    for _ in range(3):
        m({"views": torch.rand(4, 2, 1, 16, 16), "shuffle": torch.arange(4)})
    assert len(m.queue) == 8 and m.queue.dropped == 8


def test_multi_instance_partners_are_other_members_of_the_group():
    data = _data(n=40)
    data.group = torch.tensor([i // 4 for i in range(36)] + [100, 101, 102, 103])   # last 4: singleton groups
    m = _method("multi_instance")
    counts = torch.zeros(40, 40)
    for seed in range(200):
        p = m._partners(data.group, torch.arange(40), torch.Generator().manual_seed(seed))
        counts[torch.arange(40), p] += 1
    for i in range(36):
        mates = [j for j in range(36) if j // 4 == i // 4 and j != i]
        assert counts[i, i] == 0 and counts[i, mates].sum() == 200
        assert counts[i, mates].min() > 40                          # each of the 3 mates ~ 67 times
    assert all(counts[i, i] == 200 for i in range(36, 40))          # alone in its group: itself


def test_triplet_without_labels_uses_the_two_views_as_positives():
    m = _method("triplet", margin=0.5)
    v = torch.rand(6, 2, 1, 16, 16)
    assert torch.isfinite(m({"views": v}).loss)
    with pytest.raises(ValueError, match="mining"):
        _method("triplet", mining="hardest")
