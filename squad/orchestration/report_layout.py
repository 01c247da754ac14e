"""The geometry of the report's timeline: an agent's sessions packed into tracks, as plain lanes of spans.

No event knowledge here (that is `report_page`'s): a `Session` is one stretch of an agent's work with the
spans inside it; `pack_lanes` gives each session a track so that sessions of one agent that overlap in
time (a reviewer judging three tasks at once) never share one, using as few tracks as the overlap needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Session:
    """One stretch of an agent's work on one lease: planning, a work round, or a review."""

    kind: str  # plan | work | review | loose
    agent: str
    lease: str
    task: str | None
    round: int | None
    t0: float
    t1: float | None = None
    setup_t0: float | None = None
    state: str = "open"
    label: str = ""
    track: int = 0
    spans: list[dict[str, Any]] = field(default_factory=list)

    @property
    def start(self) -> float:
        return self.setup_t0 if self.setup_t0 is not None else self.t0


def pack_lanes(lanes: dict[str, list[Session]]) -> list[dict[str, Any]]:
    """One lane per agent: its sessions' spans with a `track` each, and the number of tracks.

    Sessions are placed in start order on the first free track (greedy interval partitioning), which uses
    exactly as many tracks as the most sessions that overlap at one moment.
    """
    out = []
    for agent, sessions in lanes.items():
        ends: list[float] = []
        for s in sorted(sessions, key=lambda s: (s.start, s.t0)):
            free = next((i for i, end in enumerate(ends) if end <= s.start), None)
            if free is None:
                ends.append(0.0)
                free = len(ends) - 1
            ends[free] = max([s.t1 if s.t1 is not None else s.t0, *(x["t1"] for x in s.spans)])
            s.track = free
        spans: list[dict[str, Any]] = []
        for s in sessions:
            base = {"track": s.track, "task": s.task, "lease": s.lease, "round": s.round}
            if s.setup_t0 is not None:
                spans.append({**base, "kind": "setup", "t0": s.setup_t0, "t1": s.t0, "label": "setup"})
            if s.kind != "loose":
                spans.append({**base, "kind": s.kind, "state": s.state, "t0": s.t0, "t1": s.t1, "label": s.label})
            spans.extend({**base, **x} for x in s.spans)
        spans.sort(key=lambda x: (x["t0"], x["t1"]))
        out.append({"id": agent, "kind": "agent", "tracks": len(ends), "spans": spans})
    return out
