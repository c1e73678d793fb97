"""User text files: pair files (JSONL / CSV / Parquet), click logs, and corpus files, read into :class:`TextData`.

A pair file has one pair per line (JSONL object, CSV row under a header row, Parquet row) with the fields
``query`` (alias ``anchor``), ``positive`` (alias ``document``), optionally ``negatives`` (a list; in CSV a
JSON-encoded list, or a single ``negative`` column) and ``positive_id``. A click log has one impression per line,
``{"query": ..., "shown": [...], "clicked": [...]}``: one pair per click, the shown-but-not-clicked items as hard
negatives. Its items are document ids when a corpus file (JSONL ``{"id", "text"}`` or CSV ``id,text``) is given,
texts otherwise.

Malformed lines are collected, never dropped silently: a warning names the count and the first few (file, line
number, reason), ``notes`` carries the counts, and a file where more than half the lines are invalid is refused.
A line (a record) longer than :data:`~contrastlab.data.limits.MAX_LINE_CHARS` characters refuses the file.

A deterministic test split holds out queries by a seeded hash of their text (about 10%, at most 2,000); all pairs
of one query land on the same side. Files with fewer than 50 distinct queries get no test split.

Example::

    >>> import json, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "pairs.jsonl")
    >>> rows = [{"query": "a cat", "positive": "un gato", "negatives": ["un perro"]},
    ...         {"anchor": "a cow", "document": "una vaca"}]
    >>> with open(path, "w") as f:
    ...     _ = f.write("\\n".join(json.dumps(r) for r in rows) + "\\n")
    >>> data = read_pairs(path)
    >>> data.train.anchors, data.train.negatives, data.test is None
    (['a cat', 'a cow'], [['un perro'], []], True)
"""

from __future__ import annotations

import csv
import io
import json
import os
import warnings
from pathlib import Path
from typing import Iterator

from .limits import MAX_LINE_CHARS, check_line_length
from .text import PairData, TextData, hash_unit, retrieval_set
from .text_registry import register_text_dataset

__all__ = ["LineErrors", "read_records", "read_pairs", "read_clicks", "read_corpus", "split_queries",
           "pairs_to_text_data", "MIN_TEST_QUERIES", "TEST_FRACTION", "MAX_TEST_QUERIES"]

TEST_FRACTION = 0.1
MAX_TEST_QUERIES = 2000
MIN_TEST_QUERIES = 50          # fewer distinct queries than this: no test split
_SHOW = 5                      # malformed lines quoted in a warning or error


class BadRecord(ValueError):
    """One malformed line; the reader records it with its line number and goes on."""


class LineErrors:
    """Collects malformed lines of one file; :meth:`finish` warns, refuses, and returns notes.

    >>> import warnings
    >>> errors = LineErrors("a.jsonl")
    >>> errors.add("line 2", "missing field 'positive'")
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     notes = errors.finish(total=3)
    >>> str(caught[0].message)
    "a.jsonl: skipped 1 of 3 lines: line 2: missing field 'positive'"
    """

    def __init__(self, name: str, *, unit: str = "lines"):
        self.name, self.unit, self.items = name, unit, []

    def add(self, where: str, why: str) -> None:
        self.items.append((where, why))

    def __len__(self) -> int:
        return len(self.items)

    def describe(self) -> str:
        shown = "; ".join(f"{w}: {m}" for w, m in self.items[:_SHOW])
        return shown + (f"; ... and {len(self.items) - _SHOW} more" if len(self.items) > _SHOW else "")

    def finish(self, *, total: int) -> list[str]:
        """Raise if more than half of `total` lines are bad, warn if any are; the notes to keep."""
        bad = len(self.items)
        if total == 0:
            raise ValueError(f"{self.name} is empty: no data {self.unit}")
        if bad * 2 > total:
            raise ValueError(f"{self.name}: refused, {bad} of {total} {self.unit} are invalid (more than half): "
                             f"{self.describe()}")
        if not bad:
            return []
        warnings.warn(f"{self.name}: skipped {bad} of {total} {self.unit}: {self.describe()}", stacklevel=3)
        return [f"{self.name}: skipped {bad} of {total} malformed {self.unit} ({self.describe()})"]


