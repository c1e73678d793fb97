"""The dashboard's web application: static page, run-directory API and the playground WebSocket.

Runs are addressed by their index in the list given to :func:`create_app` (``/api/runs/0/...``);
no request parameter is ever used to build a file path. Requests whose ``Host`` is not one of
``allowed_hosts`` are refused (against DNS rebinding), and WebSocket connections from another
origin are refused.

Example::

    >>> from contrastlab.dashboard.app import create_app
    >>> app = create_app(["runs/simclr"])        # served by uvicorn, see server.serve
    >>> "/ws/playground" in [route.path for route in app.routes]
    True
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence
from urllib.parse import urlsplit

import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from .. import __version__
from .indexes import RequestError, ServedIndex, parse_int
from .live import IDLE_TIMEOUT, SEND_TIMEOUT, PlaygroundSessions
from .projection import LABELS, METHODS, available_methods
from .runs import RunView

__all__ = ["create_app", "STATIC_DIR", "LOCAL_HOSTS"]

STATIC_DIR = Path(__file__).parent / "static"
#: Host names a loopback server answers to.
LOCAL_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


def _binary(array: np.ndarray, headers: dict) -> Response:
    """A little-endian float32 (or int32) array as an octet stream, with its metadata in headers."""
    data = np.ascontiguousarray(array).astype("<f4" if array.dtype.kind == "f" else "<i4").tobytes()
    return Response(content=data, media_type="application/octet-stream",
                    headers={"Cache-Control": "no-store", **{k: str(v) for k, v in headers.items()}})


def create_app(run_dirs: list[Path], *, indexes: Sequence[ServedIndex] = (), playground: bool = True,
               allowed_hosts: list[str] | None = None, max_sessions: int = 16, send_timeout: float = SEND_TIMEOUT,
               idle_timeout: float = IDLE_TIMEOUT) -> FastAPI:
    """The dashboard as an ASGI app.

    Args:
        run_dirs: run directories to show, addressed by their index; they may not exist yet.
        indexes: search indexes of images to browse in the run view (`indexes.open_indexes`), addressed by their
            position (``/api/indexes/0/...``).
        playground: serve the playground WebSocket (``/ws/playground``).
        allowed_hosts: accepted ``Host`` header names (default: loopback names; ``["*"]`` for any).
        max_sessions: most playground connections at once (each trains its own points).
        send_timeout: seconds a playground send may wait for a client that does not read; then its
            session ends.
        idle_timeout: seconds a playground session may go without a message from its client.
    """
    runs = [RunView(Path(p)) for p in run_dirs]
    app = FastAPI(title="contrastlab dashboard", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or LOCAL_HOSTS)
    sessions = PlaygroundSessions(max_sessions=max_sessions, send_timeout=send_timeout, idle_timeout=idle_timeout)
    app.state.sessions = sessions
    app.state.runs = runs
    indexes = list(indexes)
    app.state.indexes = indexes

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", _CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    def run(rid: int) -> RunView:
        if not 0 <= rid < len(runs):
            raise HTTPException(404, f"no run {rid}: runs are numbered 0 to {len(runs) - 1}")
        return runs[rid]

    def served_index(text: str) -> tuple[int, ServedIndex]:
        number = parse_int(text)
        if number is None:
            raise HTTPException(422, f"`index` must be an integer, got {text!r}")
        if not 0 <= number < len(indexes):
            raise HTTPException(404, f"no index {number}: indexes are numbered 0 to {len(indexes) - 1}" if indexes
                                else f"no index {number}: no index is served (start with --index IDX)")
        return number, indexes[number]

    def answer(call):
        try:
            return call()
        except RequestError as e:
            raise HTTPException(e.status, str(e)) from None

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/api/info")
    def info():
        return {"version": __version__, "playground": playground, "runs": len(runs),
                "projections": available_methods(), "projection_packages": METHODS, "projection_labels": LABELS,
                "indexes": len(indexes)}

    @app.get("/api/indexes")
    def list_indexes():
        paths = [r.path for r in runs]
        return [{"id": i, **x.summary(paths)} for i, x in enumerate(indexes)]

    @app.get("/api/indexes/{number}/{collection}/rows")
    def index_rows(number: str, collection: str, offset: str | None = None, limit: str | None = None):
        i, x = served_index(number)
        return answer(lambda: x.rows(i, collection, offset, limit))

    @app.get("/api/indexes/{number}/{collection}/thumbnails/{file}")
    def index_thumbnail(number: str, collection: str, file: str):
        i, x = served_index(number)
        png = answer(lambda: x.thumbnail(i, collection, file))
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})

    @app.get("/api/indexes/{number}/{collection}/neighbours")
    def index_neighbours(number: str, collection: str, position: str | None = None, k: str | None = None):
        i, x = served_index(number)
        return answer(lambda: x.neighbours(i, collection, position, k))

    @app.get("/api/runs")
    def list_runs():
        return [{"id": i, **r.summary()} for i, r in enumerate(runs)]

    @app.get("/api/runs/{rid}")
    def run_summary(rid: int):
        return {"id": rid, **run(rid).summary()}

    @app.get("/api/runs/{rid}/metrics")
    def run_metrics(rid: int, offset: int = Query(0, ge=0, le=2**53)):
        return run(rid).read_metrics(offset)

    @app.get("/api/runs/{rid}/labels")
    def run_labels(rid: int):
        probe, note = run(rid).probe()
        if probe is None:
            raise HTTPException(404, note or "no probe")
        return _binary(probe.labels.astype(np.int32), {"X-Count": probe.ids.shape[0]})

    @app.get("/api/runs/{rid}/snapshots/{index}/map")
    def snapshot_map(rid: int, index: int, method: str = Query("pca", max_length=8)):
        if method not in METHODS:
            raise HTTPException(422, f"`method` must be one of {sorted(METHODS)}, got {method!r}")
        if not available_methods()[method]:
            raise HTTPException(422, f"`method` {method!r} needs the package {METHODS[method]!r}, not installed")
        r = run(rid)
        got = r.map_status(index, method=method)
        if got is None:
            raise HTTPException(404, f"no snapshot {index}")
        if got.state == "unreadable":                     # listed but partial: "not yet", not an error
            return Response(status_code=204, headers={"X-Reason": "snapshot not readable yet",
                                                      "Cache-Control": "no-store"})
        if got.state == "computing":                      # t-SNE / UMAP in the background: the page shows this
            return JSONResponse(got.to_json(), status_code=202, headers={"Cache-Control": "no-store"})
        if got.state == "error":
            raise HTTPException(422, got.message)
        step, t, xy = got.step, got.time, got.xy
        headers = {"X-Step": step, "X-Time": t, "X-Count": xy.shape[0]}
        cos = r.pair_cosine(index)                       # two-modality runs: how close each image is to its name
        if cos is not None:
            headers["X-Pair-Cosine"] = repr(cos)
        return _binary(xy, headers)

    @app.get("/api/runs/{rid}/snapshots/{index}/neighbours")
    def snapshot_neighbours(rid: int, index: int, point: int = Query(..., ge=0), count: int = Query(10, ge=1, le=50)):
        got = run(rid).neighbours(index, point, count=count)
        if got is None:
            raise HTTPException(404, f"snapshot {index} or point {point} is not there")
        return got

    @app.get("/api/runs/{rid}/thumbnails")
    def thumbnail_atlas(rid: int):
        """Every thumbnail of the probe at once, (T, h, w, C) uint8 in row order, for drawing them on the map."""
        arr = run(rid).thumbnails()
        if arr is None:
            raise HTTPException(404, "this run's probe has no thumbnails")
        t, h, w, c = arr.shape
        return Response(np.ascontiguousarray(arr).tobytes(), media_type="application/octet-stream",
                        headers={"Cache-Control": "no-store", "X-Count": str(t), "X-Height": str(h),
                                 "X-Width": str(w), "X-Channels": str(c)})

    @app.get("/api/runs/{rid}/series")
    def probe_series(rid: int):
        """Every probe point's series as plotted on hover, (P, C, L) float32 little-endian in row order."""
        arr = run(rid).series()
        if arr is None:
            raise HTTPException(404, "this run's probe has no series")
        p, c, length = arr.shape
        return _binary(arr, {"X-Count": p, "X-Channels": c, "X-Length": length})

    @app.get("/api/runs/{rid}/thumbnails/{point}")
    def thumbnail(rid: int, point: int):
        from PIL import Image
        arr = run(rid).thumbnail(point)
        if arr is None:
            raise HTTPException(404, f"no thumbnail for point {point}")
        img = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return Response(buf.getvalue(), media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @app.websocket("/ws/playground")
    async def playground_ws(ws: WebSocket):
        if not playground:
            await ws.close(code=1008, reason="the playground is off")
            return
        origin = ws.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != ws.headers.get("host"):
            await ws.close(code=1008, reason="cross-origin connections are refused")
            return
        await sessions.serve(ws)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    return app
