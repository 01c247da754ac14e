"""Usage, spend and limits: what a model call used, what a run has spent, and what it may spend.

Pure values, no I/O. Limits are checked against spend that is passed in (as pydantic-ai's
`UsageLimits.check_before_request` does), never against hidden state, so the same check holds in a
fresh process that folded the spend back out of a run's journal (`--resume`) and in a CI job that got
its slice of the run's budget from the plan.

"0 means unlimited" is decided here and only here: `Limits.from_settings` turns every 0 of
`[budgets]` into None, and nothing else interprets a 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from squad.errors import BudgetExceededError

if TYPE_CHECKING:
    from squad.config import BudgetSettings


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one call; cache writes and cache reads are kept apart from plain input."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
        )

    @property
    def total_input(self) -> int:
        """All input tokens, cached or not."""
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    def to_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @staticmethod
    def from_dict(data: dict[str, Any] | None) -> Usage:
        """Tolerant of missing keys and junk values (a hand-edited journal must still load)."""
        data = data or {}
        return Usage(**{f.name: _int(data.get(f.name)) for f in fields(Usage)})


@dataclass(frozen=True, slots=True)
class Spend:
    """What was spent: tokens (input counts cache writes and reads too), dollars, turns (model calls)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    usd: float = 0.0
    turns: int = 0

    def plus(self, usage: Usage, usd: float) -> Spend:
        """This spend plus one model call."""
        return Spend(
            self.input_tokens + usage.total_input,
            self.output_tokens + usage.output_tokens,
            self.cache_write_tokens + usage.cache_creation_input_tokens,
            self.cache_read_tokens + usage.cache_read_input_tokens,
            self.usd + usd,
            self.turns + 1,
        )

    def __add__(self, other: Spend) -> Spend:
        return Spend(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.usd + other.usd,
            self.turns + other.turns,
        )

    def __sub__(self, other: Spend) -> Spend:
        return Spend(
            self.input_tokens - other.input_tokens,
            self.output_tokens - other.output_tokens,
            self.cache_write_tokens - other.cache_write_tokens,
            self.cache_read_tokens - other.cache_read_tokens,
            self.usd - other.usd,
            self.turns - other.turns,
        )

    @property
    def plain_input_tokens(self) -> int:
        """Input tokens that were neither written to nor read from the prompt cache."""
        return self.input_tokens - self.cache_write_tokens - self.cache_read_tokens

    @property
    def cache_hit_rate(self) -> float:
        """cache_read / all input; 0 when nothing was sent."""
        return self.cache_read_tokens / self.input_tokens if self.input_tokens else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.turns,
            "input_tokens": self.plain_input_tokens,
            "output_tokens": self.output_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cost_usd": round(self.usd, 6),
            "cache_hit_rate": round(self.cache_hit_rate, 4),
        }


