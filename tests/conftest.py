"""Suite-wide guards and fixtures.

The network guard makes any test that tries to leave the machine fail loudly: sockets may connect
only to loopback, and subprocesses get an ANTHROPIC_BASE_URL pointing at a closed loopback port and
a dummy key, so even a CLI run in a child process cannot reach the real API.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class NetworkAccessError(RuntimeError):
    """Raised when a test tries to reach anything but loopback."""


def _check_host(host: object) -> None:
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
        _check_host(address[0])
    return _real_connect(self, address)  # type: ignore[arg-type]


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        _check_host(address[0])
    return _real_connect_ex(self, address)  # type: ignore[arg-type]


def _guarded_getaddrinfo(host: object, *args: object, **kwargs: object) -> list:  # type: ignore[type-arg]
    _check_host(host)
    return _real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]


def pytest_configure(config: pytest.Config) -> None:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo  # type: ignore[assignment]
    # Child processes: no real key, and the default API endpoint is a closed loopback port.
    for name in list(os.environ):
        if name.startswith(("ANTHROPIC_", "GITHUB_", "OTEL_")):  # OTEL_: no test exports to a real collector
            del os.environ[name]
    os.environ["ANTHROPIC_BASE_URL"] = "http://127.0.0.1:9"
    os.environ["ANTHROPIC_API_KEY"] = "sk-test-not-a-real-key"
    os.environ.setdefault("GIT_AUTHOR_NAME", "squad tests")
    os.environ.setdefault("GIT_AUTHOR_EMAIL", "tests@squad.invalid")
    os.environ.setdefault("GIT_COMMITTER_NAME", "squad tests")
    os.environ.setdefault("GIT_COMMITTER_EMAIL", "tests@squad.invalid")


def git(cwd: Path, *args: str) -> str:
    """Run git in `cwd` and return stdout; fail the test with git's stderr on error."""
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {out.stderr}")
    return out.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Path]:
    """A fresh git repository with one commit, as the current directory."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "README.md").write_text("# demo\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    old = Path.cwd()
    os.chdir(root)
    try:
        yield root
    finally:
        os.chdir(old)


# ---------------------------------------------------------------------------------------------------------
# Messages API loopback server (helper "models"; see tests/messages_server.py)


@pytest.fixture
def messages_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[MessagesServer]:
    """A running loopback Messages API server; ANTHROPIC_BASE_URL points at it (also for subprocesses)."""
    with MessagesServer() as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        yield server


from messages_server import MessagesServer  # noqa: E402  (kept inside this appended block)
