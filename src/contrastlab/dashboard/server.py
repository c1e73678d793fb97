"""Starting and stopping the dashboard: ``serve`` runs uvicorn until Ctrl-C; ``dashboard`` is the
entry point of ``contrastlab dashboard [RUN_DIR ...] [--index IDX ...] [--port P] [--host H] [--no-browser]``.

Example (not run here: it serves until Ctrl-C)::

    from contrastlab.dashboard import dashboard
    dashboard(["runs/simclr-t0.1", "runs/simclr-t0.5"], port=0, open_browser=False)
"""

from __future__ import annotations

import socket
import sys
import threading
import time
import webbrowser
from pathlib import Path

import torch
import uvicorn

from ..serving import guarded_protocols
from .app import LOCAL_HOSTS, create_app
from .indexes import open_indexes

__all__ = ["serve", "dashboard", "url_for", "bind", "server_config"]

#: Largest WebSocket message the server reads at all (bigger: the connection is closed with 1009);
#: below it, messages over the protocol's 4 KiB limit get an error reply.
WS_MAX_BYTES = 64 * 1024
#: Seconds a connection has for a complete request head (from opening, or from the last response).
HEAD_TIMEOUT = 10.0
#: Seconds from a request's head to the end of its body (the dashboard takes no bodies).
BODY_TIMEOUT = 30.0
#: Seconds our send buffer may stay full (the peer reads nothing) before the connection is dropped.
WRITE_TIMEOUT = 30.0
#: Seconds an idle keep-alive connection stays open after a response.
KEEP_ALIVE_TIMEOUT = 5


def server_config(app, *, head_timeout: float = HEAD_TIMEOUT, body_timeout: float = BODY_TIMEOUT,
                  write_timeout: float = WRITE_TIMEOUT, keep_alive_timeout: int = KEEP_ALIVE_TIMEOUT) -> uvicorn.Config:
    """The uvicorn configuration the dashboard runs under: quiet logs, the WebSocket message limit, and
    deadlines on every connection (see :mod:`contrastlab.serving`); idle, slow-header, slow-body and non-reading
    connections are closed."""
    http, ws = guarded_protocols(head_timeout=head_timeout, body_timeout=body_timeout, write_timeout=write_timeout,
                                 name="dashboard")
    return uvicorn.Config(app, log_level="warning", access_log=False, ws_max_size=WS_MAX_BYTES,
                          timeout_graceful_shutdown=2, lifespan="off", http=http, ws=ws or "auto",
                          timeout_keep_alive=keep_alive_timeout, ws_per_message_deflate=False)


def url_for(host: str, port: int) -> str:
    """The browser URL of a server bound to ``host``:``port`` (wildcards shown as 127.0.0.1)."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port``; port 0 picks a free port (read it back with
    ``sock.getsockname()[1]``). Raises OSError with a readable message when the port is taken."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"`port` must be an integer in [0, 65535], got {port!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)   # proto set: asyncio then sets TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        hint = "; pass port 0 (--port 0) for a free one" if port else ""
        raise OSError(e.errno, f"cannot listen on {host}:{port}: {e.strerror}{hint}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _warm_up() -> None:
    """The first call of some losses imports a lot (torch.utils.checkpoint pulls in torch._dynamo:
    seconds); do it in the background so the first switch to that loss does not stall the page."""
    from ..losses import logistic
    x = torch.zeros(2, 2, requires_grad=True)
    logistic(x, x).backward()


def _allowed_hosts(host: str) -> list[str]:
    if host in ("0.0.0.0", "::", ""):
        return ["*"]                                   # bound to every interface on purpose
    return sorted(set(LOCAL_HOSTS) | {host})


def serve(run_dirs: list[Path], *, indexes: list[Path] = (), host: str = "127.0.0.1", port: int = 8765,
          open_browser: bool = True, playground: bool = True) -> None:
    """Serve the dashboard until Ctrl-C (or SIGTERM), printing its URL first.

    `indexes`: search-index folders of images (``contrastlab index RUN --images ...``) the run view browses;
    each is opened here, before the port is taken (ValueError naming the folder when one cannot be).

    Port 0 picks a free port; the URL printed has the real one. The playground's small tensor
    operations run fastest on one thread, so this sets ``torch.set_num_threads(1)`` for the process.
    """
    runs = [Path(p) for p in run_dirs]
    served = open_indexes([Path(p) for p in indexes])
    sock = bind(host, port)
    real_port = sock.getsockname()[1]
    url = url_for(host, real_port)
    torch.set_num_threads(1)
    threading.Thread(target=_warm_up, daemon=True).start()
    app = create_app(runs, indexes=served, playground=playground, allowed_hosts=_allowed_hosts(host))
    server = uvicorn.Server(server_config(app))
    print(f"contrastlab dashboard on {url}  (Ctrl-C to stop)", flush=True)
    for i, r in enumerate(runs):
        print(f"  run {i}: {r}" + ("" if r.exists() else "  (does not exist yet: shown as missing)"), flush=True)
    for i, x in enumerate(served):
        built = x.built_from([r.path for r in app.state.runs])
        origin = f"built from run {built}" if built is not None else f"built from {x.embedder or 'an unknown run'}"
        sizes = ", ".join(f"{c.count} {n}" for n, c in x.images.items())
        print(f"  index {i}: {x.path} ({sizes}; {origin})", flush=True)
    if open_browser:
        def opener():
            deadline = time.monotonic() + 10
            while not server.started and time.monotonic() < deadline:
                time.sleep(0.05)
            webbrowser.open(url)
        threading.Thread(target=opener, daemon=True).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:                           # uvicorn re-raises the Ctrl-C it handled
        pass
    finally:
        sock.close()
        for x in served:
            x.index.close()                              # a collection kept in a vector database: its connection
    print("contrastlab dashboard stopped", flush=True)


def dashboard(run_dirs: list[str | Path] = (), *, indexes: list[str | Path] = (), host: str = "127.0.0.1",
              port: int = 8765, open_browser: bool = True) -> int:
    """The ``contrastlab dashboard`` command: serve the playground, the given run directories and image indexes.

    Returns the exit status: 0 after Ctrl-C, 2 when the server cannot start (message on stderr).
    """
    try:
        serve([Path(p) for p in run_dirs], indexes=[Path(p) for p in indexes], host=host, port=port,
              open_browser=open_browser)
    except (OSError, ValueError) as e:
        print(f"contrastlab dashboard: {e}", file=sys.stderr)
        return 2
    return 0
