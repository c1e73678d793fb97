"""The shared connection deadlines (contrastlab.serving) under a real uvicorn server and a bare ASGI app: idle
connections close silently; a trickling head, a stalled body and a peer that reads nothing are cut off with one
log line each. Every wait is on the server closing the connection or on its log line; SAFETY is only a net."""
from __future__ import annotations

import logging
import select
import socket
import threading
import time

import pytest
import uvicorn

from contrastlab.serving import guarded_protocols, seconds

SAFETY = 60.0


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["method"] == "POST":                         # reads the whole body, with no deadline of its own
        while (await receive()).get("more_body"):
            pass
        body = b"ok"
    else:
        body = b"x" * (32 << 20)                          # far more than any socket buffer holds
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records, self.came = [], threading.Event()

    def emit(self, record):
        self.records.append(record)
        self.came.set()


@pytest.fixture(scope="module")
def server():
    http, _ = guarded_protocols(head_timeout=1, body_timeout=1, write_timeout=1, name="servingtest")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    config = uvicorn.Config(app, http=http, ws="none", lifespan="off", log_level="warning", access_log=False,
                            timeout_keep_alive=30, timeout_graceful_shutdown=1)
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120                     # a safety net for loaded cores
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the test server did not start"
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        srv.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def lines():
    handler, logger = Lines(), logging.getLogger("contrastlab.servingtest")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def connect(port: int, receive_buffer: int | None = None) -> socket.socket:
    s = socket.socket()
    if receive_buffer is not None:                        # small: the server's sends back up soon
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    s.settimeout(SAFETY)
    s.connect(("127.0.0.1", port))
    return s


def until_closed(s: socket.socket, trickle: bytes = b"") -> bytes:
    """What the server sends until it closes; with ``trickle``, one byte of it whenever the server is silent
    for 0.05 s (long before the keep-alive timer of 30 s could fire)."""
    data = b""
    for _ in range(int(SAFETY / 0.05)):
        if trickle and not select.select([s], [], [], 0.05)[0]:
            try:
                s.sendall(trickle)
            except (BrokenPipeError, ConnectionResetError):
                break
            continue
        try:
            chunk = s.recv(1 << 20)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    else:
        raise AssertionError("the server kept the connection open")
    s.close()
    return data


def test_an_idle_connection_is_closed_silently(server, lines):
    assert until_closed(connect(server)) == b""
    assert lines.records == []


def test_a_trickling_head_is_closed_with_one_line(server, lines):
    s = connect(server)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    assert until_closed(s, trickle=b"a") == b""
    assert lines.came.wait(SAFETY)
    [record] = lines.records
    assert record.exc_info is None and "its request head did not arrive in full within 1 s" in record.getMessage()
    assert record.getMessage().startswith("servingtest: closed the connection of 127.0.0.1:")


def test_a_stalled_body_is_closed_with_one_line(server, lines):
    s = connect(server)
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
    assert until_closed(s) == b""
    assert lines.came.wait(SAFETY)
    assert [r.getMessage().split(": ", 2)[2] for r in lines.records] == \
        ["its request body did not arrive in full within 1 s"]


def test_after_a_response_the_next_head_has_its_own_deadline(server, lines):
    s = connect(server)
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
    reply = b""
    while not reply.endswith(b"ok"):
        chunk = s.recv(4096)
        assert chunk, reply
        reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert until_closed(s) == b"" and lines.records == []          # idle after a response: silent


def test_a_peer_that_reads_nothing_is_dropped_with_one_line(server, lines):
    s = connect(server, receive_buffer=4096)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert lines.came.wait(SAFETY)                                  # the server gave up on it; now read
    until_closed(s)
    [record] = lines.records
    assert "read nothing for 1 s" in record.getMessage()


def test_deadlines_are_checked():
    for bad in (0, -1, True, "5", 1e6):
        with pytest.raises(ValueError, match="must be a number of seconds in"):
            seconds("head_timeout", bad)
    with pytest.raises(ValueError, match="`write_timeout`"):
        guarded_protocols(head_timeout=1, write_timeout=0)
    assert guarded_protocols(head_timeout=1)[0].body_timeout is None
