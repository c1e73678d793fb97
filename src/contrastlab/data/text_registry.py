"""The text dataset registry and :func:`load_text`, which turns a spec string into :class:`TextData`.

A spec is a registered name (``"verses-en-es"``, ``"wordnet"``, ``"wordnet-synonyms"``), ``"NAME:PATH"`` for
loaders that read user files (``"pairs:train.jsonl"``, ``"clicks:log.jsonl"``, ``"interactions:events.csv"``), or a
bare path whose suffix a loader claims (``"train.jsonl"``, ``"train.csv"``, ``"train.parquet"`` are pair files).
Loaders register themselves; nothing here branches on their names. Options a loader declares (``corpus=`` for click
logs) are passed through as keywords.

Example::

    >>> import json, os, tempfile
    >>> from contrastlab.data import load_text, list_text_datasets
    >>> {"pairs", "clicks", "interactions", "wordnet", "verses-en-es"} <= set(list_text_datasets())
    True
    >>> path = os.path.join(tempfile.mkdtemp(), "train.jsonl")
    >>> with open(path, "w") as f:
    ...     _ = f.write(json.dumps({"query": "a cat", "positive": "un gato"}) + "\\n")
    >>> load_text(path).summary()
    'train: 1 training pairs'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from .specs import check_load, check_new_names, resolve
from .text import TextData

__all__ = ["TextDatasetSpec", "TEXT_DATASETS", "register_text_dataset", "list_text_datasets", "load_text"]


@dataclass(frozen=True)
class TextDatasetSpec:
    name: str
    loader: Callable[..., TextData]       # loader(path: str | None, *, root: str | None, **options) -> TextData
    aliases: tuple[str, ...]
    takes_path: bool                      # spec form "NAME:PATH"
    suffixes: tuple[str, ...]             # bare paths ending in one of these
    options: tuple[str, ...]              # keyword options the loader accepts besides `root`
    description: str


TEXT_DATASETS: dict[str, TextDatasetSpec] = {}


def register_text_dataset(name: str, *, aliases: tuple[str, ...] = (), takes_path: bool = False,
                          suffixes: tuple[str, ...] = (), options: tuple[str, ...] = (), description: str = ""):
    """Function decorator adding a text loader to :data:`TEXT_DATASETS` under ``name`` (and ``aliases``).

    The loader is called as ``loader(path, root=root, **options)``; ``path`` is None for named datasets.
    """
    check_new_names(TEXT_DATASETS, name, aliases, suffixes, kind="text dataset")

    def add(loader):
        TEXT_DATASETS[name] = TextDatasetSpec(name, loader, tuple(aliases), takes_path, tuple(suffixes),
                                              tuple(options), description)
        return loader

    return add


def list_text_datasets() -> list[str]:
    """Registered text dataset names (aliases not included)."""
    return sorted(TEXT_DATASETS)


def _resolve(spec: str) -> tuple[TextDatasetSpec, str | None]:
    return resolve(TEXT_DATASETS, spec, kind="text dataset")


def load_text(spec: str, *, root: str | os.PathLike | None = None, **options) -> TextData:
    """Load a text dataset by spec: a registered name, ``"pairs:PATH"`` / ``"PATH.jsonl|.csv|.parquet"``,
    ``"clicks:PATH"`` (option ``corpus=PATH`` when the log holds document ids), ``"interactions:PATH"``.

    Args:
        spec: what to load; see :func:`list_text_datasets` and the module docstring.
        root: folder that named datasets are looked for in first (a SWORD library, the WordNet dict folder).
        **options: loader options, e.g. ``corpus="docs.jsonl"`` for click logs.

    Returns:
        :class:`TextData` with training pairs, a held-out retrieval set when there is one, and ``notes`` saying how
        it was made (counts of skipped lines, the split).
    """
    ds, path, root = check_load(TEXT_DATASETS, spec, root, options, kind="text dataset")
    return ds.loader(path, root=root, **options)
