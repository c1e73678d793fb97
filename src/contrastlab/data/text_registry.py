"""Text datasets in the one dataset registry, and :func:`load_text`, which turns a spec string into
:class:`TextData`.

A spec is a registered name (``"verses-en-es"``, ``"wordnet"``, ``"wordnet-synonyms"``), ``"NAME:PATH"`` for
loaders that read user files (``"pairs:train.jsonl"``, ``"clicks:log.jsonl"``, ``"interactions:events.csv"``), or a
bare path whose suffix a loader claims (``"train.jsonl"``, ``"train.csv"``, ``"train.parquet"`` are pair files).
Text loaders are entries of :data:`contrastlab.data.registry.DATASETS` with ``modality="text"``; nothing here
branches on their names. Options a loader declares (``corpus=`` for click logs) are passed through as keywords.

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

from . import registry
from .text import TextData

__all__ = ["register_text_dataset", "list_text_datasets", "load_text"]


def register_text_dataset(name: str, *, aliases: tuple[str, ...] = (), takes_path: bool = False,
                          suffixes: tuple[str, ...] = (), options: tuple[str, ...] = (), description: str = ""):
    """:func:`~contrastlab.data.registry.register_dataset` with ``modality="text"``.

    The loader is called as ``loader(path, root=root, **options)``; ``path`` is None for named datasets.
    """
    return registry.register_dataset(name, modality="text", aliases=aliases, takes_path=takes_path,
                                     suffixes=suffixes, options=options, description=description)


def list_text_datasets() -> list[str]:
    """Registered text dataset names (aliases not included)."""
    return registry.list_datasets("text")


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
    ds, path, root = registry.check_load(spec, root, options, "text")
    return ds.loader(path, root=root, **options)