# ---- records ---------------------------------------------------------------------------------------------


def _suffix(path: Path) -> str:
    s = path.suffix.lower()
    if s not in (".jsonl", ".csv", ".parquet"):
        raise ValueError(f"`path` must end in .jsonl, .csv or .parquet, got {str(path)!r}")
    return s


def read_records(path: str | os.PathLike, errors: LineErrors) -> tuple[list[tuple[str, dict, bool]], int]:
    """``([(where, record, from_csv), ...], total)``: every data line of a JSONL / CSV / Parquet file as a dict.

    Lines that are not records (invalid JSON, JSON nested too deeply, not an object) go to `errors`; blank lines
    are not counted. CSV values are strings (``from_csv`` True), so a field holding a list is JSON-encoded there.
    A line, CSV record or Parquet row of more than ``MAX_LINE_CHARS`` characters is a ValueError naming it.
    """
    path = Path(path)
    kind = _suffix(path)
    if not path.is_file():
        raise FileNotFoundError(f"`path` {str(path)!r} does not exist or is not a file")
    if kind == ".parquet":
        rows = _parquet_rows(path)
        if not rows:
            raise ValueError(f"{path.name} is empty: no rows")
        for i, r in enumerate(rows, 1):
            check_line_length(path.name, f"row {i}", _chars(r))
        return [(f"row {i}", r, False) for i, r in enumerate(rows, 1)], len(rows)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path.name} is not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8") from None
    if not text.strip():
        raise ValueError(f"{path.name} is empty")
    out: list[tuple[str, dict, bool]] = []
    if kind == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        try:
            rows = _csv_rows(reader, path.name)
        except csv.Error as e:
            raise ValueError(f"{path.name} line {reader.line_num}: not a readable CSV record ({e})") from None
        if not reader.fieldnames:
            raise ValueError(f"{path.name} is empty")
        total = 0
        for row, where in rows:
            if not any((v or "").strip() for k, v in row.items() if k is not None):
                continue
            total += 1
            if None in row:
                errors.add(where, f"{len(row[None])} more values than the {len(reader.fieldnames)} header columns")
                continue
            out.append((where, {k: v for k, v in row.items() if v is not None}, True))
        if total == 0:
            raise ValueError(f"{path.name} has a header row but no data rows")
        return out, total
    total = 0
    for n, line in enumerate(text.split("\n"), 1):          # not splitlines: JSON strings may hold U+2028
        if not line.strip():
            continue
        total += 1
        check_line_length(path.name, f"line {n}", len(line))
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            errors.add(f"line {n}", f"invalid JSON ({e.msg} at column {e.colno})")
            continue
        except RecursionError:
            errors.add(f"line {n}", "invalid JSON (nested too deeply)")
            continue
        if not isinstance(rec, dict):
            errors.add(f"line {n}", f"expected a JSON object, got {type(rec).__name__}")
            continue
        out.append((f"line {n}", rec, False))
    return out, total


def _csv_rows(reader: csv.DictReader, name: str) -> list[tuple[dict, str]]:
    """Every row of `reader` with its "line N", fields up to MAX_LINE_CHARS (csv's own limit is 131,072, and it is
    process-wide: raised here for this read only), rows longer than that refused."""
    old = csv.field_size_limit()
    csv.field_size_limit(max(old, MAX_LINE_CHARS + 1))
    try:
        rows = []
        for row in reader:
            where = f"line {reader.line_num}"                 # a record's last line (quoted fields may span lines)
            check_line_length(name, where, _chars(row))
            rows.append((row, where))
        return rows
    finally:
        csv.field_size_limit(old)


def _chars(rec: dict) -> int:
    """About how many characters a record holds (its keys, strings and the strings of its lists)."""
    n = 0
    for k, v in rec.items():
        n += len(str(k)) if k is not None else 0
        if hasattr(v, "tolist"):
            v = v.tolist()
        items = v if isinstance(v, (list, tuple)) else [v]
        n += sum(len(t) if isinstance(t, str) else len(str(t)) for t in items)
    return n


