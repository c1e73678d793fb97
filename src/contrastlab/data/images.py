"""`ImageData`: the one container every image dataset loads into and the trainer reads.

Example::

    >>> import torch
    >>> from contrastlab.data import ImageData
    >>> data = ImageData(name="toy", x=torch.zeros(6, 1, 4, 4, dtype=torch.uint8),
    ...                  y=torch.tensor([0, 1, 2, 0, 1, 2]), x_test=None, y_test=None,
    ...                  classes=("a", "b", "c"))
    >>> data.channels, data.image_size, data.num_classes
    (1, (4, 4), 3)
    >>> data
    ImageData(name='toy', x=(6, 1, 4, 4), test=None, classes=3)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["ImageData"]

_CHANNELS = (1, 3)


def _images(name: str, value, *, like: torch.Tensor | None = None) -> torch.Tensor:
    """A non-empty (N, C, H, W) uint8 tensor (or a source of such images, see `stream.py`) with C in {1, 3}; same
    (C, H, W) as ``like``."""
    from .stream import is_source
    if is_source(value):
        if like is not None and value.shape[1:] != like.shape[1:]:
            raise ValueError(f"`{name}` must have the same (C, H, W) as `x`, {tuple(like.shape[1:])}, "
                             f"got {tuple(value.shape[1:])}")
        return value
    if not torch.is_tensor(value):
        raise TypeError(f"`{name}` must be a torch.Tensor of shape (N, C, H, W), got {type(value).__name__}")
    if value.dtype != torch.uint8:
        raise TypeError(f"`{name}` must have dtype torch.uint8, got {value.dtype}; "
                        f"scale to 0..255 and convert with `.to(torch.uint8)`")
    if value.dim() != 4:
        raise ValueError(f"`{name}` must have shape (N, C, H, W), got a {value.dim()}-d tensor of shape "
                         f"{tuple(value.shape)}")
    n, c, h, w = value.shape
    if c not in _CHANNELS:
        raise ValueError(f"`{name}` must have C in {{1, 3}} channels (shape (N, C, H, W)), got C={c} "
                         f"in shape {tuple(value.shape)}")
    if n == 0 or h == 0 or w == 0:
        raise ValueError(f"`{name}` must not be empty, got shape {tuple(value.shape)}")
    if like is not None and value.shape[1:] != like.shape[1:]:
        raise ValueError(f"`{name}` must have the same (C, H, W) as `x`, {tuple(like.shape[1:])}, "
                         f"got {tuple(value.shape[1:])}")
    # the standard strides exactly, also on axes of size 1 (one channel): a batch of it then has the memory format
    # of a batch decoded from disk, and convolutions take the same kernels (bit-identical streamed or loaded)
    return value if value.stride() == _standard_strides(value.shape) else value.clone(
        memory_format=torch.contiguous_format)


def _standard_strides(shape) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def _ids(name: str, value, n: int, of: str) -> torch.Tensor:
    """A (n,) int64 tensor."""
    if not torch.is_tensor(value):
        raise TypeError(f"`{name}` must be a torch.Tensor of shape ({n},), got {type(value).__name__}")
    if value.dtype != torch.int64:
        raise TypeError(f"`{name}` must have dtype torch.int64, got {value.dtype}; convert with `.long()`")
    if value.dim() != 1 or value.shape[0] != n:
        raise ValueError(f"`{name}` must have shape (N,) = ({n},) like `{of}`, got {tuple(value.shape)}")
    return value.contiguous()


def _label_range(name: str, value: torch.Tensor, num_classes: int | None) -> None:
    low = int(value.min())
    if low < 0:
        raise ValueError(f"`{name}` must hold labels >= 0, got {low}")
    if num_classes is not None:
        high = int(value.max())
        if high >= num_classes:
            raise ValueError(f"`{name}` must hold labels in [0, {num_classes}) for {num_classes} `classes`, "
                             f"got {high}")


@dataclass(frozen=True)
class ImageData:
    """Train images (and optionally a test split, labels, class names and group ids) as uint8 tensors.

    ``x`` and ``x_test`` are tensors in memory, or :class:`~contrastlab.data.stream.ImageSource` stacks that decode
    from disk on demand (``x[idx]`` is a tensor either way; ``streamed`` says which).

    Shape:
        x: (N, C, H, W) uint8, C in {1, 3}. y, group: (N,) int64. x_test: (M, C, H, W). y_test: (M,).

    Labels are all or nothing: with ``y`` given, ``x_test`` needs ``y_test``; without ``y``,
    neither ``y_test`` nor ``classes`` may be given. ``group`` marks multi-instance positives
    (e.g. one patient's scans) with one id per training image. ``notes`` records facts about how
    the data was made (splits held out, files skipped, resizing) for the run's config.
    """

    name: str                                  # "fashion-mnist", "digits", "npz:/path", "folder:/path"
    x: torch.Tensor                            # (N, C, H, W) uint8
    y: torch.Tensor | None                     # (N,) int64 in [0, num_classes)
    x_test: torch.Tensor | None                # (M, C, H, W) uint8
    y_test: torch.Tensor | None                # (M,) int64
    classes: tuple[str, ...] | None
    group: torch.Tensor | None = None          # (N,) int64
    notes: tuple[str, ...] = ()

    modality = "image"                         # (not a field) what kind of data this is; see TextData

    def __len__(self) -> int:
        return self.x.shape[0]

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"`name` must be a non-empty str, got {self.name!r}")
        fix = {"x": _images("x", self.x)}
        n = fix["x"].shape[0]
        if self.x_test is not None:
            fix["x_test"] = _images("x_test", self.x_test, like=fix["x"])
        if self.y is None:
            for other in ("y_test", "classes"):
                if getattr(self, other) is not None:
                    raise ValueError(f"`{other}` must be None when `y` is None (unlabelled data), "
                                     f"got {type(getattr(self, other)).__name__}")
        else:
            fix["y"] = _ids("y", self.y, n, "x")
            if self.x_test is not None and self.y_test is None:
                raise ValueError("`y_test` must be given when `y` and `x_test` are (labels are all or nothing), "
                                 "got None")
        if self.y_test is not None:
            if self.x_test is None:
                raise ValueError("`y_test` must be None when `x_test` is None, got a tensor")
            fix["y_test"] = _ids("y_test", self.y_test, fix["x_test"].shape[0], "x_test")
        if self.classes is not None:
            if not isinstance(self.classes, tuple) or not all(isinstance(c, str) for c in self.classes):
                raise TypeError(f"`classes` must be a tuple of str, got {self.classes!r}")
            if not self.classes or len(set(self.classes)) != len(self.classes):
                raise ValueError(f"`classes` must be non-empty and unique, got {self.classes!r}")
        k = None if self.classes is None else len(self.classes)
        for key in ("y", "y_test"):
            if key in fix:
                _label_range(key, fix[key], k)
        if self.group is not None:
            fix["group"] = _ids("group", self.group, n, "x")
        if not isinstance(self.notes, tuple) or not all(isinstance(s, str) for s in self.notes):
            raise TypeError(f"`notes` must be a tuple of str, got {self.notes!r}")
        for key, value in fix.items():
            object.__setattr__(self, key, value)      # contiguous copies where needed; frozen otherwise

    @property
    def streamed(self) -> bool:
        """Whether the images stay on disk (decoded on demand) rather than in memory."""
        from .stream import is_source
        return is_source(self.x)

    @property
    def channels(self) -> int:
        return int(self.x.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W)."""
        return int(self.x.shape[2]), int(self.x.shape[3])

    @property
    def num_classes(self) -> int | None:
        """len(classes); without names, 1 + the largest label; None when unlabelled."""
        if self.y is None:
            return None
        if self.classes is not None:
            return len(self.classes)
        top = int(self.y.max())
        if self.y_test is not None:
            top = max(top, int(self.y_test.max()))
        return top + 1

    def __repr__(self) -> str:
        test = None if self.x_test is None else int(self.x_test.shape[0])
        extra = "" if self.group is None else f", groups={int(self.group.unique().numel())}"
        return (f"ImageData(name={self.name!r}, x={tuple(self.x.shape)}, test={test}, "
                f"classes={self.num_classes}{extra})")
