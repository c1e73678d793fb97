"""Contrast over time, for sequence data (`SequenceData`, (N, C, T) series): TS2Vec and CPC.

* ``ts2vec`` (Yue et al. 2022, "TS2Vec: Towards Universal Representation of Time Series"): two overlapping random
  crops of every series (contextual consistency), each augmented (by default a binomial mask of time steps), and
  :func:`~contrastlab.losses.temporal.hierarchical_contrastive_loss` on the per-step features of their overlap.
* ``cpc`` (van den Oord et al. 2018, "Representation Learning with Contrastive Predictive Coding"): a causal
  encoder gives latents z_t, a GRU summarises z_<=t into a context c_t, and a linear map W_k of c_t predicts
  z_{t+k} for k = 1..K; each prediction is scored by InfoNCE (:func:`~contrastlab.losses.info_nce`) against the
  other sampled predictions' targets, i.e. latents of other series and other time steps.

Both need an encoder with ``timesteps(x)`` -> (B, T, D) (see :mod:`contrastlab.models.sequence`); evaluation uses
the encoder's pooled features.

>>> import torch
>>> from contrastlab.models import create_encoder
>>> enc = create_encoder("dilated_cnn", in_channels=1, depth=2, hidden=8, out_dim=16)
>>> m = CPC(enc, feature_dim=16, prediction_steps=2, anchors=32)
>>> batch = {"views": torch.randn(4, 1, 1, 20), "anchors": torch.randint(0, 4 * 18, (2, 32))}
>>> m(batch).loss.ndim
0
"""
from __future__ import annotations

import copy
import numbers

import torch
from torch import nn

from ..losses import info_nce
from ..losses.temporal import hierarchical_contrastive_loss
from .base import Method, StepOutput, positive_number, register_method

__all__ = ["TS2Vec", "CPC"]


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {value!r}")
    return int(value)


def _per_step(encoder, method: str):
    if not callable(getattr(encoder, "timesteps", None)):
        raise ValueError(f"method {method!r} needs an encoder with per-timestep features (`timesteps(x)` -> "
                         f"(B, T, D)), such as 'dilated_cnn' or 'gru'; got {type(encoder).__name__}")


class _Sequence(Method):
    modalities = ("sequence",)

    def _labels(self, data, idx, batch):
        if data.y is not None:
            batch["labels"] = data.y[idx]
        return batch


@register_method("ts2vec")
class TS2Vec(_Sequence):
    """TS2Vec: hierarchical instance-wise (weight ``alpha``) plus temporal contrast on two overlapping crops.
    ``temporal_unit``: the first scale with temporal contrast. Uses a centred (not causal) encoder by default, as
    the paper's. ``average``: evaluate the running mean of the encoder's weights after every step (the paper's code
    evaluates such a model, ``torch.optim.swa_utils.AveragedModel`` updated after each step; before the first step
    it holds the initial weights)."""
    n_views = 2
    encoder_defaults = {"causal": False, "dropout": 0.1}     # the paper's: centred, dropout 0.1 on the features
    series_views = "ts2vec"                    # the crops plus a binomial mask of time steps

    def __init__(self, encoder, *, feature_dim, num_classes=None, alpha: float = 0.5, temporal_unit: int = 0,
                 min_overlap: int = 2, average: bool = True):
        super().__init__(encoder, feature_dim=feature_dim, num_classes=num_classes)
        _per_step(encoder, "ts2vec")
        if not isinstance(average, bool):
            raise ValueError(f"`average` must be true or false, got {average!r}")
        self.average = average
        if average:                              # the paper's evaluation model: the mean of the weights after each step
            self.averaged = copy.deepcopy(encoder).requires_grad_(False)
            self.register_buffer("averaged_steps", torch.zeros((), dtype=torch.int64))
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"`alpha` must be a number in [0, 1], got {alpha!r}")
        if isinstance(temporal_unit, bool) or not isinstance(temporal_unit, int) or temporal_unit < 0:
            raise ValueError(f"`temporal_unit` must be an int >= 0, got {temporal_unit!r}")
        self.alpha, self.temporal_unit = float(alpha), temporal_unit
        self.min_overlap = _positive_int("min_overlap", min_overlap)

    def make_batch(self, data, idx, augment, generator):
        from ..views.series import overlapping_crops
        a, b, overlap = overlapping_crops(data.x[idx], generator=generator, min_overlap=self.min_overlap)
        if augment is not None:
            a, b = augment(a, generator=generator), augment(b, generator=generator)
        return self._labels(data, idx, {"a": a, "b": b, "overlap": overlap, "index": idx})

    def after_step(self, *, step: int, total_steps: int) -> None:
        if not self.average:
            return
        with torch.no_grad():                    # running mean of the weights after every step (the first: a copy)
            k = float(self.averaged_steps)
            for mean, now in zip(self.averaged.parameters(), self.encoder.parameters()):
                mean.mul_(k / (k + 1.0)).add_(now, alpha=1.0 / (k + 1.0))
            for mean, now in zip(self.averaged.buffers(), self.encoder.buffers()):
                mean.copy_(now)
            self.averaged_steps += 1

    def embed(self, x):
        """The averaged encoder's pooled features (``average=True``, as the paper evaluates), else the encoder's.
        (B, C, T) -> (B, D)."""
        return self.evaluated_encoder()(x)

    def evaluated_encoder(self):
        return self.averaged if self.average else self.encoder

    def forward(self, batch):
        n = int(batch["overlap"])
        za = self.encoder.timesteps(batch["a"])[:, -n:]                         # (B, L, D)
        zb = self.encoder.timesteps(batch["b"])[:, :n]                          # (B, L, D)
        loss = hierarchical_contrastive_loss(za, zb, alpha=self.alpha, temporal_unit=self.temporal_unit)
        return StepOutput(loss, {"overlap": float(n)})


