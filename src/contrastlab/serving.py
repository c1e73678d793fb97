"""Connection deadlines for contrastlab's uvicorn servers (the search API and the dashboard): a request must
arrive in time, and a peer that stops reading is dropped.

uvicorn closes a keep-alive connection that sends nothing for ``timeout_keep_alive`` seconds after a response,
but any byte restarts that timer, and nothing bounds the wait for the first request, a request head sent a byte
at a time, a body that never ends, or a peer that reads nothing of what it is sent (its full send buffer holds
the connection, and asyncio's ``close()`` waits for that buffer forever). The protocol classes from
:func:`guarded_protocols` add:

- ``head_timeout``: from the connection opening (or the end of the previous response) to a complete request
  head, however the bytes trickle in; the unread rest of a body the app answered without reading counts
  toward it too;
- ``body_timeout``: from the head to the end of the request body while the app has not answered yet; None
  leaves the body to the app (the search API answers 408 itself, which a protocol that can only close cannot);
- ``write_timeout``: how long our send buffer may stay full before the connection is aborted, for HTTP and
  WebSocket connections alike; and a WebSocket whose keep-alive ping goes unanswered is aborted rather than
  closed.

A connection closed with part of a request in, or dropped for not reading, logs one line (a warning on the
``contrastlab.<name>`` logger, no traceback); an idle one is closed silently. Importing this module needs
uvicorn and h11, never torch (the search server starts without it).

Example::

    >>> from contrastlab.serving import guarded_protocols
    >>> http, ws = guarded_protocols(head_timeout=10, body_timeout=30, write_timeout=30, name="dashboard")
    >>> http.head_timeout, http.body_timeout, http.__name__
    (10.0, 30.0, 'GuardedH11Protocol')
    >>> guarded_protocols(head_timeout=10, name="search")[0].body_timeout is None
    True
    >>> guarded_protocols(head_timeout=0)
    Traceback (most recent call last):
    ...
    ValueError: `head_timeout` must be a number of seconds in (0, 1e6), got 0
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

__all__ = ["guarded_protocols", "seconds"]


def seconds(name: str, value) -> float:
    """``value`` as a float number of seconds in (0, 1e6); ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e6:
        raise ValueError(f"`{name}` must be a number of seconds in (0, 1e6), got {value!r}")
    return float(value)


def _peer(transport) -> str:
    peer = transport.get_extra_info("peername") if transport is not None else None
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "a client"


class _StallGuard:
    """Abort the connection when the transport's send buffer stays above its high-water mark (the peer reads
    nothing) for ``write_timeout`` seconds. Mixed in before the uvicorn protocol."""

    write_timeout = 30.0
    name = "server"
    _stall: asyncio.TimerHandle | None = None

    def _warn(self, message: str, *args) -> None:
        logging.getLogger(f"contrastlab.{self.name}").warning(f"{self.name}: {message}", *args)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall is None:
            self._stall = self.loop.call_later(self.write_timeout, self._stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._unstall()

    def connection_lost(self, exc) -> None:
        self._unstall()
        super().connection_lost(exc)

    def _unstall(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def _stalled(self) -> None:
        self._stall = None
        self._warn("dropped the connection of %s: it read nothing for %g s", _peer(self.transport),
                   self.write_timeout)
        self.transport.abort()


class GuardedH11Protocol(_StallGuard, H11Protocol):
    """uvicorn's h11 protocol with deadlines for the request head and body (see the module docstring)."""

    head_timeout = 10.0
    body_timeout: float | None = None

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
        super().connection_lost(exc)

    def _clear(self) -> None:
        if self._deadline is not None:
            self._deadline[1].cancel()
            self._deadline = None

    def _phase(self) -> str | None:
        """What the server waits for from the peer: "head", "body", or None (nothing, or the app reads the
        body under its own deadline, or the connection is closing or now a WebSocket)."""
        t = self.transport
        if t is None or t.is_closing() or t.get_protocol() is not self:
            return None
        answering = self.cycle is not None and not self.cycle.response_complete
        if not answering:
            return "head"                       # the next request (and the unread rest of a refused body)
        if self.conn.their_state is h11.SEND_BODY and self.body_timeout is not None:
            return "body"
        return None

    def _watch(self) -> None:
        """Arm the deadline of the phase the peer is in; bytes arriving within a phase do not move it."""
        phase = self._phase()
        if phase == (self._deadline[0] if self._deadline else None):
            return                                                            # the clock keeps running
        self._clear()
        if phase is not None:
            timeout = self.head_timeout if phase == "head" else self.body_timeout
            self._deadline = (phase, self.loop.call_later(timeout, self._expired, phase, timeout))

    def _expired(self, phase: str, timeout: float) -> None:
        self._deadline = None
        if self._phase() != phase:
            return
        if self.conn.their_state is not h11.IDLE or self.conn.trailing_data[0]:      # idle ones: silently
            self._warn("closed the connection of %s: its request %s did not arrive in full within %g s",
                       _peer(self.transport), phase, timeout)
        self.transport.close()                 # an app waiting for the body hears a disconnect


if WebSocketsSansIOProtocol is not None:
    class GuardedWebSocketProtocol(_StallGuard, WebSocketsSansIOProtocol):
        """uvicorn's WebSocket protocol that drops a peer which reads nothing (see the module docstring)."""

        def keepalive_timeout(self) -> None:
            super().keepalive_timeout()                    # closes, which waits for a full buffer forever
            if self.transport.get_write_buffer_size():
                self.transport.abort()
else:  # pragma: no cover
    GuardedWebSocketProtocol = None


def guarded_protocols(*, head_timeout: float, body_timeout: float | None = None, write_timeout: float = 30.0,
                      name: str = "server") -> tuple[type[GuardedH11Protocol], type | None]:
    """(HTTP protocol class, WebSocket protocol class) for ``uvicorn.Config(http=..., ws=...)`` with these
    deadlines in seconds (``body_timeout`` None: none at this level). ``name`` ("search", "dashboard") picks
    the logger ``contrastlab.<name>`` and prefixes its lines. The WebSocket class is None where uvicorn would
    not use ``websockets``."""
    write = seconds("write_timeout", write_timeout)
    http = type("GuardedH11Protocol", (GuardedH11Protocol,), {
        "head_timeout": seconds("head_timeout", head_timeout), "write_timeout": write, "name": name,
        "body_timeout": None if body_timeout is None else seconds("body_timeout", body_timeout)})
    ws = None
    if GuardedWebSocketProtocol is not None:
        ws = type("GuardedWebSocketProtocol", (GuardedWebSocketProtocol,), {"write_timeout": write, "name": name})
    return http, ws
