"""Fixtures of the dashboard tests: a real uvicorn server on a free port, in a thread."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import pytest
import torch
import uvicorn

from contrastlab.dashboard.app import create_app
from contrastlab.dashboard.server import bind


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The dashboard runs its tiny tensors on one thread (serve() sets it); so do its tests. On a
    busy 2-core machine two OpenMP threads make these small ops several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@contextmanager
def live_server(run_dirs, **app_options):
    """Serve ``create_app(run_dirs)`` on 127.0.0.1:<free port>; yields the base URL."""
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(list(run_dirs), **app_options), log_level="warning", access_log=False,
                            lifespan="off", ws_max_size=64 * 1024, timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def server_for():
    """``server_for(run_dirs)`` -> base URL of a live server, stopped after the test."""
    stack = []

    def start(run_dirs=(), **options):
        cm = live_server(run_dirs, **options)
        url = cm.__enter__()
        stack.append(cm)
        return url

    yield start
    for cm in reversed(stack):
        cm.__exit__(None, None, None)
