"""The tool protocol, the context a tool runs in, its result, and the Toolbox that dispatches calls.

A tool's input schema comes from a pydantic model (`extra="forbid"`), cleaned to the JSON Schema subset
the Messages API accepts. `Toolbox.call` is the only way the agent loop runs a tool, and it never raises
for anything a model can cause: every failure becomes `ToolResult(is_error=True)` with a message the
model can act on, because a raised exception would end the agent's turn loop instead of letting it
recover.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, ValidationError

from squad.config import Settings
from squad.domain.text import clean_text, find_surrogate
from squad.errors import SquadError
from squad.models.base import ToolSpec

#: Results longer than this are cut (head and tail kept) so one call cannot flood the context window.
MAX_RESULT_CHARS = 30_000


class ToolError(SquadError):
    """A tool refused or failed in a way the model can fix (bad path, no match, not allowed, ...)."""


@dataclass
class ToolContext:
    """Where and for whom a tool runs. `worktree` is the jail root: no path-taking tool leaves it."""

    worktree: Path
    run_id: str
    agent: str
    task: str
    settings: Settings
    base_commit: str
    ledger_file: Path | None = None
    allowed: frozenset[str] = frozenset()
    #: Bytes the file tools wrote in this session, against `[tools] max_task_write_bytes`.
    written_bytes: int = 0


@dataclass
class ToolResult:
    """What the model sees (`content`, `is_error`) plus what the agent loop acts on (`finished`, `data`)."""

    content: str
    is_error: bool = False
    finished: bool = False
    data: dict[str, Any] | None = None


@runtime_checkable
class Tool(Protocol):
    """Anything the Toolbox can offer and execute."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    def spec(self) -> ToolSpec:
        """The tool as offered to the model."""
        ...

    async def execute(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        """Run with already-named arguments; may raise ToolError (the Toolbox turns it into a result)."""
        ...


class Args(BaseModel):
    """Base of every tool's argument model: unknown arguments are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class BaseTool:
    """A tool whose arguments are validated by the pydantic model `Args` and whose work is `run`.

    Subclasses set `name`, `description`, `Args`, and implement `run` (sync). `blocking = True` runs it
    in a worker thread so slow work (git, walking many files) does not stall the other agents sharing
    the event loop; cheap tools run inline because a thread hop costs more than they do.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    Args: ClassVar[type[Args]]
    blocking: ClassVar[bool] = False

    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, clean_schema(self.Args.model_json_schema()))

    async def execute(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        parsed = self.Args.model_validate(args)
        if self.blocking:
            return await asyncio.to_thread(self.run, parsed, ctx)
        return self.run(parsed, ctx)

    def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        raise NotImplementedError


def clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Reduce a pydantic JSON schema to what the Messages API takes and a model reads easily.

    Inlines `$defs` references, drops `title` keys (noise in the prompt), and turns `Optional[X]`
    (`anyOf: [X, null]`) into plain `X`: an optional argument is simply not required.
    """
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            target = defs[node["$ref"].rsplit("/", 1)[-1]]
            merged = {**copy.deepcopy(target), **{k: v for k, v in node.items() if k != "$ref"}}
            return walk(merged)
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("title", "$defs"):
                continue
            if key == "properties":
                out[key] = {name: walk(prop) for name, prop in value.items()}
            else:
                out[key] = walk(value)
        any_of = out.get("anyOf")
        if isinstance(any_of, list) and {"type": "null"} in any_of:
            rest = [item for item in any_of if item != {"type": "null"}]
            del out["anyOf"]
            if len(rest) == 1:
                out = {**rest[0], **out}
            else:
                out["anyOf"] = rest
            if out.get("default", 0) is None:
                del out["default"]
        return out

    return walk(schema)


class Toolbox:
    """The standard set of tools: stable specs for the prompt, and `call` that never raises."""

    def __init__(self, tools: Sequence[Tool], *, max_result_chars: int = MAX_RESULT_CHARS) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            if tool.name in self._tools:
                raise ValueError(f"two tools named {tool.name!r}")
            self._tools[tool.name] = tool
        self.max_result_chars = max_result_chars
        # Specs are computed once: the prompt prefix they are part of must be byte-identical every call.
        self._specs = tuple(self._tools[name].spec() for name in sorted(self._tools))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._tools))

    def replacing(self, tool: Tool) -> Toolbox:
        """This toolbox with `tool` run in place of the tool of the same name, offered exactly as before.

        How one session gives a tool other behaviour (the lead's `submit_plan` validates the plan) while
        every agent keeps sending the same tool list, the start of the shared cached prefix.

        Raises:
            ValueError: no tool has that name, or `tool`'s spec differs from the one it replaces.
        """
        old = self._tools.get(tool.name)
        if old is None or old.spec() != tool.spec():
            raise ValueError(f"{tool.name!r} must replace a tool of the same name and the same spec")
        return Toolbox(
            [tool if t.name == tool.name else t for t in self._tools.values()], max_result_chars=self.max_result_chars
        )

    def specs(self) -> tuple[ToolSpec, ...]:
        """Every tool, sorted by name: the same list for every agent of a run (shared cache prefix)."""
        return self._specs

    async def call(self, name: str, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        """Execute one tool call. Never raises except on cancellation (which must reach the agent loop)."""
        tool = self._tools.get(name)
        yours = ", ".join(sorted(ctx.allowed & set(self._tools)))
        if tool is None:
            return _error(f"unknown tool {name!r}; your tools are: {yours}")
        if name not in ctx.allowed:
            return _error(f"tool {name!r} is not allowed for agent {ctx.agent!r}; your tools are: {yours}")
        if not isinstance(args, dict):
            return _error(f"arguments of {name} must be a JSON object, got {type(args).__name__}")
        where = find_surrogate(args)
        if where is not None:
            return _error(
                f"argument {where} of {name} is not valid Unicode (a lone surrogate, half of a UTF-16 pair); "
                "call the tool again with valid text"
            )
        try:
            result = await tool.execute(args, ctx)
        except ValidationError as exc:
            return _error(format_validation_error(name, exc))
        except SquadError as exc:
            text = str(exc) + (f"\nhint: {exc.hint}" if exc.hint else "")
            return _error(text)
        except Exception as exc:  # any bug or OS error must reach the model as a result, not end its loop
            return _error(f"{name} failed: {type(exc).__name__}: {exc}")
        return self._cap(result)

    def _cap(self, result: ToolResult) -> ToolResult:
        # A file name that is not UTF-8 (decoded with surrogateescape) must not reach the SDK or the journal
        # as a lone surrogate: it is shown as \xNN.
        text = clean_text(result.content)
        if text is not result.content:
            result = ToolResult(text, result.is_error, result.finished, result.data)
        limit = self.max_result_chars
        if len(text) <= limit:
            return result
        # Keep the head and the tail: file contents start at the top, but a command's failures are at the end.
        head, tail = text[: limit * 2 // 3], text[-(limit // 3) :]
        omitted = len(text) - len(head) - len(tail)
        notice = (
            f"\n\n[... {omitted:,} characters omitted: the result was {len(text):,} characters, over the "
            f"{limit:,} limit. To see the rest, read_file with start_line/end_line, search with a narrower "
            f"pattern or glob, or list_files with a narrower pattern ...]\n\n"
        )
        return ToolResult(head + notice + tail, result.is_error, result.finished, result.data)


def format_validation_error(tool: str, exc: ValidationError) -> str:
    """One line per bad argument, naming it, what was wrong and what was given."""
    lines = [f"invalid arguments for {tool}:"]
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"]) or "(arguments)"
        if err["type"] == "extra_forbidden":
            lines.append(f"- {loc}: unknown argument")
        elif err["type"] == "missing":
            lines.append(f"- {loc}: required argument is missing")
        else:
            given = repr(err.get("input"))
            if len(given) > 80:
                given = given[:77] + "..."
            lines.append(f"- {loc}: {err['msg']} (got {given})")
    return "\n".join(lines)


def _error(message: str) -> ToolResult:
    return ToolResult(message, is_error=True)
