"""The HTTP search API through a TestClient: correct answers, and every bad input -> the right 4xx and a message
naming the field."""
from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from contrastlab.search import VectorIndex, create_search_app

from .helpers import HashEmbedder, reference_top_k

DOCS = ["red running shoe", "blue running shoe", "red wool hat", "green garden hose", "blue denim jacket",
        "wool winter jacket", "garden shears", "running shorts", "red apple", "green apple pie"]
IDS = [f"p{i}" for i in range(len(DOCS))]


@pytest.fixture(scope="module")
def setup():
    embedder = HashEmbedder(dim=32)
    vectors = embedder.encode(DOCS)
    index = VectorIndex.build(vectors, IDS, texts=DOCS)
    return index, embedder, vectors


@pytest.fixture
def client(setup):
    index, embedder, _ = setup
    with TestClient(create_search_app(index, embedder, max_k=50, max_body_bytes=4096),
                    base_url="http://127.0.0.1") as c:
        yield c


def test_health(client):
    assert client.get("/health").json() == {"status": "ok", "count": 10, "dim": 32, "kind": "exact", "recall": None,
                                             "modalities": ["text"],
                                             "collections": {"texts": {"count": 10, "kind": "exact", "modality": "text",
                                                                       "recall": None, "thumbnails": False}}}


def test_a_text_query_matches_brute_force_over_the_documents(client, setup):
    _, embedder, vectors = setup
    reply = client.post("/search", json={"query": "red running shoe", "k": 4})
    assert reply.status_code == 200
    body = reply.json()
    ref_scores, ref_rows = reference_top_k(vectors, embedder.encode(["red running shoe"]), 4)
    assert [r["id"] for r in body["results"]][0] == "p0"
    np.testing.assert_allclose([r["score"] for r in body["results"]], ref_scores[0], atol=1e-5)
    assert [r["text"] for r in body["results"]] == [DOCS[int(i.lstrip("p"))] for i in
                                                    (r["id"] for r in body["results"])]
    assert body["took_ms"] >= 0 and len(client.post("/search", json={"query": "apple"}).json()["results"]) == 10


def test_a_vector_query_with_an_id_filter(client, setup):
    _, _, vectors = setup
    v = vectors[2] * 3.0                                       # not unit length: the server normalises
    reply = client.post("/search", json={"vector": v.tolist(), "k": 3, "ids": ["p8", "p0", "p5", "p9"]}).json()
    ref_scores, ref_rows = reference_top_k(vectors[[8, 0, 5, 9]], v[None], 3)
    assert [r["id"] for r in reply["results"]] == [["p8", "p0", "p5", "p9"][j] for j in ref_rows[0]]
    np.testing.assert_allclose([r["score"] for r in reply["results"]], ref_scores[0], atol=1e-5)


def post_raw(client, content, content_type="application/json", headers=None):
    return client.post("/search", content=content, headers={"Content-Type": content_type, **(headers or {})})


@pytest.mark.parametrize("body, status, message", [
    ({"query": "   "}, 422, "'query' must not be empty or only whitespace"),
    ({"query": ""}, 422, "'query' must not be empty or only whitespace"),
    ({"query": 5}, 422, "'query' must be a string, got number 5"),
    ({"query": "hat", "vector": [0.0] * 32}, 422, "give exactly one of 'query' (a text) and 'vector' (a list of "
                                                  "numbers), got both"),
    ({"k": 3}, 422, "give exactly one of 'query' (a text) and 'vector' (a list of numbers), got none"),
    ({"query": "hat", "k": 0}, 422, "'k' must be a positive int, got 0"),
    ({"query": "hat", "k": -2}, 422, "'k' must be a positive int, got -2"),
    ({"query": "hat", "k": 2.5}, 422, "'k' must be a positive int, got 2.5"),
    ({"query": "hat", "k": "3"}, 422, "'k' must be a positive int, got '3'"),
    ({"query": "hat", "k": True}, 422, "'k' must be a positive int, got True"),
    ({"query": "hat", "k": 51}, 422, "'k' must be at most 50, got 51"),
    ({"vector": [0.1] * 31}, 422, "'vector' must have 32 numbers (the index dimension), got 31"),
    ({"vector": "0.1, 0.2"}, 422, "'vector' must be a list of 32 numbers, got string"),
    ({"vector": [0.1] * 31 + ["x"]}, 422, "'vector[31]' must be a number, got string 'x'"),
    ({"vector": [0.0] * 32}, 422, "'vector' must have a direction: it is all zeros"),
    ({"query": "hat", "ids": "p1"}, 422, "'ids' must be a list of document id strings, got string"),
    ({"query": "hat", "ids": ["p1", 2]}, 422, "'ids[1]' must be a string, got number 2"),
    ({"query": "hat", "ids": ["p1", "nope", "p99"]}, 422, "'ids' holds 2 unknown document ids: 'nope', 'p99'"),
    ({"query": "hat", "ids": []}, 422, "'ids' must hold at least one document id, got an empty list"),
    ({"query": "hat", "limit": 3}, 422, "unknown field 'limit'; the fields are query, image, vector, k, ids, collection"),
    (["hat"], 422, "the request body must be a JSON object, got array"),
])
def test_bad_fields_get_422_naming_the_field(client, body, status, message):
    reply = client.post("/search", json=body)
    assert reply.status_code == status, reply.text
    assert message in reply.json()["detail"]