def _parquet_rows(path: Path) -> list[dict]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        pq = None
    if pq is not None:
        return pq.read_table(path).to_pylist()
    try:
        import pandas as pd
        return pd.read_parquet(path).to_dict("records")
    except ImportError:
        raise ImportError(f"reading {path.name} needs a Parquet reader: `pip install pyarrow` "
                          f"(or pandas with pyarrow); or save the pairs as .jsonl / .csv") from None


def _field(rec: dict, names: tuple[str, ...], *, from_csv: bool = False, required: bool = True) -> str | None:
    """The one string field of `rec` named by `names` (the name, then its aliases); CSV's empty cells are absent."""
    present = [n for n in names if rec.get(n) is not None and not (from_csv and not rec[n].strip())]
    if len(present) > 1:
        raise BadRecord(f"has both {present[0]!r} and {present[1]!r}; give one")
    if not present:
        if required:
            alias = f" (or {', '.join(repr(n) for n in names[1:])})" if len(names) > 1 else ""
            raise BadRecord(f"missing field {names[0]!r}{alias}")
        return None
    value = rec[present[0]]
    if not isinstance(value, str):
        raise BadRecord(f"field {present[0]!r} must be a string, got {type(value).__name__} {value!r}")
    if not value.strip():
        raise BadRecord(f"field {present[0]!r} must be a non-empty string, got {value!r}")
    return value


