"""create_model and ModelRuntime: every model call goes through the same stack of policies.

`create_model(name, settings=..., runtime=...)` resolves `name` and each `[models] fallback` name to a
backend ("claude-*", "bedrock:<model id>", "vertex:<model id>" -> AnthropicModel over the Anthropic API, Amazon
Bedrock or Google Vertex AI; "scripted:<path>" -> ScriptedModel, "replay:<run id or run folder>" ->
ScriptedModel.from_journal) and wraps each in the policies of `squad.models.policies`, innermost first:
RateLimited, CircuitBreaking, Retrying, Priced, Budgeted, Recorded; then Fallback over the chain. So a call
is checked against the budget (fails closed, before any request), waits for the shared rate governor, is
retried while transient, fails over while the model cannot serve or when it refuses (`stop_reason:
"refusal"`: the next model gets the same request), and every completed call, a refused one too, leaves
priced, booked and recorded. Non-transient errors (401, 404, 400 ...) and BudgetExceededError propagate
at once.

The runtime holds what the models of one run share: the governor, the SpendBook (seeded with what the run
had spent before), one circuit breaker and one backend per model name, the recorder, and the clock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from squad.config import Settings
from squad.domain.usage import Limits, SpendTotals
from squad.errors import ConfigError
from squad.models.base import Model
from squad.models.clock import SYSTEM_CLOCK, Clock
from squad.models.governor import RateGovernor
from squad.models.policies import (
    Budgeted,
    CircuitBreaker,
    CircuitBreaking,
    Fallback,
    Priced,
    RateLimited,
    Recorded,
    Recorder,
    Retrying,
)
from squad.models.pricing import price_list
from squad.models.spend import SpendBook

__all__ = ["ModelRuntime", "Recorder", "backend", "check_models", "create_model", "replay_dir"]


@dataclass
class ModelRuntime:
    """What all models of a run share: the rate governor, the spend book, the journal recorder, the clock,
    one circuit breaker per model name, and one backend instance per model name (one SDK connection pool;
    one set of script bindings)."""

    governor: RateGovernor
    book: SpendBook
    recorder: Recorder | None = None
    clock: Clock = SYSTEM_CLOCK
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)
    backends: dict[str, Model] = field(default_factory=dict)
    warned_prices: set[str] = field(default_factory=set)  # unknown-price warnings already emitted

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        recorder: Recorder | None = None,
        *,
        limits: Limits | None = None,
        spent: SpendTotals | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> ModelRuntime:
        """The runtime of one run.

        Args:
            settings: rate limits, retry cap (the longest pause), budgets.
            recorder: receives every completed call (the run journal).
            limits: the run's budget; default `[budgets]` (`Limits.from_settings`). A CI job passes its slice.
            spent: what the run spent before this process (a resumed run, a CI job); default nothing.
            clock: time source for the governor, retries and breakers (tests inject a manual one).
        """
        return cls(
            governor=RateGovernor.from_settings(settings, clock=clock),
            book=SpendBook(limits if limits is not None else Limits.from_settings(settings.budgets), spent),
            recorder=recorder,
            clock=clock,
        )

    @property
    def spend(self) -> SpendTotals:
        """What the run has spent so far (seed included): in all, per agent, per model."""
        return self.book.totals

    async def aclose(self) -> None:
        """Close the backends' connection pools (call at the end of the event loop that used them)."""
        for model in self.backends.values():
            close = getattr(model, "aclose", None)
            if close is not None:
                await close()

    def breaker(self, model: str, settings: Settings) -> CircuitBreaker:
        """The circuit breaker of `model` (one per name, shared by every agent)."""
        cb = self.breakers.get(model)
        if cb is None:
            cfg = settings.circuit_breaker
            cb = self.breakers[model] = CircuitBreaker(cfg.failure_threshold, cfg.cooldown_s, clock=self.clock.now)
        return cb


def create_model(name: str, *, settings: Settings, runtime: ModelRuntime) -> Model:
    """The model called `name`, wrapped in the shared policies (see module docstring).

    Raises:
        ConfigError: the name (or a `models.fallback` name) is not `claude-...`, `bedrock:<id>`, `vertex:<id>`,
            `scripted:<path>` or `replay:<run>`, the script is invalid, or the run to replay is not found.
    """
    fallbacks = [m for m in dict.fromkeys(settings.models.fallback) if m != name]
    if name.startswith("replay:"):
        # A replay is offline and plays the recorded calls in order: a recorded refusal was followed by the
        # fallback's recorded answer, so the chain's later places replay from the same journal too.
        fallbacks = [name] * len(fallbacks)
    return Fallback([_managed(m, settings=settings, runtime=runtime) for m in (name, *fallbacks)])


