"""Budgets: per-run and per-agent limits in tokens, dollars and turns, checked before every call.

`Budget.check` runs BEFORE a call with an estimate of its input (chars / 4) and fails closed: if the
call could take any budget past its limit it raises BudgetExceededError naming the budget, the spend,
the limit and the squad.toml key to raise. Calls in flight hold a reservation of their estimate, so
eight agents checking at once cannot all slip under the same limit. `Budget.record` replaces the
reservation with the real usage after the call; `Budget.release` drops it when the call failed.

Input tokens count everything the model read (plain input + cache writes + cache reads); output
cannot be known before the call, so the output budgets refuse a call once they are used up. Each
model call is one turn. Limits of 0 mean unlimited.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from squad.config import Settings
from squad.errors import BudgetExceededError
from squad.models.base import ModelRequest, ModelResponse, Usage
from squad.models.pricing import lookup
from squad.models.tokens import estimate_input_tokens


@dataclass
class Spend:
    """What was spent: tokens (input counts cache writes and reads too), dollars, turns."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    usd: float = 0.0
    turns: int = 0

    def add(self, usage: Usage, usd: float) -> None:
        self.input_tokens += usage.total_input
        self.output_tokens += usage.output_tokens
        self.cache_creation_input_tokens += usage.cache_creation_input_tokens
        self.cache_read_input_tokens += usage.cache_read_input_tokens
        self.usd += usd
        self.turns += 1


@dataclass
class _Reservation:
    agent: str
    input_tokens: int
    usd: float


class Budget:
    """Run-wide and per-agent spend against `settings.budgets`. One per run, shared by all agents."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._run = Spend()
        self._agents: dict[str, Spend] = {}
        self._reserved: dict[int, _Reservation] = {}

    def spent(self, agent: str | None = None) -> Spend:
        """A copy of the spend of the whole run, or of one agent."""
        if agent is None:
            return replace(self._run)
        return replace(self._agents.get(agent, Spend()))

    def check(self, request: ModelRequest, model: str) -> None:
        """Raise BudgetExceededError if the call could exceed a budget; else reserve its estimate."""
        self._reserved.pop(id(request), None)  # a re-check (e.g. on a fallback model) replaces the old one
        b = self.settings.budgets
        agent = request.agent
        est_in = estimate_input_tokens(request)
        row = lookup(model, self.settings)
        est_usd = est_in * row.input / 1_000_000 if row else 0.0
        run_in, run_usd, _ = self._held(None)
        ag_in, ag_usd, ag_calls = self._held(agent)
        run, mine = self._run, self._agents.get(agent, Spend())
        who = f" for agent {agent!r}" if agent else ""
        checks = [
            ("run_input_tokens", b.run_input_tokens, run.input_tokens + run_in, est_in, "input tokens", ""),
            ("run_output_tokens", b.run_output_tokens, run.output_tokens, 0, "output tokens", ""),
            ("run_usd", b.run_usd, run.usd + run_usd, est_usd, "USD", ""),
            ("agent_input_tokens", b.agent_input_tokens, mine.input_tokens + ag_in, est_in, "input tokens", who),
            ("agent_output_tokens", b.agent_output_tokens, mine.output_tokens, 0, "output tokens", who),
            ("agent_usd", b.agent_usd, mine.usd + ag_usd, est_usd, "USD", who),
            ("agent_turns", b.agent_turns, mine.turns + ag_calls, 1, "turns", who),
        ]
        for key, limit, used, more, unit, whom in checks:
            if not limit:
                continue
            # Output is unknown before the call: refuse once it is used up. Others: refuse if this call passes it.
            over = used >= limit if more == 0 else used + more > limit
            if over:
                raise BudgetExceededError(
                    f"budget {key} would be exceeded{whom} on task {request.task or '-'}: "
                    f"spent {_fmt(used, unit)} + this call ~{_fmt(more, unit)}, limit {_fmt(limit, unit)}",
                    hint=f"raise budgets.{key} in .squad/squad.toml (0 = unlimited)",
                )
        self._reserved[id(request)] = _Reservation(agent, est_in, est_usd)

    def record(self, request: ModelRequest, response: ModelResponse) -> None:
        """Replace the call's reservation with its real usage and cost (response.cost_usd); one turn."""
        self._reserved.pop(id(request), None)
        self._run.add(response.usage, response.cost_usd)
        self._agents.setdefault(request.agent, Spend()).add(response.usage, response.cost_usd)

    def release(self, request: ModelRequest) -> None:
        """Drop the reservation of a call that failed (nothing was spent)."""
        self._reserved.pop(id(request), None)

    def _held(self, agent: str | None) -> tuple[int, float, int]:
        """Input tokens, USD and calls reserved by calls in flight (of one agent, or all)."""
        held = [r for r in self._reserved.values() if agent is None or r.agent == agent]
        return sum(r.input_tokens for r in held), sum(r.usd for r in held), len(held)


def _fmt(value: float, unit: str) -> str:
    if unit == "USD":
        return f"${value:,.4f}"
    return f"{int(value):,} {unit}"
