"""Images from a Hugging Face dataset on disk: ``"hf:PATH"``, read row by row from memory-mapped Arrow.

PATH is a folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk`` (read with
``datasets.load_from_disk``), a Parquet file, or a folder of Parquet files (all ``*.parquet`` under it, sorted; read
with ``Dataset.from_parquet``, which converts them once into an Arrow cache under contrastlab's cache folder). Nothing
is fetched from the Hugging Face Hub.

The image column is a ``datasets.Image`` feature (its encoded bytes are read, or the file at its path when it holds
no bytes; the column named ``image`` when there are several), else a column named ``image``, ``img`` or
``pixel_values`` of encoded bytes (binary, or Image's ``{bytes, path}`` struct in Parquet written without
`datasets`). The optional label column is a ``ClassLabel`` feature (its names are the classes; -1 is no label),
else a column named ``label``, ``labels`` or ``label_id`` of ints or strings (sorted values become codes, as folder
classes). Labels are all or none. A ``DatasetDict`` with ``train`` and ``test`` splits keeps them as the train / test
split; with ``train`` only (or a single split), a labelled set gets a stratified 1/6 test split (seed 0), as folders
do. Images are decoded as ``folder:`` decodes them (gray only when every image is, one size, resized shorter side
then centre crop, bilinear); unreadable images are skipped and listed in ``notes``, more than half is an error.
Rows are read on demand through Arrow's memory map (shared, read-only pages, so forked DataLoader workers read them
safely): the dataset is never decoded into memory unless it is loaded (``stream=False``, or ``None`` when it fits).

Example::

    >>> import io, os, tempfile
    >>> from datasets import ClassLabel, Dataset, Features, Image as HFImage
    >>> from PIL import Image
    >>> from contrastlab.data import load_images
    >>> pngs = []
    >>> for i in range(12):
    ...     buf = io.BytesIO()
    ...     Image.new("L", (8, 6), 20 * i).save(buf, format="PNG")
    ...     pngs.append(buf.getvalue())
    >>> ds = Dataset.from_dict({"image": [{"bytes": b, "path": None} for b in pngs],
    ...                         "label": [i % 3 for i in range(12)]},
    ...                        features=Features({"image": HFImage(), "label": ClassLabel(names=["a", "b", "c"])}))
    >>> path = os.path.join(tempfile.mkdtemp(), "ds")
    >>> ds.save_to_disk(path)
    >>> data = load_images(f"hf:{path}")
    >>> data.classes, data.x.shape, data.x_test.shape, data.x[0, 0, 0, 0].item() in {20 * i for i in range(12)}
    (('a', 'b', 'c'), torch.Size([10, 1, 6, 8]), torch.Size([2, 1, 6, 8]), True)
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import numpy as np

from .cache import cache_dir
from .encoded import load_encoded
from .images import ImageData
from .registry import register_dataset
from .split import remap_labels

__all__ = ["load_hf_images", "HFStore", "IMAGE_COLUMNS", "LABEL_COLUMNS"]

IMAGE_COLUMNS = ("image", "img", "pixel_values")         # binary columns taken as images (after Image features)
LABEL_COLUMNS = ("label", "labels", "label_id")          # label columns (after ClassLabel features)
_BINARY = ("binary", "large_binary")
_LABEL_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "string", "large_string")


@contextlib.contextmanager
def _quiet():
    """`datasets` without its progress bars (restored after)."""
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    was = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was:
            enable_progress_bars()


def _open(base: Path) -> tuple[list[tuple[str, object]], list[str]]:
    """([(split, Dataset)], notes): the splits to read, train first (then test when the dataset has one)."""
    import datasets

    notes: list[str] = []
    if base.is_file() and base.suffix.lower() != ".parquet":
        raise ValueError(f"hf:{base}: expected a folder written by save_to_disk, a .parquet file or a folder of "
                         f".parquet files, got a file that is not Parquet")
    parquet = [str(base)] if base.is_file() else []
    saved = base.is_dir() and ((base / "dataset_dict.json").is_file() or (base / "state.json").is_file())
    if base.is_dir() and not saved:
        parquet = sorted(str(p) for p in base.rglob("*.parquet") if p.is_file())
        if not parquet:
            raise ValueError(f"hf:{base}: not a saved Hugging Face dataset (no dataset_dict.json or state.json) "
                             f"and no .parquet files in it")
        notes.append(f"read {len(parquet)} Parquet file{'s' if len(parquet) > 1 else ''}")
    try:
        with _quiet():
            loaded = (datasets.load_from_disk(str(base)) if saved else
                      datasets.Dataset.from_parquet(parquet if len(parquet) > 1 else parquet[0],
                                                    cache_dir=str(cache_dir("hf-parquet"))))
    except Exception as e:                                # noqa: BLE001 -- whatever `datasets` raises, named
        raise ValueError(f"hf:{base}: `datasets` could not read it ({type(e).__name__}: {e})") from None
    if isinstance(loaded, datasets.Dataset):
        return [("train", loaded)], notes
    splits = list(loaded.keys())
    if "train" in splits:
        use = ["train"] + (["test"] if "test" in splits else [])
    elif len(splits) == 1:
        use = splits
        notes.append(f"used the only split, {splits[0]!r}, as the training set")
    else:
        raise ValueError(f"hf:{base}: a DatasetDict needs a 'train' split (and optionally 'test'), got splits "
                         f"{', '.join(repr(s) for s in splits)}")
    left = [s for s in splits if s not in use]
    if left:
        notes.append(f"ignored split{'s' if len(left) > 1 else ''} {', '.join(repr(s) for s in left)}")
    return [(s, loaded[s]) for s in use], notes


def _columns(features) -> str:
    return ", ".join(f"{k} ({v!r})" for k, v in features.items())


def _image_column(base: Path, features) -> tuple[str, bool]:
    """(column, is an Image feature)."""
    import datasets
    images = [k for k, f in features.items() if isinstance(f, datasets.Image)]
    if images:
        return ("image" if "image" in images else images[0]), True
    for k in IMAGE_COLUMNS:
        f = features.get(k)
        if isinstance(f, datasets.Value) and f.dtype in _BINARY:
            return k, False
        if isinstance(f, dict) and isinstance(f.get("bytes"), datasets.Value) and f["bytes"].dtype in _BINARY:
            return k, True                                # Image's storage without its feature (plain Parquet)
    raise ValueError(f"hf:{base}: no image column; expected a datasets.Image feature or a binary column named "
                     f"{', '.join(IMAGE_COLUMNS)}; columns: {_columns(features)}")


def _label_column(base: Path, features):
    """(column, ClassLabel names or None), or (None, None) when unlabelled."""
    import datasets
    named = [k for k, f in features.items() if isinstance(f, datasets.ClassLabel)]
    if named:
        k = next((c for c in LABEL_COLUMNS if c in named), named[0])
        return k, tuple(str(n) for n in features[k].names)
    for k in LABEL_COLUMNS:
        if k in features:
            f = features[k]
            if not (isinstance(f, datasets.Value) and f.dtype in _LABEL_DTYPES):
                raise ValueError(f"hf:{base}: the label column {k!r} must be a ClassLabel or hold ints or strings, "
                                 f"got {f!r}")
            return k, None
    return None, None


class HFStore:
    """The image column of some splits of a Hugging Face dataset, one encoded image per row. The Arrow tables are
    memory-mapped (read-only pages, shared by forked workers; pickled by file path), so no handle needs reopening."""

    def __init__(self, name: str, parts: list[tuple[str, object]], column: str, is_image: bool):
        import datasets
        self.name, self.column, self.is_image = name, column, is_image
        self.splits = [s for s, _ in parts]
        one = [ds.select_columns([column]) for _, ds in parts]
        if is_image:
            one = [ds.cast_column(column, datasets.Image(decode=False)) for ds in one]
        self.parts = one
        self.starts = np.cumsum([0] + [len(ds) for ds in one])
        self.files = [f["filename"] for _, ds in parts for f in ds.cache_files]

    def __len__(self) -> int:
        return int(self.starts[-1])

    def _where(self, item: int) -> tuple[int, int]:
        k = int(np.searchsorted(self.starts, item, side="right")) - 1
        return k, item - int(self.starts[k])

    def read(self, item: int) -> bytes:
        k, row = self._where(item)
        value = self.parts[k][row][self.column]
        if self.is_image and isinstance(value, dict):
            if value.get("bytes") is not None:
                return value["bytes"]
            if value.get("path"):
                with open(value["path"], "rb") as f:
                    return f.read()
            value = None
        if value is None:
            raise ValueError("the row holds no image (empty)")
        return bytes(value)

    def describe(self, item: int) -> str:
        k, row = self._where(item)
        return f"row {row}" + (f" of {self.splits[k]!r}" if len(self.splits) > 1 or self.splits[k] != "train" else "")

    def fingerprint(self) -> str:
        h = hashlib.sha256(f"{self.column}|{self.splits}|{[len(p) for p in self.parts]}".encode())
        for p in self.files:
            st = os.stat(p)
            h.update(f"\0{p}\0{st.st_size}\0{st.st_mtime_ns}".encode())
        return h.hexdigest()


def _labels(base: Path, store: HFStore, parts, column: str, names: tuple[str, ...] | None):
    """(codes, classes) or (None, None): every row labelled, or none."""
    values = []
    for _, ds in parts:
        values += ds.select_columns([column]).with_format("arrow")[:][column].to_pylist()
    if names is not None:
        values = [None if v is None or v < 0 else int(v) for v in values]
    have = [v is not None for v in values]
    if not any(have):
        return None, None
    if not all(have):
        i, j = have.index(False), have.index(True)
        raise ValueError(f"{store.name}: labels are all or none, but {store.describe(i)} has no {column!r} while "
                         f"{store.describe(j)} has one ({values[j]!r})")
    if names is not None:
        return np.asarray(values, dtype=np.int64), names
    return remap_labels(np.asarray(values))


@register_dataset("hf", takes_path=True, streams=True,
                  description="a Hugging Face dataset saved with save_to_disk, or Parquet file(s)")
def load_hf_images(path: str, *, root: str | None = None, image_size: int | None = None,
                   stream: bool | None = None) -> ImageData:
    """Read a Hugging Face image dataset into :class:`ImageData` (see the module docstring for the rules).

    ``stream``: None (default) keeps the images in memory when they fit and streams them otherwise; True always
    streams (rows decoded by DataLoader workers while training); False always loads. Both give the same images.
    """
    if stream is not None and not isinstance(stream, bool):
        raise ValueError(f"`stream` must be True, False or None (stream when the images do not fit), got {stream!r}")
    base = Path(os.path.abspath(os.path.expanduser(path)))
    if not base.exists():
        raise FileNotFoundError(f"Hugging Face dataset not found: {base}")
    parts, notes = _open(base)
    features = parts[0][1].features
    for split, ds in parts[1:]:
        if ds.features != features:
            raise ValueError(f"hf:{base}: the {split!r} split's columns differ from 'train''s: "
                             f"{_columns(ds.features)} vs {_columns(features)}")
    column, is_image = _image_column(base, features)
    store = HFStore(f"hf:{base}", parts, column, is_image)
    label, names = _label_column(base, features)
    codes, classes = (None, None) if label is None else _labels(base, store, parts, label, names)
    is_test = None
    if len(parts) > 1:
        is_test = np.repeat([s == "test" for s, _ in parts], [len(ds) for _, ds in parts])
    notes.insert(0, f"{len(store)} rows, images from column {column!r}"
                 + ("" if classes is None else f", labels from {label!r}"))
    return load_encoded(store, labels=codes, classes=classes, image_size=image_size, stream=stream, is_test=is_test,
                        notes=tuple(notes), kind="hf")
