"""The suite-wide network guard refuses anything but loopback, in the pytest process and in its children."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import NetworkAccessError
from github_server import webhook_payload

# TEST-NET-1 (RFC 5737): never routed, so without the guard a connect would time out or fail differently.
PUBLIC = "192.0.2.1"


@pytest.fixture
def listener() -> Iterator[tuple[str, int]]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        yield server.getsockname()
    finally:
        server.close()


def test_guard_refuses_public_hosts() -> None:
    with pytest.raises(NetworkAccessError, match=r"api\.anthropic\.com"):
        socket.create_connection(("api.anthropic.com", 443), timeout=1)


def test_guard_allows_loopback(listener: tuple[str, int]) -> None:
    with socket.create_connection(listener, timeout=1):
        pass


def _python_child(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # the environment tests give children by default: os.environ
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "attempt",
    [
        f"socket.create_connection(({PUBLIC!r}, 443), timeout=5)",
        "socket.getaddrinfo('api.anthropic.com', 443)",
        f"s = socket.socket(); s.settimeout(5); s.connect_ex(({PUBLIC!r}, 80))",
        f"asyncio.run(asyncio.wait_for(asyncio.open_connection({PUBLIC!r}, 443), 5))",
    ],
    ids=["create_connection", "getaddrinfo", "connect_ex", "asyncio"],
)
def test_a_child_python_process_cannot_reach_a_public_address(attempt: str) -> None:
    out = _python_child(f"import asyncio, socket\n{attempt}\nprint('CONNECTED')")
    assert out.returncode != 0 and "CONNECTED" not in out.stdout
    assert "NetworkAccessError" in out.stderr and "tests may only talk to loopback" in out.stderr, out.stderr


def test_a_child_python_process_still_reaches_loopback(listener: tuple[str, int]) -> None:
    host, port = listener
    out = _python_child(
        f"""
        import socket, squad_test_netguard
        assert squad_test_netguard.installed()
        socket.create_connection(({host!r}, {port}), timeout=5).close()
        print('CONNECTED')
        """
    )
    assert out.returncode == 0 and out.stdout.strip() == "CONNECTED", out.stderr


def test_a_squad_cli_subprocess_is_guarded(repo: Path, tmp_path: Path) -> None:
    """The installed `squad` console script, pointed at a public GitHub API address, hits the guard."""
    event = webhook_payload("issue_comment", "created")
    event["comment"]["body"] = "/squad add a health check"  # squad asks the API for the commenter's permission
    (tmp_path / "event.json").write_text(json.dumps(event))
    env = {
        "GITHUB_EVENT_NAME": "issue_comment",
        "GITHUB_EVENT_PATH": str(tmp_path / "event.json"),
        "GITHUB_REPOSITORY": event["repository"]["full_name"],
        "GITHUB_API_URL": f"https://{PUBLIC}",
        "GITHUB_TOKEN": "not-a-token",
        "GITHUB_WORKSPACE": str(repo),
    }
    squad = Path(sys.executable).with_name("squad")
    out = subprocess.run(
        [str(squad), "github"], cwd=repo, env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    assert f"NetworkAccessError: test tried to reach {PUBLIC!r}" in out.stderr, out.stderr


def test_git_in_a_child_may_use_only_local_repositories(tmp_path: Path) -> None:
    out = subprocess.run(
        ["git", "ls-remote", "https://example.com/repo.git"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.returncode != 0
    assert "transport 'https' not allowed" in out.stderr, out.stderr
