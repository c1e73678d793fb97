"""The HTTP search API: `POST /search`, `GET /health`, `GET /stats`, as a FastAPI app factory.

Concurrent requests are micro-batched (`contrastlab.search.batching`): their texts are embedded in one call and
searched in one faiss call, in a worker thread. Bad input gets a 4xx with a message naming the field (400 not
JSON, 413 body too large (checked before parsing), 415 not `application/json`, 422 a field breaks a rule).

>>> import numpy as np
>>> from fastapi.testclient import TestClient
>>> from contrastlab.search import VectorIndex
>>> index = VectorIndex.build(np.eye(3), ["a", "b", "c"], texts=["x", "y", "z"])
>>> with TestClient(create_search_app(index, None), base_url="http://127.0.0.1") as client:
...     reply = client.post("/search", json={"vector": [0, 1, 0], "k": 1}).json()
...     bad = client.post("/search", json={"vector": [0, 1, 0], "k": 0})
>>> reply["results"]
[{'id': 'b', 'score': 1.0, 'text': 'y'}]
>>> bad.status_code, bad.json()["detail"]
(422, "'k' must be a positive int, got 0")
"""
from __future__ import annotations

import json
import time
from contextlib import asynccontextmanager

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.middleware.trustedhost import TrustedHostMiddleware

from .. import __version__
from .batching import MicroBatcher
from .index import VectorIndex
from .validation import RequestError, SearchQuery, parse_search_request

__all__ = ["create_search_app", "answer_batch", "LOCAL_HOSTS"]

#: Host names a loopback server answers to (other Host headers are refused, against DNS rebinding).
LOCAL_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]


def _json(obj, status: int = 200) -> Response:
    return Response(json.dumps(obj, ensure_ascii=False, allow_nan=False), status_code=status,
                    media_type="application/json", headers={"Cache-Control": "no-store"})


def answer_batch(queries: list[SearchQuery], index: VectorIndex, embedder) -> list:
    """Answer checked queries together: one `encode` call for all texts, one index search for all unfiltered
    queries (with the largest k), one per filtered query. Each answer is a result list or a RequestError."""
    vectors = np.zeros((len(queries), index.dim), dtype=np.float32)   # (Q, D)
    text_rows = [i for i, q in enumerate(queries) if q.text is not None]
    if text_rows:
        if embedder is None:
            raise RuntimeError("this server has no embedder")
        encoded = np.asarray(embedder.encode([queries[i].text for i in text_rows], batch_size=len(text_rows)),
                             dtype=np.float32)
        if encoded.shape != (len(text_rows), index.dim):
            raise RuntimeError(f"the embedder returned shape {encoded.shape}, expected {(len(text_rows), index.dim)}")
        vectors[text_rows] = encoded
    for i, q in enumerate(queries):
        if q.vector is not None:
            vectors[i] = q.vector
    norms = np.linalg.norm(vectors, axis=1)
    answers: list = [None] * len(queries)
    for i in np.where(~(np.isfinite(norms) & (norms > 0)))[0]:
        answers[i] = RequestError("'query' embeds to a zero (or non-finite) vector: the encoder knows none of its "
                                  "tokens")
    plain = [i for i, q in enumerate(queries) if q.allowed_ids is None and answers[i] is None]
    if plain:
        scores, ids = index.search(vectors[plain], max(queries[i].k for i in plain))    # (P, k)
        for row, i in enumerate(plain):
            answers[i] = _results(index, scores[row], ids[row], queries[i].k)
    for i, q in enumerate(queries):
        if answers[i] is None:
            scores, ids = index.search(vectors[i:i + 1], q.k, allowed_ids=q.allowed_ids)
            answers[i] = _results(index, scores[0], ids[0], q.k)
    return answers


def _results(index: VectorIndex, scores, ids, k: int) -> list[dict]:
    return [{"id": d, "score": float(s), "text": index.text_of(index.position[d])}
            for s, d in zip(scores[:k].tolist(), ids[:k])]


