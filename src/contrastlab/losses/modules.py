"""Thin ``nn.Module`` wrappers: they hold and validate hyperparameters; the maths is in the functions.

Example::

    >>> import torch
    >>> from contrastlab.losses import NTXent
    >>> loss_fn = NTXent(temperature=0.5)
    >>> loss_fn(torch.randn(8, 16), torch.randn(8, 16)).shape
    torch.Size([])
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import validation as check
from .clip import LearnableTemperature, clip_loss, logistic
from .infonce import debiased_info_nce, info_nce, nt_xent, supcon
from .metric import DISTANCES, MINERS, margin_contrastive, n_pair, triplet
from .ranking import multiple_negatives_ranking
from .registry import register

__all__ = ["MultipleNegativesRanking", "InfoNCE", "DebiasedInfoNCE", "NTXent", "SupCon", "Triplet", "NPair", "MarginContrastive",
           "Logistic", "CLIPLoss"]


@register("info_nce", inputs="pairs", paper="van den Oord et al. 2018 (CPC)", function=info_nce)
class InfoNCE(nn.Module):
    """InfoNCE with in-batch, shared or per-query negatives; see :func:`~contrastlab.losses.info_nce`."""

    def __init__(self, *, temperature: float = 0.1, reduction: str = "mean", hard_negative_beta: float = 0.0,
                 decoupled: bool = False):
        super().__init__()
        self.temperature = check.positive_number("temperature", temperature)
        self.reduction = check.choice("reduction", reduction, check.REDUCTIONS)
        self.hard_negative_beta = check.positive_number("hard_negative_beta", hard_negative_beta, allow_zero=True)
        self.decoupled = bool(decoupled)

    def forward(self, query, positive, negatives=None):
        return info_nce(query, positive, negatives, temperature=self.temperature, reduction=self.reduction,
                        hard_negative_beta=self.hard_negative_beta, decoupled=self.decoupled)

    def extra_repr(self):
        return (f"temperature={self.temperature}, reduction={self.reduction!r}, "
                f"hard_negative_beta={self.hard_negative_beta}, decoupled={self.decoupled}")


@register("debiased_info_nce", inputs="pairs", paper="Chuang et al. 2020 (Debiased CL)", function=debiased_info_nce)
class DebiasedInfoNCE(nn.Module):
    """Debiased (and optionally hardness-reweighted) InfoNCE; see :func:`~contrastlab.losses.debiased_info_nce`."""

    def __init__(self, *, temperature: float = 0.1, tau_plus: float = 0.1, hard_negative_beta: float = 0.0,
                 reduction: str = "mean"):
        super().__init__()
        self.temperature = check.positive_number("temperature", temperature)
        self.tau_plus = check.positive_number("tau_plus", tau_plus, allow_zero=True)
        if self.tau_plus >= 1:
            raise ValueError(f"`tau_plus` must be in [0, 1), got {tau_plus!r}")
        self.hard_negative_beta = check.positive_number("hard_negative_beta", hard_negative_beta, allow_zero=True)
        self.reduction = check.choice("reduction", reduction, check.REDUCTIONS)

    def forward(self, query, positive, negatives=None):
        return debiased_info_nce(query, positive, negatives, temperature=self.temperature, tau_plus=self.tau_plus,
                                 hard_negative_beta=self.hard_negative_beta, reduction=self.reduction)


@register("nt_xent", inputs="pairs", paper="Chen et al. 2020 (SimCLR)", function=nt_xent)
class NTXent(nn.Module):
    """SimCLR's NT-Xent over 2B views; see :func:`~contrastlab.losses.nt_xent`."""

    def __init__(self, *, temperature: float = 0.5, decoupled: bool = False):
        super().__init__()
        self.temperature = check.positive_number("temperature", temperature)
        self.decoupled = bool(decoupled)

    def forward(self, z_a, z_b):
        return nt_xent(z_a, z_b, temperature=self.temperature, decoupled=self.decoupled)

    def extra_repr(self):
        return f"temperature={self.temperature}, decoupled={self.decoupled}"


@register("supcon", inputs="views_labels", paper="Khosla et al. 2020 (SupCon)", function=supcon)
class SupCon(nn.Module):
    """Supervised contrastive loss (L_out); see :func:`~contrastlab.losses.supcon`."""

    def __init__(self, *, temperature: float = 0.1):
        super().__init__()
        self.temperature = check.positive_number("temperature", temperature)

    def forward(self, views, labels=None):
        return supcon(views, labels, temperature=self.temperature)

    def extra_repr(self):
        return f"temperature={self.temperature}"


