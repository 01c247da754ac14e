"""The `run` tool with real processes: allowlist, no shell, timeouts that kill grandchildren, capped output,
and an environment without secrets."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from tools_support import call, make_ctx

from squad.agents.tools import default_toolbox, scrubbed_env
from squad.config import CommandSettings, Settings
from squad.infra.process import run_command

PY = shlex.quote(sys.executable)


@pytest.fixture
def ctx(repo: Path):  # type: ignore[no-untyped-def]
    settings = Settings(
        commands=CommandSettings(
            allowed=[f"{PY} -c", "echo", "git status"], shell=["echo piped"], timeout_s=20, max_output_bytes=64_000
        )
    )
    return make_ctx(repo, settings=settings)


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def gone(pid: int) -> bool:
    """True once `pid` no longer runs (a zombie waiting for a reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_gone(pid: int) -> None:
    """Wait until `pid` no longer runs. No deadline (the test's timeout is the failsafe): whether it was killed
    or just finished is told by the marker file it writes when it finishes, never by how long this took."""
    while not gone(pid):
        time.sleep(0.05)


def test_allowed_command_runs_in_the_worktree_with_no_stdin(ctx) -> None:  # type: ignore[no-untyped-def]
    code = "import os, sys; print(os.getcwd()); print(repr(sys.stdin.read())); sys.exit(3)"
    result = call(ctx, "run", {"command": py(code)})
    assert not result.is_error  # a failing command is a result, not a tool error
    lines = result.content.splitlines()
    assert lines[0].startswith("$ ") and "[exit code 3;" in lines[1]
    assert lines[2] == os.path.realpath(ctx.worktree) and lines[3] == "''"
    assert result.data is not None and result.data["exit_code"] == 3 and result.data["timed_out"] is False


def test_string_commands_and_git_status(ctx) -> None:  # type: ignore[no-untyped-def]
    result = call(ctx, "run", {"command": "git status --short"})
    assert "[exit code 0;" in result.content
    stderr = call(ctx, "run", {"command": f"{PY} -c 'import sys; sys.stderr.write(\"to stderr\")'"})
    assert stderr.content.endswith("to stderr")


def test_commands_not_on_the_allowlist_are_refused(ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "pwned"
    for command in [f"touch {marker}", ["touch", str(marker)], "git push", "gitstatus", ["sh", "-c", "echo"]]:
        result = call(ctx, "run", {"command": command})
        assert result.is_error and "is not allowed" in result.content, result.content
        assert "'echo'" in result.content and "squad.toml" in result.content
    assert not marker.exists()
    bad_quote = call(ctx, "run", {"command": "echo 'unclosed"})
    assert bad_quote.is_error and "cannot parse" in bad_quote.content
    empty = call(ctx, "run", {"command": []})
    assert empty.is_error and "empty" in empty.content


def test_shell_metacharacters_are_not_interpreted_without_a_shell_rule(ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "pwned"
    inside = ctx.worktree / "pwned"  # relative: arguments naming paths outside the worktree are refused
    result = call(ctx, "run", {"command": "echo hi; touch pwned && echo $HOME | cat > pwned"})
    assert not result.is_error
    assert result.content.splitlines()[-1] == "hi; touch pwned && echo $HOME | cat > pwned"
    assert not inside.exists()
    refused = call(ctx, "run", {"command": f"touch {marker}; echo"})
    assert refused.is_error and not marker.exists()


def test_a_shell_rule_runs_through_sh(ctx) -> None:  # type: ignore[no-untyped-def]
    piped = call(ctx, "run", {"command": "echo piped | tr a-z A-Z"})
    assert piped.content.splitlines()[-1] == "PIPED"
    # Same words but not the exact rule tokens: exec'd by the plain `echo` rule, so `|` is literal.
    near = call(ctx, "run", {"command": "echo pipedx | tr a-z A-Z"})
    assert near.content.splitlines()[-1] == "pipedx | tr a-z A-Z"
    # An argv list never goes through a shell.
    listed = call(ctx, "run", {"command": ["echo", "piped", "|", "tr", "a-z", "A-Z"]})
    assert listed.content.splitlines()[-1] == "piped | tr a-z A-Z"


@pytest.mark.timeout(30)
def test_timeout_kills_the_whole_process_group(ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pidfile, woke = tmp_path / "grandchild.pid", tmp_path / "grandchild.woke"
    grandchild = f"import time; time.sleep(60); open({str(woke)!r}, 'w')"
    code = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', {grandchild!r}])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n"
        "print('after', 'sleep', flush=True)\n"
    )
    result = call(ctx, "run", {"command": py(code), "timeout_s": 1.5})
    assert result.is_error and "timed out after 1.5s" in result.content and "killed" in result.content
    lines = result.content.splitlines()
    assert "started" in lines and "after sleep" not in lines  # answered before the sleep ended
    assert result.data is not None and result.data["timed_out"] is True and result.data["exit_code"] is None
    wait_gone(int(pidfile.read_text()))
    assert not woke.exists(), "the grandchild survived the timeout"


@pytest.mark.timeout(30)
def test_per_call_timeout_cannot_exceed_the_configured_one(repo: Path) -> None:
    settings = Settings(commands=CommandSettings(allowed=[f"{PY} -c"], timeout_s=1))
    result = call(
        make_ctx(repo, settings=settings), "run", {"command": py("import time; time.sleep(30)"), "timeout_s": 60}
    )
    assert result.is_error and "timed out after 1s" in result.content


@pytest.mark.timeout(30)
def test_a_background_child_holding_the_pipe_does_not_hang_the_call(ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pidfile, done = tmp_path / "bg.pid", tmp_path / "bg.done"
    background = f"import time; time.sleep(60); open({str(done)!r}, 'w')"
    code = (
        "import subprocess, sys\n"
        f"p = subprocess.Popen([sys.executable, '-c', {background!r}])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "print('parent done')\n"
    )
    result = call(ctx, "run", {"command": py(code)})
    assert "[exit code 0;" in result.content and "parent done" in result.content
    wait_gone(int(pidfile.read_text()))
    assert not done.exists()  # the call ended (and the group was killed) before the background child's sleep did


@pytest.mark.timeout(30)
def test_cancelling_the_call_kills_the_process_group(ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pidfile, woke = tmp_path / "child.pid", tmp_path / "child.woke"
    code = (
        f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(60); "
        f"open({str(woke)!r}, 'w')"
    )

    async def scenario() -> None:
        task = asyncio.create_task(default_toolbox().call("run", {"command": py(code)}, ctx))
        while not (pidfile.exists() and pidfile.read_text()):  # the command is running
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    wait_gone(int(pidfile.read_text()))
    assert not woke.exists()  # killed, not finished


@pytest.mark.timeout(60)
def test_fifty_megabytes_of_output_is_capped_in_bounded_memory(ctx) -> None:  # type: ignore[no-untyped-def]
    code = "import sys\nchunk = b'x' * 1_000_000\nfor _ in range(50): sys.stdout.buffer.write(chunk)\nprint('THE END')"
    tracemalloc.start()
    try:
        out = asyncio.run(run_command(py(code), cwd=ctx.worktree, timeout_s=30, max_output_bytes=64_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.exit_code == 0 and out.output.total == 50_000_000 + len("THE END\n")
    assert len(out.output.head) + len(out.output.tail) <= 64_000
    assert peak < 8_000_000, f"peak traced memory {peak:,} bytes"
    result = call(ctx, "run", {"command": py(code)})
    assert result.data is not None and result.data["truncated"] is True
    assert result.data["output_bytes"] == 50_000_008
    assert len(result.content) <= 30_000 + 1000
    assert "output omitted: 50,000,008 bytes in total" in result.content and result.content.rstrip().endswith("THE END")


def test_the_child_cannot_see_secrets(ctx, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    secrets = {
        "ANTHROPIC_API_KEY": "sk-ant-fake-1",
        "GITHUB_TOKEN": "ghp_fake2",
        "GH_TOKEN": "gho_fake3",
        "MY_SECRET": "fake4",
        "AWS_ACCESS_KEY_ID": "AKIAFAKE5",
        "AZURE_CLIENT_ID": "fake6",
        "GOOGLE_APPLICATION_CREDENTIALS": "/fake7.json",
        "DB_PASSWORD": "fake8",
        "SSH_AUTH_SOCK": "/tmp/fake9.sock",
        "DATABASE_URL": "postgres://user:fake10@db/app",
        "npm_config__authToken": "fake11",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SQUAD_HARMLESS", "visible")
    monkeypatch.setenv("GIT_DIR", "/elsewhere/.git")
    result = call(ctx, "run", {"command": py("import json, os; print(json.dumps(dict(os.environ)))")})
    child = json.loads(result.content.splitlines()[-1])
    for name, value in secrets.items():
        assert name not in child and value not in result.content
    assert "GIT_DIR" not in child
    assert child["SQUAD_HARMLESS"] == "visible" and child["PATH"] == os.environ["PATH"]
    assert child["HOME"] == os.environ["HOME"]


def test_scrubbed_env_rules() -> None:
    env = {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "LANG": "C.UTF-8",
        "VIRTUAL_ENV": "/v",
        "ANTHROPIC_BASE_URL": "http://x",
        "OPENAI_API_KEY": "k",
        "ACTIONS_ID_TOKEN_REQUEST_URL": "u",
        "GCP_PROJECT": "p",
        "CLOUDSDK_CONFIG": "c",
        "PGPASSWORD": "p",
        "PIP_INDEX_URL": "https://user:pw@pypi.example/simple",
        "PIP_EXTRA_INDEX_URL": "https://pypi.example/simple",
        "GIT_CONFIG_KEY_0": "http.extraheader",
    }
    assert scrubbed_env(env) == {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "LANG": "C.UTF-8",
        "VIRTUAL_ENV": "/v",
        "PIP_EXTRA_INDEX_URL": "https://pypi.example/simple",
    }
    assert "PATH" in scrubbed_env() and "ANTHROPIC_API_KEY" not in scrubbed_env()


def test_unknown_program_is_a_tool_error(repo: Path) -> None:
    settings = Settings(commands=CommandSettings(allowed=["definitely-not-a-program-xyz"]))
    result = call(make_ctx(repo, settings=settings), "run", {"command": "definitely-not-a-program-xyz --help"})
    assert result.is_error and "command not found" in result.content


def test_the_configured_test_command_is_always_allowed(repo: Path) -> None:
    settings = Settings(commands=CommandSettings(allowed=[], test="echo testing"))
    ctx = make_ctx(repo, settings=settings)
    assert call(ctx, "run", {"command": "echo testing -k one"}).content.endswith("testing -k one\n")
    refused = call(ctx, "run", {"command": "echo other"})
    assert refused.is_error and "'echo testing'" in refused.content
