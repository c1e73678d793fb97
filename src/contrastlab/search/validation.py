"""Checking a search request body: a pure function from parsed JSON to a `SearchQuery`, or a `RequestError`
(HTTP status and a message naming the field, the rule and the value it got).

>>> parse_search_request({"query": "red shoes", "k": 3}, dim=4, max_k=100, known_ids=set())
SearchQuery(k=3, text='red shoes', vector=None, allowed_ids=None)
>>> parse_search_request({"query": "red shoes", "k": 0}, dim=4, max_k=100, known_ids=set())
Traceback (most recent call last):
...
contrastlab.search.validation.RequestError: 'k' must be a positive int, got 0
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Container

import numpy as np

__all__ = ["SearchQuery", "RequestError", "parse_search_request", "FIELDS"]

FIELDS = ("query", "vector", "k", "ids")
DEFAULT_K = 10
_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number",
               type(None): "null"}


class RequestError(ValueError):
    """A bad request: `status` is the HTTP status to answer with, the message says what was wrong."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SearchQuery:
    """One checked request: either `text` or `vector` (D,) float32, `k`, and optional allowed document ids."""

    k: int
    text: str | None = None
    vector: np.ndarray | None = None
    allowed_ids: tuple[str, ...] | None = None


def _kind(value) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_search_request(body, *, dim: int, max_k: int, known_ids: Container[str]) -> SearchQuery:
    """Check a parsed JSON body {"query": str} or {"vector": [D floats]}, "k": int (default 10), "ids": [str]."""
    if not isinstance(body, dict):
        raise RequestError(f"the request body must be a JSON object, got {_kind(body)}")
    unknown = [key for key in body if key not in FIELDS]
    if unknown:
        raise RequestError(f"unknown field {_shown(unknown[0])}; the fields are {', '.join(FIELDS)}")
    has_query, has_vector = "query" in body, "vector" in body
    if has_query == has_vector:
        raise RequestError("give exactly one of 'query' (a text) and 'vector' (a list of numbers), got "
                           + ("both" if has_query else "neither"))
    k = body.get("k", DEFAULT_K)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise RequestError(f"'k' must be a positive int, got {_shown(k)}")
    if k > max_k:
        raise RequestError(f"'k' must be at most {max_k}, got {k}")
    text = vector = allowed = None
    if has_query:
        text = body["query"]
        if not isinstance(text, str):
            raise RequestError(f"'query' must be a string, got {_kind(text)} {_shown(text)}")
        if not text.strip():
            raise RequestError(f"'query' must not be empty or only whitespace, got {_shown(text)}")
    else:
        vector = _parse_vector(body["vector"], dim)
    if "ids" in body:
        allowed = _parse_ids(body["ids"], known_ids)
    return SearchQuery(k=k, text=text, vector=vector, allowed_ids=allowed)


def _parse_vector(values, dim: int) -> np.ndarray:
    if not isinstance(values, list):
        raise RequestError(f"'vector' must be a list of {dim} numbers, got {_kind(values)}")
    if len(values) != dim:
        raise RequestError(f"'vector' must have {dim} numbers (the index dimension), got {len(values)}")
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise RequestError(f"'vector[{i}]' must be a number, got {_kind(v)} {_shown(v)}")
        if not math.isfinite(v):
            raise RequestError(f"'vector[{i}]' must be finite, got {v}")
    vector = np.asarray(values, dtype=np.float64)                      # (D,)
    norm = float(np.linalg.norm(vector))
    if norm == 0 or not math.isfinite(norm) or not np.isfinite(vector.astype(np.float32)).all():
        raise RequestError("'vector' must have a direction: it is all zeros or too large for float32")
    return (vector / norm).astype(np.float32)


def _parse_ids(ids, known_ids: Container[str]) -> tuple[str, ...]:
    if not isinstance(ids, list):
        raise RequestError(f"'ids' must be a list of document id strings, got {_kind(ids)}")
    if not ids:
        raise RequestError("'ids' must hold at least one document id, got an empty list")
    for i, d in enumerate(ids):
        if not isinstance(d, str):
            raise RequestError(f"'ids[{i}]' must be a string, got {_kind(d)} {_shown(d)}")
    unknown = [d for d in ids if d not in known_ids]
    if unknown:
        raise RequestError(f"'ids' holds {len(unknown)} unknown document id{'s' if len(unknown) > 1 else ''}: "
                           f"{', '.join(map(_shown, unknown[:5]))}{' ...' if len(unknown) > 5 else ''}")
    return tuple(dict.fromkeys(ids))
