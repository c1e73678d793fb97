"""The SimCLR augmentation recipe on whole batches, with per-sample random parameters from one generator.

Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations", appendix A:
random resized crop + horizontal flip, colour jitter with probability p (random order per sample),
random grayscale, Gaussian blur with probability p, in that order, then clamp to [0, 1]. Each stage
is one batched operation (no loop over samples): see :mod:`.geometry`, :mod:`.color` and :mod:`.blur`.

Example::

    >>> import torch
    >>> from contrastlab.views import Augment, make_views
    >>> augment = Augment(crop_scale=(0.3, 1.0), saturation=0.0, hue=0.0, grayscale_p=0.0)
    >>> x = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
    >>> views = make_views(x, augment, n_views=2, generator=torch.Generator().manual_seed(0))
    >>> views.shape, views.dtype
    (torch.Size([8, 2, 1, 28, 28]), torch.float32)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..devices import CPU
from . import validation as check
from .blur import _separable, blur_kernel_size, gaussian_kernels
from .color import _gray, color_jitter
from .geometry import resized_crop, sample_crops
from .repeat import repeat_views

__all__ = ["Augment", "ViewParams", "make_views"]


@dataclass
class ViewParams:
    """The random draws for one batch; a field is None when its stage is off. Shapes are per sample."""
    boxes: torch.Tensor | None      # (B, 4) crop (top, left, height, width) in input pixels
    flip: torch.Tensor | None       # (B,) bool
    factors: torch.Tensor | None    # (B, 4) brightness, contrast, saturation, hue; neutral if not jittered
    order: torch.Tensor | None      # (B, K) jitter op ids, a random permutation per sample
    gray: torch.Tensor | None       # (B,) bool
    blur: torch.Tensor | None       # (B,) bool
    sigma: torch.Tensor | None      # (B,) blur sigma


class Augment(nn.Module):
    """Batched SimCLR augmentation: uint8 or [0, 1] float (B, C, H, W), C in {1, 3} -> float32 in [0, 1].

    Example::

        >>> import torch
        >>> augment = Augment(size=24)                                    # the defaults: CIFAR-style SimCLR
        >>> x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
        >>> a = augment(x, generator=torch.Generator().manual_seed(0))
        >>> a.shape, torch.equal(a, augment(x, generator=torch.Generator().manual_seed(0)))
        (torch.Size([4, 3, 24, 24]), True)

    * crop: area fraction uniform in ``crop_scale``, aspect log-uniform in ``crop_ratio``, resized to
      ``size`` (None: the input size), fused with a horizontal flip of probability ``flip_p``;
      ``crop_scale=(1, 1)`` keeps the whole image;
    * colour jitter with probability ``jitter_p``: factors uniform in ``[max(0, 1 - a), 1 + a]`` for
      ``brightness``, ``contrast`` and ``saturation``, hue shift uniform in ``[-hue, hue]`` turns (exact
      HSV), in a random order per sample as SimCLR; on 1-channel input only brightness and contrast;
    * grayscale with probability ``grayscale_p`` (RGB only, BT.601 weights);
    * Gaussian blur with probability ``blur_p``, sigma uniform in ``blur_sigma``, kernel ~10% of the side.

    The same ``generator`` state gives bit-identical output. Every stage whose probability or amount is
    0 is skipped, so an all-zero configuration returns ``to_float(x)`` exactly.

    Shape: (B, C, H, W) -> (B, C, H_out, W_out).
    """

    def __init__(self, *, size=None, crop_scale=(0.2, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_p=0.5,
                 jitter_p=0.8, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, grayscale_p=0.2,
                 blur_p=0.5, blur_sigma=(0.1, 2.0)):
        super().__init__()
        self.size = check.size(size)
        self.crop_scale = check.interval("crop_scale", crop_scale, high=1.0)
        self.crop_ratio = check.interval("crop_ratio", crop_ratio)
        self.flip_p = check.probability("flip_p", flip_p)
        self.jitter_p = check.probability("jitter_p", jitter_p)
        self.brightness = check.non_negative("brightness", brightness)
        self.contrast = check.non_negative("contrast", contrast)
        self.saturation = check.non_negative("saturation", saturation)
        self.hue = check.in_range("hue", hue, 0.0, 0.5)
        self.grayscale_p = check.probability("grayscale_p", grayscale_p)
        self.blur_p = check.probability("blur_p", blur_p)
        self.blur_sigma = check.interval("blur_sigma", blur_sigma)

    @property
    def hyperparameters(self) -> dict:
        names = ("size", "crop_scale", "crop_ratio", "flip_p", "jitter_p", "brightness", "contrast", "saturation",
                 "hue", "grayscale_p", "blur_p", "blur_sigma")
        return {n: getattr(self, n) for n in names}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())

    def _jitter_ops(self, channels: int) -> list[int]:
        amounts = (self.brightness, self.contrast, self.saturation, self.hue)
        return [i for i, a in enumerate(amounts) if a > 0 and (i < 2 or channels == 3)]

    def sample(self, batch: int, channels: int, height: int, width: int, *,
               generator: torch.Generator | None = None) -> ViewParams:
        """Draw every random parameter for a batch, stage by stage, from ``generator`` (CPU default)."""
        dev = generator.device if generator is not None else CPU

        def uniform(*shape, lo=0.0, hi=1.0):
            return torch.rand(*shape, generator=generator, device=dev) * (hi - lo) + lo

        p = ViewParams(None, None, None, None, None, None, None)
        resize = self.size is not None and self.size != (height, width)
        if self.crop_scale != (1.0, 1.0) or self.flip_p > 0 or resize:
            p.boxes = sample_crops(batch, height, width, scale=self.crop_scale, ratio=self.crop_ratio,
                                   generator=generator)
            p.flip = uniform(batch) < self.flip_p
        ops = self._jitter_ops(channels)
        if self.jitter_p > 0 and ops:
            on = (uniform(batch) < self.jitter_p).unsqueeze(1)                     # (B, 1)
            lo = [max(0.0, 1.0 - a) for a in (self.brightness, self.contrast, self.saturation)] + [-self.hue]
            hi = [1.0 + a for a in (self.brightness, self.contrast, self.saturation)] + [self.hue]
            lo, hi = torch.tensor(lo, device=dev), torch.tensor(hi, device=dev)
            drawn = uniform(batch, 4) * (hi - lo) + lo                              # (B, 4)
            p.factors = torch.where(on, drawn, torch.tensor([1.0, 1.0, 1.0, 0.0], device=dev))
            p.order = torch.tensor(ops, device=dev)[uniform(batch, len(ops)).argsort(dim=1)]  # (B, K)
        if self.grayscale_p > 0 and channels == 3:
            p.gray = uniform(batch) < self.grayscale_p
        if self.blur_p > 0:
            p.blur = uniform(batch) < self.blur_p
            p.sigma = uniform(batch, lo=self.blur_sigma[0], hi=self.blur_sigma[1])
        return p

    def apply(self, x: torch.Tensor, p: ViewParams) -> torch.Tensor:
        """Apply drawn parameters to float images in [0, 1]. Shape: (B, C, H, W) -> (B, C, H_out, W_out)."""
        dev, owned = x.device, False                                                # owned: x is ours to modify
        if p.boxes is not None:
            x, owned = resized_crop(x, p.boxes, size=self.size, flip=p.flip), True  # (B, C, H_out, W_out)
        if p.factors is not None:
            f = p.factors.to(dev)
            x, owned = color_jitter(x, brightness=f[:, 0], contrast=f[:, 1], saturation=f[:, 2], hue=f[:, 3],
                                    order=p.order.to(dev)), True
        if p.gray is not None and x.shape[1] == 3:
            x, owned = torch.where(p.gray.to(dev).view(-1, 1, 1, 1), _gray(x).expand_as(x), x), True
        k = blur_kernel_size(*x.shape[2:])
        if p.blur is not None and k > 1:
            rows = p.blur.to(dev).nonzero().squeeze(1)                              # samples to blur
            if rows.numel():
                taps = gaussian_kernels(p.sigma.to(dev).index_select(0, rows), k)    # (R, K)
                blurred = _separable(x.index_select(0, rows), taps)
                x, owned = (x.index_copy_(0, rows, blurred) if owned else x.index_copy(0, rows, blurred)), True
        return x.clamp_(0.0, 1.0) if owned else x.clamp(0.0, 1.0)

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        check.images(x)
        b, c, h, w = x.shape
        params = self.sample(b, c, h, w, generator=generator)
        return self.apply(x.div(255.0) if x.dtype == torch.uint8 else x.float(), params)


def make_views(x: torch.Tensor, augment, *, n_views: int = 2, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n_views`` independent augmentations of every image, in ONE batched call of ``augment``.

    ``augment`` is any callable ``augment(x, generator=...)`` such as :class:`Augment` or a preset.

    Shape: (B, C, H, W) -> (B, V, C, H_out, W_out).

    Example::

        >>> import torch
        >>> x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
        >>> make_views(x, Augment(hue=0.0, saturation=0.0), n_views=3).shape
        torch.Size([4, 3, 1, 28, 28])
    """
    check.images(x)
    return repeat_views(x, augment, n_views=n_views, generator=generator)
