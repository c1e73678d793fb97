"""The preset registry and the strength knob."""

import pytest
import torch

from contrastlab.views import PRESETS, Augment, list_presets, preset, scale_strength, to_float


def test_registry():
    assert list_presets() == ["digits", "fashion-mnist", "gray", "mocov2", "mocov2-cifar", "none", "simclr",
                              "simclr-cifar"]
    assert PRESETS["gray"] == PRESETS["fashion-mnist"]


def test_simclr_is_the_paper_recipe():
    hp = preset("simclr").hyperparameters
    assert hp["crop_scale"] == (0.08, 1.0) and hp["crop_ratio"] == (3 / 4, 4 / 3) and hp["flip_p"] == 0.5
    assert (hp["brightness"], hp["contrast"], hp["saturation"], hp["hue"], hp["jitter_p"]) == (0.8, 0.8, 0.8, 0.2, 0.8)
    assert (hp["grayscale_p"], hp["blur_p"], hp["blur_sigma"]) == (0.2, 0.5, (0.1, 2.0))


def test_gray_and_digits_presets():
    fm = preset("fashion-mnist").hyperparameters
    assert fm["saturation"] == fm["hue"] == fm["grayscale_p"] == 0.0 and fm["crop_scale"] == (0.3, 1.0)
    digits = preset("digits").hyperparameters
    assert digits["flip_p"] == 0.0 and digits["blur_p"] == 0.0


@pytest.mark.parametrize("name", ["simclr", "fashion-mnist", "gray", "digits", "none", "simclr-cifar", "mocov2",
                                  "mocov2-cifar"])
@pytest.mark.parametrize("c,s", [(3, 32), (1, 28), (1, 8)])
def test_every_preset_runs_and_is_deterministic(name, c, s):
    x = torch.randint(0, 256, (8, c, s, s), dtype=torch.uint8)
    aug = preset(name)
    y = aug(x, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == torch.float32 and 0 <= float(y.min()) <= float(y.max()) <= 1
    assert torch.equal(y, aug(x, generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("name", ["simclr", "fashion-mnist", "digits", "none"])
def test_strength_zero_is_exact_identity(name):
    for shape in [(8, 3, 32, 32), (8, 1, 28, 28), (4, 3, 17, 40)]:
        x = torch.randint(0, 256, shape, dtype=torch.uint8)
        assert torch.equal(preset(name, strength=0.0)(x, generator=torch.Generator().manual_seed(1)), to_float(x))
    assert torch.equal(preset("none")(x), to_float(x))


def test_strength_scaling():
    hp = PRESETS["simclr"]
    half = scale_strength(hp, 0.5)
    assert half["brightness"] == 0.4 and half["hue"] == 0.1 and half["flip_p"] == 0.25
    assert half["crop_scale"] == pytest.approx((0.54, 1.0))
    double = scale_strength(hp, 2.0)
    assert double["flip_p"] == 1.0 and double["jitter_p"] == 1.0 and double["hue"] == 0.4
    assert double["crop_scale"] == (0.05, 1.0)          # 1 - 2 * 0.92 < 0: floored
    assert scale_strength(PRESETS["fashion-mnist"], 2.0)["crop_scale"] == pytest.approx((0.05, 1.0))
    assert scale_strength(PRESETS["digits"], 2.0)["crop_scale"] == pytest.approx((0.4, 1.0))
    assert scale_strength(hp, 1.0) == hp
    Augment(**double)


def test_preset_size_and_errors():
    assert preset("simclr", size=16)(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)).shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match=r"`name` must be one of \['digits', 'fashion-mnist', 'gray', 'mocov2', "
                                         r"'mocov2-cifar', 'none', 'simclr', 'simclr-cifar'\], got 'imagenet'"):
        preset("imagenet")
    with pytest.raises(ValueError, match=r"`strength` must be in \[0, 2\], got 2.5"):
        preset("simclr", strength=2.5)
