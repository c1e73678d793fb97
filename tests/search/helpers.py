"""Helpers of the search tests (no pytest import: a server subprocess uses them too): a small deterministic
embedder, clustered unit vectors, a float64 reference search, and a real uvicorn server on a free port."""
from __future__ import annotations

import threading
import time
import zlib
from contextlib import contextmanager

import numpy as np


class HashEmbedder:
    """Hashed word counts projected by a fixed random matrix, normalised: texts sharing words land close."""

    def __init__(self, dim: int = 32, buckets: int = 257, seed: int = 0):
        self.dim = dim
        self.proj = np.random.default_rng(seed).standard_normal((buckets, dim))   # (V, D)
        self.calls: list[int] = []

    def encode(self, texts, *, batch_size: int = 256):
        self.calls.append(len(texts))
        counts = np.zeros((len(texts), self.proj.shape[0]))                        # (N, V)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                counts[i, zlib.crc32(w.encode()) % self.proj.shape[0]] += 1
        z = counts @ self.proj                                                     # (N, D)
        return (z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def clustered(n: int, dim: int, *, clusters: int = 20, spread: float = 0.25, seed: int = 0) -> np.ndarray:
    """Unit vectors around `clusters` random centres. Shape: (n, dim), float64."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    x = centres[rng.integers(0, clusters, n)] / np.sqrt(dim) + spread / np.sqrt(dim) * rng.standard_normal((n, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def reference_top_k(vectors, queries, k):
    """float64 brute force: normalise, score every pair, sort by score desc (stable). Shape: -> (Q, k) x2."""
    v = np.asarray(vectors, np.float64)
    q = np.asarray(queries, np.float64)
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    s = q @ v.T
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, order, 1), order


def assert_same_ranking(scores, ids, ref_scores, ref_rows, all_ids, *, atol=1e-5):
    """Scores equal the reference; ids equal it wherever the reference scores are not (nearly) tied."""
    np.testing.assert_allclose(scores, ref_scores, atol=atol)
    for q in range(len(ids)):
        s = ref_scores[q]
        for j, row in enumerate(ref_rows[q]):
            gap_before = s[j - 1] - s[j] if j > 0 else np.inf
            gap_after = s[j] - s[j + 1] if j + 1 < len(s) else np.inf
            if min(gap_before, gap_after) > 1e-4:
                assert ids[q][j] == all_ids[row], (q, j)


@contextmanager
def live_search_server(index, embedder, **options):
    """Serve the search API on 127.0.0.1:<free port> in a thread; yields (base URL, server, thread)."""
    from contrastlab.search.server import make_server
    server, sock, url = make_server(index, embedder, port=0, **options)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120              # a safety net: loaded CI cores start slowly
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield url, server, thread
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
