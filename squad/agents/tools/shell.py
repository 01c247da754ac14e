"""The `run` tool: allow-listed commands in the worktree, no stdin, a timeout, capped output, no secrets.

Which commands, and which arguments, is decided in `commands.py` (arguments are confined to the
worktree). A command runs without a shell (argv exec) unless it matches a `commands.shell` entry of
squad.toml, so `pytest; curl evil` is the argv `["pytest;", "curl", "evil"]` and is refused, and
`pytest && x` passes `&&` to pytest as a literal argument. The command gets its own session (process group): on a
timeout or a cancelled agent the whole group is killed, grandchildren included.
"""

from __future__ import annotations

import shlex
from typing import Any

from pydantic import Field

from squad.agents.tools.base import Args, BaseTool, ToolContext, ToolResult
from squad.agents.tools.commands import parse_command, plan_command
from squad.infra.process import run_command

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


class Run(BaseTool):
    name = "run"
    description = (
        "Run an allowed command (see .squad/squad.toml [commands]) in the repository root: no stdin, a timeout, "
        "stdout and stderr combined and capped. Paths in its arguments must stay inside the repository. "
        "Returns the exit code and output."
    )
    Args = RunArgs

    async def execute(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        parsed = RunArgs.model_validate(args)
        commands = ctx.settings.commands
        argv = plan_command(parsed.command, commands, ctx.worktree)
        timeout = min(parsed.timeout_s or commands.timeout_s, commands.timeout_s)
        out = await run_command(
            argv,
            cwd=ctx.worktree,
            timeout_s=timeout,
            max_output_bytes=commands.max_output_bytes,
            max_file_bytes=commands.max_file_bytes,
        )
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


__all__ = ["Run", "RunArgs", "parse_command", "plan_command"]
