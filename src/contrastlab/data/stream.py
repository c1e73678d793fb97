"""Images that stay on disk: :class:`ImageSource`, a random-access stack of uint8 images decoded on demand.

:class:`~contrastlab.data.ImageData` holds either a uint8 tensor (the images in memory) or an `ImageSource` (a
folder streamed, WebDataset shards, a Hugging Face dataset). A source reads like the tensor it stands for:
``x.shape`` is (N, C, H, W), ``x[idx]`` decodes those images into a uint8 tensor, ``len(x)`` is N, and
``x.subset(idx)`` is a lazy source of some of them (train / test splits, the probe bank). Decoding an image is a
pure function of its index, so the same indices give the same pixels whether a dataset is streamed or loaded:
training on either is bit-identical, and a run killed mid-epoch resumes at the same example.

While the trainer runs, :func:`prefetching` decodes the next steps' batches in DataLoader worker processes
(``workers``), in pinned memory when the batches go to a GPU; ``x[idx]`` then takes the batch that was decoded
ahead instead of decoding it again. Memory stays at a few batches, whatever the size of the dataset.

Example::

    >>> import numpy as np, torch
    >>> class Squares(ImageSource):                      # image i: a 4x4 gray image filled with i
    ...     def decode(self, i):
    ...         return np.full((1, 4, 4), i, dtype=np.uint8)
    ...     def describe(self, i):
    ...         return f"square {i}"
    >>> x = Squares(n=10, channels=1, size=(4, 4), name="squares")
    >>> x.shape, x[torch.tensor([3, 1])][:, 0, 0, 0].tolist()
    (torch.Size([10, 1, 4, 4]), [3, 1])
    >>> test = x.subset(torch.tensor([7, 8, 9]))
    >>> len(test), test[1:][:, 0, 0, 0].tolist()
    (3, [8, 9])
    >>> with prefetching(x, [torch.tensor([0, 2]), torch.tensor([4, 6])], workers=0):
    ...     x[torch.tensor([0, 2])][:, 0, 0, 0].tolist()
    [0, 2]
"""
from __future__ import annotations

import contextlib
import numbers
import os
from collections import deque
from typing import Iterable

import numpy as np
import torch

from ..devices import CPU

__all__ = ["ImageSource", "UnreadableImage", "is_source", "take", "prefetching", "batches", "default_workers",
           "find_unreadable"]

MAX_AUTO_WORKERS = 8


class UnreadableImage(ValueError):
    """An image of a streamed source could not be decoded (the file changed or broke after the dataset was read)."""


def is_source(x) -> bool:
    """Whether `x` is an :class:`ImageSource` (images on disk) rather than a tensor of images in memory."""
    return isinstance(x, ImageSource)


