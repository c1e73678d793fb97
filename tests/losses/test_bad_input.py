"""Every bad input gets a ValueError or TypeError naming the argument, the rule and the value."""

import math

import pytest
import torch

from contrastlab import losses as L


def pair(b=4, d=3):
    return torch.randn(b, d), torch.randn(b, d)


@pytest.mark.parametrize("t", [0.0, -1.0, math.nan, math.inf])
@pytest.mark.parametrize("fn", [L.info_nce, L.nt_xent, L.debiased_info_nce, L.logistic])
def test_bad_temperature(fn, t):
    with pytest.raises(ValueError, match=r"`temperature` must be a finite number > 0, got"):
        fn(*pair(), temperature=t)


@pytest.mark.parametrize("cls", [L.InfoNCE, L.NTXent, L.SupCon, L.DebiasedInfoNCE, L.Logistic])
def test_bad_temperature_in_constructor(cls):
    with pytest.raises(ValueError, match=r"`temperature` must be a finite number > 0, got -1.0"):
        cls(temperature=-1.0)


def test_temperature_of_wrong_type():
    with pytest.raises(TypeError, match="`temperature` must be a real number, got str"):
        L.nt_xent(*pair(), temperature="0.1")


def test_mismatched_batch_and_feature_sizes():
    with pytest.raises(ValueError, match=r"`query` and `positive` must have the same shape, got \(4, 3\) and \(5, 3\)"):
        L.info_nce(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"`z_a` and `z_b` must have the same shape"):
        L.nt_xent(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match=r"same feature size D, got 3 and 2"):
        L.info_nce(torch.randn(4, 3), torch.randn(4, 3), torch.randn(7, 2))
    with pytest.raises(ValueError, match=r"must have B = 4"):
        L.info_nce(torch.randn(4, 3), torch.randn(4, 3), torch.randn(5, 7, 3))


def test_two_d_where_views_expected():
    with pytest.raises(ValueError, match=r"`views` must have shape \(B, V, D\), got a 2-d tensor.*add a view axis"):
        L.supcon(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))


def test_labels_wrong_length_or_dtype():
    with pytest.raises(ValueError, match=r"`labels` must have shape \(B,\) = \(4,\), got \(3,\)"):
        L.supcon(torch.randn(4, 2, 3), torch.tensor([0, 1, 0]))
    with pytest.raises(TypeError, match="`labels` must be an integer tensor, got dtype torch.float32"):
        L.triplet(torch.randn(4, 3), torch.tensor([0.0, 1.0, 0.0, 1.0]))
    with pytest.raises(TypeError, match="`labels` must be a torch.Tensor"):
        L.triplet(torch.randn(4, 3), [0, 1, 0, 1])


def test_supcon_needs_views_or_labels():
    with pytest.raises(ValueError, match="without labels needs at least 2 views per example, got V=1"):
        L.supcon(torch.randn(4, 1, 3))


def test_bad_choices_name_the_options():
    with pytest.raises(ValueError, match=r"`mining` must be one of \['batch_all', 'batch_hard', 'semi_hard'\], got 'hard'"):
        L.triplet(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]), mining="hard")
    with pytest.raises(ValueError, match=r"`distance` must be one of .*got 'l1'"):
        L.Triplet(distance="l1")
    with pytest.raises(ValueError, match=r"`reduction` must be one of \['mean', 'none', 'sum'\], got 'avg'"):
        L.info_nce(*pair(), reduction="avg")
    with pytest.raises(ValueError, match=r"`name` must be one of .*got 'ntxent'"):
        L.create_loss("ntxent")


def test_other_hyperparameters():
    with pytest.raises(ValueError, match=r"`tau_plus` must be in \[0, 1\), got 1.0"):
        L.debiased_info_nce(*pair(), tau_plus=1.0)
    with pytest.raises(ValueError, match=r"`hard_negative_beta` must be a finite number >= 0, got -0.5"):
        L.info_nce(*pair(), hard_negative_beta=-0.5)
    with pytest.raises(ValueError, match=r"`margin` must be a finite number >= 0, got -0.1"):
        L.Triplet(margin=-0.1)
    with pytest.raises(ValueError, match=r"`logit_scale` must be a finite number > 0, got 0.0"):
        L.clip_loss(*pair(), logit_scale=0.0)
    with pytest.raises(ValueError, match=r"`is_positive` must hold only 0/1"):
        L.margin_contrastive(*pair(), torch.tensor([0, 1, 2, 1]))
    with pytest.raises(ValueError, match=r"`initial_temperature` must be >= 1 / max_scale"):
        L.LearnableTemperature(initial_temperature=0.001)
    with pytest.raises(ValueError, match=r"`bias` must be a finite real number, got nan"):
        L.logistic(*pair(), bias=math.nan)


def test_empty_and_non_tensor_inputs():
    with pytest.raises(ValueError, match=r"`query` must not be empty, got shape \(4, 0\)"):
        L.info_nce(torch.randn(4, 0), torch.randn(4, 0))
    with pytest.raises(TypeError, match=r"`z_a` must be a torch.Tensor of shape \(B, D\), got list"):
        L.nt_xent([[1.0, 2.0]], torch.randn(1, 2))
