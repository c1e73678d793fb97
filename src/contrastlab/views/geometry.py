"""Random resized crop fused with horizontal flip: per-sample boxes, one separable resampling for the batch.

The crop is the Inception-style crop SimCLR uses (Chen et al. 2020, appendix A; Szegedy et al. 2015):
area fraction uniform in ``scale``, aspect ratio w/h log-uniform in ``ratio``, position uniform; the first
of 10 draws that fits the image is kept, and the whole image when none fits (as TensorFlow's
``sample_distorted_bounding_box`` that SimCLR calls). Boxes are continuous (sub-pixel), not rounded.

Crop, flip and resize are ONE linear map per sample, separable into a row matrix (H_out, H) and a column
matrix (W_out, W): ``out = M_y @ x @ M_x^T``, two batched matrix products. The matrices hold triangle
(bilinear) weights: exactly bilinear interpolation with border clamping when the crop is enlarged (as
``F.grid_sample(..., padding_mode="border", align_corners=False)``), and an antialiasing triangle filter
as wide as the reduction when it is shrunk (as Pillow's ``Image.resize(..., BILINEAR)``). A flip reverses
the column matrix. A full-image box at the input size gives identity matrices, so the output is exact.

Example::

    >>> import torch
    >>> from contrastlab.views import resized_crop
    >>> x = torch.arange(16.0).view(1, 1, 4, 4) / 15
    >>> full = torch.tensor([[0.0, 0.0, 4.0, 4.0]])                    # (top, left, height, width)
    >>> torch.equal(resized_crop(x, full), x)
    True
    >>> torch.equal(resized_crop(x, full, flip=torch.tensor([True])), x.flip(-1))
    True
    >>> resized_crop(x, torch.tensor([[1.0, 2.0, 3.0, 2.0]]), size=(6, 8)).shape   # enlarge a 3x2 crop
    torch.Size([1, 1, 6, 8])
"""

from __future__ import annotations

import math

import torch

from ..devices import CPU
from . import validation as check

__all__ = ["sample_crops", "resized_crop", "resize_matrix"]

ATTEMPTS = 10