@pytest.mark.parametrize("raw, message", [
    ('{"vector": [' + ", ".join(["0.5"] * 31 + ["NaN"]) + "]}", "'vector[31]' must be finite, got nan"),
    ('{"vector": [' + ", ".join(["0.5"] * 31 + ["Infinity"]) + "]}", "'vector[31]' must be finite, got inf"),
    ('{"vector": [' + ", ".join(["0.5"] * 31 + ["1e999"]) + "]}", "'vector[31]' must be finite, got inf"),
])
def test_non_finite_vectors_are_refused(client, raw, message):
    reply = post_raw(client, raw)
    assert reply.status_code == 422 and message in reply.json()["detail"]


@pytest.mark.parametrize("raw, status, message", [
    ('{"query": "\\ud800"}', 422, "'query' must be valid Unicode text, got a lone surrogate '\\ud800' at character 0"),
    ('{"query": "red \\udfff hat"}', 422, "'query' must be valid Unicode text, got a lone surrogate '\\udfff' at "
                                         "character 4"),
    ("[" * 100_000 + "]" * 100_000, 400, "the request body nests arrays or objects too deeply"),
    ('{"query": ' + "[" * 50_000 + "]" * 50_000 + "}", 400, "the request body nests arrays or objects too deeply"),
    ('{"k": ' + "[" * 900 + "]" * 900 + ', "query": "hat"}', 422, "'k' must be a positive int, got [[[["),
    ('{"vector": [' + "9" * 400 + ", 0" * 31 + "]}", 422, "'vector[0]' is out of range: a 400-digit integer"),
    ('{"vector": [0' + ", 0" * 30 + ", -" + "7" * 400 + "]}", 422, "'vector[31]' is out of range: a 400-digit integer"),
    ('{"query": "hat", "k": ' + "9" * 400 + "}", 422, "'k' must be at most 50, got 99999"),
])
def test_hostile_bodies_get_a_4xx_naming_the_problem(setup, raw, status, message):
    index, embedder, _ = setup
    with TestClient(create_search_app(index, embedder, max_k=50), base_url="http://127.0.0.1") as client:
        reply = post_raw(client, raw.encode())
        good = client.post("/search", json={"query": "red hat"})
    assert reply.status_code == status, reply.text
    assert message in reply.json()["detail"]
    assert len(reply.json()["detail"]) < 300 and good.status_code == 200


def test_malformed_json_wrong_content_type_and_oversized_bodies(client):
    reply = post_raw(client, '{"query": "hat"')
    assert reply.status_code == 400 and "the request body is not valid JSON" in reply.json()["detail"]
    reply = post_raw(client, b"\xff\xfe", )
    assert reply.status_code == 400
    reply = post_raw(client, '{"query": "hat"}', "text/plain")
    assert reply.status_code == 415 and reply.json()["detail"] == ("the Content-Type must be application/json, "
                                                                   "got 'text/plain'")
    assert client.post("/search", content=b'{"query": "hat"}').status_code == 415      # no content type at all
    big = json.dumps({"query": "hat " * 2000})
    reply = post_raw(client, big)
    assert reply.status_code == 413 and reply.json()["detail"] == (f"the request body must be at most 4096 bytes, "
                                                                   f"got {len(big)}")
    chunks = iter([b'{"query": "', b"hat " * 1500, b"x" * 3000, b'"}'])                # no Content-Length
    reply = client.post("/search", content=chunks, headers={"Content-Type": "application/json"})
    assert reply.status_code == 413 and "at most 4096 bytes, got more" in reply.json()["detail"]
    assert post_raw(client, '{"query": "hat"}', "application/json; charset=utf-8").status_code == 200


def test_wrong_method_route_and_host(client, setup):
    assert client.get("/search").status_code == 405
    assert client.post("/nowhere", json={}).status_code == 404
    assert client.get("/health", headers={"Host": "evil.example"}).status_code == 400


def test_a_query_that_embeds_to_zero_is_a_422_not_a_500(setup):
    index, _, _ = setup

    class Blind(HashEmbedder):
        def encode(self, texts, *, batch_size=256):
            out = super().encode(texts)
            out[[i for i, t in enumerate(texts) if "zzz" in t]] = 0
            return out

    with TestClient(create_search_app(index, Blind(dim=32), max_wait_ms=30), base_url="http://127.0.0.1") as c:
        reply = c.post("/search", json={"query": "zzz"})
        assert reply.status_code == 422 and "'query' embeds to a zero" in reply.json()["detail"]
        assert c.post("/search", json={"query": "red hat"}).status_code == 200


def test_vector_only_server_and_factory_checks(setup):
    index, _, vectors = setup
    with TestClient(create_search_app(index, None), base_url="http://127.0.0.1") as c:
        reply = c.post("/search", json={"query": "hat"})
        assert reply.status_code == 422 and "no text embedder" in reply.json()["detail"]
        assert c.post("/search", json={"vector": vectors[4].tolist(), "k": 1}).json()["results"][0]["id"] == "p4"
    with pytest.raises(ValueError, match="`embedder` makes 8-dimensional vectors but the index holds 32"):
        create_search_app(index, HashEmbedder(dim=8))
    with pytest.raises(ValueError, match="`max_k` must be a positive int, got 0"):
        create_search_app(index, None, max_k=0)
