"""Playground sessions: one engine per WebSocket connection, ticked in a worker thread.

The event loop only validates messages and sends frames; the engine lives in a worker thread
(``asyncio.to_thread``) and is touched only there: validated commands are queued and applied at
the start of the next tick, so a control change shows in the next frame. A tick steps the engine
when it runs (or when a "step" was asked for) and produces a frame when anything changed; frames
are paced to at most :data:`MAX_FPS`, and to the page's drawing speed when it acknowledges frames.
A bad message gets an ``error`` reply; an exception in the engine is reported as an error and
pauses the session; neither closes the connection nor touches other sessions.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time

from starlette.websockets import WebSocket, WebSocketDisconnect

from .playground import Playground
from .protocol import ProtocolError, encode_frame, error_message, init_message, parse_message

__all__ = ["PlaygroundSessions", "Session", "MAX_FPS"]

#: Upper bound on frames per second per connection.
MAX_FPS = 60.0
#: How long an idle (paused, unchanged) session waits before looking at its queue again.
IDLE_WAIT = 0.5
#: Frames sent ahead of the last one the page acknowledged (once it acknowledges frames at all):
#: a slow page gets fewer frames instead of a growing queue, and control changes stay quick.
MAX_IN_FLIGHT = 3


class Session:
    """The engine of one connection and the commands waiting for it (used from one worker thread)."""

    def __init__(self):
        self.engine = Playground()
        self.commands: collections.deque = collections.deque()
        self.seq = 0
        self.sent_epoch = None
        self.acked = None                    # last frame the page drew; None: it does not say

    def tick(self) -> tuple[list[str], list]:
        """Apply queued commands, step if running, and return (error texts, messages to send)."""
        errors, changed, steps = [], False, 0
        engine = self.engine
        while self.commands:
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
                    steps += fields.get("count", 1)
                elif kind == "anchor":
                    engine.select_anchor(fields["index"])
                changed = True
            except (TypeError, ValueError) as e:
                errors.append(error_message(str(e), request=kind))
        if engine.running:
            steps += engine.settings["steps_per_frame"]
        if steps:
            engine.step(steps)
            changed = True
        if not changed:
            return errors, []
        out = []
        frame = engine.frame()
        if frame.epoch != self.sent_epoch:
            out.append(init_message(engine, running=engine.running))
            self.sent_epoch = frame.epoch
        self.seq += 1
        out.extend(encode_frame(frame, seq=self.seq, running=engine.running))
        return errors, out


class PlaygroundSessions:
    """All playground connections of one app."""

    def __init__(self, *, max_sessions: int = 16):
        self.max_sessions = max_sessions
        self.active = 0

    async def serve(self, ws: WebSocket) -> None:
        await ws.accept()
        if self.active >= self.max_sessions:
            await ws.send_text(error_message(f"too many playground connections (at most {self.max_sessions}); "
                                             f"close another tab"))
            await ws.close(code=1013)
            return
        self.active += 1
        try:
            await self._run(ws)
        finally:
            self.active -= 1

    async def _run(self, ws: WebSocket) -> None:
        session = await asyncio.to_thread(Session)
        wake = asyncio.Event()
        send_lock = asyncio.Lock()
        wake.set()

        async def send(item) -> None:
            async with send_lock:
                if isinstance(item, bytes):
                    await ws.send_bytes(item)
                else:
                    await ws.send_text(item)

        async def loop() -> None:
            while True:
                started = time.perf_counter()
                wake.clear()
                if session.acked is not None and session.seq - session.acked >= MAX_IN_FLIGHT:
                    try:                                                    # the page is behind: wait for it
                        await asyncio.wait_for(wake.wait(), IDLE_WAIT)
                    except asyncio.TimeoutError:
                        session.acked = session.seq                         # a lost ack must not stall us
                    continue
                try:
                    errors, out = await asyncio.to_thread(session.tick)
                except Exception as e:  # noqa: BLE001 - an engine bug must not end the server
                    session.engine.running = False
                    errors, out = [error_message(f"internal error, playground paused: {type(e).__name__}: {e}")], []
                try:
                    for item in errors + out:
                        await send(item)
                except (WebSocketDisconnect, RuntimeError, OSError):
                    return                                                  # the client went away
                if out and session.engine.running:
                    await asyncio.sleep(max(0.0, 1.0 / MAX_FPS - (time.perf_counter() - started)))
                else:
                    try:
                        await asyncio.wait_for(wake.wait(), IDLE_WAIT)
                    except asyncio.TimeoutError:
                        pass

        ticker = asyncio.create_task(loop())
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
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
                session.commands.append((kind, fields))
                wake.set()
        except WebSocketDisconnect:
            pass
        finally:
            ticker.cancel()
            try:
                await ticker
            except (asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                pass
