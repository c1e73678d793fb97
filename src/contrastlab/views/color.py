"""Colour operations on batches, with one factor per sample: brightness, contrast, saturation, hue, grayscale.

Every function takes floating-point images (B, C, H, W) in [0, 1] and returns the same shape, clamped to
[0, 1] as SimCLR does after each colour operation (Chen et al. 2020, "A Simple Framework for Contrastive
Learning of Visual Representations", appendix A). Factors are a number (the same for every sample) or a
(B,) tensor. The definitions are the usual ones:

* brightness ``f``: ``f * x`` (multiplicative, as SimCLR v2 and torchvision; SimCLR v1 added a delta);
* contrast ``f``: blend with the image's mean gray level, ``f * x + (1 - f) * mean(gray(x))``;
* saturation ``f``: blend with the pixel's gray level, ``f * x + (1 - f) * gray(x)`` (RGB only);
* hue ``h`` in [-0.5, 0.5]: an exact HSV hue shift by ``h`` turns (value and HSV saturation unchanged), the
  same as ``colorsys.rgb_to_hsv`` -> ``(hue + h) % 1`` -> ``colorsys.hsv_to_rgb`` per pixel (RGB only);
* gray: ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B``.

Example::

    >>> import torch
    >>> from contrastlab.views import adjust_brightness, adjust_hue, rgb_to_grayscale
    >>> x = torch.tensor([1.0, 0.5, 0.0]).view(1, 3, 1, 1)          # one orange pixel
    >>> adjust_brightness(x, 0.5).flatten().tolist()
    [0.5, 0.25, 0.0]
    >>> adjust_hue(x, torch.tensor([1 / 3])).flatten().tolist()      # 120 degrees on: red -> green -> blue
    [0.0, 1.0, 0.5]
    >>> round(rgb_to_grayscale(x).item(), 4)
    0.5925
"""

from __future__ import annotations

import torch

from . import validation as check

__all__ = ["GRAY_WEIGHTS", "JITTER_OPS", "to_float", "rgb_to_grayscale", "adjust_brightness", "adjust_contrast",
           "adjust_saturation", "adjust_hue", "color_jitter"]

#: ITU-R BT.601 luma weights for R, G, B.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)
#: The jitter operations, in the order of their ids in :func:`color_jitter`'s ``order``.
JITTER_OPS = ("brightness", "contrast", "saturation", "hue")


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [0, 1] (``x / 255``); floating-point images -> float32 (values kept).

    Example::

        >>> import torch
        >>> to_float(torch.tensor([[[[0, 51, 255]]]], dtype=torch.uint8)).flatten().tolist()
        [0.0, 0.20000000298023224, 1.0]
    """
    check.images(x)
    return x.div(255.0) if x.dtype == torch.uint8 else x.float()


def _gray(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 1, H, W); a 1-channel image is its own gray level (returned as is)."""
    if x.shape[1] == 1:
        return x
    r, g, b = GRAY_WEIGHTS
    return (x[:, 0:1] * r).add_(x[:, 1:2], alpha=g).add_(x[:, 2:3], alpha=b)


