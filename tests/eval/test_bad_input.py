"""Bad inputs raise TypeError / ValueError naming the argument, the rule and the value."""

import math

import pytest
import torch

from contrastlab.eval import (contrast, embed, equal_error_rate, finetune, fit_linear_probe, format_report,
                              gaussian_blur, gaussian_noise, geometry, knn_predict, knn_top1, label_efficiency,
                              linear_probe, pixel_baselines, robustness, roc_auc, sample_pairs, stratified_subset,
                              verification)

from .conftest import MLP

F_TR, F_TE = torch.randn(10, 4), torch.randn(3, 4)
Y_TR, Y_TE = torch.arange(10) % 3, torch.tensor([0, 1, 2])
IMG = torch.zeros(6, 1, 8, 8, dtype=torch.uint8)
Y6 = torch.arange(6) % 2


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"k": 0}, ValueError, r"`k` must be a positive int, got 0"),
    ({"k": 2.5}, TypeError, r"`k` must be a positive int, got float 2.5"),
    ({"temperature": 0.0}, ValueError, r"`temperature` must be a finite number > 0, got 0.0"),
    ({"temperature": math.nan}, ValueError, r"`temperature` must be a finite number > 0, got nan"),
    ({"chunk_size": -1}, ValueError, r"`chunk_size` must be a positive int, got -1"),
    ({"num_classes": 2}, ValueError, r"`train_labels` must hold class ids < num_classes = 2, got 2"),
])
def test_knn_bad_hyperparameters(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        knn_predict(F_TR, Y_TR, F_TE, **kwargs)


def test_knn_bad_tensors():
    with pytest.raises(ValueError, match=r"`train_feats` and `test_feats` must have the same feature size F, got 4 and 5"):
        knn_predict(F_TR, Y_TR, torch.randn(3, 5))
    with pytest.raises(ValueError, match=r"`train_labels` must have shape \(10,\), one label per row of `train_feats`, got \(9,\)"):
        knn_predict(F_TR, Y_TR[:9], F_TE)
    with pytest.raises(TypeError, match=r"`train_labels` must be an integer tensor of class ids, got dtype torch.float32"):
        knn_predict(F_TR, Y_TR.float(), F_TE)
    with pytest.raises(ValueError, match=r"`train_labels` must hold class ids >= 0, got -1"):
        knn_predict(F_TR, Y_TR - 1, F_TE)
    with pytest.raises(TypeError, match=r"`test_feats` must be a floating-point tensor, got dtype torch.int64"):
        knn_predict(F_TR, Y_TR, Y_TE[:, None])
    with pytest.raises(ValueError, match=r"`train_feats` must have shape \(N, F\), got a 1-d tensor"):
        knn_predict(F_TR[:, 0], Y_TR, F_TE)
    with pytest.raises(ValueError, match=r"`test_feats` must be finite, got 1 NaN or Inf"):
        knn_predict(F_TR, Y_TR, torch.tensor([[math.nan, 0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"`test_labels` must have shape \(3,\), one label per row of `test_feats`, got \(2,\)"):
        knn_top1(F_TR, Y_TR, F_TE, Y_TE[:2])


def test_linear_probe_bad_input():
    with pytest.raises(ValueError, match=r"`epochs` must be a positive int, got 0"):
        linear_probe(F_TR, Y_TR, F_TE, Y_TE, epochs=0)
    with pytest.raises(ValueError, match=r"`weight_decay` must be a finite number >= 0, got -1.0"):
        linear_probe(F_TR, Y_TR, F_TE, Y_TE, weight_decay=-1.0)
    with pytest.raises(ValueError, match=r"`lr` must be a finite number > 0, got 0.0"):
        fit_linear_probe(F_TR, Y_TR, lr=0.0)
    with pytest.raises(ValueError, match=r"`test_labels` must hold class ids < num_classes = 3, got 3"):
        linear_probe(F_TR, Y_TR, F_TE, Y_TE + 1, num_classes=3)
    probe = fit_linear_probe(F_TR, Y_TR, epochs=2)
    with pytest.raises(ValueError, match=r"`feats` must have F = 4 features like the probe's training features, got 2"):
        probe.predict(torch.randn(3, 2))


def test_embed_bad_input():
    with pytest.raises(TypeError, match=r"`encoder` must be a torch.nn.Module, got function"):
        embed(lambda x: x, IMG)
    with pytest.raises(TypeError, match=r"`x` must be a uint8 tensor of images \(N, C, H, W\), got dtype torch.float32; convert"):
        embed(MLP(), IMG.float())
    with pytest.raises(ValueError, match=r"`x` must have shape \(N, C, H, W\), got a 3-d tensor of shape \(6, 8, 8\)"):
        embed(MLP(), IMG[:, 0])
    with pytest.raises(ValueError, match=r"`batch_size` must be a positive int, got 0"):
        embed(MLP(), IMG, batch_size=0)
    with pytest.raises(TypeError, match=r"`transform` must be callable or None, got int"):
        embed(MLP(), IMG, transform=3)


def test_finetune_bad_input():
    with pytest.raises(ValueError, match=r"`encoder` must have a positive int attribute `out_dim` \(its feature size F\), got None"):
        finetune(torch.nn.Flatten(), IMG, Y6, IMG, Y6, num_classes=2)
    with pytest.raises(ValueError, match=r"`y` must hold class ids < num_classes = 2, got 2"):
        finetune(MLP(), IMG, Y6 + 1, IMG, Y6, num_classes=2)
    with pytest.raises(ValueError, match=r"`x` and `x_test` must have the same image shape \(C, H, W\), got \(1, 8, 8\) and \(1, 8, 7\)"):
        finetune(MLP(), IMG, Y6, IMG[..., :7], Y6, num_classes=2)
    with pytest.raises(TypeError, match=r"`augment` must be callable"):
        finetune(MLP(), IMG, Y6, IMG, Y6, num_classes=2, augment="flip")
    with pytest.raises(ValueError, match=r"`seed` must be an int >= 0, got -1"):
        finetune(MLP(), IMG, Y6, IMG, Y6, num_classes=2, seed=-1)
    with pytest.raises(ValueError, match=r"`augment` must return a float tensor \(B, C, H, W\) with B = 6, got \(6, 64\)"):
        finetune(MLP(), IMG, Y6, IMG, Y6, num_classes=2, augment=lambda x, generator: x.float().flatten(1))


@pytest.mark.parametrize("fractions,msg", [
    ((0.0,), r"`fractions` must be a finite number > 0, got 0.0"),
    ((1.5,), r"`fractions` must hold numbers in \(0, 1\], got 1.5"),
    ((), r"`fractions` must be a non-empty sequence of numbers in \(0, 1\], got \(\)"),
    ("0.1", r"`fractions` must be a non-empty sequence"),
])
def test_label_efficiency_bad_fractions(fractions, msg):
    with pytest.raises(ValueError, match=msg):
        label_efficiency(MLP, MLP().state_dict(), IMG, Y6, IMG, Y6, num_classes=2, fractions=fractions)


def test_label_efficiency_and_subset_bad_input():
    with pytest.raises(TypeError, match=r"`make_encoder` must be a callable returning a fresh encoder \(a class or a function\), got an? MLP instance"):
        label_efficiency(MLP(), MLP().state_dict(), IMG, Y6, IMG, Y6, num_classes=2)
    with pytest.raises(TypeError, match=r"`pretrained_state_dict` must be a mapping"):
        label_efficiency(MLP, [1], IMG, Y6, IMG, Y6, num_classes=2)
    with pytest.raises(ValueError, match=r"`steps` must be a positive int, got 0"):
        label_efficiency(MLP, MLP().state_dict(), IMG, Y6, IMG, Y6, num_classes=2, steps=0)
    with pytest.raises(ValueError, match=r"`fraction` must be in \(0, 1\], got 2.0"):
        stratified_subset(Y6, 2.0)
    with pytest.raises(ValueError, match=r"`labels` must be a non-empty 1-d tensor of class ids \(N,\), got \(2, 3\)"):
        stratified_subset(Y6.view(2, 3), 0.5)


def test_verification_bad_input():
    with pytest.raises(ValueError, match=r"`pairs` must be >= 2 \(one same-label and one different-label pair\), got 1"):
        verification(F_TR, Y_TR, pairs=1)
    with pytest.raises(ValueError, match=r"`labels` must hold at least 2 distinct labels to form different-label pairs, got 1"):
        sample_pairs(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"`labels` must have a label occurring at least twice"):
        sample_pairs(torch.arange(5))
    with pytest.raises(ValueError, match=r"`labels` must have shape \(10,\), one label per row of `feats`, got \(9,\)"):
        verification(F_TR, Y_TR[:9])
    with pytest.raises(TypeError, match=r"`targets` must be a bool or integer tensor of 0/1 flags, got dtype torch.float32"):
        roc_auc(torch.rand(4), torch.tensor([0.0, 1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match=r"`targets` must contain both positives and negatives, got 4 positive\(s\) of 4"):
        equal_error_rate(torch.rand(4), torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"`targets` must hold only 0 and 1, got values \[0, 2\]"):
        roc_auc(torch.rand(4), torch.tensor([0, 2, 0, 2]))
    with pytest.raises(ValueError, match=r"`targets` must have the shape of `scores` \(4,\), got \(3,\)"):
        roc_auc(torch.rand(4), torch.tensor([0, 1, 0]))


def test_corruption_bad_input():
    x = torch.rand(2, 1, 4, 4)
    with pytest.raises(TypeError, match=r"`x` must be a floating-point tensor of images \(B, C, H, W\) in \[0, 1\], got dtype torch.uint8"):
        gaussian_noise(IMG, 0.1)
    with pytest.raises(ValueError, match=r"`x` must have a non-empty shape \(B, C, H, W\), got \(4, 4\)"):
        gaussian_blur(x[0, 0], 1.0)
    with pytest.raises(ValueError, match=r"`severity` must be a finite number >= 0, got -0.5"):
        gaussian_blur(x, -0.5)
    with pytest.raises(ValueError, match=r"`severity` of `contrast` must be in \[0, 1\], got 1.5"):
        contrast(x, 1.5)
    with pytest.raises(ValueError, match=r"`severities` keys must be among \['blur', 'contrast', 'gaussian_noise'\], got 'jpeg'"):
        robustness(MLP(), IMG, Y6, IMG, Y6, severities={"jpeg": [1]})
    with pytest.raises(ValueError, match=r"`severities\['blur'\]` must be a non-empty sequence of numbers, got \[\]"):
        robustness(MLP(), IMG, Y6, IMG, Y6, severities={"blur": []})
    with pytest.raises(TypeError, match=r"`severities` must be a non-empty mapping"):
        robustness(MLP(), IMG, Y6, IMG, Y6, severities=[0.1])


def test_other_bad_input():
    with pytest.raises(ValueError, match=r"`x` and `x_test` must have the same number of pixels per image, got 64 and 56"):
        pixel_baselines(IMG, Y6, IMG[..., :7], Y6)
    with pytest.raises(ValueError, match=r"`z_a` and `z_b` must have the same shape, got \(3, 4\) and \(3, 5\)"):
        geometry(torch.randn(3, 4), torch.randn(3, 5))
    with pytest.raises(ValueError, match=r"`geometry` needs at least 2 pairs to measure uniformity, got B=1"):
        geometry(torch.randn(1, 4), torch.randn(1, 4))
    with pytest.raises(TypeError, match=r"`results` must be a mapping of metric names to values, got list"):
        format_report([0.5])
