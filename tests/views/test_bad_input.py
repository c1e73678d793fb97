"""Bad hyperparameters and inputs give errors naming the argument, the rule and the value."""

import math

import pytest
import torch

from contrastlab.views import Augment

CASES = [
    ("crop_scale", (0.0, 1.0), ValueError, r"`crop_scale` must be a pair \(low, high\) with 0 < low <= high <= 1, got \(0.0, 1.0\)"),
    ("crop_scale", (0.9, 0.5), ValueError, r"`crop_scale` must be a pair .* got \(0.9, 0.5\)"),
    ("crop_scale", 0.5, TypeError, r"`crop_scale` must be a pair \(low, high\), got 0.5"),
    ("crop_ratio", (-1, 2), ValueError, r"`crop_ratio` must be a pair \(low, high\) with 0 < low <= high, got \(-1.0, 2.0\)"),
    ("flip_p", 1.5, ValueError, r"`flip_p` must be a probability in \[0, 1\], got 1.5"),
    ("jitter_p", -0.1, ValueError, r"`jitter_p` must be a probability in \[0, 1\], got -0.1"),
    ("grayscale_p", math.nan, ValueError, r"`grayscale_p` must be finite, got nan"),
    ("blur_p", "0.5", TypeError, r"`blur_p` must be a real number, got str '0.5'"),
    ("brightness", -0.4, ValueError, r"`brightness` must be >= 0, got -0.4"),
    ("contrast", math.inf, ValueError, r"`contrast` must be finite, got inf"),
    ("saturation", True, TypeError, r"`saturation` must be a real number, got bool True"),
    ("hue", 0.7, ValueError, r"`hue` must be in \[0, 0.5\], got 0.7"),
    ("blur_sigma", (2.0, 0.1), ValueError, r"`blur_sigma` must be a pair \(low, high\) with 0 < low <= high, got \(2.0, 0.1\)"),
    ("size", 0, ValueError, r"`size` must be None, a positive int or a pair of positive ints \(height, width\), got 0"),
    ("size", (32, 3.5), ValueError, r"`size` must be .* got \(32, 3.5\)"),
]


@pytest.mark.parametrize("name,value,error,message", CASES, ids=[f"{c[0]}={c[1]!r}" for c in CASES])
def test_bad_hyperparameter(name, value, error, message):
    with pytest.raises(error, match=message):
        Augment(**{name: value})


def test_hyperparameters_are_keyword_only():
    with pytest.raises(TypeError):
        Augment(32)


@pytest.mark.parametrize("x,error,message", [
    (torch.zeros(3, 8, 8, dtype=torch.uint8), ValueError, r"`x` must have shape \(B, C, H, W\), got a 3-d tensor of shape \(3, 8, 8\) \(a single image\?"),
    (torch.zeros(2, 4, 8, 8, dtype=torch.uint8), ValueError, r"`x` must have C in \{1, 3\} channels .* got C=4"),
    (torch.zeros(2, 3, 8, 8, dtype=torch.int64), TypeError, r"`x` must be uint8 or floating point, got dtype torch.int64"),
    (torch.full((2, 3, 8, 8), 255.0), ValueError, r"`x` must hold values in \[0, 1\] when floating point, got values in \[255, 255\]"),
    (torch.full((2, 3, 8, 8), math.nan), ValueError, r"`x` must hold values in \[0, 1\]"),
    (torch.zeros(0, 3, 8, 8), ValueError, r"`x` must not be empty, got shape \(0, 3, 8, 8\)"),
    ([[1.0]], TypeError, r"`x` must be a torch.Tensor of shape \(B, C, H, W\), got list"),
])
def test_bad_input(x, error, message):
    with pytest.raises(error, match=message):
        Augment()(x)
