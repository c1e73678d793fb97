"""Hostile and clumsy clients: a flood of "step" messages is bounded and stops when the client leaves;
clients that never read, or never send, lose their session and the next user gets in; idle,
slow-header and slow-body HTTP connections are closed; a deeply nested JSON body is a 4xx.

Every wait here is on an event (a message, a counter, a connection closing); the timeouts are
safety nets only."""

import base64
import json
import os
import select
import socket
import threading
import warnings
from urllib.parse import urlsplit

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

with warnings.catch_warnings():
    warnings.simplefilter("ignore")                       # starlette's note about httpx vs httpx2
    from fastapi.testclient import TestClient

from contrastlab.dashboard import live
from contrastlab.dashboard.app import create_app

WS = "ws://127.0.0.1/ws/playground"
SAFETY = 120.0                                            # seconds: only a net under a hung server


def eventually(predicate, what: str) -> None:
    """Wait until ``predicate()`` holds (a server-side counter); re-checked every 20 ms, SAFETY s at most."""
    tick = threading.Event()
    for _ in range(int(SAFETY / 0.02)):
        if predicate():
            return
        tick.wait(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def until(ws, kind, seen=None):
    """Read messages until one of ``kind``; the others' JSON is appended to ``seen``."""
    while True:
        m = ws.receive()
        if m.get("text") is not None:
            obj = json.loads(m["text"])
            if obj["type"] == kind:
                return obj
            if seen is not None:
                seen.append(obj)


class StepCounter:
    """Counts the steps every playground engine takes; ``hold()`` makes the next step call wait for
    ``release()`` (the engine is busy while the test sends)."""

    def __init__(self, monkeypatch):
        self.cond = threading.Condition()
        self.taken = self.inside = self.calls = 0
        self.gate = threading.Event()
        self.gate.set()
        original = live.Playground.step
        counter = self

        def step(engine, count=1, **options):
            with counter.cond:
                counter.inside += 1
                counter.calls += 1
                counter.cond.notify_all()
            assert counter.gate.wait(SAFETY)
            before = engine.step_count
            try:
                return original(engine, count, **options)
            finally:
                with counter.cond:
                    counter.taken += engine.step_count - before
                    counter.inside -= 1
                    counter.cond.notify_all()
        monkeypatch.setattr(live.Playground, "step", step)

    def wait(self, predicate, what):
        with self.cond:
            assert self.cond.wait_for(predicate, SAFETY), f"timed out waiting for {what}"


def test_a_session_bounds_its_queue_and_a_closed_one_stops_between_steps():
    s = live.Session()
    s.engine.running = False
    for _ in range(live.MAX_QUEUED_STEPS // 100):
        assert s.submit("step", {"count": 100}) is None
    assert "at most 1000 steps may wait and 1000 are waiting" in s.submit("step", {"count": 1})
    for _ in range(live.MAX_QUEUED_COMMANDS - len(s.commands)):
        assert s.submit("anchor", {"index": 1}) is None
    assert f"at most {live.MAX_QUEUED_COMMANDS} commands may wait" in s.submit("pause", {})
    errors, out = s.tick()                                   # one chunk of the waiting steps, one frame
    assert errors == [] and len(out) == 3 and s.engine.step_count == live.STEP_CHUNK
    assert s.queued_steps == live.MAX_QUEUED_STEPS - live.STEP_CHUNK and s.busy
    calls = []
    resample = s.engine._resample_batch

    def closing_on_the_third_step():                         # the client leaves in the middle of a chunk
        calls.append(1)
        if len(calls) == 3:
            s.close()
        resample()
    s.engine._resample_batch = closing_on_the_third_step
    assert s.tick() == ([], [])                              # nobody to send to
    assert s.engine.step_count == live.STEP_CHUNK + 3       # stopped before the fourth step
    assert s.queued_steps == 0 and not s.commands             # the rest was dropped
    assert s.tick() == ([], []) and s.engine.step_count == live.STEP_CHUNK + 3
    assert s.submit("step", {"count": 1}) == "the session is closed"


def test_a_flood_of_steps_is_bounded_and_stops_when_the_client_leaves(monkeypatch):
    """200 messages of 100 steps while the engine is busy, then the client leaves: at most
    MAX_QUEUED_STEPS steps are ever taken, the rest is refused, and the engine stops."""
    counter = StepCounter(monkeypatch)
    app = create_app([])
    sessions = app.state.sessions
    client = TestClient(app, base_url="http://127.0.0.1")
    with client.websocket_connect(WS) as ws:
        until(ws, "init")
        ws.send_text(json.dumps({"type": "set", "values": {"points": 64, "batch_size": 8}}))
        ws.send_text(json.dumps({"type": "pause"}))
        f = until(ws, "frame")
        while f["running"] or f["settings"]["points"] != 64:
            f = until(ws, "frame")
        with counter.cond:
            before = counter.taken
            counter.gate.clear()                                 # the next step waits
        step = json.dumps({"type": "step", "count": 100})
        ws.send_text(step)
        counter.wait(lambda: counter.inside == 1, "the engine to take the first step message")
        for _ in range(199):
            ws.send_text(step)
        ws.send_text(json.dumps({"type": "ping", "id": "end"}))
        seen = []
        assert until(ws, "pong", seen)["id"] == "end"            # every step message was read
        refused = [m for m in seen if m["type"] == "error" and "steps may wait" in m["message"]]
        calls = counter.calls
        counter.gate.set()
        counter.wait(lambda: counter.calls > calls, "the engine's next step call")
        # the client leaves; the test client cancels the app as soon as its block exits, so wait here until the
        # server has seen the close and the session ended
        ws.close(1000)
        assert sessions.wait_for(lambda: sessions.ended == 1, SAFETY)
    counter.wait(lambda: sessions.active == 0 and counter.inside == 0, "the session to end")
    taken = counter.taken - before
    assert taken <= live.MAX_QUEUED_STEPS, f"{taken} steps taken for a client that left"
    assert len(refused) >= 200 - live.MAX_QUEUED_STEPS // 100
    assert "this step of 100 was dropped" in refused[0]["message"]
    # it ended as "closed" -- or, on a loaded machine where the test client read its 200 refusals late, as "not
    # reading": either way not by an error
    assert sessions.reasons["closed"] + sessions.reasons["not reading"] == 1, sessions.reasons


def raw_websocket(base: str, *, receive_buffer: int = 4096) -> socket.socket:
    """A WebSocket to the playground that reads its handshake answer and then nothing, ever."""
    u = urlsplit(base)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)     # small: the server's sends back up soon
    s.settimeout(SAFETY)
    s.connect((u.hostname, u.port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(f"GET /ws/playground HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):                   # a byte at a time: nothing past the head
        byte = s.recv(1)
        assert byte, "closed during the handshake"
        head += byte
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def read_to_the_end(s: socket.socket) -> bytes:
    """Everything the peer sends until it closes (EOF or reset); a timeout is a failure."""
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


@pytest.mark.parametrize("who", ["app", "server"])
def test_clients_that_never_read_lose_their_session_and_the_next_user_gets_in(server_for, who):
    """Either guard alone frees the places: the app's send timeout ends the session (under any ASGI
    server), and the server's write timeout drops the socket (the app then sees it gone)."""
    quick, never = 1.0, 10 * SAFETY
    if who == "app":
        base = server_for([], send_timeout=quick, write_timeout=never, max_sessions=4)
    else:
        base = server_for([], send_timeout=never, write_timeout=quick, max_sessions=4)
    sessions = server_for.apps[-1].state.sessions
    silent = [raw_websocket(base) for _ in range(sessions.max_sessions)]      # every place taken, nothing read
    try:
        eventually(lambda: sessions.active == 0, "the sessions of the clients that do not read to end")
        assert sessions.reasons["not reading" if who == "app" else "closed"] == len(silent)
        with connect(base.replace("http", "ws") + "/ws/playground") as ws:     # the next user
            assert json.loads(ws.recv(timeout=SAFETY))["type"] == "init"
        if who == "server":
            for s in silent:                                 # the server dropped those sockets
                read_to_the_end(s)
    finally:
        for s in silent:
            s.close()


def test_a_session_that_sends_nothing_is_closed_after_the_idle_timeout(server_for):
    base = server_for([], idle_timeout=1.0)
    sessions = server_for.apps[-1].state.sessions
    with connect(base.replace("http", "ws") + "/ws/playground") as ws:
        ws.send(json.dumps({"type": "pause"}))
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(100_000):                         # the frames until the pause, then the close
                ws.recv(timeout=SAFETY)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert "no message for 1 s" in closed.value.rcvd.reason
    assert sessions.wait_for(lambda: sessions.reasons["idle"] == 1, SAFETY)


def trickle(s: socket.socket, payload: bytes) -> tuple[bytes, bool]:
    """Send ``payload`` a byte at a time, reading whatever comes back; returns (what came back, whether
    the server closed the connection before the payload was all sent)."""
    back = b""
    for i in range(len(payload)):
        try:
            s.sendall(payload[i:i + 1])
        except (BrokenPipeError, ConnectionResetError):
            return back, True
        readable, _, _ = select.select([s], [], [], 0.05)    # paces the trickle; a reply is read at once
        if readable:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                return back, True
            if not chunk:
                return back, True
            back += chunk
    return back, False


def test_idle_slow_header_and_slow_body_connections_are_closed(server_for):
    base = server_for([], head_timeout=1.0, body_timeout=1.0, keep_alive_timeout=1)
    address = (urlsplit(base).hostname, urlsplit(base).port)
    # connects and sends nothing
    with socket.create_connection(address, timeout=SAFETY) as s:
        assert read_to_the_end(s) == b""
    # a request head a byte at a time, never finished
    with socket.create_connection(address, timeout=SAFETY) as s:
        back, closed = trickle(s, b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1200)
        assert closed and back == b""
    # a complete head, then a body a byte at a time (here a deeply nested JSON array)
    with socket.create_connection(address, timeout=SAFETY) as s:
        s.sendall(b"POST /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100000\r\n\r\n")
        back, closed = trickle(s, b"[" * 1200)
        assert closed and back.startswith(b"HTTP/1.1 405 ")       # answered at once, then dropped
    # a finished request on a keep-alive connection, then silence
    with socket.create_connection(address, timeout=SAFETY) as s:
        s.sendall(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_to_the_end(s).startswith(b"HTTP/1.1 200 ")
    with socket.create_connection(address, timeout=SAFETY) as s:   # the server still answers
        s.sendall(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert b'"playground":true' in read_to_the_end(s)


def test_deeply_nested_json_is_a_4xx_never_a_500(tmp_path):
    client = TestClient(create_app([tmp_path / "run"]), base_url="http://127.0.0.1")
    nested = "[" * 100_000 + "]" * 100_000
    for path in ("/", "/api/info", "/api/runs", "/api/runs/0", "/api/runs/0/snapshots/0/map"):
        for method in ("POST", "PUT", "PATCH"):
            r = client.request(method, path, content=nested, headers={"content-type": "application/json"})
            assert 400 <= r.status_code < 500, (method, path, r.status_code)
    with client.websocket_connect(WS) as ws:                 # the playground takes JSON messages
        ws.send_text("[" * 4000)
        assert "valid JSON" in until(ws, "error")["message"]
        ws.send_text(json.dumps({"type": "ping", "id": 1}))
        assert until(ws, "pong")["id"] == 1


def test_a_session_whose_task_is_cancelled_ends_as_cancelled_not_as_an_error():
    """A server that stops cancels its connections' tasks: the session is counted once, as "cancelled"."""
    import asyncio

    sessions = live.PlaygroundSessions()

    class Socket:                                            # accepts, sends into a list, never receives
        def __init__(self):
            self.sent = asyncio.Queue()

        async def accept(self):
            pass

        async def receive(self):
            await asyncio.Event().wait()

        async def send_text(self, text):
            await self.sent.put(text)

        async def send_bytes(self, data):
            await self.sent.put(data)

    async def scenario():
        ws = Socket()
        task = asyncio.create_task(sessions.serve(ws))
        first = json.loads(await asyncio.wait_for(ws.sent.get(), SAFETY))    # the session is running
        assert first["type"] == "init"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.to_thread(sessions.wait_for, lambda: sessions.ended == 1, SAFETY)

    asyncio.run(scenario())
    assert sessions.active == 0 and dict(sessions.reasons) == {"cancelled": 1}
