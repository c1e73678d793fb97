"""The playground's WebSocket protocol: client messages validated field by field, frames encoded as
one JSON message and one binary Float32 message.

Client -> server (JSON text, at most :data:`MAX_MESSAGE_BYTES` bytes)::

    {"type": "set", "values": {"temperature": 0.05, ...}}   change controls (all or nothing)
    {"type": "pause"} | {"type": "resume"} | {"type": "reset"}
    {"type": "step", "count": 1}                              1 <= count <= 100, also when paused
    {"type": "anchor", "index": 12}                           choose the anchor point
    {"type": "ping", "id": 7}                                 answered by {"type": "pong", "id": 7}
    {"type": "ack", "seq": 12}                                frame 12 is drawn: from the first ack on, at
                                                              most MAX_IN_FLIGHT frames are sent ahead
    {"type": "experiment", "name": "collapse"}                start a guided experiment (experiments.py)
    {"type": "load", "query": "temperature=0.05&seed=3"}      open a playground link (share.py); answered by
                                                              a ``notice`` listing what it ignored

Server -> client: ``init`` (controls, settings, labels, class names, full history) when a
connection opens and whenever the points are regenerated; per frame a JSON ``frame`` message then a
binary message; ``error`` for any message that breaks a rule (the connection stays open).

Binary frame, little-endian float32: a header of :data:`HEADER` values ``[version, seq, epoch,
step, N, dim, S, G, B]``, then positions (N, dim), the batch (2B,): the ids of its B anchors then of their
positives (exact in float32 below 2^24 points), the pull and push on those rows (2B, dim) each, and the
similarity matrix (S, S); only the batch's forces travel, so a frame of 10,000 points is a third of what one
pull and push per point would be. In encoder mode (G > 0) then the inputs (N, 2), the held-out mask (N,) (1: held out)
and the field (G * G, dim): where the encoder sends each cell of the input plane's G x G grid (row by row from the
top), the plane being [-extent, extent]^2 with ``extent`` in the JSON message.

Example::

    >>> from contrastlab.dashboard.protocol import parse_message, ProtocolError
    >>> parse_message('{"type": "set", "values": {"temperature": 0.2}}')
    ('set', {'values': {'temperature': 0.2}})
    >>> try:
    ...     parse_message('{"type": "explode"}')
    ... except ProtocolError as e:
    ...     print(e)
    `type` must be one of ['ack', 'anchor', 'experiment', 'load', 'pause', 'ping', 'reset', 'resume', 'set', 'step'], got 'explode'
"""

from __future__ import annotations

import json
import math

import numpy as np

from .controls import CONTROLS, validate_settings
from .encoder_mode import EXTENT
from .experiments import EXPERIMENTS
from .share import MAX_LINK_CHARS

__all__ = ["ProtocolError", "parse_message", "encode_frame", "init_message", "error_message", "notice_message",
           "MAX_MESSAGE_BYTES", "FORMAT_VERSION", "HEADER"]

#: Largest client message accepted (bytes of UTF-8 text).
MAX_MESSAGE_BYTES = 4096
#: First value of every binary frame; bumped when the layout changes.
FORMAT_VERSION = 3
#: Number of float32 values in the binary frame's header.
HEADER = 9
#: Most steps one "step" message may ask for.
MAX_STEPS = 100

# message type -> {field: how it is checked}; _REQUIRED: the fields a type cannot do without
_FIELDS = {
    "set": {"values": "values"},
    "pause": {},
    "resume": {},
    "reset": {},
    "step": {"count": "count"},
    "anchor": {"index": "index"},
    "ping": {"id": "id"},
    "ack": {"seq": "seq"},
    "experiment": {"name": "experiment"},
    "load": {"query": "query"},
}
_REQUIRED = {"set": {"values"}, "anchor": {"index"}, "ack": {"seq"}, "experiment": {"name"}, "load": {"query"}}


class ProtocolError(ValueError):
    """A client message that breaks the protocol; its text is sent back in an ``error`` message."""


