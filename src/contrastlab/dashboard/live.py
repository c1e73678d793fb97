"""Playground sessions: one engine per WebSocket connection, ticked in a worker thread.

The event loop only validates messages and sends frames; the engine lives in a worker thread
(``asyncio.to_thread``) and is touched only there: validated commands are queued and applied at
the start of the next tick, so a control change shows in the next frame. A tick steps the engine
when it runs (or when a "step" was asked for) and produces a frame when anything changed; frames
are paced to at most :data:`MAX_FPS`, and to the page's drawing speed when it acknowledges frames.
A bad message gets an ``error`` reply; an exception in the engine is reported as an error and
pauses the session; neither closes the connection nor touches other sessions.

The work a connection can queue is bounded: at most :data:`MAX_QUEUED_STEPS` steps asked for by
"step" messages and :data:`MAX_QUEUED_COMMANDS` commands wait at once (more are refused with an
``error``), a tick takes at most :data:`STEP_CHUNK` of the waiting steps, and a closed connection
drops its queue and stops its engine before the next step. A session ends, and frees its place
for the next user, when the client closes, when one send waits more than ``send_timeout`` seconds
(a client that does not read), or after ``idle_timeout`` seconds without a message from the client
(the page pings every 30 s, also from a background tab).

Example::

    >>> from contrastlab.dashboard.live import Session
    >>> s = Session()
    >>> s.engine.running = False
    >>> s.submit("step", {"count": 3}) is None                  # queued for the next tick
    True
    >>> errors, out = s.tick()
    >>> s.engine.step_count, len(out)                           # init, frame JSON, frame binary
    (3, 3)
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import threading
import time

from starlette.websockets import WebSocket, WebSocketDisconnect

from .playground import Playground
from .protocol import ProtocolError, encode_frame, error_message, init_message, notice_message, parse_message

__all__ = ["PlaygroundSessions", "Session", "MAX_FPS", "MAX_QUEUED_STEPS", "MAX_QUEUED_COMMANDS", "STEP_CHUNK",
           "SEND_TIMEOUT", "IDLE_TIMEOUT"]

_log = logging.getLogger(__name__)

#: Upper bound on frames per second per connection.
MAX_FPS = 120.0
#: How long an idle (paused, unchanged) session waits before looking at its queue again.
IDLE_WAIT = 0.5
#: Frames sent ahead of the last one the page acknowledged (once it acknowledges frames at all):
#: a slow page gets fewer frames instead of a growing queue, and control changes stay quick.
MAX_IN_FLIGHT = 3
#: Steps asked for by "step" messages and not taken yet, per connection; a message past it is refused.
MAX_QUEUED_STEPS = 1000
#: Commands waiting for the next tick, per connection; a message past it is refused.
MAX_QUEUED_COMMANDS = 64
#: Most of the waiting steps one tick takes (one frame each chunk).
STEP_CHUNK = 100
#: Seconds one send may wait for a client that does not read before its session ends.
SEND_TIMEOUT = 20.0
#: Seconds without any message from the client before its session ends.
IDLE_TIMEOUT = 300.0
#: Seconds the closing handshake may take before we stop waiting for it.
CLOSE_TIMEOUT = 2.0


class Session:
    """The engine of one connection and the commands waiting for it. :meth:`submit` and :meth:`close`
    may be called from any thread; :meth:`tick` from one worker thread at a time."""

    def __init__(self):
        self.engine = Playground()
        self.commands: collections.deque = collections.deque()
        self.seq = 0
        self.sent_epoch = None
        self.acked = None                    # last frame the page drew; None: it does not say
        self.closed = threading.Event()
        self.queued_steps = 0                # asked for by "step" messages, not taken yet (under _lock)
        self.steps_taken = 0                 # every step this session's engine took
        self._due = 0                        # of the queued steps, those already taken off the queue
        self._lock = threading.Lock()

    def submit(self, kind: str, fields: dict) -> str | None:
        """Queue a validated command for the next tick. Returns None, or the error text when the
        connection already has its share of work waiting (the command is then dropped)."""
        with self._lock:
            if self.closed.is_set():
                return "the session is closed"
            if len(self.commands) >= MAX_QUEUED_COMMANDS:
                return (f"at most {MAX_QUEUED_COMMANDS} commands may wait: this {kind!r} was dropped; "
                        f"send the next one after a frame arrives")
            if kind == "step":
                count = fields.get("count", 1)
                if self.queued_steps + count > MAX_QUEUED_STEPS:
                    return (f"at most {MAX_QUEUED_STEPS} steps may wait and {self.queued_steps} are waiting: "
                            f"this step of {count} was dropped")
                self.queued_steps += count
            self.commands.append((kind, fields))
        return None

    @property
    def busy(self) -> bool:
        """Commands or steps are waiting for a tick."""
        return bool(self.commands) or self._due > 0

    def close(self) -> None:
        """Drop everything waiting; a tick in progress stops before its engine's next step."""
        with self._lock:
            self.closed.set()
            self.commands.clear()
            self.queued_steps = 0

    def tick(self) -> tuple[list[str], list]:
        """Apply queued commands, step if running or asked to, and return (error texts, messages to send)."""
        errors, notices, changed = [], [], False
        engine = self.engine
        while not self.closed.is_set():
            with self._lock:
                if not self.commands:
                    break
                kind, fields = self.commands.popleft()
            try:
                if kind == "set":
                    engine.update(**fields["values"])
                elif kind == "pause":
                    engine.running = False
                elif kind == "resume":
                    engine.running = True
                elif kind == "reset":
                    engine.reset()
                elif kind == "step":
                    self._due += fields.get("count", 1)
                elif kind == "anchor":
                    engine.select_anchor(fields["index"])
                elif kind == "experiment":
                    engine.start_experiment(fields["name"])
                elif kind == "load":
                    notices.append(notice_message(engine.load_link(fields["query"]), request=kind))
                changed = True
            except (TypeError, ValueError) as e:
                errors.append(error_message(str(e), request=kind))
        take = min(self._due, STEP_CHUNK)
        self._due -= take
        steps = take + (engine.settings["steps_per_frame"] if engine.running else 0)
        if steps and not self.closed.is_set():
            before = engine.step_count
            try:
                engine.step(steps, should_stop=self.closed.is_set)
            finally:
                self.steps_taken += engine.step_count - before
                with self._lock:
                    self.queued_steps = max(0, self.queued_steps - take)
            changed = True
        if self.closed.is_set():
            return [], []                                                # nobody to send to
        if not changed:
            return errors, []
        out = notices
        frame = engine.frame()
        if frame.epoch != self.sent_epoch:
            out.append(init_message(engine, running=engine.running))
            self.sent_epoch = frame.epoch
        self.seq += 1
        out.extend(encode_frame(frame, seq=self.seq, running=engine.running))
        return errors, out


