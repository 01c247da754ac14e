"""The test suite's network guard: sockets may connect only to loopback.

One implementation for two places: `tests/conftest.py` installs it in the pytest process, and
`sitecustomize.py` beside this file installs it in every Python child a test starts (the directory is
put first on the children's PYTHONPATH). Refusing happens before any packet leaves, so a test that
tries to reach the internet fails with `NetworkAccessError` naming the host, on any machine.
"""

from __future__ import annotations

import ipaddress
import socket

#: A closed loopback port: where the suite points default endpoints (ANTHROPIC_BASE_URL), so a call that
#: slips through fails at once and names this address.
CLOSED_PORT_URL = "http://127.0.0.1:9"

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


class NetworkAccessError(RuntimeError):
    """Raised when a test (or a process it started) tries to reach anything but loopback."""


def check_host(host: object) -> None:
    """Raise NetworkAccessError unless `host` is a loopback name or address (None: nothing to check)."""
    if host is None:
        return
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name in _LOCAL_NAMES:
        return
    try:
        if ipaddress.ip_address(name.split("%")[0]).is_loopback:
            return
    except ValueError:
        pass
    raise NetworkAccessError(f"test tried to reach {name!r}: tests may only talk to loopback servers")


def _guarded_connect(self: socket.socket, address: object) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        check_host(address[0])
    return _real_connect(self, address)  # type: ignore[arg-type]


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        check_host(address[0])
    return _real_connect_ex(self, address)  # type: ignore[arg-type]


def _guarded_getaddrinfo(host: object, *args: object, **kwargs: object) -> list:  # type: ignore[type-arg]
    check_host(host)
    return _real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]


def install() -> None:
    """Patch the socket module in this process (idempotent)."""
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign,assignment]
    socket.getaddrinfo = _guarded_getaddrinfo  # type: ignore[assignment]


def installed() -> bool:
    """True when this process's sockets are guarded."""
    return socket.socket.connect is _guarded_connect
