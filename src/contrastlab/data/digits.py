"""scikit-learn's handwritten digits (the UCI "Optical Recognition of Handwritten Digits" test set,
Alpaydin & Kaynak 1998): 1,797 grayscale 8x8 images, 10 classes. Tiny, offline, for fast tests.

Pixel counts 0..16 are scaled to 0..255 (``round(v * 255 / 16)``); a fixed stratified 25% test
split (seed 0) is held out.

Example::

    >>> from contrastlab.data import load_images
    >>> data = load_images("digits")
    >>> data.x.dtype, data.image_size, data.classes[:3]
    (torch.uint8, (8, 8), ('0', '1', '2'))
"""

from __future__ import annotations

import numpy as np
import torch

from .images import ImageData
from .registry import register_dataset
from .split import stratified_holdout

__all__ = ["load_digits", "TEST_FRACTION"]

TEST_FRACTION = 0.25


@register_dataset("digits", description="scikit-learn digits, 1797 8x8 gray, 10 classes")
def load_digits(path: str | None = None, *, root: str | None = None, image_size: int | None = None) -> ImageData:
    """The digits as :class:`ImageData`: 1348 train and 449 test images (1, 8, 8), classes "0".."9".

    ``root`` and ``image_size`` are accepted for the loader protocol; resizing is done by
    :func:`contrastlab.data.load_images`.
    """
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]       # (1797, 1, 8, 8)
    y = bunch.target.astype(np.int64)                                         # (1797,)
    train, test = stratified_holdout(y, fraction=TEST_FRACTION, seed=0)
    t = torch.from_numpy
    return ImageData("digits", t(np.ascontiguousarray(x[train])), t(y[train]), t(np.ascontiguousarray(x[test])),
                     t(y[test]), tuple(str(d) for d in range(10)),
                     notes=(f"fixed stratified split: {len(test)} of {len(y)} images held out for test "
                            f"({TEST_FRACTION:.0%}, seed 0)",))
