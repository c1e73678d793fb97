"""Checking a search request body: a pure function from parsed JSON to a `SearchQuery`, or a `RequestError`
(HTTP status and a message naming the field, the rule and the value it got). `parse_search_request` checks a
request to a text index; `parse_image_text_request` one to an image-text index (a text, an image or a vector,
and the collection to search).

>>> parse_search_request({"query": "red shoes", "k": 3}, dim=4, max_k=100, known_ids=set())
SearchQuery(k=3, text='red shoes', vector=None, allowed_ids=None, target=None)
>>> parse_search_request({"query": "red shoes", "k": 0}, dim=4, max_k=100, known_ids=set())
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

__all__ = ["SearchQuery", "RequestError", "parse_search_request", "parse_image_text_request", "FIELDS",
           "IMAGE_TEXT_FIELDS", "TARGETS", "MAX_IMAGE_BYTES"]

FIELDS = ("query", "vector", "k", "ids", "exclude_self")
IMAGE_TEXT_FIELDS = ("query", "image", "vector", "k", "ids", "target", "exclude_self")
TARGETS = ("images", "names")
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
    """One checked request: `text`, `vector` (D,) float32 or (indexes of images) `image` (C, H, W) uint8
    pixels, `k`, optional allowed document ids, (indexes of images) the collection to search, `target`, whether
    to leave out the query itself (`exclude_self`) and what was done to its image (`notes`: resized ...)."""

    k: int
    text: str | None = None
    vector: np.ndarray | None = None
    allowed_ids: tuple[str, ...] | None = None
    target: str | None = None
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


def parse_search_request(body, *, dim: int, max_k: int, known_ids: Container[str]) -> SearchQuery:
    """Check a parsed JSON body {"query": str} or {"vector": [D floats]}, "k": int (default 10), "ids": [str],
    "exclude_self": bool. An "image" gets a 422 saying this index holds texts only."""
    if isinstance(body, dict) and "image" in body:
        raise _modality_error("image", ("text",))
    _check_fields(body, FIELDS)
    has_query, has_vector = "query" in body, "vector" in body
    if has_query == has_vector:
        raise RequestError("give exactly one of 'query' (a text) and 'vector' (a list of numbers), got "
                           + ("both" if has_query else "neither"))
    k = _parse_k(body, max_k)
    text = vector = allowed = None
    if has_query:
        text = _parse_text(body["query"])
    else:
        vector = _parse_vector(body["vector"], dim)
    if "ids" in body:
        allowed = _parse_ids(body["ids"], known_ids)
    return SearchQuery(k=k, text=text, vector=vector, allowed_ids=allowed, exclude_self=_parse_exclude_self(body))


def parse_image_text_request(body, *, dim: int, max_k: int, known_ids: Mapping[str, Container[str]],
                             prepare_image: Callable[[bytes], np.ndarray],
                             max_image_bytes: int = MAX_IMAGE_BYTES, targets: tuple[str, ...] = TARGETS) -> SearchQuery:
    """Check a request to an image-text index: exactly one of {"query": str} (searches the images by default),
    {"image": base64 PNG or JPEG} (the names by default) and {"vector": [D floats]} (the images by default);
    "target": "images" | "names" picks the collection; "k", "ids" (of that collection) as for a text index.
    `prepare_image(bytes)` decodes the image (an `ImageDecodeError` becomes a 4xx naming 'image') into (C, H, W)
    pixels, or (pixels, notes). `targets`: the collections the index holds; ("images",) (an image run's index)
    takes no text query (a 422 naming its modalities) and searches the images for an image.

    >>> from contrastlab.search.multimodal import decode_image
    >>> parse_image_text_request({"query": "red heart"}, dim=4, max_k=10, known_ids={}, prepare_image=decode_image)
    SearchQuery(k=10, text='red heart', vector=None, allowed_ids=None, target='images')
    >>> parse_image_text_request({"image": "bm90IGFuIGltYWdl", "k": 3}, dim=4, max_k=10, known_ids={},
    ...                          prepare_image=decode_image)                 # base64 of "not an image"
    Traceback (most recent call last):
    ...
    contrastlab.search.validation.RequestError: 'image' is not a PNG or JPEG image (Pillow cannot identify it)
    """
    _check_fields(body, IMAGE_TEXT_FIELDS)
    given = [key for key in ("query", "image", "vector") if key in body]
    if len(given) != 1:
        got = "none" if not given else " and ".join(f"'{g}'" for g in given)
        raise RequestError(f"give exactly one of 'query' (a text), 'image' (a base64 PNG or JPEG file) and "
                           f"'vector' (a list of numbers), got {'both ' if len(given) == 2 else ''}{got}")
    modalities = ("image", "text") if "names" in targets else ("image",)
    if given[0] == "query" and "text" not in modalities:
        raise _modality_error("text", modalities)
    target = body.get("target", "names" if given[0] == "image" and "names" in targets else "images")
    if not isinstance(target, str) or target not in targets:
        raise RequestError(f"'target' must be one of {', '.join(map(repr, targets))}"
                           + (f" (this index holds only {', '.join(targets)})" if targets != TARGETS else "")
                           + f", got {_kind(target)} {_shown(target)}")
    k = _parse_k(body, max_k)
    exclude_self = _parse_exclude_self(body)
    text = vector = image = allowed = None
    notes: tuple[str, ...] = ()
    if given[0] == "query":
        text = _parse_text(body["query"])
    elif given[0] == "vector":
        vector = _parse_vector(body["vector"], dim)
    else:
        image = _parse_image(body["image"], prepare_image, max_image_bytes)
        if isinstance(image, tuple):
            image, notes = image[0], tuple(image[1])
    if "ids" in body:
        allowed = _parse_ids(body["ids"], known_ids[target])
    return SearchQuery(k=k, text=text, vector=vector, allowed_ids=allowed, target=target, image=image,
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
