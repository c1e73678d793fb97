"""Client messages are validated field by field; frames decode back to the engine's arrays."""

import json

import numpy as np
import pytest

from contrastlab.dashboard.playground import Playground
from contrastlab.dashboard.protocol import (FORMAT_VERSION, HEADER, MAX_MESSAGE_BYTES, ProtocolError, encode_frame,
                                            parse_message)


@pytest.mark.parametrize("text,want", [
    ('{"type": "set", "values": {"temperature": 0.05, "loss": "supcon"}}',
     ("set", {"values": {"temperature": 0.05, "loss": "supcon"}})),
    ('{"type": "pause"}', ("pause", {})),
    ('{"type": "resume"}', ("resume", {})),
    ('{"type": "reset"}', ("reset", {})),
    ('{"type": "step"}', ("step", {})),
    ('{"type": "step", "count": 100}', ("step", {"count": 100})),
    ('{"type": "anchor", "index": 0}', ("anchor", {"index": 0})),
    ('{"type": "ping", "id": "abc"}', ("ping", {"id": "abc"})),
])
def test_valid_messages(text, want):
    assert parse_message(text) == want


@pytest.mark.parametrize("data,words", [
    (b'{"type": "pause"}', "binary messages are not accepted"),
    ("x" * (MAX_MESSAGE_BYTES + 1), f"at most {MAX_MESSAGE_BYTES} bytes"),
    ('{"type": "set", "values": {"temperature": "' + "é" * 2100 + '"}}', "at most"),   # bytes, not characters
    ("not json", "valid JSON"),
    ('{"type": "pause"', "valid JSON"),
    ('{"type": "set", "values": {"temperature": NaN}}', "valid JSON"),
    ('{"type": "set", "values": {"temperature": Infinity}}', "valid JSON"),
    ("[" * 2000 + "]" * 2000, "valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('"pause"', "must be a JSON object"),
    ("{}", "`type` must be one of"),
    ('{"type": 3}', "`type` must be one of"),
    ('{"type": "shutdown"}', "`type` must be one of"),
    ('{"type": "pause", "now": true}', "unknown field(s) ['now']"),
    ('{"type": "set"}', "needs the field(s) ['values']"),
    ('{"type": "set", "values": {}}', "`values` must be a non-empty object"),
    ('{"type": "set", "values": [1]}', "`values` must be a non-empty object"),
    ('{"type": "set", "values": {"temperature": 1e400}}', "`temperature` must be a number in"),
    ('{"type": "set", "values": {"temperature": 5}}', "`temperature` must be a number in [0.01, 2], got 5"),
    ('{"type": "set", "values": {"batch_size": true}}', "`batch_size` must be a number"),
    ('{"type": "set", "values": {"path": "../../etc/passwd"}}', "unknown control 'path'"),
    ('{"type": "step", "count": 0}', "`count` must be an integer in [1, 100]"),
    ('{"type": "step", "count": 101}', "`count` must be an integer in [1, 100]"),
    ('{"type": "step", "count": 1.5}', "`count` must be an integer"),
    ('{"type": "anchor"}', "needs the field(s) ['index']"),
    ('{"type": "anchor", "index": -1}', "`index` must be an integer in [0,"),
    ('{"type": "anchor", "index": "3"}', "`index` must be an integer"),
    ('{"type": "ping", "id": {"a": 1}}', "`id` must be a finite number or a string"),
    ('{"type": "ping", "id": "' + "a" * 65 + '"}', "`id` must be a finite number or a string"),
    (None, "must be JSON text"),
])
def test_bad_messages_are_refused_with_a_reason(data, words):
    with pytest.raises(ProtocolError) as err:
        parse_message(data)
    assert words in str(err.value)


def test_a_frame_encodes_to_json_and_float32_that_decode_back():
    pg = Playground(points=40, batch_size=8, dim=3)
    pg.step(2)
    frame = pg.frame()
    text, blob = encode_frame(frame, seq=7, running=True)
    meta = json.loads(text)
    assert meta["type"] == "frame" and meta["seq"] == 7 and meta["step"] == 2 and "probabilities" not in meta["anchor"]
    v = np.frombuffer(blob, "<f4")
    n, dim, s = 40, 3, frame.similarity.shape[0]
    b = 8
    assert v[:HEADER].tolist() == [FORMAT_VERSION, 7, frame.epoch, 2, n, dim, s, 0, b]
    o = HEADER
    np.testing.assert_array_equal(v[o:o + n * dim].reshape(n, dim), frame.positions)
    o += n * dim
    a, p = pg._batch
    np.testing.assert_array_equal(v[o:o + 2 * b], np.concatenate([a.numpy(), p.numpy()]))   # anchors, then positives
    o += 2 * b
    for want in (frame.pull, frame.push):
        np.testing.assert_array_equal(v[o:o + 2 * b * dim].reshape(2 * b, dim), want)
        o += 2 * b * dim
    np.testing.assert_array_equal(v[o:].reshape(s, s), frame.similarity)
    assert len(v) == o + s * s
