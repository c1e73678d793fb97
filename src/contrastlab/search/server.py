"""Running the search API with uvicorn until Ctrl-C: `serve_index(index, embedder, host=..., port=...)`.

Binds 127.0.0.1 by default (this machine only); port 0 picks a free port. Prints the URL once it listens.

Slow or stalled clients are cut off (see `contrastlab.serving`): a request head must arrive within `head_timeout`
seconds (from when the connection opens or the previous response went out) and be at most `max_head_bytes`; its
body within `body_timeout` seconds (the app answers 408); an idle keep-alive connection is closed after
`keep_alive_timeout` seconds, and one whose client reads nothing of a response for `write_timeout` seconds is
dropped.

Example (not run here: it serves until Ctrl-C)::

    from contrastlab.search import open_index, serve_index
    serve_index(open_index("runs/wordnet-index"), my_embedder, port=8000)
"""
from __future__ import annotations

import socket
from typing import Callable

import uvicorn

from ..serving import guarded_protocols, seconds
from .api import LOCAL_HOSTS, create_search_app
from .collections import SearchIndex
from .index import VectorIndex

__all__ = ["serve_index", "make_server", "listen", "url_for"]


def url_for(host: str, port: int) -> str:
    """The URL of a server bound to `host`:`port` (a wildcard address is shown as 127.0.0.1)."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://{f'[{shown}]' if ':' in shown else shown}:{port}"


def listen(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 picks a free one. OSError with a readable message when it is taken."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"`port` must be an int in [0, 65535], got {port!r}")
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say so, and without it every
    # response waited ~40 ms (Nagle's algorithm meeting the client's delayed ACK)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OSError(e.errno, f"cannot listen on {host}:{port}: {e.strerror}"
                               + ("; pass port 0 for a free one" if port else "")) from None
    sock.listen(1024)
    return sock


def make_server(index: SearchIndex | VectorIndex, embedder, *, host: str = "127.0.0.1", port: int = 8000,
                head_timeout: float = 10.0, keep_alive_timeout: float = 5.0, max_head_bytes: int = 16384,
                write_timeout: float = 30.0, **app_options) -> tuple[uvicorn.Server, socket.socket, str]:
    """A configured uvicorn server, its listening socket and URL (for callers that run it in a thread).
    `head_timeout`, `keep_alive_timeout`, `write_timeout` (seconds) and `max_head_bytes` guard against slow clients
    (see above);
    `app_options` go to `create_search_app` (body_timeout, max_batch, max_wait_ms, max_k, max_body_bytes, ...)."""
    seconds("keep_alive_timeout", keep_alive_timeout)
    if isinstance(max_head_bytes, bool) or not isinstance(max_head_bytes, int) or max_head_bytes < 1024:
        raise ValueError(f"`max_head_bytes` must be an int of at least 1024, got {max_head_bytes!r}")
    # no body deadline at the connection: the app times the body itself, to answer 408 (a protocol can only close)
    protocol, _ = guarded_protocols(head_timeout=head_timeout, write_timeout=write_timeout, name="search")
    hosts = ["*"] if host in ("0.0.0.0", "::", "") else sorted(set(LOCAL_HOSTS) | {host})
    app = create_search_app(index, embedder, allowed_hosts=hosts, **app_options)
    sock = listen(host, port)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=2, backlog=1024, http=protocol, ws="none",
                            timeout_keep_alive=keep_alive_timeout, h11_max_incomplete_event_size=max_head_bytes)
    return uvicorn.Server(config), sock, url_for(host, sock.getsockname()[1])


def app_index(server: uvicorn.Server) -> SearchIndex:
    """The `SearchIndex` a server made by `make_server` answers from."""
    return server.config.app.state.index


def _say(message: str) -> None:
    print(message, flush=True)


def serve_index(index: SearchIndex | VectorIndex, embedder, *, host: str = "127.0.0.1", port: int = 8000,
                log: Callable[[str], None] = _say, **app_options) -> None:
    """Serve `POST /search` and `GET /health` over `index` until Ctrl-C (or SIGTERM); then stop cleanly.
    `app_options` go to `make_server` (head_timeout, keep_alive_timeout, write_timeout, max_head_bytes) and
    `create_search_app` (body_timeout, max_batch, max_wait_ms, max_k, max_body_bytes, faiss_threads)."""
    server, sock, url = make_server(index, embedder, host=host, port=port, **app_options)
    index = app_index(server)
    fields = " or ".join(f"'{f}'" for f, m in (("query", "text"), ("image", "image")) if m in index.queries)
    pictured = any(c.thumbnails is not None for c in index.collections.values())
    log(f"contrastlab search: {index.summary()} on {url}  (POST {url}/search with {fields or 'vector'}"
        + (f", GET {url}/thumbnails/<collection>/<position>.png" if pictured else "")
        + f", GET {url}/health; Ctrl-C to stop)")
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:                  # uvicorn re-raises the Ctrl-C it handled
        pass
    finally:
        sock.close()
    log("contrastlab search: stopped")