@register_method("cpc")
class CPC(_Sequence):
    """CPC: context c_t = GRU(z_<=t) (``context_dim`` units) predicts z_{t+k} through W_k, k = 1..
    ``prediction_steps``; per k, ``anchors`` distinct random (series, step) queries of the batch, each scored by InfoNCE
    (cosine similarities / ``temperature``) against the targets of the other queries of that k. The encoder must be
    causal (step t sees steps <= t), or z_{t+k} would already be inside c_t."""
    n_views = 1
    encoder_defaults = {"causal": True}
    series_views = "none"                      # the task is the prediction; no augmentation

    def __init__(self, encoder, *, feature_dim, num_classes=None, prediction_steps: int = 4, context_dim: int = 128,
                 anchors: int = 256, temperature: float = 0.1):
        super().__init__(encoder, feature_dim=feature_dim, num_classes=num_classes)
        _per_step(encoder, "cpc")
        if getattr(encoder, "causal", True) is not True:
            raise ValueError("method 'cpc' needs a causal encoder (its step t must not see later steps, or the "
                             "targets z_{t+k} leak into the context); build it with causal=true")
        self.prediction_steps = _positive_int("prediction_steps", prediction_steps)
        self.anchors = _positive_int("anchors", anchors)
        if self.anchors < 2:
            raise ValueError(f"`anchors` must be >= 2 (the other anchors are the negatives), got {anchors}")
        self.temperature = positive_number("temperature", temperature)
        self.context = nn.GRU(feature_dim, _positive_int("context_dim", context_dim), batch_first=True)
        self.predict = nn.ModuleList(nn.Linear(context_dim, feature_dim) for _ in range(self.prediction_steps))

    def check_data(self, data) -> None:
        super().check_data(data)
        if data.length <= self.prediction_steps:
            raise ValueError(f"method 'cpc' predicts {self.prediction_steps} steps ahead, so the series need more "
                             f"than {self.prediction_steps} time steps; {data.name} has {data.length}; lower "
                             f"`prediction_steps`")

    def make_batch(self, data, idx, augment, generator):
        x = data.x[idx]                                                         # (B, C, T)
        if augment is not None:
            x = augment(x, generator=generator)
        b, _, t = x.shape
        a = min(self.anchors, b * (t - self.prediction_steps))               # distinct queries: no target twice
        anchors = torch.stack([torch.randperm(b * (t - k), generator=generator)[:a]
                               for k in range(1, self.prediction_steps + 1)])   # (K, A) flat (series, step)
        return self._labels(data, idx, {"views": x.unsqueeze(1), "anchors": anchors, "index": idx})

    def forward(self, batch):
        x = batch["views"][:, 0]                                                # (B, C, T)
        z = self.encoder.timesteps(x)                                           # (B, T, D)
        c = self.context(z)[0]                                                  # (B, T, H)
        t = z.shape[1]
        losses = []
        for k, (head, rows) in enumerate(zip(self.predict, batch["anchors"]), start=1):
            s, step = rows // (t - k), rows % (t - k)                           # (A,) series and step of a query
            losses.append(info_nce(head(c[s, step]), z[s, step + k], temperature=self.temperature))
        loss = torch.stack(losses).mean()
        return StepOutput(loss, {f"loss_k{k}": float(v.detach()) for k, v in enumerate(losses, start=1)
                                 if k in (1, self.prediction_steps)})
