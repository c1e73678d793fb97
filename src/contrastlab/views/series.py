"""Views of time series, on whole batches with per-sample random draws from one ``torch.Generator``.

* :func:`overlapping_crops`: TS2Vec's contextual consistency (Yue et al. 2022, "TS2Vec: Towards Universal
  Representation of Time Series", section 3.2): two random segments of every series that share an overlap of
  ``L`` steps; the overlap is the last ``L`` steps of view a and the first ``L`` of view b.
* :class:`SeriesAugment`: jitter, scaling, magnitude warping, time warping (Um et al. 2017, "Data Augmentation of
  Wearable Sensor Data for Parkinson's Disease Monitoring using Convolutional Neural Networks") and masking of
  random time steps (TS2Vec's binomial mask, here on the input), in that order.
* presets: ``"ts2vec"`` (mask p = 0.5 only: TS2Vec's views are the crops and the mask), ``"series"`` (Um et al.'s
  amounts: jitter 0.03, scaling 0.1, magnitude and time warp 0.2 with 4 knots; mask p = 0.1), ``"none"``.

Random parameters are drawn on the generator's device (the CPU by default) and moved to the series' device, so
the same seed gives the same views on every device.

Example::

    >>> import torch
    >>> x = torch.randn(4, 2, 50)                                      # (B, C, T)
    >>> g = torch.Generator().manual_seed(0)
    >>> a, b, overlap = overlapping_crops(x, generator=g)
    >>> a.shape[:2], b.shape[:2], 1 <= overlap <= min(a.shape[2], b.shape[2])
    (torch.Size([4, 2]), torch.Size([4, 2]), True)
    >>> series_preset("series")(x, generator=torch.Generator().manual_seed(1)).shape
    torch.Size([4, 2, 50])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..devices import CPU
from . import validation as check
from .repeat import repeat_views

__all__ = ["overlapping_crops", "take_segments", "SeriesAugment", "SERIES_PRESETS", "series_preset",
           "make_series_views", "check_series"]


def check_series(x, name: str = "x") -> torch.Tensor:
    """A non-empty floating (B, C, T) batch."""
    if not torch.is_tensor(x):
        raise TypeError(f"`{name}` must be a torch.Tensor of shape (B, C, T), got {type(x).__name__}")
    if x.dim() != 3:
        raise ValueError(f"`{name}` must have shape (B, C, T), got a {x.dim()}-d tensor of shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"`{name}` must not be empty, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"`{name}` must be floating point, got dtype {x.dtype}")
    return x


def _randint(low: int, high: int, generator, size=()) -> torch.Tensor:
    """Uniform integers in [low, high) (high > low), drawn on the generator's device."""
    dev = generator.device if generator is not None else CPU
    return torch.randint(low, high, size, generator=generator, device=dev)


def take_segments(x: torch.Tensor, start: torch.Tensor, length: int) -> torch.Tensor:
    """Row i's steps ``start[i] .. start[i] + length - 1``. Shape: (B, C, T), (B,) -> (B, C, length)."""
    steps = start.to(x.device).view(-1, 1) + torch.arange(length, device=x.device)          # (B, L)
    return x.gather(2, steps.unsqueeze(1).expand(-1, x.shape[1], -1))


