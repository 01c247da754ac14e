"""create_model and ModelRuntime: every model call goes through the same policy, in one place.

`create_model(name, settings=..., runtime=...)` returns a `ManagedModel` around the backend named by
`name` ("claude-*" -> AnthropicModel, "scripted:<path>" -> ScriptedModel, "replay:<run id or run folder>"
-> ScriptedModel.from_journal). For each call it:

1. checks the budget with an estimate (fails closed with BudgetExceededError, before any request);
2. for the model and then each `models.fallback` model, while that model's circuit breaker allows:
   waits for the shared RateGovernor, makes one attempt, and on a transient failure retries with
   exponential backoff + jitter (or the server's retry-after), never waiting more than
   `retry.max_wait_s` — a server that asks for longer makes us move to the fallback instead;
3. on success: reconciles the governor, prices the call (response.cost_usd), records the budget,
   and hands (request, response) to the runtime's recorder (the run journal).

Non-transient errors (401, 404, 400 ...) are raised at once: another model would not fix them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from squad.config import Settings
from squad.errors import ConfigError, ModelError
from squad.models.base import Model, ModelRequest, ModelResponse, StreamCallback, Usage
from squad.models.budget import Budget
from squad.models.governor import RateGovernor
from squad.models.pricing import lookup, price
from squad.models.retry import TransientModelError, backoff_delay
from squad.models.tokens import estimate_input_tokens

Recorder = Callable[[ModelRequest, ModelResponse], None]


class CircuitBreaker:
    """Per model: after `threshold` consecutive failures, refuse calls for `cooldown_s`, then let
    one trial through (half-open): its success closes the breaker, its failure reopens it."""

    def __init__(self, threshold: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.failures = 0
        self._opened_at: float | None = None
        self._clock = clock

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None and self._clock() - self._opened_at < self.cooldown_s

    def allow(self) -> bool:
        if self._opened_at is None:
            return True
        if self._clock() - self._opened_at < self.cooldown_s:
            return False
        self._opened_at = None  # half-open: one more failure reopens at once
        self.failures = self.threshold - 1
        return True

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a trial call through."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.cooldown_s - (self._clock() - self._opened_at))

    def success(self) -> None:
        self.failures = 0
        self._opened_at = None

    def failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self._opened_at = self._clock()


@dataclass
class ModelRuntime:
    """What all models of a process share: the rate governor, the budget, the journal recorder,
    one circuit breaker per model name, and one backend instance per model name (one SDK
    connection pool; one set of script bindings)."""

    governor: RateGovernor
    budget: Budget
    recorder: Recorder | None = None
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)
    backends: dict[str, Model] = field(default_factory=dict)
    warned_prices: set[str] = field(default_factory=set)  # unknown-price warnings already emitted

    @classmethod
    def from_settings(cls, settings: Settings, recorder: Recorder | None = None) -> ModelRuntime:
        return cls(governor=RateGovernor.from_settings(settings), budget=Budget(settings), recorder=recorder)

    async def aclose(self) -> None:
        """Close the backends' connection pools (call at the end of the event loop that used them)."""
        for model in self.backends.values():
            close = getattr(model, "aclose", None)
            if close is not None:
                await close()

    def breaker(self, model: str, settings: Settings) -> CircuitBreaker:
        cb = self.breakers.get(model)
        if cb is None:
            cfg = settings.circuit_breaker
            cb = self.breakers[model] = CircuitBreaker(cfg.failure_threshold, cfg.cooldown_s)
        return cb


def create_model(name: str, *, settings: Settings, runtime: ModelRuntime) -> Model:
    """The model called `name`, wrapped in the shared policy (see module docstring).

    Raises:
        ConfigError: the name (or a `models.fallback` name) is not `claude-...`, `scripted:<path>` or
            `replay:<run>`, the script is invalid, or the run to replay is not found.
    """
    for model_name in (name, *settings.models.fallback):  # fail early on a bad name or script
        backend(model_name, settings=settings, runtime=runtime)
    return ManagedModel(name, settings=settings, runtime=runtime)


def backend(name: str, *, settings: Settings, runtime: ModelRuntime) -> Model:
    """The raw backend for `name` (shared through the runtime), without any policy."""
    model = runtime.backends.get(name)
    if model is not None:
        return model
    if name.startswith("scripted:"):
        from squad.models.scripted import ScriptedModel

        model = ScriptedModel(Path(name.removeprefix("scripted:")))
    elif name.startswith("replay:"):
        from squad.models.scripted import ScriptedModel

        model = ScriptedModel.from_journal(replay_dir(name.removeprefix("replay:")))
    elif name.startswith("claude-"):
        from squad.models.anthropic import AnthropicModel

        model = AnthropicModel(name, settings=settings, on_headers=runtime.governor.observe_headers)
    else:
        raise ConfigError(
            f"unknown model name {name!r}: expected `claude-...`, `scripted:<path>` or `replay:<run>`",
            hint="check [models] in .squad/squad.toml and the `model:` field of the charters in .squad/agents/",
        )
    runtime.backends[name] = model
    return model


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


