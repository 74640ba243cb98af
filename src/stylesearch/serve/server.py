"""How stylesearch runs under uvicorn, with the reasons: the command, the browser test and the load test
all run the server the same way (`server_config`), behind the same guards.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from stylesearch.config import ServeConfig
from stylesearch.errors import StylesearchError

HEADER_TIMEOUT = 10.0  # seconds a client gets to send its request line and headers (slowloris)
LOOPBACK_NAMES = ["127.0.0.1", "localhost"]  # the Host headers a loopback server answers (DNS rebinding)


class SlowClientGuard(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for each request's headers.

    uvicorn times out idle keep-alive connections but not a client that trickles its headers a
    byte at a time; without this, a few hundred such sockets hold every `limit_concurrency` slot.
    The timer runs only while a request line and headers are awaited; once a request has started,
    its body has `RequestGuard`'s deadline for the whole body instead (serve/guard.py).
    """

    header_timeout = HEADER_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a complete request line and headers arrived
            self._disarm()

    def on_response_complete(self) -> None:
        cycle = self.cycle
        super().on_response_complete()  # may start a pipelined request already buffered (handle_events)
        if self.transport.is_closing() or self.cycle is not cycle:
            # A pipelined request has just started: its headers are in, so no header timer (it would cut
            # the request off mid-body or mid-answer), and a body still arriving is its own, not the
            # unread rest of the one just answered.
            return
        if self.conn.their_state is h11.SEND_BODY:
            # Answered before the request body ended (a 408 or 413): the rest of the body would be read
            # as the next request, so the connection ends here.
            self.transport.close()
            return
        self._arm()  # the next request on this keep-alive connection gets the same deadline for its headers

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def server_config(app_: Any, cfg: ServeConfig, *, header_timeout: float = HEADER_TIMEOUT,
                  log_level: str = "info", access_log: bool = True) -> uvicorn.Config:
    """How stylesearch runs under uvicorn, and why."""
    protocol = type("SlowClientGuard", (SlowClientGuard,), {"header_timeout": header_timeout})
    return uvicorn.Config(
        app_,
        host=cfg.host,
        port=cfg.port,
        workers=1,  # one model per box: torch already uses every core for one forward pass
        http=protocol,  # h11, whose incomplete-event limit caps the request line plus headers
        h11_max_incomplete_event_size=16 * 1024,  # real browsers send < 8 KiB of headers
        limit_concurrency=128,  # connections + in-flight requests; beyond this uvicorn answers 503
        backlog=256,
        timeout_keep_alive=5,  # idle keep-alive connections are closed after 5 s
        timeout_graceful_shutdown=10,
        server_header=False,  # no version banner for scanners
        proxy_headers=False,  # trust X-Forwarded-* only when told to run behind a proxy
        log_level=log_level,
        access_log=access_log,
        lifespan="off",  # everything is loaded before the server starts
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """Bind before loading anything slow, so a busy port fails at once and --port 0 gets a real number."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as err:
        sock.close()
        raise StylesearchError(f"cannot listen on {host}:{port}: {err.strerror or err}; "
                               "pick another --port (0 picks a free one)") from err
    sock.listen(256)  # connections made once the URL is printed wait in the kernel until uvicorn accepts
    sock.set_inheritable(True)
    return sock
