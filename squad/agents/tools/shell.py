"""The `run` tool: allow-listed commands in the worktree, no stdin, a timeout, capped output, no secrets.

A command runs without a shell (argv exec) unless it matches a `commands.shell` entry of squad.toml,
so `pytest; curl evil` is the argv `["pytest;", "curl", "evil"]` and is refused, and `pytest && x`
passes `&&` to pytest as a literal argument. The command gets its own session (process group): on a
timeout or a cancelled agent the whole group is killed, grandchildren included.
"""

from __future__ import annotations

import contextlib
import shlex
from typing import Any

from pydantic import Field

from squad.agents.tools.base import Args, BaseTool, ToolContext, ToolError, ToolResult
from squad.infra.process import CommandError, run_command, split_command

#: Output shown to the model (the Toolbox cap is 30,000 characters; this leaves room for the header).
DISPLAY_CHARS = 24_000


class RunArgs(Args):
    command: list[str] | str = Field(
        description="The command, as an argv list (['pytest', '-q', 'tests/test_x.py']) or a string split like "
        "a shell would split words (no pipes, redirections or && unless squad.toml allows a shell command)."
    )
    timeout_s: float | None = Field(
        None, gt=0, description="Lower timeout for this call, in seconds (never above the configured limit)."
    )


def parse_command(command: list[str] | str) -> list[str]:
    """argv from a list or a shell-like string; ToolError if it is empty or cannot be split."""
    try:
        return split_command(command)
    except CommandError as exc:
        raise ToolError(exc.message, hint=exc.hint) from None


def _entries(rules: list[str]) -> list[list[str]]:
    out = []
    for rule in rules:
        with contextlib.suppress(ValueError):
            argv = shlex.split(rule)
            if argv:
                out.append(argv)
    return out


def _prefix_match(argv: list[str], rules: list[list[str]]) -> bool:
    return any(argv[: len(rule)] == rule for rule in rules)


def plan_command(command: list[str] | str, allowed: list[str], shell: list[str]) -> list[str]:
    """The argv to exec for `command`, or ToolError if squad.toml does not allow it.

    Allowed: argv starts with (token for token) an entry of `allowed` or of `shell`. A string command
    that starts with a `shell` entry runs as `sh -c <command>`; everything else is exec'd directly.
    """
    argv = parse_command(command)
    shell_rules = _entries(shell)
    if isinstance(command, str) and _prefix_match(argv, shell_rules):
        return ["sh", "-c", command]
    if _prefix_match(argv, _entries(allowed) + shell_rules):
        return argv
    listing = "; ".join(repr(a) for a in [*allowed, *shell]) or "(none)"
    raise ToolError(
        f"command {shlex.join(argv)!r} is not allowed. Allowed commands (and anything they prefix): {listing}",
        hint="use one of these, or the read/search tools; the user can allow more in .squad/squad.toml "
        "[commands] allowed",
    )


class Run(BaseTool):
    name = "run"
    description = (
        "Run an allowed command (see .squad/squad.toml [commands]) in the repository root: no stdin, a timeout, "
        "stdout and stderr combined and capped. Returns the exit code and output."
    )
    Args = RunArgs

    async def execute(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        parsed = RunArgs.model_validate(args)
        commands = ctx.settings.commands
        # The project's own test command is always allowed: agents are asked to make it pass.
        allowed = [*commands.allowed, commands.test] if commands.test.strip() else commands.allowed
        argv = plan_command(parsed.command, allowed, commands.shell)
        timeout = min(parsed.timeout_s or commands.timeout_s, commands.timeout_s)
        out = await run_command(argv, cwd=ctx.worktree, timeout_s=timeout, max_output_bytes=commands.max_output_bytes)
        shown = shlex.join(argv[2:3]) if argv[:2] == ["sh", "-c"] else shlex.join(argv)
        body = out.output.text(DISPLAY_CHARS)
        truncated = out.output.truncated or len(body) < out.output.total
        if out.notes:  # caveats about the command's environment (see squad.infra.command_env)
            body += "".join(f"\n[squad note: {note}]" for note in out.notes)
        if out.timed_out:
            status = f"timed out after {timeout:g}s; the command and its child processes were killed"
        elif out.exit_code is not None and out.exit_code < 0:
            status = f"killed by signal {-out.exit_code}"
        else:
            status = f"exit code {out.exit_code}"
        note = f", output {out.output.total:,} bytes (middle omitted)" if truncated else ""
        header = f"$ {shown}\n[{status}; {out.duration_s:.1f}s{note}]"
        data = {
            "exit_code": out.exit_code,
            "timed_out": out.timed_out,
            "output_bytes": out.output.total,
            "truncated": truncated,
        }
        return ToolResult(f"{header}\n{body}" if body else f"{header}\n(no output)", is_error=out.timed_out, data=data)
