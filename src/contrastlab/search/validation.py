"""Checking a search request body: a pure function from parsed JSON to a `SearchQuery`, or a `RequestError`
(HTTP status and a message naming the field, the rule and the value it got). One request shape serves every
index: a text, an image or a vector, and the collection to search.

>>> parse_search_request({"query": "red shoes", "k": 3}, dim=4, max_k=100, collections={"texts": set()})
SearchQuery(k=3, text='red shoes', vector=None, allowed_ids=None, collection='texts')
>>> parse_search_request({"query": "red shoes", "k": 0}, dim=4, max_k=100, collections={"texts": set()})
Traceback (most recent call last):
...
contrastlab.search.validation.RequestError: 'k' must be a positive int, got 0
"""
from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass, field
from typing import Callable, Container, Mapping

import numpy as np

__all__ = ["SearchQuery", "RequestError", "parse_search_request", "FIELDS", "MAX_IMAGE_BYTES"]

FIELDS = ("query", "image", "vector", "k", "ids", "collection", "exclude_self")
MAX_IMAGE_BYTES = 512 * 1024
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
    """One checked request: `text`, `vector` (D,) float32 or `image` (C, H, W) uint8 pixels, `k`, optional
    allowed document ids, the `collection` to search, whether to leave out the query itself (`exclude_self`) and
    what was done to its image (`notes`: resized ...)."""

    k: int
    text: str | None = None
    vector: np.ndarray | None = None
    allowed_ids: tuple[str, ...] | None = None
    collection: str | None = None
    image: np.ndarray | None = field(default=None, repr=False, compare=False)
    exclude_self: bool = field(default=False, repr=False)
    notes: tuple[str, ...] = field(default=(), repr=False, compare=False)


def _kind(value) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _shown(value) -> str:
    try:
        text = repr(value)              # escapes lone surrogates, so the message itself can be sent as UTF-8
    except RecursionError:              # an array nested hundreds deep (the JSON parser's own limit is higher)
        return f"a deeply nested {_kind(value)}"
    return text if len(text) <= 40 else text[:37] + "..."


def _check_fields(body, fields) -> None:
    if not isinstance(body, dict):
        raise RequestError(f"the request body must be a JSON object, got {_kind(body)}")
    unknown = [key for key in body if key not in fields]
    if unknown:
        raise RequestError(f"unknown field {_shown(unknown[0])}; the fields are {', '.join(fields)}")


def _parse_k(body, max_k: int) -> int:
    k = body.get("k", DEFAULT_K)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise RequestError(f"'k' must be a positive int, got {_shown(k)}")
    if k > max_k:
        raise RequestError(f"'k' must be at most {max_k}, got {_shown(k)}")
    return k


def _parse_exclude_self(body) -> bool:
    value = body.get("exclude_self", False)
    if not isinstance(value, bool):
        raise RequestError(f"'exclude_self' must be true or false, got {_kind(value)} {_shown(value)}")
    return value


def _modality_error(asked: str, modalities) -> RequestError:
    """A query of a modality the index does not have (422), naming those it has."""
    has = ", ".join(modalities)
    send = {"text": "'query'", "image": "'image'"}
    other = " or ".join([send[m] for m in modalities if m in send] + ["'vector'"])
    return RequestError(f"this index holds {' and '.join(modalities)} embeddings only (modalities: {has}): "
                        f"{send[asked]} (a{'n' if asked == 'image' else ''} {asked} query) cannot be answered; "
                        f"send {other}")


def _parse_text(text) -> str:
    if not isinstance(text, str):
        raise RequestError(f"'query' must be a string, got {_kind(text)} {_shown(text)}")
    if not text.strip():
        raise RequestError(f"'query' must not be empty or only whitespace, got {_shown(text)}")
    try:
        text.encode("utf-8")            # JSON's "\ud800" decodes to a lone surrogate, which no encoder can take
    except UnicodeEncodeError as e:
        raise RequestError(f"'query' must be valid Unicode text, got a lone surrogate {text[e.start]!r} at "
                           f"character {e.start}") from None
    return text