class _NotReading(Exception):
    """A send waited past the send timeout: the client does not read what it is sent."""


class PlaygroundSessions:
    """All playground connections of one app.

    ``active`` counts the open sessions; ``ended``, ``steps_taken`` (by ended sessions) and ``reasons``
    (why they ended: "closed", "idle", "not reading", "cancelled" (the server
    stopped, or cancelled the connection's task), "error") are kept for monitoring and tests, and
    :meth:`wait_for` blocks until a condition on them holds.
    """

    def __init__(self, *, max_sessions: int = 16, send_timeout: float = SEND_TIMEOUT,
                 idle_timeout: float = IDLE_TIMEOUT):
        for name, value in (("max_sessions", max_sessions), ("send_timeout", send_timeout),
                            ("idle_timeout", idle_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"`{name}` must be > 0, got {value!r}")
        self.max_sessions = max_sessions
        self.send_timeout = float(send_timeout)
        self.idle_timeout = float(idle_timeout)
        self.active = 0
        self.ended = 0
        self.steps_taken = 0
        self.reasons: collections.Counter = collections.Counter()
        self._changed = threading.Condition()

    def wait_for(self, predicate, timeout: float) -> bool:
        """Block (in a thread that is not the server's) until ``predicate()`` is true or ``timeout`` s pass."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def _count(self, *, started: bool = False, reason: str | None = None, steps: int = 0) -> None:
        with self._changed:
            if started:
                self.active += 1
            else:
                self.active -= 1
                self.ended += 1
                self.steps_taken += steps
                self.reasons[reason] += 1
            self._changed.notify_all()

    async def serve(self, ws: WebSocket) -> None:
        await ws.accept()
        if self.active >= self.max_sessions:
            try:
                await asyncio.wait_for(ws.send_text(error_message(
                    f"too many playground connections (at most {self.max_sessions}); close another tab")),
                    self.send_timeout)
                await asyncio.wait_for(ws.close(code=1013), CLOSE_TIMEOUT)
            except (asyncio.TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
                pass
            return
        self._count(started=True)
        state = {"reason": None, "session": None, "inflight": None}
        try:
            await self._run(ws, state)
        except asyncio.CancelledError:
            state["reason"] = state["reason"] or "cancelled"          # the server stopped, or cancelled this task
            raise
        finally:
            state["reason"] = state["reason"] or "error"
            # the session counts as ended once its engine has stopped: at once, or when the tick in flight
            # returns (it stops before its next step); nothing here awaits, so a cancelled server exits at once
            def ended(_=None):
                self._count(reason=state["reason"], steps=state["session"].steps_taken if state["session"] else 0)
            inflight = state["inflight"]
            if inflight is not None and not inflight.done():
                inflight.add_done_callback(ended)
            else:
                ended()

    async def _run(self, ws: WebSocket, state: dict) -> None:
        session = state["session"] = await asyncio.to_thread(Session)
        wake = asyncio.Event()
        send_lock = asyncio.Lock()
        wake.set()

        async def send(item) -> None:
            async with send_lock:
                message = ws.send_bytes(item) if isinstance(item, bytes) else ws.send_text(item)
                try:
                    await asyncio.wait_for(message, self.send_timeout)
                except asyncio.TimeoutError:
                    raise _NotReading from None

        async def ticker() -> str:
            while True:
                started = time.perf_counter()
                wake.clear()
                if session.acked is not None and session.seq - session.acked >= MAX_IN_FLIGHT:
                    try:                                                    # the page is behind: wait for it
                        await asyncio.wait_for(wake.wait(), IDLE_WAIT)
                    except asyncio.TimeoutError:
                        session.acked = session.seq                         # a lost ack must not stall us
                    continue
                tick = state["inflight"] = asyncio.ensure_future(asyncio.to_thread(session.tick))
                tick.add_done_callback(lambda f: f.cancelled() or f.exception())   # read even if nobody waits
                try:
                    errors, out = await asyncio.shield(tick)
                except Exception as e:  # noqa: BLE001 - an engine bug must not end the server
                    session.engine.running = False
                    errors, out = [error_message(f"internal error, playground paused: {type(e).__name__}: {e}")], []
                for item in errors + out:
                    await send(item)
                if out and (session.engine.running or session.busy):
                    await asyncio.sleep(max(0.0, 1.0 / MAX_FPS - (time.perf_counter() - started)))
                else:
                    try:
                        await asyncio.wait_for(wake.wait(), IDLE_WAIT)
                    except asyncio.TimeoutError:
                        pass

        async def receiver() -> str:
            while True:
                try:
                    message = await asyncio.wait_for(ws.receive(), self.idle_timeout)
                except asyncio.TimeoutError:
                    return "idle"
                if message["type"] == "websocket.disconnect":
                    return "closed"
                data = message.get("text")
                if data is None:
                    data = message.get("bytes")
                try:
                    kind, fields = parse_message(data)
                except ProtocolError as e:
                    await send(error_message(str(e)))
                    continue
                if kind == "ping":
                    await send(json.dumps({"type": "pong", "id": fields.get("id")}))
                    continue
                if kind == "ack":
                    session.acked = max(session.acked or 0, fields["seq"])
                    wake.set()
                    continue
                refused = session.submit(kind, fields)
                if refused is not None:
                    await send(error_message(refused, request=kind))
                    continue
                wake.set()

        async def guarded(part) -> str:
            try:
                return await part()
            except _NotReading:
                return "not reading"
            except (WebSocketDisconnect, RuntimeError, OSError):
                return "closed"                                             # the client went away

        tasks = [asyncio.create_task(guarded(ticker)), asyncio.create_task(guarded(receiver))]
        for task in tasks:
            task.add_done_callback(lambda t: t.cancelled() or t.exception())   # the loser's end is read too
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            session.close()                                                 # drop the queue, stop the engine
            for task in tasks:
                task.cancel()
        first = done.pop()
        if first.exception() is not None:
            _log.error("playground session failed", exc_info=first.exception())
        reason = state["reason"] = first.result() if first.exception() is None else "error"
        if reason in ("idle", "not reading"):
            text = (f"no message for {self.idle_timeout:g} s: the session ended" if reason == "idle"
                    else "the client does not read its messages: the session ended")
            try:
                await asyncio.wait_for(ws.close(code=1001 if reason == "idle" else 1008, reason=text), CLOSE_TIMEOUT)
            except (asyncio.TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
                pass                                                        # the server drops the socket
