"""What the vectors of every collection share, wherever they are kept (FAISS in the folder, `VectorIndex`; a
Milvus collection, `MilvusVectors`): documents with unique string ids and optional texts, found by position,
a `meta` with the kind and the measured recall, and the check of an `allowed_ids` filter.

>>> rows = Rows()
>>> rows._set_rows(["a", "b", "c"], ["x", "y", None], {"kind": "exact"})
>>> rows.count, rows.text_of(1), rows.unknown_ids(["b", "q"]), rows.allowed_positions(["c", "a", "c"]).tolist()
(3, 'y', ['q'], [0, 2])
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["Rows", "positive_int"]


def positive_int(name: str, value) -> int:
    """`value` as an int >= 1; ValueError naming `name` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {value!r}")
    return int(value)


class Rows:
    """Ids (`ids`, `position`: id -> row), optional `texts` and `meta` of a collection's vectors."""

    def _set_rows(self, ids: Sequence[str], texts: Sequence[str] | None, meta: dict, *,
                  not_unique: str = "`ids` must be unique") -> None:
        self.ids = list(ids)
        self.texts = None if texts is None else list(texts)
        self.meta = meta
        self.position = {d: i for i, d in enumerate(self.ids)}
        if len(self.position) != len(self.ids):
            raise ValueError(not_unique)

    @property
    def count(self) -> int:
        return len(self.ids)

    @property
    def kind(self) -> str:
        """exact, hnsw or ivf."""
        return self.meta["kind"]

    def __len__(self) -> int:
        return self.count

    def text_of(self, position: int) -> str | None:
        return None if self.texts is None else self.texts[position]

    def unknown_ids(self, ids: Sequence[str]) -> list[str]:
        return [d for d in ids if d not in self.position]

    def allowed_positions(self, allowed_ids) -> np.ndarray:
        """The sorted distinct rows of `allowed_ids` (a list of known ids); ValueError naming what is wrong."""
        if isinstance(allowed_ids, str) or not isinstance(allowed_ids, (list, tuple, set, frozenset)):
            raise ValueError(f"`allowed_ids` must be a list of ids, got {type(allowed_ids).__name__}")
        unknown = self.unknown_ids(allowed_ids)
        if unknown:
            raise ValueError(f"`allowed_ids` holds {len(unknown)} ids not in the index, e.g. {unknown[:3]}")
        allowed = np.unique(np.fromiter((self.position[d] for d in allowed_ids), np.int64, len(allowed_ids)))
        if len(allowed) == 0:
            raise ValueError("`allowed_ids` must hold at least one id, got an empty list")
        return allowed

    def _recall_repr(self) -> str:
        recall = self.meta.get("recall")
        return f", recall@{self.meta['recall_k']}={recall:.3f})" if recall is not None else ")"