def _managed(name: str, *, settings: Settings, runtime: ModelRuntime) -> Model:
    """One model of the chain: its backend inside the per-model policies, recorded per model (so a call
    the Fallback moves on from, a refusal, is journaled with the model that made it)."""
    raw = backend(name, settings=settings, runtime=runtime)  # fails early on a bad name or script
    prices = price_list(settings, free=name.startswith(("scripted:", "replay:")))
    model: Model = RateLimited(raw, governor=runtime.governor)
    model = CircuitBreaking(model, breaker=runtime.breaker(name, settings))
    model = Retrying(model, retry=settings.retry, sleep=runtime.clock.sleep)
    model = Priced(model, price_of=prices, warned=runtime.warned_prices)
    model = Budgeted(model, book=runtime.book, price_of=prices)
    if runtime.recorder is not None:
        model = Recorded(model, recorder=runtime.recorder)
    return model


def backend(name: str, *, settings: Settings, runtime: ModelRuntime) -> Model:
    """The raw backend for `name` (shared through the runtime), without any policy."""
    model = runtime.backends.get(name)
    if model is not None:
        return model
    if name.startswith("scripted:"):
        from squad.models.scripted import ScriptedModel

        model = ScriptedModel(Path(name.removeprefix("scripted:")), sleep=runtime.clock.sleep)
    elif name.startswith("replay:"):
        from squad.models.scripted import ScriptedModel

        model = ScriptedModel.from_journal(replay_dir(name.removeprefix("replay:")))
    elif name.startswith(("claude-", "bedrock:", "vertex:")):
        from squad.models.anthropic import AnthropicModel

        model = AnthropicModel(name, settings=settings, on_headers=runtime.governor.observe_headers)
    else:
        raise ConfigError(
            f"unknown model name {name!r}: expected `claude-...`, `bedrock:<model id>`, `vertex:<model id>`, "
            "`scripted:<path>` or `replay:<run>`",
            hint="check [models] in .squad/squad.toml and the `model:` field of the charters in .squad/agents/",
        )
    runtime.backends[name] = model
    return model


def check_models(names: Iterable[str], *, settings: Settings, limits: Limits) -> None:
    """Refuse, before anything is written or sent, a model a run could not call: a name that is no backend (or a
    script or recorded run that cannot be read), a `claude-...` model without an API key, a model without a known
    price under a dollar budget. The `[models] fallback` chain is checked too.

    Raises:
        ConfigError, ModelConfigError: the first problem found (exit 2: the configuration, not the work, is wrong).
    """
    runtime = ModelRuntime.from_settings(settings, limits=limits)
    for name in sorted({*names, *settings.models.fallback}):
        backend(name, settings=settings, runtime=runtime)
        if name.startswith("claude-"):  # cloud credentials come from their SDKs' chains: found when called
            from squad.models.providers import missing_key

            if (missing := missing_key(name)) is not None:
                raise missing
        free = name.startswith(("scripted:", "replay:"))
        if limits.has_dollar_limit and price_list(settings, free=free)(name) is None:
            key = "run_usd" if limits.run_usd is not None else "agent_usd"
            raise ConfigError(
                f"no price is known for model {name!r}, so the dollar budget (budgets.{key} or --max-cost) cannot "
                "be enforced",
                hint=f'add [pricing."{name}"] with input, output, cache_write_5m, cache_write_1h and cache_read '
                "(USD per million tokens) to .squad/squad.toml, or set the dollar budgets to 0 (unlimited)",
            )


def replay_dir(ref: str, root: Path | None = None) -> Path:
    """The run folder `replay:<ref>` names: a folder holding responses.jsonl, or a run id looked up in
    `<repo>/.squad/runs/` (repo: `root`, default the repository around the current directory).

    Raises:
        ConfigError: `ref` is empty, or names no run folder with recorded responses.
    """
    from squad.config import runs_dir
    from squad.errors import NotARepoError
    from squad.infra.git import find_repo_root

    hint = "`squad runs` lists recorded runs; `replay:<run id>` or `replay:<path to .squad/runs/<run>>`"
    if not ref.strip():
        raise ConfigError("`replay:` needs a run id or a run folder", hint=hint)
    candidates = [Path(ref).expanduser()]
    if "/" not in ref and ref not in (".", ".."):  # a bare run id: look in this repo's run folders
        with contextlib.suppress(NotARepoError):  # outside a repo only a folder path can work
            candidates.append(runs_dir(root or find_repo_root()) / ref)
    for folder in candidates:
        if (folder / "responses.jsonl").is_file():
            return folder.resolve()
    where = " or ".join(str(c) for c in candidates)
    raise ConfigError(f"no recorded run to replay at {where} (no responses.jsonl)", hint=hint)
