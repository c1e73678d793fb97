"""The image dataset registry and :func:`load_images`, which turns a spec string into :class:`ImageData`.

A spec is a registered name (``"fashion-mnist"``, ``"digits"``), ``"NAME:PATH"`` for loaders that
read user files (``"npz:data.npz"``, ``"folder:photos/"``), or a bare path whose suffix a loader
claims (``"data.npz"``). Loaders register themselves; nothing here branches on their names.

Example::

    >>> from contrastlab.data import list_datasets, load_images
    >>> "digits" in list_datasets()
    True
    >>> load_images("digits")
    ImageData(name='digits', x=(1348, 1, 8, 8), test=449, classes=10)
    >>> load_images("digits", image_size=16).image_size
    (16, 16)
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from dataclasses import dataclass
from typing import Callable

from . import limits
from .images import ImageData
from .resize import fit_square
from .specs import check_new_names, resolve

__all__ = ["DatasetSpec", "DATASETS", "register_dataset", "list_datasets", "load_images"]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    loader: Callable[..., ImageData]      # loader(path: str | None, *, root, image_size) -> ImageData
    aliases: tuple[str, ...]
    takes_path: bool                      # spec form "NAME:PATH"
    suffixes: tuple[str, ...]             # bare paths ending in one of these
    description: str


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(name: str, *, aliases: tuple[str, ...] = (), takes_path: bool = False,
                     suffixes: tuple[str, ...] = (), description: str = ""):
    """Function decorator adding an image loader to :data:`DATASETS` under ``name`` (and ``aliases``)."""
    check_new_names(DATASETS, name, aliases, kind="dataset")

    def add(loader):
        DATASETS[name] = DatasetSpec(name, loader, tuple(aliases), takes_path, tuple(suffixes), description)
        return loader

    return add


def list_datasets() -> list[str]:
    """Registered dataset names (aliases not included)."""
    return sorted(DATASETS)


def _resolve(spec: str) -> tuple[DatasetSpec, str | None]:
    return resolve(DATASETS, spec, kind="dataset", folder_prefix="folder")


def load_images(spec: str, *, root: str | None = None, image_size: int | None = None) -> ImageData:
    """Load an image dataset by spec: a registered name, ``"npz:PATH"`` / ``"PATH.npz"``, ``"folder:PATH"``.

    Args:
        spec: what to load; see :func:`list_datasets` and the module docstring.
        root: folder that named datasets are looked for in first (e.g. the four Fashion-MNIST files).
        image_size: when given, every image is resized so its shorter side is ``image_size`` and
            centre-cropped to ``image_size x image_size``; otherwise the native size is kept
            (folders of mixed sizes choose one, see :func:`contrastlab.data.folder.load_folder`). At most
            :data:`~contrastlab.data.limits.MAX_IMAGE_SIZE`, and the resized images must fit in half the
            available memory (a ValueError says how much they would need).

    Returns:
        :class:`ImageData` with uint8 (N, C, H, W) images; ``notes`` says how it was made.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"`spec` must be a non-empty str, got {spec!r}")
    if image_size is not None and (not isinstance(image_size, numbers.Integral) or isinstance(image_size, bool)
                                   or image_size < 1):
        raise ValueError(f"`image_size` must be a positive int or None, got {image_size!r}")
    if image_size is not None and image_size > limits.MAX_IMAGE_SIZE:
        raise ValueError(f"`image_size` must be at most {limits.MAX_IMAGE_SIZE} pixels on a side, got "
                         f"{image_size}x{image_size} images")
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"`root` must be a str path or None, got {type(root).__name__}")
    ds, path = _resolve(spec)
    data = ds.loader(path, root=None if root is None else os.fspath(root), image_size=image_size)
    if image_size is not None and data.image_size != (image_size, image_size):
        n = len(data.x) + (0 if data.x_test is None else len(data.x_test))
        limits.check_image_bytes("`image_size`", n=n, channels=data.channels, size=image_size)
        before = "x".join(map(str, data.image_size))
        fit = lambda t: None if t is None else fit_square(t, image_size)          # noqa: E731
        data = dataclasses.replace(data, x=fit(data.x), x_test=fit(data.x_test), notes=data.notes + (
            f"resized from {before} to {image_size}x{image_size} (shorter side, centre crop, bilinear)",))
    return data