def overlapping_crops(x: torch.Tensor, *, generator: torch.Generator | None = None,
                      min_overlap: int = 2) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Two segments of every series overlapping in ``L`` steps (TS2Vec's contextual consistency).

    ``L`` is uniform in [min(min_overlap, T), T]; the overlap's place ``[left, left + L)`` is uniform; view a starts
    uniformly in [0, left] and ends at ``left + L``, view b starts at ``left`` and ends uniformly in
    [left + L, T]; each row is then shifted by its own random offset that keeps both views inside the series. The
    lengths are shared by the batch, the offsets are per row. Returns (a (B, C, La), b (B, C, Lb), L): a's last L
    steps and b's first L steps are the same time steps.
    """
    check_series(x)
    m = check.positive_int("min_overlap", min_overlap)
    b, _, t = x.shape
    overlap = int(_randint(min(m, t), t + 1, generator))
    left = int(_randint(0, t - overlap + 1, generator))
    right = left + overlap
    a_left = int(_randint(0, left + 1, generator))
    b_right = int(_randint(right, t + 1, generator))
    offset = _randint(-a_left, t - b_right + 1, generator, (b,))                            # (B,)
    va = take_segments(x, offset + a_left, right - a_left)
    vb = take_segments(x, offset + left, b_right - left)
    return va, vb, overlap


def _smooth_curve(batch: int, rows: int, length: int, knots: int, sigma: float, generator, dev) -> torch.Tensor:
    """Random smooth curves around 1: ``knots + 2`` values ~ N(1, sigma) linearly interpolated to ``length``.
    Shape: (batch, rows, length)."""
    k = torch.randn(batch * rows, 1, knots + 2, generator=generator, device=dev) * sigma + 1.0
    return F.interpolate(k, size=length, mode="linear", align_corners=True).view(batch, rows, length)


class SeriesAugment(nn.Module):
    """Batched series augmentation: float (B, C, T) -> (B, C, T).

    * ``jitter``: add N(0, jitter^2) noise to every value;
    * ``scaling``: multiply each series and channel by a factor ~ N(1, scaling^2);
    * ``magnitude_warp``: multiply by a smooth random curve (``knots`` values ~ N(1, sigma^2), linear in between);
    * ``time_warp``: resample along a smooth random time axis (local speeds ~ N(1, sigma^2) at ``knots`` points,
      kept >= 0.1, summed and rescaled to span [0, T - 1]; linear interpolation);
    * ``mask_p``: set each time step (all channels) to 0 with probability ``mask_p``.

    An amount of 0 skips its stage; all zero returns ``x`` as float32 exactly. The same generator state gives
    bit-identical output.

    >>> aug = SeriesAugment(jitter=0.1, time_warp=0.2)
    >>> x = torch.randn(3, 1, 40)
    >>> torch.equal(aug(x, generator=torch.Generator().manual_seed(0)), aug(x, generator=torch.Generator().manual_seed(0)))
    True
    """

    def __init__(self, *, jitter: float = 0.0, scaling: float = 0.0, magnitude_warp: float = 0.0,
                 time_warp: float = 0.0, knots: int = 4, mask_p: float = 0.0):
        super().__init__()
        self.jitter = check.non_negative("jitter", jitter)
        self.scaling = check.non_negative("scaling", scaling)
        self.magnitude_warp = check.non_negative("magnitude_warp", magnitude_warp)
        self.time_warp = check.non_negative("time_warp", time_warp)
        self.knots = check.positive_int("knots", knots)
        self.mask_p = check.probability("mask_p", mask_p)
        if self.mask_p == 1.0:
            raise ValueError("`mask_p` must be < 1 (1 masks every time step), got 1.0")

    @property
    def hyperparameters(self) -> dict:
        return {n: getattr(self, n) for n in ("jitter", "scaling", "magnitude_warp", "time_warp", "knots", "mask_p")}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        check_series(x)
        x = x.float()
        b, c, t = x.shape
        dev = generator.device if generator is not None else CPU
        out = x
        if self.jitter > 0:
            out = out + (torch.randn(b, c, t, generator=generator, device=dev) * self.jitter).to(x.device)
        if self.scaling > 0:
            out = out * (torch.randn(b, c, 1, generator=generator, device=dev) * self.scaling + 1.0).to(x.device)
        if self.magnitude_warp > 0:
            out = out * _smooth_curve(b, c, t, self.knots, self.magnitude_warp, generator, dev).to(x.device)
        if self.time_warp > 0 and t > 1:
            speed = _smooth_curve(b, 1, t, self.knots, self.time_warp, generator, dev).clamp(min=0.1)[:, 0]  # (B, T)
            pos = speed.cumsum(1) - speed[:, :1]
            pos = (pos / pos[:, -1:] * (t - 1)).to(x.device)                                # (B, T) in [0, T-1]
            lo = pos.floor().long().clamp(max=t - 2)
            w = (pos - lo).unsqueeze(1)                                                      # (B, 1, T)
            idx = lo.unsqueeze(1).expand(-1, c, -1)
            out = out.gather(2, idx) * (1 - w) + out.gather(2, idx + 1) * w
        if self.mask_p > 0:
            keep = torch.rand(b, 1, t, generator=generator, device=dev) >= self.mask_p
            out = out * keep.to(x.device)
        return out


#: name -> SeriesAugment hyperparameters.
SERIES_PRESETS: dict[str, dict] = {
    "ts2vec": dict(mask_p=0.5),
    "series": dict(jitter=0.03, scaling=0.1, magnitude_warp=0.2, time_warp=0.2, knots=4, mask_p=0.1),
    "none": dict(),
}


def series_preset(name: str, *, strength: float = 1.0) -> SeriesAugment:
    """The :class:`SeriesAugment` of a preset, every amount and the mask probability times ``strength`` in [0, 2]
    (the probability capped below 1)."""
    if name not in SERIES_PRESETS:
        raise ValueError(f"`augment` must be one of {sorted(SERIES_PRESETS)} for series, got {name!r}")
    s = check.in_range("strength", strength, 0.0, 2.0)
    hp = {k: (v if k == "knots" else v * s) for k, v in SERIES_PRESETS[name].items()}
    if "mask_p" in hp:
        hp["mask_p"] = min(hp["mask_p"], 0.9)
    return SeriesAugment(**hp)


def make_series_views(x: torch.Tensor, augment, *, n_views: int = 2,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """``n_views`` independent augmentations of every series in one batched call. (B, C, T) -> (B, V, C, T).

    >>> make_series_views(torch.randn(4, 1, 30), series_preset("series"), n_views=3).shape
    torch.Size([4, 3, 1, 30])
    """
    check_series(x)
    return repeat_views(x, augment, n_views=n_views, generator=generator)