def default_workers() -> int:
    """DataLoader workers that decode: one per core this process may use (beside the main one), at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:                                    # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_AUTO_WORKERS, cores))


def _as_index(key, n: int) -> np.ndarray:
    """Any tensor-style index (int tensor, list, numpy array, slice, bool mask) -> int64 positions in [0, n)."""
    if isinstance(key, slice):
        return np.arange(n, dtype=np.int64)[key]
    if torch.is_tensor(key):
        key = key.detach().cpu().numpy()
    idx = np.asarray(key)
    if idx.size == 0:
        return np.zeros(0, dtype=np.int64)
    if idx.dtype == bool:
        if idx.shape != (n,):
            raise IndexError(f"a boolean mask must have shape ({n},), got {idx.shape}")
        return np.flatnonzero(idx).astype(np.int64)
    if idx.dtype.kind not in "iu":
        raise IndexError(f"images are indexed by integers, slices or boolean masks, got dtype {idx.dtype}")
    idx = idx.astype(np.int64).reshape(-1)
    bad = (idx < -n) | (idx >= n)
    if bad.any():
        raise IndexError(f"index {int(idx[bad][0])} is out of range for {n} images")
    return np.where(idx < 0, idx + n, idx)


class ImageSource:
    """N images of one shape (C, H, W), C in {1, 3}, uint8, decoded on demand by :meth:`decode`.

    Subclasses implement ``decode(i) -> np.ndarray (C, H, W) uint8`` (image ``i`` of the *whole* source) and
    ``describe(i) -> str`` (its file or key, for error messages). Everything else (indexing, subsets, prefetching)
    is shared. A subset keeps a reference to its parent's decoder and a table of positions.
    """

    dtype = torch.uint8
    device = CPU                                              # decoded images are host tensors
    ndim = 4

    def __init__(self, *, n: int, channels: int, size: tuple[int, int], name: str):
        if not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"`n` must be a positive int, got {n!r}")
        if channels not in (1, 3):
            raise ValueError(f"`channels` must be 1 or 3, got {channels!r}")
        self.name = name
        self._rows = np.arange(int(n), dtype=np.int64)       # positions in the whole source
        self._shape = torch.Size((int(n), int(channels), int(size[0]), int(size[1])))
        self._ahead: deque | None = None                      # (positions, batch) decoded ahead, in order
        self.read_ahead = 0                                   # batches served from what workers decoded ahead

    # -- what subclasses implement ---------------------------------------------------------------------------
    def decode(self, i: int) -> np.ndarray:                   # (C, H, W) uint8
        raise NotImplementedError

    def describe(self, i: int) -> str:
        return f"image {i}"

    # -- tensor-like reading -----------------------------------------------------------------------------------
    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self._rows), *self._shape[1:]))

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return 4

    def numel(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return len(self._rows)

    def contiguous(self) -> "ImageSource":
        return self

    def subset(self, key) -> "ImageSource":
        """A lazy source of the images ``key`` selects (no pixels are read)."""
        rows = self._rows[_as_index(key, len(self))]
        if len(rows) == 0:
            raise ValueError(f"a subset of {self.name} must hold at least one image, got an empty selection")
        out = object.__new__(type(self))
        out.__dict__.update(self.__dict__)
        out._rows, out._ahead = rows, None
        return out

    def positions(self, key=slice(None)) -> np.ndarray:
        """Positions in the whole source of the images ``key`` selects (what :meth:`decode` takes)."""
        return self._rows[_as_index(key, len(self))]

    def read(self, rows: np.ndarray) -> torch.Tensor:
        """Decode the images at whole-source positions ``rows`` into a new (B, C, H, W) uint8 tensor."""
        out = np.empty((len(rows), *self._shape[1:]), dtype=np.uint8)
        for j, i in enumerate(rows.tolist()):
            try:
                img = self.decode(i)
            except UnreadableImage:
                raise
            except Exception as e:                            # noqa: BLE001 -- any decoder failure, named
                raise UnreadableImage(f"{self.name}: {self.describe(i)} could not be read while training "
                                      f"({type(e).__name__}: {e}); it was readable when the dataset was loaded, "
                                      f"so the file changed or broke since") from None
            if img.shape != out.shape[1:]:
                raise UnreadableImage(f"{self.name}: {self.describe(i)} decoded to shape {img.shape}, expected "
                                      f"{tuple(out.shape[1:])} like every image of the dataset")
            out[j] = img
        return torch.from_numpy(out)

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, numbers.Integral) and not isinstance(key, bool):
            return self.read(self.positions([int(key)]))[0]                                     # (C, H, W)
        rows = self.positions(key)
        ahead = self._ahead
        if ahead:
            want, batch = ahead[0]
            if len(want) == len(rows) and np.array_equal(want, rows):
                ahead.popleft()
                self.read_ahead += 1
                return batch
        return self.read(rows)                                                                  # (B, C, H, W)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, shape={tuple(self.shape)})"


def take(x, key):
    """``x[key]`` for images in memory, a lazy subset for a source (nothing decoded)."""
    return x.subset(key) if is_source(x) else x[key]


class _Read(torch.utils.data.Dataset):
    """A map-style dataset whose items are whole batches: the DataLoader hands it one position array per step."""

    def __init__(self, source: ImageSource):
        self.source = source

    def __len__(self) -> int:
        return int(self.source._shape[0])

    def __getitem__(self, rows):
        return rows, self.source.read(rows)


class _Ahead:
    """Iterates a DataLoader of batches and keeps up to `depth` of them in the source's queue."""

    def __init__(self, loader, queue: deque, depth: int):
        self.it, self.queue, self.depth = iter(loader), queue, depth

    def fill(self) -> None:
        while len(self.queue) < self.depth:
            try:
                rows, batch = next(self.it)
            except StopIteration:
                return
            self.queue.append((np.asarray(rows), batch))


