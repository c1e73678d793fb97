"""The search server's HTTP connections: uvicorn's h11 protocol with a deadline on every request head.

uvicorn closes a keep-alive connection that stays silent for `timeout_keep_alive` seconds, but any byte restarts
that timer, and nothing times a connection before its first request: a client could hold a connection for ever by
sending nothing, or one header byte every few seconds. `head_deadline_protocol(head_timeout)` gives each request
head `head_timeout` seconds from the moment the server starts waiting for it (the connection opened, or the
previous response went out), however the bytes trickle in, then closes the connection. The request body has its
own deadline in the app (`create_search_app(body_timeout=...)`), which answers 408.

A connection closed with part of a request received logs one line; an idle one is closed silently.
"""
from __future__ import annotations

import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["head_deadline_protocol", "HeadDeadlineProtocol"]

log = logging.getLogger("contrastlab.search")


class HeadDeadlineProtocol(H11Protocol):
    """`H11Protocol` that closes a connection whose next request head is not in within `head_timeout` seconds."""

    head_timeout: float = 10.0

    def connection_made(self, transport) -> None:
        self._head_timer = None
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc) -> None:
        self._cancel()
        super().connection_lost(exc)

    def _waiting(self) -> bool:
        """Whether the server waits for the client (no request is being answered)."""
        return self.cycle is None or self.cycle.response_complete

    def _watch(self) -> None:
        """Arm the deadline when the server starts waiting for a head (bytes arriving do not move it); drop it
        once a request is being answered."""
        if self.transport.is_closing() or not self._waiting():
            self._cancel()
        elif self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_late)

    def _cancel(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._waiting():
            return
        if self.conn.their_state is not h11.IDLE or self.conn.trailing_data[0]:
            client = "%s:%d" % self.client if self.client else "a client"
            log.warning("search: closed the connection of %s: its request did not arrive in full within %g s",
                        client, self.head_timeout)
        self.transport.close()


def head_deadline_protocol(head_timeout: float) -> type[HeadDeadlineProtocol]:
    """A `HeadDeadlineProtocol` class with this `head_timeout`, for `uvicorn.Config(http=...)`."""
    if isinstance(head_timeout, bool) or not isinstance(head_timeout, (int, float)) or not 0 < head_timeout < 1e6:
        raise ValueError(f"`head_timeout` must be a number of seconds in (0, 1e6), got {head_timeout!r}")
    return type("HeadDeadlineProtocol", (HeadDeadlineProtocol,), {"head_timeout": float(head_timeout)})
