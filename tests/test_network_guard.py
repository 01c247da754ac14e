"""The suite-wide network guard refuses anything but loopback."""

from __future__ import annotations

import socket

import pytest
from conftest import NetworkAccessError


def test_guard_refuses_public_hosts() -> None:
    with pytest.raises(NetworkAccessError, match=r"api\.anthropic\.com"):
        socket.create_connection(("api.anthropic.com", 443), timeout=1)


def test_guard_allows_loopback() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        with socket.create_connection(server.getsockname(), timeout=1):
            pass
    finally:
        server.close()