def sample_crops(batch: int, height: int, width: int, *, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one Inception-style crop box per sample. Returns (B, 4) float32 ``(top, left, height, width)``.

    Example::

        >>> import torch
        >>> boxes = sample_crops(5, 28, 28, scale=(0.2, 1.0), generator=torch.Generator().manual_seed(0))
        >>> boxes.shape
        torch.Size([5, 4])
        >>> bool(((boxes[:, 2] * boxes[:, 3]) >= 0.2 * 28 * 28 - 1e-3).all())
        True
    """
    lo, hi = check.interval("scale", scale, high=1.0)
    rlo, rhi = check.interval("ratio", ratio)
    device = generator.device if generator is not None else CPU
    u = torch.rand(batch, ATTEMPTS, 2, generator=generator, device=device)         # (B, T, 2)
    pos = torch.rand(batch, 2, generator=generator, device=device)                 # (B, 2)
    area = height * width * (lo + (hi - lo) * u[..., 0])                           # (B, T)
    aspect = torch.exp(math.log(rlo) + (math.log(rhi) - math.log(rlo)) * u[..., 1])
    w, h = torch.sqrt(area * aspect), torch.sqrt(area / aspect)                     # (B, T)
    fits = (w <= width) & (h <= height)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)                        # first fitting draw
    found = fits.any(dim=1)
    h = torch.where(found, h.gather(1, first).squeeze(1), float(height))           # (B,)
    w = torch.where(found, w.gather(1, first).squeeze(1), float(width))
    top = pos[:, 0] * (height - h).clamp(min=0)
    left = pos[:, 1] * (width - w).clamp(min=0)
    return torch.stack([top, left, h, w], dim=1)


def resize_matrix(start: torch.Tensor, length: torch.Tensor, n_in: int, n_out: int,
                  flip: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample 1-d resampling matrices: output pixel k reads the segment [start, start + length).

    Enlarging (``length <= n_out`` for every sample, the usual case) scatters the two bilinear weights
    of each output pixel into a zero matrix; shrinking uses triangle taps widened by the reduction
    factor, normalised per row (border taps renormalised, which equals border clamping when enlarging).

    Shape: start, length, flip (B,) -> (B, n_out, n_in), rows summing to 1.

    Example::

        >>> import torch
        >>> resize_matrix(torch.tensor([0.0]), torch.tensor([2.0]), 2, 4)[0].tolist()   # 2 px -> 4 px
        [[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]]
    """
    step = (length / n_out).unsqueeze(1)                                            # (B, 1)
    k = torch.arange(n_out, dtype=start.dtype, device=start.device) + 0.5          # (n_out,)
    offset = k * step                                                               # (B, n_out)
    if flip is not None:
        offset = torch.where(flip.unsqueeze(1), length.unsqueeze(1) - offset, offset)
    src = start.unsqueeze(1) + offset - 0.5                                         # (B, n_out) pixel coords
    if bool((step <= 1.0).all()):                                                   # bilinear, border clamp
        src = src.clamp_(0.0, n_in - 1.0)
        left = src.floor()
        frac = (src - left).unsqueeze(2)                                            # (B, n_out, 1)
        left = left.long().unsqueeze(2)
        m = torch.zeros(src.shape[0], n_out, n_in, dtype=start.dtype, device=start.device)
        m.scatter_(2, left, 1.0 - frac)
        return m.scatter_add_(2, (left + 1).clamp_(max=n_in - 1), frac)
    width = step.clamp(min=1.0).unsqueeze(2)                                        # (B, 1, 1) filter half-width
    i = torch.arange(n_in, dtype=start.dtype, device=start.device)
    m = (1.0 - (src.unsqueeze(2) - i).abs_() / width).clamp_(min=0.0)             # (B, n_out, n_in)
    return m / m.sum(dim=2, keepdim=True)


def resized_crop(x: torch.Tensor, boxes: torch.Tensor, *, size=None, flip: torch.Tensor | None = None) -> torch.Tensor:
    """Crop each sample to its box, flip it horizontally where ``flip``, and resize to ``size``.

    ``boxes`` (B, 4) are ``(top, left, height, width)`` in pixels (pixel j covers [j, j + 1)), inside the
    image. ``size`` is an int, ``(height, width)`` or None (the input size).

    Shape: x (B, C, H, W) float, boxes (B, 4), flip (B,) bool -> (B, C, H_out, W_out).

    Example::

        >>> import torch
        >>> x = torch.rand(8, 3, 32, 32)
        >>> boxes = sample_crops(8, 32, 32, scale=(0.2, 1.0), generator=torch.Generator().manual_seed(0))
        >>> resized_crop(x, boxes, size=24, flip=torch.rand(8) < 0.5).shape
        torch.Size([8, 3, 24, 24])
    """
    if not x.is_floating_point() or x.dim() != 4:
        raise TypeError(f"`x` must be a floating-point (B, C, H, W) tensor, got dtype {x.dtype} and shape "
                        f"{tuple(x.shape)}")
    b, c, h, w = x.shape
    if boxes.shape != (b, 4):
        raise ValueError(f"`boxes` must have shape (B, 4) = ({b}, 4), got {tuple(boxes.shape)}")
    if flip is not None and flip.shape != (b,):
        raise ValueError(f"`flip` must have shape (B,) = ({b},), got {tuple(flip.shape)}")
    h_out, w_out = check.size(size) or (h, w)
    boxes = boxes.to(device=x.device, dtype=x.dtype)
    flip = None if flip is None else flip.to(x.device)
    rows = resize_matrix(boxes[:, 0], boxes[:, 2], h, h_out)                     # (B, H_out, H)
    cols = resize_matrix(boxes[:, 1], boxes[:, 3], w, w_out, flip)               # (B, W_out, W)
    out = torch.bmm(x.reshape(b, c * h, w), cols.transpose(1, 2))                 # (B, C*H, W_out)
    return torch.matmul(rows.unsqueeze(1), out.view(b, c, h, w_out))              # (B, C, H_out, W_out)
