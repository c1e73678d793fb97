"""A real uvicorn server on 127.0.0.1: concurrent clients get the same answers as a direct search, the requests
are batched, and the server stops cleanly."""
from __future__ import annotations

import http.client
import json
import socket
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import numpy as np
import pytest

from contrastlab.search import VectorIndex

from .helpers import HashEmbedder, live_search_server, reference_top_k

CLIENTS, PER_CLIENT = 8, 30


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(300)]
    docs = [" ".join(rng.choice(vocab, 6)) for _ in range(2000)]
    embedder = HashEmbedder(dim=32)
    vectors = embedder.encode(docs)
    index = VectorIndex.build(vectors, [f"d{i}" for i in range(2000)], texts=docs)
    requests = []
    for i in range(CLIENTS * PER_CLIENT):
        if i % 4 == 3:
            body = {"vector": rng.standard_normal(32).tolist(), "k": 5}
        else:
            body = {"query": " ".join(rng.choice(vocab, 3)), "k": int(rng.integers(1, 12))}
        if i % 5 == 0:
            body["ids"] = [f"d{j}" for j in rng.choice(2000, 50, replace=False)]
        requests.append(body)
    return index, embedder, vectors, requests


def expected(vectors, embedder, body):
    """float64 brute force over the allowed documents: (k,) scores and ids."""
    q = embedder.encode([body["query"]]) if "query" in body else np.asarray([body["vector"]])
    rows = np.arange(len(vectors)) if "ids" not in body else np.array([int(d[1:]) for d in body["ids"]])
    scores, order = reference_top_k(vectors[rows], q, body["k"])
    return scores[0], [f"d{rows[j]}" for j in order[0]]


def client_run(base, bodies):
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    out = []
    for body in bodies:
        conn.request("POST", "/search", body=json.dumps(body), headers={"Content-Type": "application/json"})
        reply = conn.getresponse()
        out.append((reply.status, json.loads(reply.read())))
    conn.close()
    return out


def test_concurrent_clients_get_correct_batched_answers_and_the_server_stops_cleanly(corpus):
    index, embedder, vectors, requests = corpus
    with live_search_server(index, embedder, max_wait_ms=10, max_batch=32) as (url, server, thread):
        chunks = [requests[c::CLIENTS] for c in range(CLIENTS)]
        with ThreadPoolExecutor(CLIENTS) as pool:
            answers = list(pool.map(lambda bodies: client_run(url, bodies), chunks))
        conn = http.client.HTTPConnection(urlsplit(url).hostname, urlsplit(url).port, timeout=60)
        conn.request("GET", "/stats")
        stats = json.loads(conn.getresponse().read())
        conn.close()
        port = urlsplit(url).port
    for bodies, replies in zip(chunks, answers):
        for body, (status, reply) in zip(bodies, replies):
            assert status == 200, reply
            scores, ids = expected(vectors, embedder, body)
            got_ids = [r["id"] for r in reply["results"]]
            got_scores = [r["score"] for r in reply["results"]]
            np.testing.assert_allclose(got_scores, scores, atol=1e-5)
            clear = np.abs(np.diff(scores)) > 1e-4              # ranks not tied with a neighbour must match
            for j in range(len(got_ids)):
                if (j == 0 or clear[j - 1]) and (j == len(got_ids) - 1 or clear[j]):
                    assert got_ids[j] == ids[j]
            if "ids" in body:
                assert set(got_ids) <= set(body["ids"])
    assert stats["items"] == len(requests)
    assert stats["batches"] < len(requests) and stats["largest_batch"] >= 2, stats
    assert not thread.is_alive()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


class Fragile(HashEmbedder):
    """Fails on any batch holding the text "poison" (a failure the request checks cannot foresee)."""

    def encode(self, texts, *, batch_size: int = 256):
        if any("poison" in t for t in texts):
            self.calls.append(len(texts))
            raise RuntimeError("the embedder broke on a poisoned text")
        return super().encode(texts, batch_size=batch_size)


def post(base, raw: bytes):
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    conn.request("POST", "/search", body=raw, headers={"Content-Type": "application/json"})
    reply = conn.getresponse()
    status, text = reply.status, reply.read()
    conn.close()
    try:
        return status, json.loads(text)
    except ValueError:                                     # a plain-text error page
        return status, {"detail": text.decode(errors="replace")}


def test_a_query_that_breaks_its_batch_fails_alone_and_lone_surrogates_never_join_a_batch(corpus):
    index, _, vectors, _ = corpus
    embedder = Fragile(dim=32)
    good = [json.dumps({"query": f"w{i} w{i + 1}", "k": 3}).encode() for i in range(7)]
    poison = json.dumps({"query": "w1 poison", "k": 3}).encode()
    # a batch goes when 8 requests wait (max_batch), long before max_wait_ms: the 8 below share one batch
    with live_search_server(index, embedder, max_batch=8, max_wait_ms=9000) as (url, server, thread):
        surrogates = [post(url, b'{"query": "w1 \\ud800"}') for _ in range(3)]
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda raw: post(url, raw), good + [poison]))
        stats = post_stats(url)
    for status, reply in surrogates:
        assert status == 422 and "'query' must be valid Unicode text, got a lone surrogate" in reply["detail"]
    for raw, (status, reply) in zip(good, replies[:7]):
        assert status == 200, reply
        body = json.loads(raw)
        assert [r["id"] for r in reply["results"]][:1] == expected(vectors, embedder, body)[1][:1]
    status, reply = replies[7]
    assert status == 500 and "the server failed to answer this query" in reply["detail"]
    assert stats["failed_batches"] == 1 and stats["largest_batch"] == 8
    assert embedder.calls[0] == 8                      # the shared batch failed, then each query went alone


def post_stats(base):
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    conn.request("GET", "/stats")
    out = json.loads(conn.getresponse().read())
    conn.close()
    return out
