"""finetune and label_efficiency on digits with a tiny MLP; stratified subsets."""

import numpy as np
import pytest
import torch

from contrastlab.eval import finetune, label_efficiency, stratified_subset

from .conftest import MLP


@pytest.fixture(scope="module")
def pretrained_state(digits):
    """An MLP encoder trained with labels on the whole training split: a stand-in for pretraining."""
    xtr, ytr, _, _ = digits
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    enc = MLP()
    head = torch.nn.Linear(enc.out_dim, 10)
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], lr=1e-2)
    x = xtr.float() / 255
    for _ in range(150):
        idx = torch.randint(0, len(x), (128,), generator=g)
        loss = torch.nn.functional.cross_entropy(head(enc(x[idx])), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.detach().clone() for k, v in enc.state_dict().items()}


def test_finetune_learns_digits_and_leaves_the_encoder_alone(digits):
    xtr, ytr, xte, yte = digits
    torch.manual_seed(1)
    enc = MLP().eval()
    state = {k: v.clone() for k, v in enc.state_dict().items()}
    rng_before = torch.get_rng_state()
    acc = finetune(enc, xtr, ytr, xte, yte, num_classes=10, epochs=5, lr=1e-2, batch_size=64, seed=0)
    assert acc >= 0.9                                        # an MLP on digits: ~95% in a few epochs
    assert not enc.training
    assert all(torch.equal(v, enc.state_dict()[k]) for k, v in state.items())
    assert torch.equal(torch.get_rng_state(), rng_before)      # the global RNG is not consumed
    again = finetune(enc, xtr, ytr, xte, yte, num_classes=10, epochs=5, lr=1e-2, batch_size=64, seed=0)
    assert again == acc                                      # everything follows the seed


def test_augment_is_used_with_a_generator(digits):
    xtr, ytr, xte, yte = digits
    calls = []

    def blank(xb, *, generator):
        calls.append((xb.dtype, type(generator)))
        return torch.zeros(xb.shape, dtype=torch.float32)     # no signal at all
    acc = finetune(MLP(), xtr[:200], ytr[:200], xte, yte, num_classes=10, epochs=2, lr=1e-2, batch_size=50,
                   augment=blank)
    assert calls and set(calls) == {(torch.uint8, torch.Generator)}
    assert len(calls) == 8                                   # 2 epochs x ceil(200 / 50) steps
    assert acc <= 0.2                                        # trained on blank images: about chance (1/10)


def test_stratified_subset_counts_per_class():
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 4 + [4] * 16)
    idx = stratified_subset(y, 0.1, seed=3)
    assert torch.equal(idx, torch.unique(idx))                # sorted, no repeats
    counts = np.bincount(y[idx].numpy(), minlength=5)
    np.testing.assert_array_equal(counts, [5, 3, 1, 0, 2])  # round(0.1 n_c), at least one per present class
    assert torch.equal(stratified_subset(y, 0.1, seed=3), idx)
    assert not torch.equal(stratified_subset(y, 0.1, seed=4), idx)
    assert torch.equal(stratified_subset(y, 1.0), torch.arange(100))


def test_pretrained_beats_scratch_at_one_percent(digits, pretrained_state):
    xtr, ytr, xte, yte = digits
    out = label_efficiency(MLP, pretrained_state, xtr, ytr, xte, yte, num_classes=10, fractions=(0.01,),
                           steps=100, lr=1e-3, batch_size=64, seed=0, progress=False)
    assert list(out) == [0.01] and set(out[0.01]) == {"pretrained", "scratch"}
    assert out[0.01]["pretrained"] >= out[0.01]["scratch"] + 0.15
    assert out[0.01]["pretrained"] >= 0.8


def test_both_arms_share_subset_recipe_and_init(digits):
    """With the fresh initialisation as the 'pretrained' state, the two arms are the same run."""
    xtr, ytr, xte, yte = digits
    with torch.random.fork_rng():
        torch.manual_seed(7)
        fresh = MLP().state_dict()
    out = label_efficiency(MLP, fresh, xtr, ytr, xte, yte, num_classes=10, fractions=(0.05, 0.2), steps=20,
                           seed=7, progress=False)
    assert all(v["pretrained"] == v["scratch"] for v in out.values())


# -- float series (N, C, T), the sequence runs' input ------------------------------------------------------------
class SeriesEncoder(torch.nn.Module):
    """A 1-d convolution, ReLU and a max over time: (B, C, T) -> (B, 8)."""
    out_dim = 8

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(2, 8, 5, padding=2)

    def forward(self, x):
        return torch.relu(self.conv(x)).amax(2)


@pytest.fixture(scope="module")
def waves():
    """Two classes of two-channel series, a sine and a square wave of random phase plus noise: separable by shape
    (a square wave's samples sit near +-1), 120 train and 60 test."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(180) % 2
    t = torch.linspace(0, 4 * np.pi, 40) + torch.rand(180, 1, generator=g) * 2 * np.pi     # (N, T)
    wave = torch.where(y.view(-1, 1) == 0, torch.sin(t), torch.sign(torch.sin(t)))
    x = torch.stack([wave, -wave], 1) + 0.2 * torch.randn(180, 2, 40, generator=g)            # (N, 2, T)
    return x[:120], y[:120], x[120:], y[120:]


def test_finetune_takes_float_series_as_they_are(waves):
    xtr, ytr, xte, yte = waves
    torch.manual_seed(0)
    seen = []

    def spy(xb, *, generator):
        seen.append((xb.dtype, tuple(xb.shape[1:])))
        return xb
    acc = finetune(SeriesEncoder(), xtr, ytr, xte, yte, num_classes=2, epochs=30, lr=1e-2, batch_size=32, seed=0,
                   augment=spy)
    assert acc >= 0.95                                       # separable classes
    assert set(seen) == {(torch.float32, (2, 40))}           # floats, not scaled as images are
    assert finetune(SeriesEncoder(), xtr, ytr, xte, yte, num_classes=2, epochs=30, lr=1e-2, batch_size=32,
                    seed=0) == acc                            # no augment: the series themselves, the same run


def test_label_efficiency_on_series_shares_subset_recipe_and_init(waves):
    xtr, ytr, xte, yte = waves
    with torch.random.fork_rng():
        torch.manual_seed(3)
        fresh = SeriesEncoder().state_dict()
    out = label_efficiency(SeriesEncoder, fresh, xtr, ytr, xte, yte, num_classes=2, fractions=(0.1, 0.5), steps=30,
                           lr=1e-2, batch_size=16, seed=3, progress=False)
    assert list(out) == [0.1, 0.5] and all(v["pretrained"] == v["scratch"] for v in out.values())


def test_series_and_images_do_not_mix(waves, digits):
    xtr, ytr, xte, yte = waves
    with pytest.raises(ValueError, match=r"`x` and `x_test` must be the same kind of input, got series"):
        finetune(SeriesEncoder(), xtr, ytr, digits[2], digits[3], num_classes=10)
    with pytest.raises(ValueError, match=r"`x` must be uint8 images .* or float series .* got a float tensor of "
                                         r"shape \(120, 80\)"):
        finetune(SeriesEncoder(), xtr.flatten(1), ytr, xte, yte, num_classes=2)
    with pytest.raises(ValueError, match=r"must have the same series shape \(C, T\), got \(2, 40\) and \(2, 30\)"):
        finetune(SeriesEncoder(), xtr, ytr, xte[:, :, :30], yte, num_classes=2)