@dataclass(frozen=True, slots=True)
class SpendTotals:
    """What a run has spent: in all, per agent and per model.

    The seed of the model layer's spend book (a resumed run folds it back out of its journal; a CI job
    is handed the run's) and what reports read. Immutable: `plus` returns new totals.
    """

    run: Spend = Spend()
    by_agent: Mapping[str, Spend] = field(default_factory=dict)
    by_model: Mapping[str, Spend] = field(default_factory=dict)

    def agent(self, name: str) -> Spend:
        """What `name` spent (nothing when it made no call)."""
        return self.by_agent.get(name, Spend())

    def model(self, name: str) -> Spend:
        """What calls answered by model `name` spent."""
        return self.by_model.get(name, Spend())

    def plus(self, *, agent: str, model: str, usage: Usage, usd: float) -> SpendTotals:
        """These totals plus one model call of `agent`, answered by `model`."""
        return SpendTotals(
            self.run.plus(usage, usd),
            {**self.by_agent, agent: self.agent(agent).plus(usage, usd)},
            {**self.by_model, model: self.model(model).plus(usage, usd)},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.run.to_dict(),
            "by_agent": {k: v.to_dict() for k, v in sorted(self.by_agent.items())},
            "by_model": {k: v.to_dict() for k, v in sorted(self.by_model.items())},
        }


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a call about to be made may cost: its input tokens, and its dollars (None: no known price)."""

    input_tokens: int
    usd: float | None


@dataclass(frozen=True, slots=True)
class Limits:
    """Budget limits of a run and of each agent in it; None means unlimited.

    Built from `[budgets]` by `from_settings` (the one place where 0 means unlimited), or sliced from a
    run's budget for one CI job (`share`).
    """

    run_usd: float | None = None
    agent_usd: float | None = None
    run_input_tokens: int | None = None
    run_output_tokens: int | None = None
    agent_input_tokens: int | None = None
    agent_output_tokens: int | None = None
    agent_turns: int | None = None
    plan_turns: int | None = None  # model calls the lead may make while planning; the last must submit the plan
    task_timeout_s: float | None = None

    @staticmethod
    def from_settings(budgets: BudgetSettings) -> Limits:
        return Limits(**{f.name: getattr(budgets, f.name) or None for f in fields(Limits)})

    @property
    def has_dollar_limit(self) -> bool:
        return self.run_usd is not None or self.agent_usd is not None

    def tightened(self, **caps: float | None) -> Limits:
        """These limits with some replaced by lower ones (None in `caps` changes nothing): never looser."""
        changes: dict[str, Any] = {}
        for key, cap in caps.items():
            if cap is None:
                continue
            current = getattr(self, key)
            changes[key] = cap if current is None else min(current, cap)
        return replace(self, **changes)

    def share(self, shares: int, spent: Spend | None = None) -> Limits:
        """One of `shares` equal slices of what the run may still spend after `spent`: a CI job's limits.

        Jobs that run in parallel share no memory, so none can see what the others spent; each gets its slice
        of the run's dollars and tokens, and together they cannot pass the run's limits. Per-agent limits, turns
        and the task timeout apply within each job unchanged (an agent's spend there is also capped by the slice).

        Raises:
            ValueError: `shares` is less than 1.
        """
        if shares < 1:
            raise ValueError(f"a budget is shared by at least one job, not {shares}")
        spent = spent or Spend()

        def part(limit: float | None, used: float) -> float | None:
            return None if limit is None else max(0.0, limit - used) / shares

        tokens_in, tokens_out = (
            part(self.run_input_tokens, spent.input_tokens),
            part(self.run_output_tokens, spent.output_tokens),
        )
        return replace(
            self,
            run_usd=part(self.run_usd, spent.usd),
            run_input_tokens=None if tokens_in is None else int(tokens_in),
            run_output_tokens=None if tokens_out is None else int(tokens_out),
        )

    def to_dict(self) -> dict[str, float | int | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Limits:
        """Limits written by `to_dict` (unknown keys are ignored; a missing or null key is unlimited)."""
        values: dict[str, Any] = {}
        for f in fields(Limits):
            value = data.get(f.name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                values[f.name] = int(value) if str(f.type).startswith("int") else float(value)
        return Limits(**values)

    def check(self, *, run: Spend, agent: Spend, estimate: Estimate, agent_name: str, task: str, model: str) -> None:
        """Raise BudgetExceededError when a call with `estimate` could take a budget past its limit.

        `run` and `agent` are what was spent plus what calls in flight hold. Output cannot be known
        before the call, so output budgets refuse once used up; the others refuse when this call would
        pass them. A model without a known price fails closed whenever a dollar limit is set.
        """
        whom = f" for agent {agent_name!r}" if agent_name else ""
        if estimate.usd is None and self.has_dollar_limit:
            key = "run_usd" if self.run_usd is not None else "agent_usd"
            raise BudgetExceededError(
                f"no price is known for model {model!r}, so budgets.{key} cannot be enforced{whom} on task "
                f"{task or '-'}; the call was not made",
                hint=f'add [pricing."{model}"] with input, output, cache_write_5m, cache_write_1h and cache_read '
                "(USD per million tokens) to .squad/squad.toml, or set the dollar budgets to 0 (unlimited)",
            )
        usd = estimate.usd or 0.0
        # (key, limit, spent, this call, unit, whom). Output cannot be estimated: those budgets refuse a call once
        # spent >= limit (this call None); the others refuse when spent + this call would pass the limit.
        checks: list[tuple[str, float | None, float, float | None, str, str]] = [
            ("run_input_tokens", self.run_input_tokens, run.input_tokens, estimate.input_tokens, "input tokens", ""),
            ("run_output_tokens", self.run_output_tokens, run.output_tokens, None, "output tokens", ""),
            ("run_usd", self.run_usd, run.usd, usd, "USD", ""),
            ("agent_input_tokens", self.agent_input_tokens, agent.input_tokens, estimate.input_tokens, "input tokens",
             whom),
            ("agent_output_tokens", self.agent_output_tokens, agent.output_tokens, None, "output tokens", whom),
            ("agent_usd", self.agent_usd, agent.usd, usd, "USD", whom),
            ("agent_turns", self.agent_turns, agent.turns, 1, "turns", whom),
        ]  # fmt: skip
        for key, limit, used, more, unit, who in checks:
            if limit is None:
                continue
            if more is None and used >= limit:
                raise BudgetExceededError(
                    f"budget {key} is used up{who} on task {task or '-'}: spent {_fmt(used, unit)}, "
                    f"limit {_fmt(limit, unit)}",
                    hint=f"raise budgets.{key} in .squad/squad.toml (0 = unlimited)",
                )
            if more is not None and used + more > limit:
                raise BudgetExceededError(
                    f"budget {key} would be exceeded{who} on task {task or '-'}: "
                    f"spent {_fmt(used, unit)} + this call ~{_fmt(more, unit)}, limit {_fmt(limit, unit)}",
                    hint=f"raise budgets.{key} in .squad/squad.toml (0 = unlimited)",
                )


def rate_share(per_minute: int, jobs: int) -> int:
    """One job's share of a per-minute rate limit used by `jobs` jobs at once (0, unlimited, stays 0; at least 1)."""
    if per_minute <= 0:
        return 0
    return max(1, per_minute // max(1, jobs))


def _fmt(value: float, unit: str) -> str:
    if unit == "USD":
        return f"${value:,.4f}"
    return f"{int(value):,} {unit}"


def _int(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0