@contextlib.contextmanager
def prefetching(x, batches_ahead: Iterable, *, workers: int | None = None, pin_memory: bool = False, depth: int = 2):
    """Decode ``batches_ahead`` (index tensors, in the order they will be read) in background workers while the
    block runs; a no-op for images in memory or with ``workers=0``. ``x[idx]`` of the next expected batch takes the
    decoded one; any other read decodes in place, so results never depend on what was prefetched."""
    if not is_source(x) or workers == 0:
        yield
        return
    workers = default_workers() if workers is None else workers
    if not isinstance(workers, numbers.Integral) or workers < 0:
        raise ValueError(f"`workers` must be an int >= 0 or None, got {workers!r}")
    rows = (x.positions(b) for b in batches_ahead)
    loader = torch.utils.data.DataLoader(_Read(x), batch_size=None, sampler=rows, num_workers=workers,
                                         pin_memory=pin_memory, prefetch_factor=2, collate_fn=_keep,
                                         generator=_private())
    queue: deque = deque()
    ahead = _Ahead(loader, queue, depth)
    x._ahead = _Refilling(queue, ahead)
    try:
        yield
    finally:
        x._ahead = None
        del ahead, loader


def _keep(item):
    return item


def _private() -> torch.Generator:
    """The DataLoader's own generator (it draws its workers' seeds from it): the global RNG, which seeds the model
    and the trainer's draws, is never touched by streaming, so a streamed run is the run loaded in memory."""
    return torch.Generator().manual_seed(0)


class _Refilling:
    """The source's queue of decoded batches, topped up from the loader each time its head is looked at."""

    def __init__(self, queue: deque, ahead: _Ahead):
        self.queue, self.ahead = queue, ahead

    def __bool__(self) -> bool:
        self.ahead.fill()
        return bool(self.queue)

    def __getitem__(self, i):
        return self.queue[i]

    def popleft(self):
        out = self.queue.popleft()
        return out


def batches(x, batch_size: int, *, workers: int | None = None):
    """Yield ``x[i:i + batch_size]`` for i = 0, batch_size, ... : slices of a tensor, or a source's images decoded
    ahead by workers (evaluation embeds a large test split in a stream)."""
    n = len(x)
    starts = range(0, n, batch_size)
    if not is_source(x):
        for i in starts:
            yield x[i:i + batch_size]
        return
    spans = [slice(i, i + batch_size) for i in starts]
    with prefetching(x, (torch.arange(n)[s] for s in spans), workers=workers):
        for s in spans:
            yield x[s]


class _Check(torch.utils.data.Dataset):
    def __init__(self, source: ImageSource, rows: np.ndarray, chunk: int):
        self.source, self.rows, self.chunk = source, rows, chunk

    def __len__(self) -> int:
        return -(-len(self.rows) // self.chunk)

    def __getitem__(self, k: int):
        bad = []
        for i in self.rows[k * self.chunk:(k + 1) * self.chunk].tolist():
            try:
                self.source.decode(i)
            except Exception as e:                            # noqa: BLE001 -- reported, not raised
                bad.append((i, f"{type(e).__name__}: {e}"))
        return bad


def find_unreadable(source: ImageSource, *, workers: int | None = None, show_progress: bool = True,
                    desc: str = "checking images") -> dict[int, str]:
    """Decode every image of ``source`` once (in worker processes, pixels discarded) and return {position: why}
    for those that fail, so a streamed dataset leaves out exactly the files an in-memory load would."""
    from ..progress import bar
    rows = source.positions()
    chunk = 64
    workers = default_workers() if workers is None else workers
    check = _Check(source, rows, chunk)
    loader = torch.utils.data.DataLoader(check, batch_size=None, num_workers=workers if len(check) > 1 else 0,
                                         collate_fn=_keep, generator=_private())
    bad: dict[int, str] = {}
    with bar(total=len(rows), desc=desc, unit="image", disable=not show_progress, leave=False) as progress:
        for k, found in enumerate(loader):
            bad.update(found)
            progress.update(min(chunk, len(rows) - k * chunk))
    return bad
