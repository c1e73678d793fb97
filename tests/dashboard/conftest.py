"""Fixtures of the dashboard tests: a real uvicorn server on a free port, in a thread."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import pytest
import torch
import uvicorn

from contrastlab.dashboard.app import create_app
from contrastlab.dashboard.server import bind, server_config


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The dashboard runs its tiny tensors on one thread (serve() sets it); so do its tests. On a
    busy 2-core machine two OpenMP threads make these small ops several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SERVER_OPTIONS = ("head_timeout", "body_timeout", "write_timeout", "keep_alive_timeout")


@contextmanager
def live_server(run_dirs, **options):
    """Serve ``create_app(run_dirs, **app options)`` on 127.0.0.1:<free port> under the dashboard's own
    server configuration (``server_config(**server options)``); yields (base URL, app)."""
    server_options = {k: options.pop(k) for k in SERVER_OPTIONS if k in options}
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    app = create_app(list(run_dirs), **options)
    config = server_config(app, **server_options)
    config.timeout_graceful_shutdown = 1
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def server_for():
    """``server_for(run_dirs, **options)`` -> base URL of a live server, stopped after the test; options are
    ``create_app``'s and ``server_config``'s."""
    stack = []

    def start(run_dirs=(), **options):
        cm = live_server(run_dirs, **options)
        url, app = cm.__enter__()
        stack.append(cm)
        start.apps.append(app)
        return url

    start.apps = []                     # the app behind each URL, in order (its state: sessions, runs)
    yield start
    for cm in reversed(stack):
        cm.__exit__(None, None, None)
