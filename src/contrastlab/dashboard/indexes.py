"""Search indexes shown in the run view: `ServedIndex` opens an index folder (`contrastlab index RUN --images ...`)
once, at start, and answers the dashboard's questions about its image collections -- which run built it, a page of
its rows, a row's thumbnail, a row's nearest neighbours (the row itself left out) -- from the vectors stored in it.

The client names an index by its position in the server's list and a collection by a name checked against the
index's own; every number arrives as text and is checked here (`parse_int`), so each bad request gets a message
that names the parameter, the rule and the value got. Nothing here turns a client string into a path.

>>> parse_int("12"), parse_int("1.5") is None
(12, True)
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

__all__ = ["ServedIndex", "RequestError", "open_indexes", "parse_int", "MAX_K", "MAX_ROWS"]

#: Most neighbours one request may ask for.
MAX_K = 100
#: Most rows one page of the grid may ask for.
MAX_ROWS = 500
_INT = re.compile(r"-?[0-9]{1,30}", re.ASCII)


class RequestError(ValueError):
    """A bad request: `status` (404: not there, 422: malformed) and a message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def parse_int(text: str | None) -> int | None:
    """`text` as an integer (ASCII digits, an optional minus), else None."""
    return int(text) if text is not None and _INT.fullmatch(text) else None


def _number(name: str, text: str | None, low: int, high: int, *, what: str, outside: int = 404) -> int:
    """An integer parameter in [low, high] (`what` it is): 422 when it is missing or not an integer, `outside`
    (404: no such row; 422: a bad setting) when out of range."""
    if text is None:
        raise RequestError(422, f"`{name}` is required: {what}, an integer in [{low}, {high}]")
    value = parse_int(text)
    if value is None:
        raise RequestError(422, f"`{name}` must be an integer, got {text!r}")
    if not low <= value <= high:
        raise RequestError(outside, f"`{name}` must be in [{low}, {high}] ({what}), got {value}")
    return value


class ServedIndex:
    """One index folder, opened once; its image collections are what the run view shows.

    Args:
        path: the folder.
        index: its `contrastlab.search.SearchIndex` (see `open_indexes`).
    """

    def __init__(self, path: Path, index):
        self.path = Path(path)
        self.index = index
        self.images = {n: c for n, c in index.collections.items() if c.modality == "image" and c.thumbnails is not None}
        if not self.images:
            kinds = ", ".join(f"{n} ({c.modality})" for n, c in index.collections.items())
            raise ValueError(f"--index {self.path}: this index has no image collection with thumbnails (it holds "
                             f"{kinds}); the run view shows image indexes: build one with `contrastlab index RUN "
                             f"--images SPEC --out IDX`")
        embedder = index.meta.get("embedder")
        self.embedder = embedder if isinstance(embedder, str) else None

    def built_from(self, run_paths: list[Path]) -> int | None:
        """The position in `run_paths` of the run directory that built this index (meta["embedder"]), or None."""
        if self.embedder is None or not Path(self.embedder).is_absolute():
            return None                                        # a model spec, not a run directory
        mine = Path(self.embedder).resolve()
        return next((i for i, p in enumerate(run_paths) if Path(p).resolve() == mine), None)

    def summary(self, run_paths: list[Path]) -> dict:
        return {"folder": self.path.name or str(self.path), "path": str(self.path), "embedder": self.embedder,
                "run": self.built_from(run_paths), "run_step": self.index.meta.get("run_step"),
                "collections": [{"name": n, "count": c.count, "labels": self._labelled(c)}
                                for n, c in self.images.items()]}

    @staticmethod
    def _labelled(c) -> bool:
        return c.text_field == "label" and c.texts is not None

    def collection(self, number: int, name: str):
        if name not in self.images:
            listed = ", ".join(repr(n) for n in self.images)
            raise RequestError(404, f"index {number} has no image collection {name!r}: its image collections are "
                                    f"{listed}")
        return self.images[name]

    def _row(self, number: int, name: str, c, position: int) -> dict:
        text = c.text_of(position)
        labelled = self._labelled(c)
        return {"position": position, "id": c.ids[position], "label": text if labelled else None,
                "text": None if labelled else text,
                "thumbnail": f"/api/indexes/{number}/{name}/thumbnails/{position}.png"}

    def thumbnail(self, number: int, name: str, file: str) -> bytes:
        c = self.collection(number, name)
        if not file.endswith(".png"):
            raise RequestError(404, f"thumbnails are named POSITION.png, got {file!r}")
        position = _number("position", file[:-4], 0, c.count - 1, what=f"a row of collection {name!r}")
        return c.thumbnail(position)

    def rows(self, number: int, name: str, offset: str | None, limit: str | None) -> dict:
        """A page of the grid: ids, labels and thumbnail URLs of rows [offset, offset + limit)."""
        c = self.collection(number, name)
        start = _number("offset", "0" if offset is None else offset, 0, c.count - 1,
                        what=f"the first row of the page, a row of collection {name!r}")
        size = _number("limit", "60" if limit is None else limit, 1, MAX_ROWS, what="rows in a page", outside=422)
        end = min(c.count, start + size)
        return {"index": number, "collection": name, "count": c.count, "offset": start, "labels": self._labelled(c),
                "rows": [self._row(number, name, c, p) for p in range(start, end)]}

    def neighbours(self, number: int, name: str, position: str | None, k: str | None) -> dict:
        """Row `position`'s `k` nearest rows of the collection by cosine of the stored vectors, the row itself
        left out (an exact duplicate of it stays: it is another image), best first."""
        c = self.collection(number, name)
        p = _number("position", position, 0, c.count - 1, what=f"the query image, a row of collection {name!r}")
        want = _number("k", "10" if k is None else k, 1, MAX_K, what="how many neighbours", outside=422)
        query = np.asarray(c.vectors_at(np.array([p])), dtype=np.float32)                 # (1, D)
        scores, ids = c.search(query, min(want + 1, c.count))                             # (1, <= k + 1)
        found = [(c.position[i], float(s)) for i, s in zip(ids[0], np.asarray(scores[0]).tolist())]
        found = [(j, s) for j, s in found if j != p][:want]
        me = self._row(number, name, c, p)
        out = []
        for j, s in found:
            row = self._row(number, name, c, j)
            row["score"] = s
            row["same_label"] = None if me["label"] is None else row["label"] == me["label"]
            out.append(row)
        same = None if me["label"] is None else sum(r["same_label"] for r in out)
        return {"index": number, "collection": name, "k": want, "query": me, "neighbours": out, "same_label": same}


def open_indexes(paths) -> list[ServedIndex]:
    """Open each index folder (`contrastlab.search.open_index`; faiss loads here, only when an index is given);
    ValueError naming the folder when one cannot be opened or has no image collection."""
    if not paths:
        return []
    from ..search.store import open_index
    out = []
    for path in paths:
        path = Path(path)
        try:
            index = open_index(path)
        except (OSError, ValueError) as e:
            raise ValueError(f"--index {path}: cannot open this index folder: {e}") from None
        out.append(ServedIndex(path, index))
    return out
