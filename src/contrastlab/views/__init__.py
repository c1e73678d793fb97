"""Positive-pair makers: batched image augmentation (SimCLR's recipe) and named presets.

Everything works on a whole batch at once with per-sample random parameters drawn from one
``torch.Generator``: the same seed gives bit-identical views.

Example::

    >>> import torch
    >>> from contrastlab.views import make_views, preset
    >>> x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    >>> views = make_views(x, preset("simclr"), n_views=2, generator=torch.Generator().manual_seed(0))
    >>> views.shape                                                  # (B, V, C, H, W), float32 in [0, 1]
    torch.Size([16, 2, 3, 32, 32])
"""

from .augment import Augment, ViewParams, make_views
from .blur import blur_kernel_size, gaussian_blur, gaussian_kernels
from .color import (GRAY_WEIGHTS, JITTER_OPS, adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation,
                    color_jitter, rgb_to_grayscale, to_float)
from .geometry import resize_matrix, resized_crop, sample_crops
from .presets import PRESETS, list_presets, preset, register_preset, scale_strength

__all__ = [
    "Augment", "ViewParams", "make_views", "preset", "list_presets", "register_preset", "scale_strength", "PRESETS",
    "to_float", "rgb_to_grayscale", "adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue",
    "color_jitter", "GRAY_WEIGHTS", "JITTER_OPS", "gaussian_blur", "gaussian_kernels", "blur_kernel_size",
    "resized_crop", "sample_crops", "resize_matrix",
]

from .series import (SERIES_PRESETS, SeriesAugment, make_series_views, overlapping_crops, series_preset,
                     take_segments)

__all__ += ["SeriesAugment", "SERIES_PRESETS", "series_preset", "make_series_views", "overlapping_crops",
            "take_segments"]
