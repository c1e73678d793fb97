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
        conn = http.client.HTTPConnection(urlsplit(url).hostname, urlsplit(url).port, timeout=10)
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