def _id(value, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadRecord(f"field {name!r} must be a string or an integer id, got {type(value).__name__} {value!r}")
    if isinstance(value, str) and not value.strip():
        raise BadRecord(f"field {name!r} must be a non-empty id, got {value!r}")
    return str(value)


def _text_list(value, name: str, *, from_csv: bool) -> list:
    if from_csv and isinstance(value, str):
        if not value.strip():
            return []
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise BadRecord(f"field {name!r} must hold a JSON-encoded list in CSV, got {value[:200]!r}") from None
        except RecursionError:
            raise BadRecord(f"field {name!r} must hold a JSON-encoded list in CSV, got JSON nested too deeply "
                            f"({value[:20]!r}...)") from None
    if hasattr(value, "tolist"):                         # numpy arrays from Parquet readers
        value = value.tolist()
    if not isinstance(value, list):
        raise BadRecord(f"field {name!r} must be a list, got {type(value).__name__} {value!r}")
    return value


def _negatives(rec: dict, *, from_csv: bool) -> list[str] | None:
    if rec.get("negatives") is None and (rec.get("negative") in (None, "")):
        return None
    negs = _text_list(rec["negatives"], "negatives", from_csv=from_csv) if rec.get("negatives") is not None else []
    if rec.get("negative") not in (None, ""):
        negs = negs + [rec["negative"]]
    for i, t in enumerate(negs):
        if not isinstance(t, str) or not t.strip():
            raise BadRecord(f"field 'negatives' item {i} must be a non-empty string, got {t!r}")
    return negs


# ---- pair files ------------------------------------------------------------------------------------------


def read_pairs(path: str | os.PathLike, *, seed: int = 0) -> TextData:
    """Read a pair file (.jsonl, .csv with a header row, .parquet) into :class:`TextData` with a held-out split."""
    path = Path(path)
    errors = LineErrors(path.name)
    records, total = read_records(path, errors)
    rows = []
    for where, rec, from_csv in records:
        try:
            query = _field(rec, ("query", "anchor"), from_csv=from_csv)
            positive = _field(rec, ("positive", "document"), from_csv=from_csv)
            negs = _negatives(rec, from_csv=from_csv)
            pid = None if rec.get("positive_id") in (None, "") else _id(rec["positive_id"], "positive_id")
        except BadRecord as e:
            errors.add(where, str(e))
            continue
        rows.append((query, positive, negs, pid))
    notes = errors.finish(total=total)
    notes.insert(0, f"read {len(rows)} pairs from {path}")
    return pairs_to_text_data(path.stem, rows, notes=notes, seed=seed)


def split_queries(queries, *, seed: int = 0, fraction: float = TEST_FRACTION,
                  max_test: int = MAX_TEST_QUERIES, min_queries: int = MIN_TEST_QUERIES) -> tuple[set[str], str]:
    """(held-out queries, note): about `fraction` of the distinct queries by a seeded hash of their text.

    >>> held, note = split_queries([f"q{i}" for i in range(200)])
    >>> 5 < len(held) < 40, note.startswith("held out")
    (True, True)
    >>> split_queries(["a", "b"])[0]
    set()
    """
    distinct = list(dict.fromkeys(queries))
    if len(distinct) < min_queries:
        return set(), (f"no test split: only {len(distinct)} distinct queries (a held-out set needs at least "
                       f"{min_queries}); evaluate on a separate file")
    score = {q: hash_unit(q, seed=seed) for q in distinct}
    held = sorted((q for q in distinct if score[q] < fraction), key=score.get)[:max_test]
    if not held:
        held = [min(distinct, key=score.get)]
    return set(held), (f"held out {len(held)} of {len(distinct)} distinct queries (hash of the query text, "
                       f"~{fraction:.0%}, seed {seed}, at most {max_test}); all pairs of a query on one side")


def pairs_to_text_data(name: str, rows, *, notes: list[str], seed: int = 0, corpus: tuple[list, list] | None = None
                       ) -> TextData:
    """Rows ``(query, positive, negatives | None, positive_id | None)`` -> :class:`TextData` split by query.

    The test corpus is `corpus` = ``(ids, texts)`` when given (a corpus file), else every distinct positive
    document of the file, train and test (so training documents are distractors, as in a real index).
    """
    if not rows:
        raise ValueError(f"{name}: no valid pairs")
    held, note = split_queries([r[0] for r in rows], seed=seed)
    notes = [*notes, note]
    if any(r[3] is None for r in rows):
        notes.append("positive_ids: the positive's text where no positive_id was given (equal texts are one document)")
    train = [r for r in rows if r[0] not in held]
    test = [r for r in rows if r[0] in held]
    has_negs = any(r[2] is not None for r in rows)
    pair_data = PairData(anchors=[r[0] for r in train], positives=[r[1] for r in train],
                         negatives=[r[2] or [] for r in train] if has_negs else None,
                         positive_ids=[r[3] if r[3] is not None else r[1] for r in train])
    retrieval = None
    if test:
        by_query: dict[str, list[str]] = {}
        for q, pos, _, _ in test:
            by_query.setdefault(q, []).append(pos)
        if corpus is not None:
            retrieval = retrieval_set(list(by_query), list(by_query.values()), corpus=corpus[1], doc_ids=corpus[0])
            notes.append(f"test corpus: all {len(corpus[1])} documents of the corpus file")
        else:
            docs = list(dict.fromkeys(r[1] for r in rows))
            retrieval = retrieval_set(list(by_query), list(by_query.values()), corpus=docs)
            notes.append(f"test corpus: the {len(docs)} distinct positive documents of the file, training ones "
                         f"included (a document may be relevant to a test query and a training query alike)")
    return TextData(name=name, train=pair_data, test=retrieval, notes=notes)


# ---- corpus files and click logs -------------------------------------------------------------------------


def read_corpus(path: str | os.PathLike) -> tuple[list[str], list[str], list[str]]:
    """``(ids, texts, notes)`` from a corpus file: JSONL ``{"id": ..., "text": ...}`` or CSV with ``id,text``.

    A duplicate id is an error naming both lines; other malformed lines follow the collected rules.
    """
    path = Path(path)
    errors = LineErrors(path.name)
    records, total = read_records(path, errors)
    ids, texts, first = [], [], {}
    for where, rec, from_csv in records:
        try:
            if rec.get("id") in (None, ""):
                raise BadRecord("missing field 'id'")
            doc_id = _id(rec["id"], "id")
            text = _field(rec, ("text",), from_csv=from_csv)
        except BadRecord as e:
            errors.add(where, str(e))
            continue
        if doc_id in first:
            raise ValueError(f"{path.name} {where}: duplicate id {doc_id!r} (first on {first[doc_id]})")
        first[doc_id] = where
        ids.append(doc_id)
        texts.append(text)
    return ids, texts, errors.finish(total=total)


def _items(rec: dict, name: str, *, required: bool) -> list[str]:
    if rec.get(name) is None:
        if required:
            raise BadRecord(f"missing field {name!r}")
        return []
    value = rec[name]
    if not isinstance(value, list):
        raise BadRecord(f"field {name!r} must be a list, got {type(value).__name__} {value!r}")
    return [_id(v, f"{name}[{i}]") for i, v in enumerate(value)]


def _impressions(records, errors: LineErrors) -> Iterator[tuple[str, str, list[str], list[str]]]:
    for where, rec, _ in records:
        try:
            query = _field(rec, ("query",))
            shown = _items(rec, "shown", required=False)
            clicked = _items(rec, "clicked", required=True)
        except BadRecord as e:
            errors.add(where, str(e))
            continue
        yield where, query, shown, clicked


def read_clicks(path: str | os.PathLike, *, corpus: str | os.PathLike | None = None, seed: int = 0) -> TextData:
    """Read a click log (JSONL, one impression per line) into pairs: one per click, hard negatives = shown but
    not clicked (never an item this query clicked in another impression). With `corpus`, items are document ids.
    """
    path = Path(path)
    if path.suffix.lower() != ".jsonl":
        raise ValueError(f"`path` of a click log must be a .jsonl file, got {str(path)!r}")
    notes: list[str] = []
    text_of = None
    if corpus is not None:
        ids, texts, corpus_notes = read_corpus(corpus)
        text_of = dict(zip(ids, texts))
        notes += [f"corpus {Path(corpus).name}: {len(ids)} documents", *corpus_notes]
    errors = LineErrors(path.name)
    records, total = read_records(path, errors)
    impressions = list(_impressions(records, errors))
    notes = [*notes, *errors.finish(total=total)]
    clicked_by_query: dict[str, set[str]] = {}
    for _, query, _, clicked in impressions:
        clicked_by_query.setdefault(query, set()).update(clicked)
    rows, missing, missing_where, no_click, missing_shown = [], 0, [], 0, 0
    for where, query, shown, clicked in impressions:
        if not clicked:
            no_click += 1
            continue
        negs = [s for s in dict.fromkeys(shown) if s not in clicked_by_query[query]]
        if text_of is not None:
            lost = [c for c in clicked if c not in text_of]
            if lost:
                missing += len(lost)
                missing_where.append(f"{where}: {', '.join(repr(c) for c in lost[:3])}")
            missing_shown += sum(s not in text_of for s in negs)
            negs = [text_of[s] for s in negs if s in text_of]
            rows += [(query, text_of[c], negs, c) for c in dict.fromkeys(clicked) if c in text_of]
        else:
            rows += [(query, c, negs, None) for c in dict.fromkeys(clicked)]
    if missing:
        msg = (f"{path.name}: {missing} clicked ids are not in the corpus and were skipped "
               f"({'; '.join(missing_where[:_SHOW])}{' ...' if len(missing_where) > _SHOW else ''})")
        warnings.warn(msg, stacklevel=2)
        notes.append(msg)
    if missing_shown:
        notes.append(f"{missing_shown} shown-but-not-clicked ids are not in the corpus: not used as negatives")
    if no_click:
        notes.append(f"{no_click} impressions without clicks give no pairs")
    notes.insert(0, f"read {len(impressions)} impressions -> {len(rows)} (query, clicked) pairs from {path}")
    corpus_arg = (list(text_of), list(text_of.values())) if text_of is not None else None
    return pairs_to_text_data(path.stem, rows, notes=notes, seed=seed, corpus=corpus_arg)


@register_text_dataset("pairs", takes_path=True, suffixes=(".jsonl", ".csv", ".parquet"),
                       description="pair file: query/anchor, positive/document, optional negatives, positive_id")
def _load_pairs(path, *, root):
    return read_pairs(path)


@register_text_dataset("clicks", takes_path=True, options=("corpus",),
                       description="click log: one impression per line {query, shown, clicked}")
def _load_clicks(path, *, root, corpus=None):
    return read_clicks(path, corpus=corpus)