class _Failover(Exception):
    """This model cannot serve the call now (retries exhausted, breaker open, retry-after too long)."""


class ManagedModel:
    """A backend plus budget, rate governor, retries, circuit breaker, fallback and recorder."""

    def __init__(self, name: str, *, settings: Settings, runtime: ModelRuntime) -> None:
        self.name = name
        self.settings = settings
        self.runtime = runtime

    async def complete(self, request: ModelRequest, on_event: StreamCallback | None = None) -> ModelResponse:
        chain = [self.name, *(m for m in self.settings.models.fallback if m != self.name)]
        budget = self.runtime.budget
        reasons: list[str] = []
        for position, model_name in enumerate(chain):
            if position:
                await _emit(
                    on_event,
                    {
                        "type": "model_fallback",
                        "agent": request.agent,
                        "task": request.task,
                        "model": model_name,
                        "after": chain[position - 1],
                        "reason": reasons[-1],
                    },
                )
            model = backend(model_name, settings=self.settings, runtime=self.runtime)
            budget.check(request, model_name)  # BudgetExceededError propagates: nothing was sent
            try:
                response = await self._attempts(model, model_name, request, on_event)
            except _Failover as exc:
                budget.release(request)
                reasons.append(str(exc))
                continue
            except BaseException:
                budget.release(request)
                raise
            await self._finish(model, model_name, request, response, on_event)
            return response
        raise ModelError(
            f"model call for agent {request.agent!r} on task {request.task!r} failed: " + "; ".join(reasons),
            hint="the API is overloaded or rate-limited: try again later, add fallback models "
            "([models] fallback = [...]) or raise [retry] max_wait_s in .squad/squad.toml",
        )

    async def _attempts(
        self, model: Model, model_name: str, request: ModelRequest, on_event: StreamCallback | None
    ) -> ModelResponse:
        retry = self.settings.retry
        breaker = self.runtime.breaker(model_name, self.settings)
        governor = self.runtime.governor
        estimate = estimate_input_tokens(request)
        last: TransientModelError | None = None
        for attempt in range(1, retry.max_attempts + 1):
            if not breaker.allow():
                raise _Failover(
                    f"{model_name}: circuit breaker open after {breaker.failures} consecutive "
                    f"failures (next trial in {breaker.retry_in():.0f} s)"
                )
            permit = await governor.acquire(request.agent, estimate)
            try:
                response = await model.complete(request, on_event)
            except TransientModelError as exc:
                governor.reconcile(permit, Usage())
                breaker.failure()
                last = exc
                if exc.retry_after is not None and exc.retry_after > retry.max_wait_s:
                    raise _Failover(
                        f"{model_name}: the server asked to wait {exc.retry_after:g} s (retry-after), "
                        f"more than [retry] max_wait_s = {retry.max_wait_s:g} s"
                    ) from exc
                if exc.status == 429 and exc.retry_after:
                    governor.pause(exc.retry_after)  # the rate limit is shared: every agent holds off
                if attempt == retry.max_attempts:
                    break
                wait = backoff_delay(attempt, retry, exc.retry_after)
                await _emit(
                    on_event,
                    {
                        "type": "model_retry",
                        "agent": request.agent,
                        "task": request.task,
                        "model": model_name,
                        "attempt": attempt,
                        "wait_s": round(wait, 3),
                        "error": exc.message,
                    },
                )
                await asyncio.sleep(wait)
                continue
            except BaseException:
                governor.reconcile(permit, Usage())
                raise
            governor.reconcile(permit, response.usage)
            breaker.success()
            return response
        raise _Failover(f"{model_name}: {retry.max_attempts} attempt(s) failed, last: {last}")

    async def _finish(
        self,
        model: Model,
        model_name: str,
        request: ModelRequest,
        response: ModelResponse,
        on_event: StreamCallback | None,
    ) -> None:
        from squad.models.scripted import ScriptedModel

        if isinstance(model, ScriptedModel):
            response.cost_usd = 0.0  # scripted and replayed calls cost nothing
        else:
            priced = response.model or model_name
            if lookup(priced, self.settings) is None and priced not in self.runtime.warned_prices:
                self.runtime.warned_prices.add(priced)
                await _emit(
                    on_event,
                    {
                        "type": "warning",
                        "agent": request.agent,
                        "task": request.task,
                        "message": f"no price known for model {priced!r}: its cost counts as $0",
                        "hint": f'add [pricing."{priced}"] to .squad/squad.toml'
                        " (input, output, cache_write_5m, cache_write_1h, cache_read in USD/MTok)",
                    },
                )
            response.cost_usd = price(priced, response.usage, self.settings)
        self.runtime.budget.record(request, response)
        if self.runtime.recorder is not None:
            self.runtime.recorder(request, response)


async def _emit(on_event: StreamCallback | None, event: dict[str, Any]) -> None:
    if on_event is None:
        return
    result = on_event(event)
    if inspect.isawaitable(result):
        await result