def create_search_app(index: VectorIndex, embedder, *, max_batch: int = 64, max_wait_ms: float = 2.0,
                      max_k: int = 1000, max_body_bytes: int = 1 << 20, allowed_hosts: list[str] | None = None,
                      faiss_threads: int | None = 1) -> FastAPI:
    """The search API over `index`; `embedder` (`.dim`, `.encode(texts, batch_size=)`) turns text queries into
    vectors (None: vector queries only). `allowed_hosts`: accepted Host names (default loopback; ["*"] any).

    `faiss_threads`: OpenMP threads of faiss in the batch worker thread (None: the OpenMP default, one per core).
    One is the default: batches are small, and on a busy 2-core machine OpenMP threads spin-waiting for each
    other cost 2.5-3.4 ms of CPU per request instead of 0.8 ms, and 130-270 queries/s instead of ~1,000, here.
    """
    if not isinstance(index, VectorIndex):
        raise TypeError(f"`index` must be a VectorIndex, got {type(index).__name__}")
    if embedder is not None and getattr(embedder, "dim", None) != index.dim:
        raise ValueError(f"`embedder` makes {getattr(embedder, 'dim', None)}-dimensional vectors but the index "
                         f"holds {index.dim}-dimensional ones")
    for name, value in (("max_k", max_k), ("max_body_bytes", max_body_bytes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive int, got {value!r}")
    if faiss_threads is not None and (isinstance(faiss_threads, bool) or not isinstance(faiss_threads, int)
                                      or faiss_threads < 1):
        raise ValueError(f"`faiss_threads` must be a positive int or None, got {faiss_threads!r}")

    def thread_init():          # OpenMP's thread count is per calling thread: set it in the worker itself
        if faiss_threads is not None:
            import faiss
            faiss.omp_set_num_threads(faiss_threads)

    batcher = MicroBatcher(lambda queries: answer_batch(queries, index, embedder), max_batch=max_batch,
                           max_wait_ms=max_wait_ms, thread_init=thread_init)

    @asynccontextmanager
    async def lifespan(app):
        yield
        batcher.close()

    app = FastAPI(title="contrastlab search", version=__version__, lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or LOCAL_HOSTS)
    app.state.index, app.state.embedder, app.state.batcher = index, embedder, batcher

    @app.get("/health")
    async def health():
        return _json({"status": "ok", "count": index.count, "dim": index.dim, "kind": index.kind,
                      "recall": index.meta.get("recall")})

    @app.get("/stats")
    async def stats():
        return _json(batcher.stats())

    @app.post("/search")
    async def search(request: Request):
        start = time.perf_counter()
        try:
            query = parse_search_request(await _read_json(request, max_body_bytes), dim=index.dim, max_k=max_k,
                                         known_ids=index.position)
            if query.text is not None and embedder is None:
                raise RequestError("this server has no text embedder: send 'vector' instead of 'query'")
            answer = await batcher.submit(query)
            if isinstance(answer, RequestError):
                raise answer
        except RequestError as e:
            return _json({"detail": str(e)}, e.status)
        return _json({"results": answer, "took_ms": round((time.perf_counter() - start) * 1000, 3)})

    return app


async def _read_json(request: Request, limit: int):
    """The body as parsed JSON; 413 before reading past `limit` bytes, 415 unless it is declared JSON."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise RequestError(f"the Content-Length header must be a number of bytes, got {length!r}", 400)
        if int(length) > limit:
            raise RequestError(f"the request body must be at most {limit} bytes, got {int(length)}", 413)
    ctype = request.headers.get("content-type", "")
    if ctype.split(";")[0].strip().lower() != "application/json":
        raise RequestError(f"the Content-Type must be application/json, got {ctype or 'none'!r}", 415)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestError(f"the request body must be at most {limit} bytes, got more", 413)
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise RequestError(f"the request body is not valid JSON: {e}", 400) from None