def parse_search_request(body, *, dim: int, max_k: int, collections: Mapping[str, Container[str]],
                         queries: tuple[str, ...] = ("text",),
                         default_collection: Callable[[str | None], str] | None = None,
                         prepare_image: Callable[[bytes], np.ndarray] | None = None,
                         max_image_bytes: int = MAX_IMAGE_BYTES) -> SearchQuery:
    """Check a parsed JSON body: exactly one of {"query": str}, {"image": base64 PNG or JPEG} and {"vector": [D
    floats]}; "collection" (one of `collections`, whose values are each collection's known ids; default
    `default_collection(modality)`, modality None for a vector, else the first collection), "k" (default 10),
    "ids" (of that collection) and "exclude_self". `queries`: the modalities the index's embedder takes; a text
    or an image it does not take gets a 422 naming them. `prepare_image(bytes)` decodes an image (an
    `ImageDecodeError` becomes a 4xx naming 'image') into (C, H, W) pixels, or (pixels, notes).

    >>> from contrastlab.search.multimodal import decode_image
    >>> ids = {"images": {"a"}, "names": {"a"}}
    >>> parse_search_request({"query": "red heart", "collection": "names"}, dim=4, max_k=10, collections=ids,
    ...                      queries=("text", "image"))
    SearchQuery(k=10, text='red heart', vector=None, allowed_ids=None, collection='names')
    >>> parse_search_request({"image": "bm90IGFuIGltYWdl", "k": 3}, dim=4, max_k=10, collections=ids,
    ...                      queries=("text", "image"), prepare_image=decode_image)    # base64 of "not an image"
    Traceback (most recent call last):
    ...
    contrastlab.search.validation.RequestError: 'image' is not a PNG or JPEG image (Pillow cannot identify it)
    """
    if isinstance(body, dict):
        for field, modality in (("query", "text"), ("image", "image")):
            if field in body and modality not in queries:
                raise _modality_error(modality, queries)
    _check_fields(body, FIELDS)
    given = [key for key in ("query", "image", "vector") if key in body]
    if len(given) != 1:
        got = "none" if not given else " and ".join(f"'{g}'" for g in given)
        offer = [f for f, m in (("'query' (a text)", "text"), ("'image' (a base64 PNG or JPEG file)", "image"))
                 if m in queries] + ["'vector' (a list of numbers)"]
        raise RequestError(f"give exactly one of {', '.join(offer[:-1])} and {offer[-1]}, got "
                           f"{'both ' if len(given) == 2 else ''}{got}" if len(offer) > 1 else
                           f"give 'vector' (a list of numbers), got {got}")
    modality = {"query": "text", "image": "image", "vector": None}[given[0]]
    names = tuple(collections)
    default = default_collection(modality) if default_collection is not None else names[0]
    collection = body.get("collection", default)
    if not isinstance(collection, str) or collection not in collections:
        raise RequestError(f"'collection' must be one of {', '.join(map(repr, names))}"
                           + (f" (this index holds only {names[0]})" if len(names) == 1 else "")
                           + f", got {_kind(collection)} {_shown(collection)}")
    k = _parse_k(body, max_k)
    exclude_self = _parse_exclude_self(body)
    text = vector = image = allowed = None
    notes: tuple[str, ...] = ()
    if given[0] == "query":
        text = _parse_text(body["query"])
    elif given[0] == "vector":
        vector = _parse_vector(body["vector"], dim)
    else:
        if prepare_image is None:
            raise RequestError("this server has no image embedder: send 'query' or 'vector' instead of 'image'")
        image = _parse_image(body["image"], prepare_image, max_image_bytes)
        if isinstance(image, tuple):
            image, notes = image[0], tuple(image[1])
    if "ids" in body:
        allowed = _parse_ids(body["ids"], collections[collection])
    return SearchQuery(k=k, text=text, vector=vector, allowed_ids=allowed, collection=collection, image=image,
                       exclude_self=exclude_self, notes=notes)


def _parse_image(value, prepare_image, max_bytes: int) -> np.ndarray:
    """A base64 string (optionally a `data:image/...;base64,` URL) -> bytes -> pixels by `prepare_image`."""
    if not isinstance(value, str):
        raise RequestError(f"'image' must be a base64 string of a PNG or JPEG file, got {_kind(value)} "
                           f"{_shown(value)}")
    if value.startswith("data:"):
        head, comma, value = value.partition(",")
        if not comma or not head.endswith(";base64"):
            raise RequestError(f"'image' is a data URL but not a base64 one ('data:image/png;base64,...'), got "
                               f"{_shown(head)}")
    text = "".join(value.split())                                   # line breaks of wrapped base64
    if not text:
        raise RequestError("'image' must not be empty: give a base64 PNG or JPEG file")
    if len(text) > 4 * (max_bytes // 3 + 2):
        raise RequestError(f"'image' must be at most {max_bytes} bytes, got about {len(text) * 3 // 4} (in "
                           f"{len(text)} base64 characters)", 413)
    try:
        text = text.replace("-", "+").replace("_", "/")             # URL-safe base64 too
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as e:
        raise RequestError(f"'image' is not valid base64 ({e})") from None
    if len(data) > max_bytes:
        raise RequestError(f"'image' must be at most {max_bytes} bytes, got {len(data)}", 413)
    try:
        return prepare_image(data)
    except RequestError:
        raise
    except ValueError as e:                                         # ImageDecodeError (a ValueError) and kin
        raise RequestError(f"'image' {e}", getattr(e, "status", 422)) from None


def _parse_vector(values, dim: int) -> np.ndarray:
    if not isinstance(values, list):
        raise RequestError(f"'vector' must be a list of {dim} numbers, got {_kind(values)}")
    if len(values) != dim:
        raise RequestError(f"'vector' must have {dim} numbers (the index dimension), got {len(values)}")
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise RequestError(f"'vector[{i}]' must be a number, got {_kind(v)} {_shown(v)}")
        try:
            finite = math.isfinite(v)
        except OverflowError:           # an int past float range: JSON allows any number of digits
            raise RequestError(f"'vector[{i}]' is out of range: a {_digits(v)}-digit integer (the numbers must be "
                               f"within about 3.4e38, the float32 range)") from None
        if not finite:
            raise RequestError(f"'vector[{i}]' must be finite, got {v}")
    vector = np.asarray(values, dtype=np.float64)                      # (D,)
    norm = float(np.linalg.norm(vector))
    if norm == 0 or not math.isfinite(norm) or not np.isfinite(vector.astype(np.float32)).all():
        raise RequestError("'vector' must have a direction: it is all zeros or too large for float32")
    return (vector / norm).astype(np.float32)


def _digits(n: int) -> str:
    try:
        return str(len(str(abs(n))))
    except ValueError:                  # past Python's int-to-str limit (4300 digits by default)
        return "many-thousand"


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