def _blend(x: torch.Tensor, alpha: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``clamp(alpha * x + (1 - alpha) * target)``; exactly ``x`` where ``alpha == 1`` (x in [0, 1])."""
    return torch.addcmul(target * (1.0 - alpha), x, alpha).clamp_(0.0, 1.0)


def _hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Exact HSV hue rotation of (B, 3, H, W) by ``shift`` (B, 1, 1, 1) turns, |shift| <= 0.5.

    Value V = max and chroma C = max - min are invariant, so no full HSV round trip is needed: the hue
    in sextants comes from the largest channel (R, then G on ties, as colorsys), and each channel is
    rebuilt as ``V - C * clamp(d - 1, 0, 1)`` with d the circular distance of the new hue to the
    channel's own hue (R 0, G 2, B 4 sextants). Written to keep the number of full-size passes low.
    """
    r, g, b = x.unbind(1)                                                # (B, H, W) each
    v = torch.maximum(torch.maximum(r, g), b)
    chroma = v - torch.minimum(torch.minimum(r, g), b)
    num = torch.where(r == v, g - b, torch.where(g == v, (b - r).add_(chroma, alpha=2.0),
                                                 (r - g).add_(chroma, alpha=4.0)))
    hue = num.div_(chroma.clamp(min=1e-30)).add_(6.0 * shift.view(-1, 1, 1))   # [-4, 8] sextants
    centre = torch.tensor([0.0, 2.0, 4.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    dist = (hue.unsqueeze(1) - centre).abs_()                            # (B, 3, H, W) in [0, 8]
    dist = torch.minimum(dist, (6.0 - dist).abs_())                      # circular distance, period 6
    ramp = dist.sub_(1.0).clamp_(0.0, 1.0)
    return torch.addcmul(v.unsqueeze(1), chroma.unsqueeze(1), ramp, value=-1.0)   # in [min, max]


def _checked(x, fn: str, *, rgb: bool = False) -> torch.Tensor:
    check.images(x)
    if not x.is_floating_point():
        raise TypeError(f"`x` must be floating point in [0, 1] for `{fn}`, got dtype {x.dtype}; use `to_float(x)`")
    if rgb and x.shape[1] != 3:
        raise ValueError(f"`{fn}` needs RGB input (C=3), got C={x.shape[1]}")
    return x


def rgb_to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """BT.601 gray level, (B, 3, H, W) -> (B, 1, H, W); a (B, 1, H, W) input is returned unchanged.

    Example::

        >>> import torch
        >>> rgb_to_grayscale(torch.ones(2, 3, 4, 4)).shape
        torch.Size([2, 1, 4, 4])
    """
    return _gray(_checked(x, "rgb_to_grayscale"))


def adjust_brightness(x: torch.Tensor, factor) -> torch.Tensor:
    """``clamp(factor * x)`` with ``factor >= 0`` per sample. Shape: (B, C, H, W) -> (B, C, H, W).

    Example::

        >>> import torch
        >>> adjust_brightness(torch.full((2, 1, 1, 1), 0.6), torch.tensor([0.5, 2.0])).flatten().tolist()
        [0.30000001192092896, 1.0]
    """
    _checked(x, "adjust_brightness")
    f = check.factors("factor", factor, x.shape[0], x)
    return _blend(x, f, torch.zeros((), dtype=x.dtype, device=x.device))


def adjust_contrast(x: torch.Tensor, factor) -> torch.Tensor:
    """Blend with the image's mean gray level: ``clamp(factor * x + (1 - factor) * mean(gray(x)))``.

    Example::

        >>> import torch
        >>> x = torch.tensor([0.2, 0.6]).view(1, 1, 1, 2)                  # mean 0.4
        >>> [round(v, 4) for v in adjust_contrast(x, 0.5).flatten().tolist()]
        [0.3, 0.5]
    """
    _checked(x, "adjust_contrast")
    f = check.factors("factor", factor, x.shape[0], x)
    return _blend(x, f, _gray(x).mean(dim=(1, 2, 3), keepdim=True))


def adjust_saturation(x: torch.Tensor, factor) -> torch.Tensor:
    """Blend with the per-pixel gray level: ``clamp(factor * x + (1 - factor) * gray(x))``; RGB only.

    Example::

        >>> import torch
        >>> x = torch.rand(2, 3, 4, 4)
        >>> y = adjust_saturation(x, 0.0)                                 # fully desaturated
        >>> bool((y[:, 0] == y[:, 1]).all() and (y[:, 1] == y[:, 2]).all())
        True
    """
    _checked(x, "adjust_saturation", rgb=True)
    f = check.factors("factor", factor, x.shape[0], x)
    return _blend(x, f, _gray(x))


def adjust_hue(x: torch.Tensor, factor) -> torch.Tensor:
    """Shift the HSV hue by ``factor`` turns, in [-0.5, 0.5] per sample (exact, as colorsys); RGB only.

    Example::

        >>> import torch
        >>> red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
        >>> adjust_hue(red, 0.5).flatten().tolist()                      # half a turn: cyan
        [0.0, 1.0, 1.0]
    """
    _checked(x, "adjust_hue", rgb=True)
    f = check.factors("factor", factor, x.shape[0], x)
    if not bool((f.abs() <= 0.5).all()):
        raise ValueError(f"`factor` must be in [-0.5, 0.5] turns, got values up to {float(f.abs().max()):g}")
    return _hue(x, f)


def color_jitter(x: torch.Tensor, *, brightness: torch.Tensor, contrast: torch.Tensor, saturation: torch.Tensor,
                 hue: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Colour jitter with per-sample factors, each sample in its own order, the whole batch at once.

    ``order`` (B, K) holds op ids (indices into :data:`JITTER_OPS`): sample i gets ``order[i, 0]`` first.
    Brightness, contrast and saturation are all affine colour maps ``A x + t`` with a per-sample (C, C)
    matrix (``f I``, ``f I``, ``f I + (1 - f) 1 w^T`` with w the gray weights) and offset (the mean gray
    level ``(1 - f) m`` for contrast, else 0), so step t is ONE batched ``baddbmm`` with each sample's own
    map, then a clamp, then the hue shift of the samples whose step t is hue. A neutral factor (1, 1, 1 or
    hue 0) leaves a sample exactly unchanged (identity matrix, zero offset). Saturation and hue need C = 3.

    Shape: x (B, C, H, W); brightness, contrast, saturation, hue (B,); order (B, K) int64 -> (B, C, H, W).

    Example::

        >>> import torch
        >>> x = torch.rand(4, 3, 8, 8)
        >>> ones, zeros = torch.ones(4), torch.zeros(4)
        >>> order = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0], [1, 0, 3, 2], [2, 3, 0, 1]])
        >>> torch.equal(color_jitter(x, brightness=ones, contrast=ones, saturation=ones, hue=zeros,
        ...                          order=order), x)
        True
    """
    batch, channels, height, width = x.shape
    if channels != 3 and bool(((order == 2) | (order == 3)).any()):
        raise ValueError(f"`order` asks for saturation or hue, which need RGB input (C=3), got C={channels}")
    col = (batch, 1, 1)
    b, c, s = (f.to(x.dtype).view(col) for f in (brightness, contrast, saturation))
    h = hue.to(x.dtype)
    if not bool((h.abs() <= 0.5).all()):
        raise ValueError(f"`hue` must be in [-0.5, 0.5] turns, got values up to {float(h.abs().max()):g}")
    weights = (torch.tensor(GRAY_WEIGHTS, dtype=x.dtype, device=x.device) if channels == 3
               else torch.ones(1, dtype=x.dtype, device=x.device))                  # (C,)
    eye = torch.eye(channels, dtype=x.dtype, device=x.device)
    for step in order.unbind(1):                                                    # (B,) op ids
        op = step.view(col)
        alpha = torch.where(op == 0, b, torch.where(op == 1, c, torch.where(op == 2, s, torch.ones_like(b))))
        flat = x.reshape(batch, channels, height * width)                           # (B, C, HW)
        mean_gray = (flat.mean(dim=2) @ weights).view(col)                          # (B, 1, 1)
        matrix = alpha * eye + ((op == 2) * (1.0 - alpha)) * weights.view(1, 1, channels)   # (B, C, C)
        offset = ((op == 1) * (1.0 - alpha) * mean_gray).expand(batch, channels, 1)  # (B, C, 1)
        x = torch.baddbmm(offset, matrix, flat).clamp_(0.0, 1.0).view(batch, channels, height, width)
        rows = ((step == 3) & (h != 0)).nonzero().squeeze(1)                        # samples shifting hue now
        if rows.numel():
            x.index_copy_(0, rows, _hue(x.index_select(0, rows), h.index_select(0, rows).view(-1, 1, 1, 1)))
    return x
