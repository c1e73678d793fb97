"""The HTTP search API: `POST /search`, `GET /health`, `GET /stats`, `GET /thumbnails/<collection>/<position>.png`,
as a FastAPI app factory, over any `SearchIndex` (texts, images, both).

A request is {"query": text} or {"image": "<base64 PNG or JPEG>"} or {"vector": [D numbers]}, with "collection"
(default: across modalities where the index has another -- a text finds images, an image finds names -- else
the collection of its own kind), "k", "ids" (only these documents) and "exclude_self" (leave the query itself
out). The answer is {"collection", "results": [{"id", "score", "text" or "label" (an image's class name),
"thumbnail" (for images)}], "took_ms", "notes" (what was done to a query image: resized ...)}. A query of a
modality the index's embedder does not take gets a 422 naming the modalities it does.

Concurrent requests are micro-batched (`contrastlab.search.batching`): their texts are embedded in one call, their
images in another, and each collection searched in one faiss call, in a worker thread. Bad input gets a 4xx with a
message naming the field (400 not JSON or nested too deeply, 408 body not in within `body_timeout` seconds, 413
body too large (checked before parsing), 415 not `application/json`, 422 a field breaks a rule; after a 408 or 413
the connection is closed). A query that makes its batch fail is answered alone (a 500 for it only); a client that
leaves mid-body or stalls logs one line.

>>> import numpy as np
>>> from fastapi.testclient import TestClient
>>> from contrastlab.search import VectorIndex
>>> index = VectorIndex.build(np.eye(3), ["a", "b", "c"], texts=["x", "y", "z"])
>>> with TestClient(create_search_app(index, None), base_url="http://127.0.0.1") as client:
...     reply = client.post("/search", json={"vector": [0, 1, 0], "k": 1}).json()
...     bad = client.post("/search", json={"vector": [0, 1, 0], "k": 0})
>>> reply["collection"], reply["results"]
('texts', [{'id': 'b', 'score': 1.0, 'text': 'y'}])
>>> bad.status_code, bad.json()["detail"]
(422, "'k' must be a positive int, got 0")
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from contextlib import asynccontextmanager

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect

from .. import __version__
from .batching import MicroBatcher
from .collections import Collection, SearchIndex
from .index import VectorIndex
from .neighbours import search_excluding_self
from .validation import MAX_IMAGE_BYTES, RequestError, SearchQuery, parse_search_request

__all__ = ["create_search_app", "answer_batch", "LOCAL_HOSTS"]

#: Host names a loopback server answers to (other Host headers are refused, against DNS rebinding).
LOCAL_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]

log = logging.getLogger("contrastlab.search")


class _BodyNotRead(RequestError):
    """A request refused before its whole body was read (408, 413): the connection is closed after the answer."""


class _ClientGone(Exception):
    """The client closed its connection before its body was in (already logged; nothing to answer)."""


def _json(obj, status: int = 200, *, close: bool = False) -> Response:
    headers = {"Cache-Control": "no-store", **({"Connection": "close"} if close else {})}
    return Response(json.dumps(obj, ensure_ascii=False, allow_nan=False), status_code=status,
                    media_type="application/json", headers=headers)


def _query_vectors(queries: list[SearchQuery], dim: int, embedder) -> tuple[np.ndarray, list]:
    """The queries' vectors: all texts in one `encode` call, all images in one `encode_images` call. Returns
    (Q, D) float32 and, per query, None or the RequestError of a query that embeds to no direction."""
    vectors = np.zeros((len(queries), dim), dtype=np.float32)                          # (Q, D)
    for field, call in (("text", "encode"), ("image", "encode_images")):
        rows = [i for i, q in enumerate(queries) if getattr(q, field) is not None]
        if not rows:
            continue
        if embedder is None:
            raise RuntimeError("this server has no embedder")
        items = [getattr(queries[i], field) for i in rows]
        encoded = np.asarray(getattr(embedder, call)(items if field == "text" else np.stack(items),
                                                     batch_size=len(rows)), dtype=np.float32)
        if encoded.shape != (len(rows), dim):
            raise RuntimeError(f"the embedder returned shape {encoded.shape}, expected {(len(rows), dim)}")
        vectors[rows] = encoded
    for i, q in enumerate(queries):
        if q.vector is not None:
            vectors[i] = q.vector
    norms = np.linalg.norm(vectors, axis=1)
    errors: list = [None] * len(queries)
    for i in np.where(~(np.isfinite(norms) & (norms > 0)))[0]:
        errors[i] = RequestError("'query' embeds to a zero (or non-finite) vector: the encoder knows none of its "
                                 "tokens" if queries[i].text is not None else
                                 "'image' embeds to a zero (or non-finite) vector")
    return vectors, errors


def _search_into(answers: list, rows: list[int], queries: list[SearchQuery], vectors: np.ndarray,
                 index: Collection, results) -> None:
    """Fill `answers[rows]` with `results(index, scores, ids, k)`: one index search for the unfiltered queries
    (with the largest k), one per filtered query."""
    for i in rows:
        if queries[i].exclude_self and answers[i] is None:            # the query itself left out
            scores, ids = search_excluding_self(index, vectors[i:i + 1], queries[i].k,
                                                allowed_ids=queries[i].allowed_ids)
            answers[i] = results(index, scores[0], ids[0], queries[i].k)
    plain = [i for i in rows if queries[i].allowed_ids is None and answers[i] is None]
    if plain:
        scores, ids = index.search(vectors[plain], max(queries[i].k for i in plain))     # (P, k)
        for row, i in enumerate(plain):
            answers[i] = results(index, scores[row], ids[row], queries[i].k)
    for i in rows:
        if answers[i] is None:
            scores, ids = index.search(vectors[i:i + 1], queries[i].k, allowed_ids=queries[i].allowed_ids)
            answers[i] = results(index, scores[0], ids[0], queries[i].k)


def answer_batch(queries: list[SearchQuery], index: SearchIndex, embedder) -> list:
    """Answer checked queries together: texts embedded in one `encode` call, images in one `encode_images` call,
    then each collection searched once for its unfiltered queries (with the largest k) and once per filtered
    query. Each answer is a result list or a RequestError."""
    vectors, answers = _query_vectors(queries, index.dim, embedder)
    for name, collection in index.collections.items():
        rows = [i for i, q in enumerate(queries) if q.collection == name]
        if rows:
            _search_into(answers, rows, queries, vectors, collection, _results)
    return answers


def _results(collection: Collection, scores, ids, k: int) -> list[dict]:
    """{"id", "score", "text" (or "label": an image's class name), "thumbnail" (a URL path, for images)}."""
    field, position, thumbs = collection.text_field, collection.position, collection.thumbnails is not None
    out = []
    for s, d in zip(scores[:k].tolist(), ids[:k]):
        row = {"id": d, "score": float(s), field: collection.text_of(position[d])}
        if thumbs:
            row["thumbnail"] = f"/thumbnails/{collection.name}/{position[d]}.png"
        out.append(row)
    return out


def create_search_app(index: SearchIndex | VectorIndex, embedder, *, max_batch: int = 64,
                      max_wait_ms: float = 2.0, max_k: int = 1000, max_body_bytes: int = 1 << 20,
                      allowed_hosts: list[str] | None = None, faiss_threads: int | None = 1,
                      max_image_bytes: int = MAX_IMAGE_BYTES, body_timeout: float = 10.0) -> FastAPI:
    """The search API over `index` (a `SearchIndex`; a bare `VectorIndex` is served as one collection of texts);
    `embedder` turns queries into vectors: `.encode(texts, batch_size=)` for "query", `.encode_images(pixels)`
    with `.prepare_query_image(bytes)` or `.prepare_image(bytes)` for "image" (a base64 PNG or JPEG of at most
    `max_image_bytes`, decoded in a worker thread); None: vector queries only. A query searches its "collection"
    (default: `SearchIndex.default_collection`); results of a collection with thumbnails carry "thumbnail":
    "/thumbnails/<collection>/<position>.png", served by `GET`. `allowed_hosts`: accepted Host names (default
    loopback; ["*"] any).

    `body_timeout`: seconds a request body may take to arrive, in all (a 408 after it, and the connection closed).

    `faiss_threads`: OpenMP threads of faiss in the batch worker thread (None: the OpenMP default, one per core).
    One is the default: batches are small, and on a busy 2-core machine OpenMP threads spin-waiting for each
    other cost 2.5-3.4 ms of CPU per request instead of 0.8 ms, and 130-270 queries/s instead of ~1,000, here.
    """
    if isinstance(index, VectorIndex):
        index = SearchIndex([Collection("texts", "text", index)], queries=("text",), meta=index.meta)
    if not isinstance(index, SearchIndex):
        raise TypeError(f"`index` must be a SearchIndex or a VectorIndex, got {type(index).__name__}")
    if embedder is not None and getattr(embedder, "dim", None) != index.dim:
        raise ValueError(f"`embedder` makes {getattr(embedder, 'dim', None)}-dimensional vectors but the index "
                         f"holds {index.dim}-dimensional ones")
    for name, value in (("max_k", max_k), ("max_body_bytes", max_body_bytes), ("max_image_bytes", max_image_bytes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive int, got {value!r}")
    if isinstance(body_timeout, bool) or not isinstance(body_timeout, (int, float)) or not 0 < body_timeout < 1e6:
        raise ValueError(f"`body_timeout` must be a number of seconds in (0, 1e6), got {body_timeout!r}")
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
    first = next(iter(index.collections.values()))
    known = {name: c.position for name, c in index.collections.items()}
    can_image = embedder is not None and hasattr(embedder, "encode_images")

    @app.get("/health")
    async def health():
        return _json({"status": "ok", "count": index.count, "dim": index.dim, "kind": first.kind,
                      "recall": first.meta.get("recall"), "modalities": list(index.queries),
                      "collections": {n: {"modality": c.modality, "count": c.count, "kind": c.kind,
                                          "recall": c.meta.get("recall"), "thumbnails": c.thumbnails is not None}
                                      for n, c in index.collections.items()}})

    @app.get("/stats")
    async def stats():
        return _json(batcher.stats())

    def parse(body) -> SearchQuery:
        return parse_search_request(body, dim=index.dim, max_k=max_k, collections=known, queries=index.queries,
                                    default_collection=index.default_collection,
                                    prepare_image=prepare_image if can_image else None,
                                    max_image_bytes=max_image_bytes)

    def prepare_image(data: bytes):
        if hasattr(embedder, "prepare_query_image"):                # (pixels, notes: resized ...)
            return embedder.prepare_query_image(data)
        return embedder.prepare_image(data)

    @app.post("/search")
    async def search(request: Request):
        start = time.perf_counter()
        try:
            body = await _read_json(request, max_body_bytes, body_timeout)
            if isinstance(body, dict) and "image" in body:
                query = await asyncio.to_thread(parse, body)        # decoding an image: off the event loop
            else:
                query = parse(body)
            if query.text is not None and embedder is None:
                raise RequestError("this server has no text embedder: send 'vector' instead of 'query'")
            try:
                answer = await batcher.submit(query)
            except Exception:           # it failed even alone (the batcher answers the rest of its batch)
                log.error("search: a query failed", exc_info=True)
                return _json({"detail": "the server failed to answer this query (its log has the error)"}, 500)
            if isinstance(answer, RequestError):
                raise answer
        except RequestError as e:
            return _json({"detail": str(e)}, e.status, close=isinstance(e, _BodyNotRead))
        except _ClientGone:
            return Response(status_code=400)                        # nobody reads it
        took = round((time.perf_counter() - start) * 1000, 3)
        notes = {"notes": list(query.notes)} if query.notes else {}
        return _json({"collection": query.collection, "results": answer, "took_ms": took, **notes})

    pictured = [n for n, c in index.collections.items() if c.thumbnails is not None]

    def thumbnail_of(collection: str, name: str) -> Response:
        if collection not in pictured:
            return _json({"detail": f"'collection' must be one of {', '.join(map(repr, pictured)) or 'none'} (the "
                                    f"collections with thumbnails), got {_shown(collection)}"}, 404)
        c = index.collections[collection]
        stem, dot, ext = name.rpartition(".")
        if not dot or ext != "png" or not _POSITION.fullmatch(stem):
            return _json({"detail": f"'position' must be a non-negative int without leading zeros, as in "
                                    f"/thumbnails/{collection}/0.png, got {_shown(name)}"}, 422)
        position = int(stem)
        if position >= c.count:
            return _json({"detail": f"'position' must be less than {c.count} (the number of {collection}), "
                                    f"got {position}"}, 404)
        return Response(c.thumbnail(position), media_type="image/png",
                        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})

    if pictured:
        @app.get("/thumbnails/{collection}/{name}")
        async def thumbnail(collection: str, name: str):
            return thumbnail_of(collection, name)

        @app.get("/thumbnails/{name}")
        async def thumbnail_of_first(name: str):                   # contrastlab 0.1's path: the first pictured
            return thumbnail_of(pictured[0], name)

    return app


_POSITION = re.compile(r"0|[1-9][0-9]{0,11}")


def _shown(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


async def _read_json(request: Request, limit: int, timeout: float):
    """The body as parsed JSON; 413 before reading past `limit` bytes, 415 unless it is declared JSON, 408 when it
    is not in within `timeout` seconds; `_ClientGone` (logged in one line) when the client leaves mid-body."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise RequestError(f"the Content-Length header must be a number of bytes, got {length!r}", 400)
        if int(length) > limit:
            raise _BodyNotRead(f"the request body must be at most {limit} bytes, got {int(length)}", 413)
    ctype = request.headers.get("content-type", "")
    if ctype.split(";")[0].strip().lower() != "application/json":
        raise RequestError(f"the Content-Type must be application/json, got {ctype or 'none'!r}", 415)
    body = bytearray()
    try:
        if _timeout is not None:
            async with _timeout(timeout):
                await _read_body(request, limit, body)
        else:                                                       # Python 3.10
            await asyncio.wait_for(_read_body(request, limit, body), timeout)
    except asyncio.TimeoutError:
        log.warning("search: %s: the request body did not arrive within %g s (%d of %s bytes); answered 408",
                    _client(request), timeout, len(body), length or "unknown")
        raise _BodyNotRead(f"the request body did not arrive within {timeout:g} s ({len(body)} of "
                           f"{length or 'unknown'} bytes came)", 408) from None
    except ClientDisconnect:
        log.warning("search: %s left mid-body (%d of %s bytes)", _client(request), len(body), length or "unknown")
        raise _ClientGone from None
    try:
        return json.loads(body)
    except RecursionError:
        raise RequestError("the request body nests arrays or objects too deeply to be parsed", 400) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise RequestError(f"the request body is not valid JSON: {e}", 400) from None


_timeout = getattr(asyncio, "timeout", None)                        # Python 3.11+


async def _read_body(request: Request, limit: int, body: bytearray) -> None:
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _BodyNotRead(f"the request body must be at most {limit} bytes, got more", 413)


def _client(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "a client"
