"""The base of the journal's records: the schema version, `Event`, and the task and agent-session kinds.

See `squad.domain.events` for every event type and `parse_event`.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

SCHEMA = 2
#: Oldest schema this release reads.
MIN_SCHEMA = 1


class JournalSchemaError(ValueError):
    """A record was written by a journal schema this release cannot read."""


class Event(BaseModel):
    """Base of every journal record. `ts` is set by the journal when the event is written."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    type: str
    ts: float = 0.0

    def to_record(self) -> dict[str, Any]:
        """The JSON object written to events.jsonl: `ts`, `type`, `v`, then the fields (None values omitted)."""
        data = self.model_dump(mode="json", exclude_none=True)
        head = {"ts": data.pop("ts"), "type": data.pop("type"), "v": SCHEMA}
        return {**head, **data}

    def describe(self) -> str:
        """One readable line (the timeline of `squad log`, the plain output of `squad run`)."""
        rest = {k: v for k, v in self.model_dump(mode="json", exclude_none=True).items() if k not in ("ts", "type")}
        detail = _short(json.dumps(rest, ensure_ascii=False, default=str), 160) if rest else ""
        return _line(self.type, self._who(), detail)

    def _who(self) -> str:
        return " ".join(str(v) for k in ("agent", "task") if (v := getattr(self, k, None)))


class TaskEvent(Event):
    """An event about one planned task."""

    task: str


class AgentEvent(Event):
    """An event of one agent's session (turns, tool calls, its stop). `task` is the plan task (or `plan`,
    `review`), `lease` the worktree it ran in."""

    agent: str = ""
    task: str = ""
    lease: str | None = None


def _short(text: Any, limit: int = 100) -> str:
    line = " ".join(str(text or "").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _line(kind: str, who: str, detail: str) -> str:
    return " ".join(p for p in (kind, who, detail) if p)
