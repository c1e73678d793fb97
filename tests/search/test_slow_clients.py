"""A real server closes connections that stall (idle, a request head or body that trickles in, the rest of a
refused body) and logs one line, never a traceback, for each client that leaves or stalls mid-body.

The test server's timeouts are 1 s; every socket read waits at most SAFETY seconds, a safety net only: each test
waits for the server to close the connection (recv() returning b""), not for a fixed time."""
from __future__ import annotations

import logging
import select
import socket
import threading
from urllib.parse import urlsplit

import pytest

from contrastlab.search import VectorIndex

from .helpers import HashEmbedder, live_search_server

SAFETY = 60.0
TIMEOUTS = {"head_timeout": 1, "body_timeout": 1, "keep_alive_timeout": 1, "max_head_bytes": 8192}
HEAD = (b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n")


@pytest.fixture(scope="module")
def index_and_embedder():
    embedder = HashEmbedder(dim=16)
    docs = ["red hat", "blue shoe", "green apple"]
    return VectorIndex.build(embedder.encode(docs), ["a", "b", "c"], texts=docs), embedder


@pytest.fixture
def port(index_and_embedder):
    with live_search_server(*index_and_embedder, **TIMEOUTS) as (url, server, thread):
        yield urlsplit(url).port


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=SAFETY)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (socket.timeout after SAFETY s: a failure)."""
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            sock.close()
            return b"".join(chunks)
        chunks.append(data)


def trickle_until_closed(sock: socket.socket, byte: bytes = b"a") -> bytes:
    """Send one byte whenever the server stays silent for 0.1 s, until it closes the connection; returns what it
    sent. Bounded: a server that never closes fails the test after about SAFETY s."""
    received = []
    for _ in range(int(SAFETY / 0.1)):
        if select.select([sock], [], [], 0.1)[0]:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                sock.close()
                return b"".join(received)
            received.append(data)
            continue
        try:
            sock.sendall(byte)
        except (BrokenPipeError, ConnectionResetError):        # closed between two bytes
            sock.close()
            return b"".join(received)
    raise AssertionError(f"the server kept a trickling connection open for {SAFETY} s")


def one_response(sock: socket.socket) -> bytes:
    """Read one complete response with a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_connection_that_sends_nothing_is_closed(port):
    assert read_until_closed(connect(port)) == b""


def test_a_request_head_that_trickles_in_is_closed(port):
    sock = connect(port)
    sock.sendall(b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    trickle_until_closed(sock)                    # every byte arrives long before any idle timer would fire


@pytest.mark.parametrize("trickle", [False, True])
def test_a_body_that_stalls_or_trickles_gets_408_and_the_connection_is_closed(port, trickle):
    sock = connect(port)
    sock.sendall(HEAD % 1000 + b'{"query": "')
    reply = trickle_until_closed(sock) if trickle else read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 408 "), reply
    assert b"connection: close" in reply.lower()
    assert b"the request body did not arrive within 1 s" in reply


def test_after_a_response_an_idle_or_trickling_connection_is_closed(port):
    body = b'{"query": "red hat", "k": 1}'
    for trickle in (False, True):
        sock = connect(port)
        sock.sendall(HEAD % len(body) + body)
        assert one_response(sock).startswith(b"HTTP/1.1 200 ")
        if trickle:
            sock.sendall(b"POST /search HTTP/1.1\r\nX-Slow: ")
            trickle_until_closed(sock)
        else:
            assert read_until_closed(sock) == b""


def test_a_refused_body_closes_the_connection_instead_of_reading_the_rest(port):
    sock = connect(port)
    sock.sendall(HEAD % (10 << 20) + b'{"query": "')
    reply = trickle_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 413 ") and b"at most 1048576 bytes" in reply, reply


def test_a_request_head_past_max_head_bytes_gets_400_and_is_closed(port):
    sock = connect(port)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 10_000)      # and no end
    assert read_until_closed(sock).startswith(b"HTTP/1.1 400 ")


class Lines(logging.Handler):
    """Collects the records of the loggers it is attached to; `reached` is set once `want` have come."""

    def __init__(self, want: int):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.want, self.reached = want, threading.Event()

    def emit(self, record):
        self.records.append(record)
        if len(self.records) >= self.want:
            self.reached.set()


def test_clients_that_leave_or_stall_mid_body_log_one_line_each_without_a_traceback(index_and_embedder):
    leavers, stallers = 4, 3
    lines = Lines(leavers + stallers)
    loggers = [logging.getLogger("uvicorn"), logging.getLogger("contrastlab")]
    try:
        with live_search_server(*index_and_embedder, **TIMEOUTS) as (url, server, thread):
            for logger in loggers:                # after the server configured uvicorn's loggers
                logger.addHandler(lines)
            port = urlsplit(url).port
            socks = [connect(port) for _ in range(leavers + stallers)]
            for sock in socks:
                sock.sendall(HEAD % 100 + b'{"query": "')
            for sock in socks[:leavers]:
                sock.close()                      # gone mid-body
            replies = [read_until_closed(sock) for sock in socks[leavers:]]
            assert lines.reached.wait(SAFETY), [r.getMessage() for r in lines.records]
    finally:                                      # the server has stopped: every line it logged is here
        for logger in loggers:
            logger.removeHandler(lines)
    assert all(r.startswith(b"HTTP/1.1 408 ") for r in replies)
    messages = [r.getMessage() for r in lines.records]
    for record, message in zip(lines.records, messages):
        assert record.exc_info is None and "\n" not in message and "Traceback" not in message, messages
    assert len(messages) == leavers + stallers, messages
    assert sum("left mid-body (11 of 100 bytes)" in m for m in messages) == leavers, messages
    assert sum("did not arrive within 1 s (11 of 100 bytes)" in m for m in messages) == stallers, messages
