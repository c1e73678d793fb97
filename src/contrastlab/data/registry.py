"""The one dataset registry, :data:`DATASETS`: every loader of every modality (images, text, image-text), each
entry with its modality, loader, aliases, path forms, options and description; and :func:`load_images`, which turns
an image spec string into :class:`ImageData`.

A spec is a registered name (``"fashion-mnist"``, ``"wordnet"``, ``"emoji"``), ``"NAME:PATH"`` for loaders that
read user files (``"npz:data.npz"``, ``"folder:photos/"``, ``"pairs:train.jsonl"``), or a bare path whose suffix a
loader claims (``"data.npz"``, ``"train.jsonl"``). Names, aliases and suffixes are unique across modalities, so a
spec names one dataset whatever it holds: :func:`resolve_dataset` finds it and :func:`dataset_modality` says what
kind of data it is. :func:`load_images`, :func:`~contrastlab.data.load_text` and
:func:`~contrastlab.data.load_image_text` load the datasets of their modality. Loaders register themselves with
:func:`register_dataset`; nothing here branches on their names.

Example::

    >>> from contrastlab.data import dataset_modality, list_datasets, load_images
    >>> "digits" in list_datasets("image") and "wordnet" in list_datasets("text")
    True
    >>> dataset_modality("digits"), dataset_modality("train.jsonl"), dataset_modality("captions:photos/")
    ('image', 'text', 'image_text')
    >>> load_images("digits")
    ImageData(name='digits', x=(1348, 1, 8, 8), test=449, classes=10)
    >>> load_images("digits", image_size=16).image_size
    (16, 16)
    >>> load_images("wordnet")                                              # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: `spec` 'wordnet' names text data (a text dataset 'wordnet'), not image data; ... load_text
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
from .specs import check_options, check_root, check_spec, find, forms

__all__ = ["DatasetSpec", "DATASETS", "MODALITIES", "register_dataset", "list_datasets", "resolve_dataset",
           "dataset_modality", "datasets_table", "load_images"]


@dataclass(frozen=True)
class Modality:
    words: str                            # how messages name it: "image-text data", "an image-text dataset"
    loads: str                            # the function that loads it, for messages


# The kinds of data a dataset can hold; a new kind (issue #16: "sequence") is one more entry here.
MODALITIES: dict[str, Modality] = {
    "image": Modality("image", "load_images"),
    "text": Modality("text", "load_text"),
    "image_text": Modality("image-text", "load_image_text"),
    "sequence": Modality("sequence", "load_sequences"),
}


@dataclass(frozen=True, kw_only=True)
class DatasetSpec:
    """One registered dataset: its modality, its loader, and how a spec names it."""

    name: str
    loader: Callable                      # image: loader(path, *, root, image_size[, stream]); text and image-text:
                                          # loader(path, *, root, **options) (named image-text: no path)
    modality: str = "image"               # a key of MODALITIES
    aliases: tuple[str, ...] = ()
    takes_path: bool = False              # spec form "NAME:PATH"
    suffixes: tuple[str, ...] = ()        # bare paths ending in one of these (takes_path only)
    options: tuple[str, ...] = ()         # keyword options the loader accepts besides `root`
    streams: bool = False                 # the loader takes `stream=` (images read from disk on demand)
    folders: bool = False                 # PATH may be a folder (the hint for a bare folder spec)
    description: str = ""

    @property
    def kind(self) -> str:
        """"image dataset", "text dataset", ... (for messages)."""
        return f"{MODALITIES[self.modality].words} dataset"


DATASETS: dict[str, DatasetSpec] = {}


def _a(words: str) -> str:
    return ("an " if words[0] in "aeiou" else "a ") + words


def _tuple_of_str(key: str, value) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (tuple, list)) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"`{key}` must be a tuple of str, got {value!r}")
    return tuple(value)


def register_dataset(name: str, *, modality: str = "image", aliases: tuple[str, ...] = (), takes_path: bool = False,
                     suffixes: tuple[str, ...] = (), options: tuple[str, ...] = (), streams: bool = False,
                     folders: bool = False, description: str = ""):
    """Function decorator adding a loader to :data:`DATASETS` under ``name`` (and ``aliases``).

    Names and aliases are unique across modalities, and so are suffixes. ``takes_path`` loaders are named as
    ``"NAME:PATH"`` (and by a bare path ending in one of ``suffixes``); ``options`` are the keyword options the loader
    accepts; with ``streams`` an image loader also takes ``stream=`` (True / False / None: stream when the images
    would not fit); ``folders`` says PATH may be a folder.

    >>> import torch
    >>> @register_dataset("toy-squares", description="four 2x2 squares")
    ... def load_toy(path, *, root=None, image_size=None):
    ...     return ImageData("toy-squares", torch.zeros(4, 1, 2, 2, dtype=torch.uint8), None, None, None, None)
    >>> dataset_modality("TOY-SQUARES"), load_images("toy-squares").x.shape
    ('image', torch.Size([4, 1, 2, 2]))
    >>> del DATASETS["toy-squares"]
    """
    if modality not in MODALITIES:
        raise ValueError(f"`modality` must be one of {', '.join(MODALITIES)}, got {modality!r}")
    kind = f"{MODALITIES[modality].words} dataset"
    aliases, suffixes, options = (_tuple_of_str(k, v) for k, v in
                                  (("aliases", aliases), ("suffixes", suffixes), ("options", options)))
    for key, value in (("takes_path", takes_path), ("streams", streams), ("folders", folders)):
        if not isinstance(value, bool):
            raise TypeError(f"`{key}` must be a bool, got {value!r}")
    if not isinstance(description, str):
        raise TypeError(f"`description` must be a str, got {type(description).__name__}")
    taken = {n: ds for ds in DATASETS.values() for n in (ds.name, *ds.aliases)}
    given = (name, *aliases)
    for n in given:
        if not isinstance(n, str) or not n or n != n.lower() or ":" in n:
            raise ValueError(f"{kind} names must be non-empty lower-case str without ':', got {n!r}")
        if n in taken:
            raise ValueError(f"{_a(taken[n].kind)} named {n!r} is already registered (names are unique across "
                             f"modalities)")
        if given.count(n) > 1:
            raise ValueError(f"`aliases` must differ from the name and from each other, got {n!r} twice")
    claimed = {s: ds for ds in DATASETS.values() for s in ds.suffixes}
    for s in suffixes:
        if not s.startswith(".") or s != s.lower() or len(s) < 2:
            raise ValueError(f"`suffixes` must be lower-case str starting with '.', got {s!r}")
        if s in claimed:
            raise ValueError(f"suffix {s!r} is already claimed by {_a(claimed[s].kind)} {claimed[s].name!r} "
                             f"(a bare path must name one dataset)")
    if suffixes and not takes_path:
        raise ValueError(f"`suffixes` need `takes_path=True` (a bare path is passed to the loader), got "
                         f"suffixes={suffixes} for {name!r}")
    for o in options:
        if not o.isidentifier() or o == "root":
            raise ValueError(f"`options` must be keyword names other than 'root', got {o!r}")
    if streams and modality != "image":
        raise ValueError(f"`streams` is for image loaders (load_images' `stream=`), got {modality!r} for {name!r}")

    def add(loader):
        if not callable(loader):
            raise TypeError(f"register_dataset({name!r}) decorates a loader function, got {type(loader).__name__}")
        DATASETS[name] = DatasetSpec(name=name, loader=loader, modality=modality, aliases=aliases,
                                     takes_path=takes_path, suffixes=suffixes, options=options, streams=streams,
                                     folders=folders, description=description)
        return loader

    return add


def _check_modality(modality) -> None:
    if modality is not None and modality not in MODALITIES:
        raise ValueError(f"`modality` must be one of {', '.join(MODALITIES)} or None, got {modality!r}")


def list_datasets(modality: str | None = None) -> list[str]:
    """Registered dataset names (aliases not included), of one modality or (None) of all."""
    _check_modality(modality)
    return sorted(n for n, ds in DATASETS.items() if modality in (None, ds.modality))


def _unknown(spec: str, modality: str | None) -> ValueError:
    """The error for a spec no dataset claims: every dataset, grouped by modality (`modality`'s first)."""
    order = sorted(MODALITIES, key=lambda m: m != modality)
    groups = []
    for m in order:
        entries = sorted((ds for ds in DATASETS.values() if ds.modality == m), key=lambda d: d.name)
        if entries:
            groups.append(f"{MODALITIES[m].words} datasets: {', '.join(forms(ds) for ds in entries)}")
    hint = ""
    if os.path.isdir(os.path.expanduser(spec)):
        folders = sorted((ds for ds in DATASETS.values() if ds.folders), key=lambda d: order.index(d.modality))
        if folders:
            hint = (f"; {spec!r} is a folder: did you mean "
                    + " or ".join(f"'{ds.name}:{spec}' ({MODALITIES[ds.modality].words})" for ds in folders) + "?")
    what = "" if modality is None else f"{MODALITIES[modality].words} "
    return ValueError(f"`spec` must name a registered {what}dataset or use a path form, got {spec!r}; "
                      f"{'; '.join(groups)}{hint}")


def resolve_dataset(spec: str, *, modality: str | None = None) -> tuple[DatasetSpec, str | None]:
    """``(entry, path)``: the dataset `spec` names and the PATH of a ``"NAME:PATH"`` or bare-path spec (else None).

    A spec no dataset claims is a ValueError listing every dataset by modality (``modality``'s first: the kind
    the caller wants) and, for a folder, the ``NAME:`` forms that read folders. Nothing is read from disk.

    >>> entry, path = resolve_dataset("train.jsonl")
    >>> entry.name, entry.modality, path
    ('pairs', 'text', 'train.jsonl')
    """
    check_spec(spec)
    _check_modality(modality)
    found = find(DATASETS, spec)
    if found is None:
        raise _unknown(spec, modality)
    return found


def dataset_modality(spec: str) -> str:
    """The modality ("image", "text", "image_text", ...) of the dataset `spec` names (see :func:`resolve_dataset`).

    >>> dataset_modality("digits"), dataset_modality("PAIRS:a.csv"), dataset_modality("emoji")
    ('image', 'text', 'image_text')
    """
    return resolve_dataset(spec)[0].modality


def resolve_as(spec: str, modality: str) -> tuple[DatasetSpec, str | None]:
    """:func:`resolve_dataset` for a loader of one modality: a spec of another modality is a clear error."""
    ds, path = resolve_dataset(spec, modality=modality)
    if ds.modality != modality:
        want, got = MODALITIES[modality], MODALITIES[ds.modality]
        raise ValueError(f"`spec` {spec!r} names {got.words} data ({_a(ds.kind)} {ds.name!r}), not {want.words} "
                         f"data; {want.loads} loads {want.words} datasets only, load it with {got.loads}")
    return ds, path


def check_load(spec, root, options: dict, modality: str) -> tuple[DatasetSpec, str | None, str | None]:
    """Validate a load call's `spec`, `root` and loader `options`; ``(entry, path or None, root as str)``."""
    check_spec(spec)
    root = check_root(root)
    ds, path = resolve_as(spec, modality)
    check_options(ds, options)
    return ds, path, root


def datasets_table(modality: str | None = None) -> list[tuple[str, str, str]]:
    """``(modality, spec forms, description)`` per dataset, by modality then name (what `contrastlab datasets`
    prints); the description ends with the loader's options and whether it can stream.

    >>> datasets_table("image")[0]
    ('image', 'digits', 'scikit-learn digits, 1797 8x8 gray, 10 classes')
    """
    _check_modality(modality)
    order = list(MODALITIES)
    rows = sorted((ds for ds in DATASETS.values() if modality in (None, ds.modality)),
                  key=lambda d: (order.index(d.modality), d.name))
    extras = lambda ds: "; ".join(([f"options: {', '.join(ds.options)}"] if ds.options else [])   # noqa: E731
                                  + (["can stream"] if ds.streams else []))
    return [(ds.modality, forms(ds), ds.description + (f" ({extras(ds)})" if extras(ds) else "")) for ds in rows]


def _resolve(spec: str) -> tuple[DatasetSpec, str | None]:
    return resolve_as(spec, "image")


def load_images(spec: str, *, root: str | None = None, image_size: int | None = None,
                stream: bool | None = None) -> ImageData:
    """Load an image dataset by spec: a registered name, ``"npz:PATH"`` / ``"PATH.npz"``, ``"folder:PATH"``.

    Args:
        spec: what to load; see :func:`list_datasets` and the module docstring.
        root: folder that named datasets are looked for in first (e.g. the four Fashion-MNIST files).
        image_size: when given, every image is resized so its shorter side is ``image_size`` and
            centre-cropped to ``image_size x image_size``; otherwise the native size is kept
            (folders of mixed sizes choose one, see :func:`contrastlab.data.folder.load_folder`). At most
            :data:`~contrastlab.data.limits.MAX_IMAGE_SIZE`, and the resized images must fit in half the
            available memory (a ValueError says how much they would need).
        stream: for sources that can stream (``folder:``, ``shards:``, ``hf:``): True reads images from disk on
            demand (:mod:`contrastlab.data.stream`), False loads them, None (default) streams only when they would
            not fit in memory. True for a dataset that is always loaded is an error.

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
    if stream is not None and not isinstance(stream, bool):
        raise ValueError(f"`stream` must be True, False or None (stream when the images would not fit), got {stream!r}")
    ds, path = _resolve(spec)
    extra = {}
    if ds.streams:
        extra["stream"] = stream
    elif stream:
        able = ", ".join(f"{d.name}:" for d in DATASETS.values() if d.streams)
        raise ValueError(f"`stream` is for datasets read from disk ({able}); {ds.name!r} is loaded in memory, "
                         f"got stream=True")
    data = ds.loader(path, root=None if root is None else os.fspath(root), image_size=image_size, **extra)
    if image_size is not None and data.image_size != (image_size, image_size):
        n = len(data.x) + (0 if data.x_test is None else len(data.x_test))
        limits.check_image_bytes("`image_size`", n=n, channels=data.channels, size=image_size)
        before = "x".join(map(str, data.image_size))
        fit = lambda t: None if t is None else fit_square(t, image_size)          # noqa: E731
        data = dataclasses.replace(data, x=fit(data.x), x_test=fit(data.x_test), notes=data.notes + (
            f"resized from {before} to {image_size}x{image_size} (shorter side, centre crop, bilinear)",))
    return data
