"""Raw-pixel baselines: the same kNN and linear probe on flattened, standardised pixels, the floor
any learned embedding should clear."""

from __future__ import annotations

import torch

from . import _checks as check
from .knn import knn_top1
from .linear import feature_moments, linear_probe

__all__ = ["pixel_baselines"]


def _pixels(name: str, x) -> torch.Tensor:
    if not torch.is_tensor(x) or x.is_complex() or x.dtype == torch.bool:
        what = f"dtype {x.dtype}" if torch.is_tensor(x) else type(x).__name__
        raise TypeError(f"`{name}` must be a real tensor of images (N, C, H, W), got {what}")
    if x.dim() < 2 or x.numel() == 0:
        raise ValueError(f"`{name}` must have a non-empty shape (N, ...), got {tuple(x.shape)}")
    return x.reshape(x.shape[0], -1).float()                                  # (N, C*H*W), a new tensor


def pixel_baselines(x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor, *,
                    k: int = 200, temperature: float = 0.1, num_classes: int | None = None, epochs: int = 100,
                    weight_decay: float = 1e-4, chunk_size: int = 1024) -> dict:
    """kNN and linear-probe top-1 on pixels, each flattened and standardised with the train set's
    per-pixel mean and std (see :func:`contrastlab.eval.knn_top1`, :func:`contrastlab.eval.linear_probe`).

    Example::

        >>> import torch
        >>> y = torch.arange(40) % 2
        >>> x = (torch.rand(40, 1, 3, 3, generator=torch.Generator().manual_seed(0)) * 100
        ...      + 150 * y.view(-1, 1, 1, 1)).to(torch.uint8)
        >>> pixel_baselines(x[:30], y[:30], x[30:], y[30:], k=5, epochs=20)
        {'pixels_knn_top1': 1.0, 'pixels_linear_top1': 1.0}

    Shape:
        x: (N, C, H, W) (uint8 or float; any (N, ...) works); y: (N,); x_test: (M, C, H, W); y_test: (M,).
        Output: {"pixels_knn_top1": float, "pixels_linear_top1": float} in [0, 1].
    """
    xtr, xte = _pixels("x", x), _pixels("x_test", x_test)
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(f"`x` and `x_test` must have the same number of pixels per image, got "
                         f"{xtr.shape[1]} and {xte.shape[1]}")
    c = check.optional_num_classes(num_classes)
    ytr = check.class_labels("y", y, xtr.shape[0], rows_of="x", num_classes=c)
    yte = check.class_labels("y_test", y_test, xte.shape[0], rows_of="x_test", num_classes=c)
    c = max(int(ytr.max()), int(yte.max())) + 1 if c is None else c
    mean, std = feature_moments(xtr)
    mean, std = mean.float(), std.float()
    xtr, xte = (xtr - mean) / std, (xte.to(mean.device) - mean) / std         # (N, P), (M, P)
    knn = knn_top1(xtr, ytr, xte, yte, k=k, temperature=temperature, num_classes=c, chunk_size=chunk_size)
    lin = linear_probe(xtr, ytr, xte, yte, num_classes=c, epochs=epochs, weight_decay=weight_decay)
    return {"pixels_knn_top1": knn, "pixels_linear_top1": lin["top1"]}
