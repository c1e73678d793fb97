"""Connection deadlines for the dashboard's uvicorn server: a request must arrive in time, and a peer
that stops reading is dropped.

uvicorn closes a keep-alive connection that sends nothing for ``timeout_keep_alive`` seconds after
a response, but nothing bounds the wait for the first request, a request head sent a byte at a
time, a body that never ends, or a peer that reads nothing of what it is sent (its full send buffer
holds the connection, and asyncio's ``close()`` waits for that buffer forever). The protocol
classes from :func:`guarded_protocols` add:

- ``head_timeout``: from the connection opening (or the end of the previous response) to a
  complete request head;
- ``body_timeout``: from the head to the end of the request body;
- ``write_timeout``: how long our send buffer may stay full before the connection is aborted, for
  HTTP and WebSocket connections alike; and a WebSocket whose keep-alive ping goes unanswered is
  aborted rather than closed.

Example::

    >>> from contrastlab.dashboard.timeouts import guarded_protocols
    >>> http, ws = guarded_protocols(head_timeout=10, body_timeout=30, write_timeout=30)
    >>> http.head_timeout, http.__name__
    (10.0, 'GuardedH11Protocol')
"""

from __future__ import annotations

import asyncio
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

try:                                                    # uvicorn's default when `websockets` is installed
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
except ImportError:  # pragma: no cover - then uvicorn picks its own WebSocket protocol, unguarded
    WebSocketsSansIOProtocol = None

__all__ = ["guarded_protocols"]

_log = logging.getLogger("contrastlab.dashboard")


class _StallGuard:
    """Abort the connection when the transport's send buffer stays above its high-water mark (the
    peer reads nothing) for ``write_timeout`` seconds. Mixed in before the uvicorn protocol."""

    write_timeout = 30.0
    _stall: asyncio.TimerHandle | None = None

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall is None:
            self._stall = self.loop.call_later(self.write_timeout, self._stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._unstall()

    def _unstall(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def _stalled(self) -> None:
        self._stall = None
        _log.info("dropping %s: it read nothing for %g s", _peer(self.transport), self.write_timeout)
        self.transport.abort()


def _peer(transport) -> str:
    peer = transport.get_extra_info("peername") if transport is not None else None
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "a client"


class GuardedH11Protocol(_StallGuard, H11Protocol):
    """uvicorn's h11 protocol with deadlines for the request head and body (see the module docstring)."""

    head_timeout = 10.0
    body_timeout = 30.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: tuple[str, asyncio.TimerHandle] | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc) -> None:
        self._clear()
        self._unstall()
        super().connection_lost(exc)

    def _clear(self) -> None:
        if self._deadline is not None:
            self._deadline[1].cancel()
            self._deadline = None

    def _watch(self) -> None:
        """Arm the deadline of the phase the peer is in: sending a head, or a body; none otherwise."""
        t = self.transport
        if t is None or t.is_closing() or t.get_protocol() is not self:      # closed, or now a WebSocket
            self._clear()
            return
        state = self.conn.their_state
        phase = "head" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None
        if phase == (self._deadline[0] if self._deadline else None):
            return                                                            # the clock keeps running
        self._clear()
        if phase is not None:
            timeout = self.head_timeout if phase == "head" else self.body_timeout
            self._deadline = (phase, self.loop.call_later(timeout, self._expired, phase, timeout))

    def _expired(self, phase: str, timeout: float) -> None:
        self._deadline = None
        t = self.transport
        if t.is_closing() or t.get_protocol() is not self:
            return
        _log.info("closing %s: no complete request %s within %g s", _peer(t), phase, timeout)
        t.close()                                          # an app waiting for the body hears a disconnect


if WebSocketsSansIOProtocol is not None:
    class GuardedWebSocketProtocol(_StallGuard, WebSocketsSansIOProtocol):
        """uvicorn's WebSocket protocol that drops a peer which reads nothing (see the module docstring)."""

        def connection_lost(self, exc) -> None:
            self._unstall()
            super().connection_lost(exc)

        def keepalive_timeout(self) -> None:
            super().keepalive_timeout()                    # closes, which waits for a full buffer forever
            if self.transport.get_write_buffer_size():
                self.transport.abort()
else:  # pragma: no cover
    GuardedWebSocketProtocol = None


def _positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"`{name}` must be a number of seconds > 0, got {value!r}")
    return float(value)


def guarded_protocols(*, head_timeout: float, body_timeout: float, write_timeout: float) -> tuple[type, type | None]:
    """(HTTP protocol class, WebSocket protocol class) for ``uvicorn.Config(http=..., ws=...)`` with
    these deadlines in seconds. The WebSocket class is None where uvicorn would not use ``websockets``."""
    limits = {"head_timeout": _positive("head_timeout", head_timeout),
              "body_timeout": _positive("body_timeout", body_timeout),
              "write_timeout": _positive("write_timeout", write_timeout)}
    http = type("GuardedH11Protocol", (GuardedH11Protocol,), dict(limits))
    ws = None
    if GuardedWebSocketProtocol is not None:
        ws = type("GuardedWebSocketProtocol", (GuardedWebSocketProtocol,), {"write_timeout": limits["write_timeout"]})
    return http, ws
