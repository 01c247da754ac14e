"""Suite-wide guards and fixtures.

The network guard makes any test that tries to leave the machine fail loudly, in the pytest process and
in the processes tests start: sockets may connect only to loopback (tests/childguard/ holds the guard and
a `sitecustomize` that installs it in every Python child: squad CLI runs, pip, test commands), git may use
only local repositories, and ANTHROPIC_BASE_URL points at a closed port with a dummy key, so even a CLI
run in a child process cannot reach the real API. The same holds for Claude on Bedrock and Vertex: their
endpoints point at the closed port, and no AWS or Google credential of the machine is visible (no AWS_*/
GOOGLE_* variables, no ~/.aws or gcloud files, no instance metadata probes).

No HTTP(S)_PROXY variables: httpx builds a TLS context per proxy route, which made every Anthropic client
~0.2 s slower to create (0.03 -> 0.23-0.38 s measured) in every process, and a proxied call fails with
"connection refused" instead of the guard's NetworkAccessError naming the host. Tests start no other
networking program (curl, wget, npm); one that did would need its own guard.

A test skipped because a fixture or data file is missing fails instead (tests/strict_skips.py): every
fixture lives in the repository, so a missing one is a broken checkout, not a reason to pass quietly.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

CHILD_GUARD_DIR = Path(__file__).resolve().parent / "childguard"
sys.path.insert(0, str(CHILD_GUARD_DIR))

import squad_test_netguard  # noqa: E402  (lives in CHILD_GUARD_DIR, shared with child processes)
from squad_test_netguard import NetworkAccessError  # noqa: E402
from strict_skips import pytest_make_collect_report, pytest_runtest_makereport  # noqa: E402  (hooks)

__all__ = ["NetworkAccessError", "git", "pytest_make_collect_report", "pytest_runtest_makereport"]

pytest_plugins = ["pytester"]


def child_guard_env() -> dict[str, str]:
    """The variables that extend the network guard to child processes (see the module docstring)."""
    pythonpath = [str(CHILD_GUARD_DIR), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(pythonpath)),
        "GIT_ALLOW_PROTOCOL": "file",  # git clones/fetches/pushes only local repositories (no ssh, git://, http)
    }


def pytest_configure(config: pytest.Config) -> None:
    squad_test_netguard.install()
    # Child processes: no real key, the default API endpoint is a closed loopback port, and the guard.
    for name in list(os.environ):
        if name.startswith(("ANTHROPIC_", "GITHUB_", "AWS_", "GOOGLE_", "GCLOUD_", "CLOUDSDK_", "GCE_", "OTEL_")):
            del os.environ[name]
    os.environ.pop("CLOUD_ML_REGION", None)
    os.environ["ANTHROPIC_BASE_URL"] = squad_test_netguard.CLOSED_PORT_URL
    os.environ["ANTHROPIC_API_KEY"] = "sk-test-not-a-real-key"
    os.environ["ANTHROPIC_BEDROCK_BASE_URL"] = squad_test_netguard.CLOSED_PORT_URL
    os.environ["ANTHROPIC_VERTEX_BASE_URL"] = f"{squad_test_netguard.CLOSED_PORT_URL}/v1"
    os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull  # not ~/.aws
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"  # no instance-role probe
    os.environ["CLOUDSDK_CONFIG"] = os.path.join(os.devnull, "gcloud")  # no gcloud application default login
    os.environ["NO_GCE_CHECK"] = "true"  # google-auth: no metadata-server probe
    os.environ.update(child_guard_env())
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