def _int(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProtocolError(f"`{name}` must be an integer in [{low}, {high}], got {value!r}")
    return value


def _check_field(kind: str, name: str, value):
    if kind == "values":
        if not isinstance(value, dict) or not value:
            raise ProtocolError(f"`values` must be a non-empty object of control values, got {value!r}")
        try:
            return validate_settings(value)
        except (TypeError, ValueError) as e:
            raise ProtocolError(str(e)) from None
    if kind == "count":
        return _int(name, value, 1, MAX_STEPS)
    if kind == "index":
        return _int(name, value, 0, CONTROLS["points"].high - 1)
    if kind == "seq":
        return _int(name, value, 0, 2**53)
    if kind == "experiment":
        if not isinstance(value, str) or value not in EXPERIMENTS:
            raise ProtocolError(f"`name` must be one of {sorted(EXPERIMENTS)}, got {value!r}")
        return value
    if kind == "query":
        if not isinstance(value, str) or len(value) > MAX_LINK_CHARS:
            raise ProtocolError(f"`query` must be a string of at most {MAX_LINK_CHARS} characters, got "
                                f"{type(value).__name__} of length {len(value) if isinstance(value, str) else '-'}")
        return value
    # ping id: a small number or short string, echoed back
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value)
                                       or isinstance(value, str) and len(value) <= 64):
        raise ProtocolError(f"`id` must be a finite number or a string of at most 64 characters, got {value!r}")
    return value


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_message(data) -> tuple[str, dict]:
    """Validate one client message (``str``; ``bytes`` are refused) and return ``(type, fields)``.

    Raises :class:`ProtocolError` with a message naming the rule and the value.
    """
    if isinstance(data, (bytes, bytearray)):
        raise ProtocolError("binary messages are not accepted; send JSON text")
    if not isinstance(data, str):
        raise ProtocolError(f"a message must be JSON text, got {type(data).__name__}")
    size = len(data.encode("utf-8", "surrogatepass"))
    if size > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"a message must be at most {MAX_MESSAGE_BYTES} bytes, got {size}")
    try:
        obj = json.loads(data, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise ProtocolError(f"a message must be valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"a message must be a JSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise ProtocolError(f"`type` must be one of {sorted(_FIELDS)}, got {kind!r}")
    fields = {k: v for k, v in obj.items() if k != "type"}
    unknown = sorted(set(fields) - set(_FIELDS[kind]))
    if unknown:
        raise ProtocolError(f"unknown field(s) {unknown} for a {kind!r} message; allowed: {sorted(_FIELDS[kind])}")
    missing = sorted(_REQUIRED.get(kind, set()) - set(fields))
    if missing:
        raise ProtocolError(f"a {kind!r} message needs the field(s) {missing}")
    return kind, {name: _check_field(_FIELDS[kind][name], name, value) for name, value in fields.items()}


def _json(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def error_message(text: str, *, request: str | None = None) -> str:
    return _json({"type": "error", "message": text, "request": request})


def notice_message(messages: list[str], *, request: str | None = None) -> str:
    """Things the server did differently from what was asked (a link's ignored settings), for the page to show."""
    return _json({"type": "notice", "messages": list(messages), "request": request})


def init_message(playground, *, running: bool) -> str:
    """Everything the page needs to (re)build itself: the controls table, settings, labels."""
    return _json({"type": "init", "controls": [c.to_json() for c in CONTROLS.values()],
                  "settings": playground.settings, "running": running, "epoch": playground.epoch,
                  "class_names": playground.class_names, "labels": playground.labels.tolist(),
                  "history": playground.history(), "experiments": [e.to_json() for e in EXPERIMENTS.values()],
                  "limits": {"max_message_bytes": MAX_MESSAGE_BYTES,
                                                             "max_steps": MAX_STEPS}})


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def encode_frame(frame, *, seq: int, running: bool) -> tuple[str, bytes]:
    """A frame as its JSON message and its binary message (see the module docstring)."""
    n, dim = frame.positions.shape
    s = frame.similarity.shape[0]
    g = 0 if frame.field is None else int(round(math.sqrt(frame.field.shape[0])))
    b = frame.batch.shape[0] // 2
    header = np.array([FORMAT_VERSION, seq, frame.epoch, frame.step, n, dim, s, g, b], np.float32)
    parts = [header, frame.positions.ravel(), frame.batch.astype(np.float32), frame.pull.ravel(), frame.push.ravel(),
             frame.similarity.ravel()]
    if g:
        parts += [frame.inputs.ravel(), frame.held_out.astype(np.float32), frame.field.ravel()]
    blob = np.concatenate(parts).astype("<f4")
    anchor = {k: v for k, v in frame.anchor.items() if k != "probabilities"}
    metrics = {k: _finite(v) if isinstance(v, float) else v for k, v in frame.metrics.items()}
    history = {k: ([_finite(x) for x in v] if isinstance(v, list) else v) for k, v in frame.history.items()}
    meta = {"type": "frame", "seq": seq, "step": frame.step, "epoch": frame.epoch, "running": running,
            "anchor": anchor, "metrics": metrics, "history": history, "text": frame.text,
            "similarity_rows": frame.similarity_rows, "similarity_cols": frame.similarity_cols,
            "settings": frame.settings, "experiment": frame.experiment, "formula": frame.formula,
            "link": frame.link, **({"extent": EXTENT} if g else {})}
    return _json(meta), blob.tobytes()