@register("triplet", inputs="embeddings_labels", paper="Schroff et al. 2015; Hermans et al. 2017", function=triplet)
class Triplet(nn.Module):
    """Triplet margin loss with in-batch mining; see :func:`~contrastlab.losses.triplet`."""

    def __init__(self, *, margin: float = 0.2, mining: str = "batch_hard", distance: str = "cosine"):
        super().__init__()
        self.margin = check.positive_number("margin", margin, allow_zero=True)
        self.mining = check.choice("mining", mining, MINERS)
        self.distance = check.choice("distance", distance, DISTANCES)

    def forward(self, embeddings, labels):
        return triplet(embeddings, labels, margin=self.margin, mining=self.mining, distance=self.distance)

    def extra_repr(self):
        return f"margin={self.margin}, mining={self.mining!r}, distance={self.distance!r}"


@register("n_pair", inputs="pairs", paper="Sohn 2016 (N-pair)", function=n_pair)
class NPair(nn.Module):
    """Multi-class N-pair loss; see :func:`~contrastlab.losses.n_pair`."""

    def __init__(self, *, l2_reg: float = 0.0):
        super().__init__()
        self.l2_reg = check.positive_number("l2_reg", l2_reg, allow_zero=True)

    def forward(self, anchors, positives):
        return n_pair(anchors, positives, l2_reg=self.l2_reg)


@register("margin_contrastive", inputs="pairs_flags", paper="Hadsell, Chopra & LeCun 2006",
          function=margin_contrastive)
class MarginContrastive(nn.Module):
    """Pairwise margin contrastive loss; see :func:`~contrastlab.losses.margin_contrastive`."""

    def __init__(self, *, margin: float = 1.0, distance: str = "euclidean"):
        super().__init__()
        self.margin = check.positive_number("margin", margin)
        self.distance = check.choice("distance", distance, DISTANCES)

    def forward(self, z_a, z_b, is_positive):
        return margin_contrastive(z_a, z_b, is_positive, margin=self.margin, distance=self.distance)


@register("logistic", inputs="pairs", paper="Zhai et al. 2023 (SigLIP)", function=logistic)
class Logistic(nn.Module):
    """SigLIP's pairwise sigmoid loss; ``learnable=True`` makes temperature and bias parameters
    (log-parametrised temperature), as in the paper. See :func:`~contrastlab.losses.logistic`."""

    def __init__(self, *, temperature: float = 0.1, bias: float = -10.0, learnable: bool = False):
        super().__init__()
        t = check.positive_number("temperature", temperature)
        b = check.real_number("bias", bias)
        self.learnable = bool(learnable)
        if self.learnable:
            self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / t)))
            self.bias = nn.Parameter(torch.tensor(b))
            self.log_scale._no_weight_decay = True
            self.bias._no_weight_decay = True
        else:
            self.temperature, self.bias = t, b

    def forward(self, z_a, z_b):
        t = (-self.log_scale).exp() if self.learnable else self.temperature
        return logistic(z_a, z_b, temperature=t, bias=self.bias)

    def no_weight_decay(self):
        return {"log_scale", "bias"} if self.learnable else set()


@register("clip", inputs="pairs", paper="Radford et al. 2021 (CLIP)", function=clip_loss)
class CLIPLoss(nn.Module):
    """Symmetric two-tower InfoNCE with its own :class:`LearnableTemperature` (or a fixed
    ``logit_scale``); see :func:`~contrastlab.losses.clip_loss`."""

    def __init__(self, *, logit_scale: float | None = None, initial_temperature: float = 0.07,
                 max_scale: float = 100.0):
        super().__init__()
        if logit_scale is None:
            self.logit_scale = LearnableTemperature(initial_temperature=initial_temperature, max_scale=max_scale)
        else:
            self.logit_scale = check.positive_number("logit_scale", logit_scale)

    def forward(self, a, b):
        s = self.logit_scale() if isinstance(self.logit_scale, nn.Module) else self.logit_scale
        return clip_loss(a, b, logit_scale=s)


@register("multiple_negatives_ranking", inputs="pairs", paper="Henderson et al. 2017 (in-batch negatives)",
          function=multiple_negatives_ranking)
class MultipleNegativesRanking(nn.Module):
    """Query -> document InfoNCE over the batch's documents plus shared hard negatives, duplicates masked; see
    :func:`~contrastlab.losses.multiple_negatives_ranking`."""

    def __init__(self, *, temperature: float = 0.05, symmetric: bool = False, reduction: str = "mean"):
        super().__init__()
        self.temperature = check.positive_number("temperature", temperature)
        if not isinstance(symmetric, bool):
            raise TypeError(f"`symmetric` must be a bool, got {type(symmetric).__name__}")
        self.symmetric = symmetric
        self.reduction = check.choice("reduction", reduction, check.REDUCTIONS)

    def forward(self, query, document, negatives=None, document_ids=None):
        return multiple_negatives_ranking(query, document, negatives, temperature=self.temperature,
                                          symmetric=self.symmetric, document_ids=document_ids,
                                          reduction=self.reduction)
