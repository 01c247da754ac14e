"""ScriptedModel: a deterministic model that plays a script, or replays a run's recorded responses.

Script format (YAML or JSON file, or the same structure as a dict)::

    version: 1
    scripts:
      - agent: backend          # matches ModelRequest.agent
        task: add-api           # optional; omitted = any task
        turns:
          - text: "Reading the code first."
            latency_ms: 200     # optional simulated latency
            tool_calls:
              - {name: read_file, input: {path: app.py}}
          - tool_calls:
              - {name: finish, input: {summary: "Added /health"}}

The first call of an (agent, task) pair binds it to the first unbound matching entry; later calls of
that pair advance the entry's turns. So concurrent agents each follow their own entry, whatever the
order their calls arrive in. A turn may also set `stop_reason` and `usage` (else chars / 4), or
`error: overloaded_error` (also rate_limit_error, api_error: retried by the Retrying policy; any
other value is a final ModelError) to rehearse failures offline.
Synthetic usage simulates the prompt cache: the first call with a given cached prefix (tools + system
blocks up to the breakpoint) writes it, later calls read it, so offline runs show what caching saves.
Mistakes are ModelErrors naming the file, the entry (with its line for YAML) and what to fix.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from squad.errors import ConfigError, ModelError
from squad.infra.jsonl import JournalWarning
from squad.models.base import (
    ContentBlock,
    ModelRequest,
    ModelResponse,
    StreamCallback,
    TextBlock,
    ToolUseBlock,
    Usage,
    emit,
    tool_use,
)
from squad.models.errors import TransientModelError
from squad.models.tokens import cached_prefix, estimate_input_tokens, estimate_text_tokens

_TURN_KEYS = {"text", "tool_calls", "latency_ms", "stop_reason", "usage", "error"}
#: `error:` values of a turn that simulate a transient failure (create_model retries them).
TRANSIENT_ERRORS = frozenset({"overloaded_error", "rate_limit_error", "api_error"})


@dataclass
class _Entry:
    index: int
    agent: str
    task: str | None
    turns: list[dict[str, Any]]
    line: int | None
    used: int = 0
    bound_to: tuple[str, str] | None = None

    def describe(self) -> str:
        task = f", task {self.task!r}" if self.task else ""
        return f"script entry #{self.index + 1} (agent {self.agent!r}{task})"


@dataclass
class _Replay:
    responses: dict[tuple[str, str], dict[int, ModelResponse]] = field(default_factory=dict)


class ScriptedModel:
    """Plays a script (see module docstring). `name` is "scripted:<path>" (or "scripted:<dict>")."""

    def __init__(
        self, script: Path | str | dict[str, Any], *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> None:
        self.path: Path | None = None
        self._sleep = sleep  # simulated latency waits here (tests inject a manual clock's sleep)
        self._entries: list[_Entry] = []
        self._bindings: dict[tuple[str, str], _Entry] = {}
        self._replay: _Replay | None = None
        self._calls: dict[tuple[str, str], int] = {}
        self._cached: set[str] = set()  # prefixes "written" to the simulated prompt cache
        if isinstance(script, dict):
            self.name = "scripted:<dict>"
            self._load(script, None)
        else:
            self.path = Path(script)
            self.name = f"scripted:{self.path}"
            self._load(*_read(self.path))

    @classmethod
    def from_journal(cls, run_dir: Path) -> ScriptedModel:
        """Replay `run_dir/responses.jsonl`: each (agent, task) gets its recorded responses by call index.

        A line that is not JSON (a torn write of a killed run) is skipped with a JournalWarning, as the
        journal's readers do; a JSON line of the wrong shape is a ModelError naming its line.
        """
        path = Path(run_dir) / "responses.jsonl"
        if not path.is_file():
            raise ModelError(
                f"{path} not found: the run recorded no model responses",
                path=path,
                hint="replay needs a run folder from `squad run` (it writes responses.jsonl)",
            )
        self = cls.__new__(cls)
        self.path = path
        self.name = f"replay:{run_dir}"
        self._entries, self._bindings, self._calls = [], {}, {}
        self._replay = _Replay()
        for lineno, line in enumerate(path.read_bytes().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                # A killed run tears its last line; the recorder's call indices skip it too, so must we.
                warnings.warn(
                    f"{path}:{lineno}: skipped an unreadable recorded response (torn write?)", JournalWarning, 2
                )
                continue
            try:
                key = (str(row["agent"]), str(row["task"]))
                self._replay.responses.setdefault(key, {})[int(row["index"])] = ModelResponse.from_dict(row["response"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ModelError(
                    f"unreadable recorded response: {exc}",
                    path=path,
                    line=lineno,
                    hint="each line must be {agent, task, index, response}",
                ) from None
        return self

    async def complete(self, request: ModelRequest, on_event: StreamCallback | None = None) -> ModelResponse:
        key = (request.agent, request.task)
        index = self._calls.get(key, 0)
        if self._replay is not None:
            response = self._replayed(key, index)
            self._calls[key] = index + 1
            return response
        entry = self._bindings.get(key) or self._bind(key)
        if entry.used >= len(entry.turns):
            raise ModelError(
                f"{entry.describe()} has run out of turns: agent {request.agent!r} on task {request.task!r} "
                f"made call {entry.used + 1} but the entry has {len(entry.turns)} turn(s)",
                path=self.path,
                line=entry.line,
                hint="add turns to this entry, or end it with a `finish` tool call",
            )
        turn = entry.turns[entry.used]
        turn_no = entry.used
        entry.used += 1
        self._calls[key] = index + 1
        latency = float(turn.get("latency_ms", 0)) / 1000
        if latency:
            await self._sleep(latency)
        if turn.get("error"):
            kind = str(turn["error"])
            message = f"scripted {kind} ({entry.describe()} turn {turn_no + 1})"
            if kind in TRANSIENT_ERRORS:
                raise TransientModelError(message, overloaded=kind == "overloaded_error")
            raise ModelError(message, path=self.path, line=entry.line)
        content = self._content(entry, turn, turn_no, request)
        text = turn.get("text") or ""
        if text:
            await emit(on_event, {"type": "text_delta", "text": text, "agent": request.agent, "task": request.task})
        usage = Usage(input_tokens=estimate_input_tokens(request), output_tokens=_output_tokens(content))
        prefix = cached_prefix(request)
        if prefix is not None:
            digest, tokens = prefix
            tokens = min(tokens, usage.input_tokens)
            if digest in self._cached:
                usage = replace(usage, input_tokens=usage.input_tokens - tokens, cache_read_input_tokens=tokens)
            else:
                self._cached.add(digest)
                usage = replace(usage, input_tokens=usage.input_tokens - tokens, cache_creation_input_tokens=tokens)
        if turn.get("usage"):
            usage = Usage(**{**usage.to_dict(), **turn["usage"]})
        tool_calls = any(isinstance(b, ToolUseBlock) for b in content)
        return ModelResponse(
            content=content,
            stop_reason=turn.get("stop_reason") or ("tool_use" if tool_calls else "end_turn"),
            usage=usage,
            model="scripted",
            latency_s=latency,
            ttft_s=latency,
            request_id=f"scripted-{entry.index + 1}-{turn_no + 1}",
        )

    # -- internals
    def _bind(self, key: tuple[str, str]) -> _Entry:
        agent, task = key
        for entry in self._entries:
            if entry.bound_to is None and entry.agent == agent and entry.task in (None, task):
                entry.bound_to = key
                self._bindings[key] = entry
                return entry
        mine = [e for e in self._entries if e.agent == agent]
        if not mine:
            agents = sorted({e.agent for e in self._entries})
            detail = f"no entry has agent {agent!r} (agents in the script: {', '.join(agents) or 'none'})"
        else:
            bound = "; ".join(
                f"{e.describe()} -> {'/'.join(e.bound_to) if e.bound_to else 'task mismatch'}" for e in mine
            )
            detail = f"every entry for {agent!r} is bound or has another task ({bound})"
        raise ModelError(
            f"no script entry for agent {agent!r} on task {task!r}: {detail}",
            path=self.path,
            hint="add an entry with this agent (and task, or no task) to the script",
        )

    def _content(
        self, entry: _Entry, turn: dict[str, Any], turn_no: int, request: ModelRequest
    ) -> tuple[ContentBlock, ...]:
        blocks: list[ContentBlock] = []
        if turn.get("text"):
            blocks.append(TextBlock(text=str(turn["text"])))
        offered = {t.name for t in request.tools}
        for j, call in enumerate(turn.get("tool_calls") or []):
            if call["name"] not in offered:
                raise ModelError(
                    f"{entry.describe()} turn {turn_no + 1} calls tool {call['name']!r}, which the request "
                    f"does not offer (offered: {', '.join(sorted(offered)) or 'no tools'})",
                    path=self.path,
                    line=entry.line,
                    hint="fix the tool name in the script",
                )
            call_id = call.get("id") or f"toolu_s{entry.index + 1}_{turn_no + 1}_{j + 1}"
            blocks.append(tool_use(call_id, call["name"], call.get("input")))
        return tuple(blocks)

    def _replayed(self, key: tuple[str, str], index: int) -> ModelResponse:
        assert self._replay is not None
        recorded = self._replay.responses.get(key, {})
        if index not in recorded:
            raise ModelError(
                f"no recorded response for agent {key[0]!r} on task {key[1]!r}, call #{index} "
                f"({len(recorded)} recorded for this pair)",
                path=self.path,
                hint="the replayed run diverged from the recording (different plan or more turns)",
            )
        return recorded[index]

    def _load(self, data: Any, node: Any) -> None:
        where = self.path
        if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(data.get("scripts"), list):
            raise ConfigError("a model script needs `version: 1` and a `scripts:` list", path=where, line=1)
        lines = _entry_lines(node)
        for i, raw in enumerate(data["scripts"]):
            line = lines[i] if i < len(lines) else None
            if not isinstance(raw, dict) or not isinstance(raw.get("agent"), str) or not raw["agent"]:
                raise ConfigError(f"script entry #{i + 1} needs an `agent:` name", path=where, line=line)
            turns = raw.get("turns")
            if not isinstance(turns, list) or not turns:
                raise ConfigError(f"script entry #{i + 1} needs a non-empty `turns:` list", path=where, line=line)
            for k, turn in enumerate(turns):
                bad = set(turn) - _TURN_KEYS if isinstance(turn, dict) else {"<not a mapping>"}
                calls = (turn.get("tool_calls") or []) if isinstance(turn, dict) else []
                if bad or not isinstance(calls, list) or any(not isinstance(c, dict) or "name" not in c for c in calls):
                    raise ConfigError(
                        f"script entry #{i + 1} turn {k + 1} is malformed"
                        + (f" (unknown keys: {', '.join(sorted(bad))})" if bad else ""),
                        path=where,
                        line=line,
                        hint=f"a turn may have: {', '.join(sorted(_TURN_KEYS))}; tool_calls: [{{name, input}}]",
                    )
            task = raw.get("task")
            self._entries.append(_Entry(i, raw["agent"], str(task) if task is not None else None, turns, line))


def _read(path: Path) -> tuple[Any, Any]:
    """Parse a script file; returns (data, YAML node for line numbers or None)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read model script: {exc.strerror}",
            path=path,
            hint="model names `scripted:<path>` are relative to the current directory",
        ) from None
    if path.suffix == ".json":
        try:
            return json.loads(text), None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from None
    try:
        return yaml.safe_load(text), yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(
            f"invalid YAML: {getattr(exc, 'problem', exc)}", path=path, line=mark.line + 1 if mark is not None else None
        ) from None


def _entry_lines(node: Any) -> list[int]:
    """1-based line of each item of the top-level `scripts:` list in a composed YAML node."""
    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if key.value == "scripts" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def _output_tokens(content: tuple[ContentBlock, ...]) -> int:
    """Synthetic output tokens of scripted content: its text and tool inputs, chars / 4 (at least 1)."""
    tokens = 0
    for block in content:
        if isinstance(block, TextBlock):
            tokens += estimate_text_tokens(block.text)
        elif isinstance(block, ToolUseBlock):
            tokens += estimate_text_tokens(json.dumps(block.input))
    return tokens or 1
