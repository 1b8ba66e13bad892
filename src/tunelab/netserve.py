"""Running tunelab's HTTP app under uvicorn, with a bound on everything a connection can hold.

`tunelab serve` (cli/) starts the server through this module and an import string
(`APP_FACTORY`, options in the `SERVE_OPTIONS_ENV` variable as JSON), so the CLI never imports the
server package: uvicorn imports it in the serving process, as it would for `--workers` or `--reload`.


- Headers: a request's headers must arrive within `header_timeout_s` of the connection opening
  (or of the previous answer on a kept-alive connection), and hold at most 64 KB. uvicorn's h11
  protocol has no such timeout: a client sending a header byte now and then, or nothing at all,
  kept its connection (a socket, a file descriptor) forever.
- Bodies: server/limits.py (`--read-timeout`, `--max-body-mb`, `--max-upload-mb`).
- Idle keep-alive connections: closed after `keep_alive_s`.
- Shutdown: on SIGTERM or Ctrl-C, requests in flight get `shutdown_timeout_s` to finish, then are
  cancelled; a client trickling a body can no longer hold the server's exit hostage.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_KEEP_ALIVE_S = 5
DEFAULT_SHUTDOWN_TIMEOUT_S = 15.0
MAX_HEADER_BYTES = 64 * 1024

APP_FACTORY = "tunelab.server.entry:app_from_environment"
SERVE_OPTIONS_ENV = "TUNELAB_SERVE_OPTIONS"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in LOOPBACK_HOSTS or host.endswith(".localhost"):  # *.localhost never goes to DNS
        return True
    # An address, not a prefix: `127.0.0.1.attacker.example` is a DNS name its owner can point at
    # 127.0.0.1 (DNS rebinding), and the Host check of a loopback server must refuse it.
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def app_options_from_environment() -> dict:
    """The keyword arguments of `create_app` that `serve_factory` put in the environment."""
    raw = os.environ.get(SERVE_OPTIONS_ENV)
    if not raw:
        raise RuntimeError(f"{SERVE_OPTIONS_ENV} is not set: start the server with `tunelab serve`.")
    return json.loads(raw)


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request headers do not arrive in time."""

    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the headers are in: the body has its own timeout
            self._cancel_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            # No request to answer yet (h11 has none), so nothing is sent: the connection just ends.
            self.transport.close()


def ensure_can_listen(host: str, port: int) -> None:
    """InvalidInputError when a server cannot listen on host:port: the port is taken (another
    `tunelab serve`), needs root, or the address is not this machine's. Checked before uvicorn
    starts, which would log the OSError among its start-up lines and exit with status 3."""
    import errno
    import socket

    from tunelab.errors import InvalidInputError

    if not port:
        return  # 0: the system picks a free port
    address = host.strip("[]")
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((address, port))
        except socket.gaierror:
            raise InvalidInputError(f"Cannot listen on {host}: it is not a host name or address this machine knows.",
                                    hint="Use 127.0.0.1 (this machine only) or 0.0.0.0 (every network interface).") from None
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise InvalidInputError(f"Port {port} on {host} is already in use (another `tunelab serve`, or another "
                                        "program).", hint="Stop that server, or pick another port, e.g. "
                                        f"--port {port + 1} (--port 0 picks a free one).") from None
            if exc.errno == errno.EACCES:
                raise InvalidInputError(f"Cannot listen on port {port}: ports below 1024 need root.",
                                        hint="Pick a port from 1024 up, e.g. --port 8000.") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise InvalidInputError(f"Cannot listen on {host}: it is not an address of this machine.",
                                        hint="Use 127.0.0.1 (this machine only) or 0.0.0.0 (every network "
                                             "interface).") from None
            raise


def serve_factory(app_options: dict, **run_options) -> None:
    """Run the app that `create_app(**app_options)` builds (JSON-able options only), imported by
    uvicorn from `APP_FACTORY` in this process."""
    os.environ[SERVE_OPTIONS_ENV] = json.dumps(app_options)
    run(APP_FACTORY, factory=True, **run_options)


def run(app, *, host: str, port: int, log_level: str = "info",
        header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S, keep_alive_s: int = DEFAULT_KEEP_ALIVE_S,
        shutdown_timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S, factory: bool = False) -> None:
    """`app`: an ASGI app, or an import string of one (of a factory of one with factory=True)."""
    import uvicorn

    protocol = type("TunelabHTTPProtocol", (HeaderTimeoutProtocol,), {"header_timeout_s": float(header_timeout_s)})
    uvicorn.run(app, host=host, port=port, log_level=log_level, http=protocol, timeout_keep_alive=keep_alive_s,
                timeout_graceful_shutdown=shutdown_timeout_s, h11_max_incomplete_event_size=MAX_HEADER_BYTES,
                factory=factory)
