"""RunTracer: a run's journal events as OpenTelemetry spans (see `squad.infra.telemetry` for turning it on).

A journal listener: the typed events of `squad.domain.events` in, spans out, so a trace tells what the
journal, `squad log` and the report page tell. Under the run's span: the context pack, the baseline tests,
worktree setup (copies and links, each setup command), the plan, each task round (work, then review with
its tests), each agent session (`invoke_agent`), each model call
(`chat`, OpenTelemetry GenAI semantic conventions), each tool call (`execute_tool`), and the
integration's merges and tests. Spans take their times from the events: a model call ends at its event
and began `latency_s` earlier, a tool call `duration_s` earlier; a round runs from `task_started` to
`task_committed`, a review from `review_started` to its verdict; events that are moments (a lockout, a
retry, a fallback) are span events.

By default no text is exported, only names, numbers, statuses, commits and branches. With
`content=True` the request, plan, summaries, findings, tool arguments and results, test output and
error messages are added, each through `squad.infra.redact.Redactor` first.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from squad import __version__
from squad.domain import events as ev
from squad.domain.ids import lease_id
from squad.infra.redact import Redactor

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span

#: (agent, task) -> the model name that agent asks for on that task ("" when unknown).
RequestModel = Callable[[str, str], str]
#: Agent stop reasons that end a session well.
COMPLETED = frozenset({"finished", "end_turn"})
#: Longest text attribute exported (content mode), in characters.
MAX_TEXT = 8000


class RunTracer:
    """Journal listener: one run's events in, spans out (see the module docstring).

    Args:
        run: the run id.
        provider: where spans go (`make_provider`); shut down (flushed) by `close`.
        content: also export text (redacted).
        request_model: the model an agent asks for (the response's own model name is exported too).
        env: the environment whose secret values are redacted.
    """

    def __init__(
        self,
        run: str,
        provider: TracerProvider,
        *,
        content: bool = False,
        request_model: RequestModel | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        from opentelemetry import trace

        self.run = run
        self.provider = provider
        self.content = content
        self.request_model = request_model or (lambda _agent, _task: "")
        self.redact = Redactor(os.environ if env is None else env)
        self._trace = trace
        self._tracer = provider.get_tracer("squad", __version__)
        self._lock = threading.Lock()
        self._failed = False
        self.root: Span | None = None
        self.open: dict[tuple[str, ...], Span] = {}
        self.started: dict[tuple[str, ...], float] = {}
        self.task_of: dict[tuple[str, ...], str] = {}  # the plan task of an open round's span
        self.fallback: dict[tuple[str, str], str] = {}
        self.last_ts: float | None = None
        self.t_start: float | None = None
        self.t_baseline: float | None = None
        self.t_setup: float | None = None  # the last setup of a worktree outside any task (baseline, integration)
        self.lease_ts: dict[str, float] = {}  # when each worktree was last made ready
        self.t_context: float | None = None
        self.t_settled: float | None = None  # the last task to settle: integration starts after it
        self.t_step: float | None = None  # the last integration step

    # ------------------------------------------------------------------------------------- lifecycle

    def __call__(self, event: ev.Event) -> None:
        """Turn one event into spans; never raises (telemetry must not fail the run)."""
        if self._failed:
            return
        with self._lock:
            try:
                self._handle(event)
                self.last_ts = event.ts or self.last_ts
            except Exception as exc:  # a bug here must cost the trace, not the run
                self._failed = True
                print(f"warning: traces stopped: {type(exc).__name__}: {exc}", file=sys.stderr)

    def close(self) -> None:
        """End what is still open (a crash, a second Ctrl-C) at the last event, then export everything."""
        with self._lock:
            end = self.last_ts or time.time()
            self._end_all(end, "unfinished")
            if self.root is not None:
                self._finish(self.root, end, "unfinished")
                self.root = None
        self.provider.shutdown()

    # ------------------------------------------------------------------------------------- the mapping

    def _handle(self, event: ev.Event) -> None:
        ts = event.ts or time.time()
        match event:
            case ev.RunStarted():
                self._run_started(event, ts)
            case ev.ContextBuilt():  # the context pack is built first thing: from the run's start to here
                attrs = {"squad.context.commit": event.commit, "squad.context.blocks": event.blocks}
                self._start(("context",), "context", self.t_start or ts, self.root, attrs)
                self._end(("context",), ts)
                self.t_context = ts
            case ev.PlanInvalid() | ev.PlanMade():
                self._planned(event, ts)
            case ev.TaskStarted() | ev.ReviewStarted():
                self._round_started(event, ts)
            case ev.TaskCommitted():
                self._committed(event, ts)
            case ev.TestsRan():
                self._tests(event, ts)
            case ev.WorkspacePrepared() | ev.SetupRan():
                self._setup(event, ts)
            case ev.SetupDone():
                self._setup_done(event.task, event.lease, ts)
            case ev.VerdictGiven():
                self._verdict(event, ts)
            case ev.TaskApproved():
                self.t_settled = ts
            case ev.TaskStatus():
                self.t_settled = ts
                for key in [k for k in self.open if self.task_of.get(k) == event.task]:
                    self._end(key, ts, error=event.status)
                self._mark("task_status", ts, {"squad.task.id": event.task, "squad.task.status": event.status})
            case ev.LockedOut():
                self._mark("lockout", ts, {"squad.task.id": event.task, "squad.agent": event.agent})
            case ev.Merged() | ev.MergeConflict() | ev.LedgerCommitted():
                self._integration_step(event, ts)
            case ev.Applied() | ev.ApplyRefused():
                self._mark(event.type, ts, {})
            case ev.TurnStarted():
                self._session(event.agent, event.task, event.lease, ts)
            case ev.ModelCalled():
                self._model_call(event, ts)
            case ev.ToolCalled():
                self._tool_call(event, ts)
            case ev.AgentStopped():
                self._agent_stopped(event, ts)
            case ev.ModelFellBack() | ev.ModelRetried():
                self._model_trouble(event, ts)
            case ev.Interrupted():
                self._end_all(ts, "interrupted")
                if self.root is not None:
                    self.root.set_attribute("squad.run.status", "interrupted")
                    self._finish(self.root, ts, None)
                    self.root = None
            case ev.RunFinished():
                self._run_finished(event, ts)

    def _run_started(self, event: ev.RunStarted, ts: float) -> None:
        resumed = isinstance(event, ev.RunResumed)
        attrs: dict[str, Any] = {"squad.run.id": event.run, "squad.run.resumed": resumed}
        attrs |= {"squad.base_commit": event.base_commit or "", "squad.agent": event.agent or ""}
        if self.content:
            attrs["squad.request"] = self._text(event.task_text)
        name = "squad run (resumed)" if resumed else "squad run"
        self.root = self._tracer.start_span(name, attributes=_clean(attrs), start_time=_ns(ts))
        self.t_start = ts

    def _plan(self, ts: float) -> Span:
        if ("plan",) not in self.open:  # planning starts once the context is built and the baseline has run
            start = max((t for t in (self.t_context, self.t_baseline) if t is not None), default=ts)
            self._start(("plan",), "plan", start, self.root, {})
        return self.open[("plan",)]

    def _planned(self, event: ev.PlanInvalid | ev.PlanMade, ts: float) -> None:
        span = self._plan(ts)
        if isinstance(event, ev.PlanInvalid):
            attrs: dict[str, Any] = {"squad.attempt": event.attempt}
            if self.content:
                attrs["squad.errors"] = self._text("; ".join(event.errors))
            span.add_event("plan_invalid", attrs, _ns(ts))
            return
        attrs = {"squad.plan.tasks": len(event.tasks)}
        if self.content:
            attrs["squad.plan"] = self._text(json.dumps(event.tasks, ensure_ascii=False))
        self._end(("plan",), ts, attrs=attrs)

    def _round_started(self, event: ev.TaskStarted | ev.ReviewStarted, ts: float) -> None:
        attrs: dict[str, Any] = {"squad.task.id": event.task, "squad.task.round": event.round}
        if isinstance(event, ev.TaskStarted):
            key, name = ("work", event.lease), f"work {event.task} round {event.round}"
            attrs |= {"squad.agent": event.agent, "squad.lease": event.lease, "squad.branch": event.branch}
        else:
            key, name = ("review", lease_id(event.task, event.round)), f"review {event.task} round {event.round}"
            attrs["squad.reviewers"] = event.reviewer
        self._start(key, name, ts, self.root, attrs)
        self.task_of[key] = event.task

    def _committed(self, event: ev.TaskCommitted, ts: float) -> None:
        attrs: dict[str, Any] = {"squad.commit": event.commit or "", "squad.changed": event.changed}
        attrs |= {"squad.stop_reason": event.stop_reason, "squad.turns": event.turns, "squad.cost_usd": event.cost_usd}
        if self.content:
            attrs |= {"squad.summary": self._text(event.summary), "squad.error": self._text(event.error or "")}
        error = None if event.stop_reason in COMPLETED else event.stop_reason
        self._end(("work", lease_id(event.task, event.round)), ts, attrs=attrs, error=error)

    def _tests(self, event: ev.TestsRan, ts: float) -> None:
        """The test command: in a review (from its start or its worktree's setup), on the base commit before
        the plan (`baseline`, after the context and setup), or on the integrated result (after the merges)."""
        parent: Span | None
        if event.task is not None:
            key: tuple[str, ...] = ("review", event.where)
            parent, start = self.open.get(key), self.lease_ts.get(event.where, self.started.get(key, ts))
        elif event.where == "baseline":
            after = [t for t in (self.t_context, self.t_setup) if t is not None and t <= ts]
            parent, start = self.root, max(after, default=self.t_start or ts)
            self.t_baseline = ts
        else:
            parent, start = self._integration(ts), self.t_step or self.started[("integration",)]
        attrs: dict[str, Any] = {"squad.tests.command": self.redact(event.command), "squad.tests.passed": event.passed}
        attrs |= {"squad.tests.exit_code": event.exit_code, "squad.tests.timed_out": event.timed_out}
        attrs["squad.tests.where"] = event.where
        if self.content:
            attrs["squad.tests.output"] = self._text(event.output_tail)
        span = self._tracer.start_span("tests", self._ctx(parent), attributes=_clean(attrs), start_time=_ns(start))
        self._finish(span, ts, None if event.passed else ("timed out" if event.timed_out else "failed"))

    def _setup(self, event: ev.WorkspacePrepared | ev.SetupRan, ts: float) -> None:
        """A worktree made ready: its `[workspace]` copies and links, or one setup command (each timed)."""
        parent = self._container(event.task, event.lease) if event.task else self.open.get(("integration",))
        attrs: dict[str, Any] = {"squad.task.id": event.task, "squad.lease": event.lease}
        error = None
        if isinstance(event, ev.WorkspacePrepared):
            name, attrs["squad.workspace.steps"] = "prepare worktree", len(event.steps)
        else:
            name = "setup"
            attrs |= {"squad.setup.command": self.redact(event.command), "squad.setup.exit_code": event.exit_code}
            if self.content:
                attrs |= {"squad.setup.output": self._text(event.output_tail), "squad.error": self._text(event.error)}
            if event.error or event.timed_out or event.exit_code != 0:
                error = "timed out" if event.timed_out else "failed"
        start = ts - event.duration_s
        span = self._tracer.start_span(name, self._ctx(parent), attributes=_clean(attrs), start_time=_ns(start))
        self._finish(span, ts, error)
        self._setup_done(event.task, event.lease, ts)

    def _setup_done(self, task: str | None, lease: str, ts: float) -> None:
        """Remember when a worktree was last made ready: what runs in it next starts there."""
        self.lease_ts[lease] = ts
        if task is None:
            self.t_setup = ts

    def _verdict(self, event: ev.VerdictGiven, ts: float) -> None:
        attrs: dict[str, Any] = {"squad.verdict": event.verdict, "squad.verdict.source": event.source}
        attrs |= {"squad.verdict.complete": event.complete, "squad.findings": len(event.findings)}
        if self.content:
            attrs["squad.verdict.summary"] = self._text(event.summary)
            findings = [f.model_dump(mode="json") for f in event.findings]
            attrs["squad.findings.text"] = self._text(json.dumps(findings, ensure_ascii=False))
        key = ("review", lease_id(event.task, event.round))
        if key in self.open:
            self._end(key, ts, attrs=attrs)
        else:  # a person's verdict, or the gate's without a review: a moment on the run
            self._mark("verdict", ts, {"squad.task.id": event.task, **attrs})

    def _integration(self, ts: float) -> Span:
        if ("integration",) not in self.open:
            start = self.t_settled if self.t_settled is not None else ts
            self._start(("integration",), "integration", start, self.root, {})
        return self.open[("integration",)]

    def _integration_step(self, event: ev.Event, ts: float) -> None:
        parent = self._integration(ts)
        start = self.t_step or self.started[("integration",)]
        attrs: dict[str, Any] = {}
        error = None
        match event:
            case ev.Merged():
                name = f"merge {event.task}"
                attrs = {"squad.task.id": event.task, "squad.commit": event.commit or "", "squad.branch": event.branch}
            case ev.MergeConflict():
                name, error = f"merge {event.task}", "conflict"
                attrs = {"squad.task.id": event.task, "squad.conflict.files": len(event.files)}
                if self.content:
                    attrs["squad.conflict.paths"] = self._text(", ".join(event.files))
            case ev.LedgerCommitted():
                name = "commit decisions"
                attrs = {"squad.commit": event.commit, "squad.ledger.path": event.path}
        span = self._tracer.start_span(name, self._ctx(parent), attributes=_clean(attrs), start_time=_ns(start))
        self._finish(span, ts, error)
        self.t_step = ts

    def _run_finished(self, event: ev.RunFinished, ts: float) -> None:
        self._end_all(ts, None if event.status == "done" else event.status)
        if self.root is None:
            return
        self.root.set_attribute("squad.run.status", event.status)
        if event.cost_usd is not None:
            self.root.set_attribute("squad.cost_usd", event.cost_usd)
        if self.content and event.error:
            self.root.set_attribute("squad.error", self._text(event.error))
        self._finish(self.root, ts, None if event.status == "done" else event.status, ok=event.status == "done")
        self.root = None

    # ------------------------------------------------------------------------------------- agents

    def _session(self, agent: str, task: str, lease: str | None, ts: float) -> Span:
        key = ("session", agent, lease or task)
        if key not in self.open:
            parent = self._container(task, lease)
            attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent, "squad.task.id": task}
            self._start(key, f"invoke_agent {agent}", ts, parent, {**attrs, "squad.lease": lease or ""})
        return self.open[key]

    def _container(self, task: str, lease: str | None) -> Span | None:
        """The span an agent session belongs to: the plan, its round's review or work, else the run."""
        if task == "plan":
            return self._plan(self.last_ts or time.time())
        if lease is not None:
            for kind in ("review", "work"):
                if (kind, lease) in self.open:
                    return self.open[(kind, lease)]
        return self.root

    def _parent_of(self, agent: str, task: str, lease: str | None) -> Span:
        span = self.open.get(("session", agent, lease or task)) or self._container(task, lease)
        return span if span is not None else self._trace.INVALID_SPAN

    def _model_call(self, event: ev.ModelCalled, ts: float) -> None:
        key = event.lease or event.task
        requested = self.fallback.pop((event.agent, key), "") or self.request_model(event.agent, event.task)
        requested = requested or event.model
        u = event.usage
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": _provider(requested),
            "gen_ai.request.model": requested,
            "gen_ai.response.model": event.model,
            # Anthropic counts cached input apart; the convention's input_tokens includes it.
            "gen_ai.usage.input_tokens": u.total_input,
            "gen_ai.usage.output_tokens": u.output_tokens,
            "gen_ai.usage.cache_creation.input_tokens": u.cache_creation_input_tokens,
            "gen_ai.usage.cache_read.input_tokens": u.cache_read_input_tokens,
            "gen_ai.agent.name": event.agent,
            "squad.task.id": event.task,
            "squad.cost_usd": event.cost_usd,
        }
        if event.stop_reason:
            attrs["gen_ai.response.finish_reasons"] = [event.stop_reason]
        if event.ttft_s is not None:
            attrs["squad.ttft_s"] = event.ttft_s
        if event.request_id:
            attrs["squad.request_id"] = event.request_id
        start = ts - (event.latency_s or 0.0)
        parent = self._parent_of(event.agent, event.task, event.lease)
        span = self._tracer.start_span(
            f"chat {requested}", self._ctx(parent), self._trace.SpanKind.CLIENT, _clean(attrs), start_time=_ns(start)
        )
        self._finish(span, ts, None)

    def _tool_call(self, event: ev.ToolCalled, ts: float) -> None:
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": event.name,
            "gen_ai.tool.type": "function",
            "gen_ai.agent.name": event.agent,
            "squad.tool.result_chars": event.result_chars,
        }
        if self.content:
            attrs["gen_ai.tool.call.arguments"] = self._text(json.dumps(event.args, ensure_ascii=False, default=str))
            attrs["gen_ai.tool.call.result"] = self._text(event.result or "")
        parent = self._parent_of(event.agent, event.task, event.lease)
        start = ts - event.duration_s
        span = self._tracer.start_span(
            f"execute_tool {event.name}", self._ctx(parent), attributes=_clean(attrs), start_time=_ns(start)
        )
        self._finish(span, ts, "tool_error" if event.is_error else None)

    def _model_trouble(self, event: ev.ModelFellBack | ev.ModelRetried, ts: float) -> None:
        """A retry or a fallback: a moment on the agent's session (the next call's request model changes)."""
        attrs: dict[str, Any]
        if isinstance(event, ev.ModelFellBack):
            self.fallback[(event.agent, event.lease or event.task)] = event.model
            name, attrs = "model_fallback", {"squad.model.from": event.after, "squad.model.to": event.model}
        else:
            name, attrs = "model_retry", {"squad.attempt": event.attempt, "squad.wait_s": event.wait_s}
            if self.content:
                attrs["squad.error"] = self._text(event.error)
        self._parent_of(event.agent, event.task, event.lease).add_event(name, attrs, _ns(ts))

    def _agent_stopped(self, event: ev.AgentStopped, ts: float) -> None:
        key = ("session", event.agent, event.lease or event.task)
        attrs: dict[str, Any] = {"squad.stop_reason": event.stop_reason, "squad.turns": event.turns}
        attrs["squad.cost_usd"] = event.cost_usd
        if self.content:
            attrs |= {"squad.summary": self._text(event.summary), "squad.error": self._text(event.error or "")}
        self._session(event.agent, event.task, event.lease, ts)
        self._end(key, ts, attrs=attrs, error=None if event.stop_reason in COMPLETED else event.stop_reason)

    # ------------------------------------------------------------------------------------- helpers

    def _ctx(self, parent: Span | None) -> Any:
        """The context of a new span: under `parent`, else under the run (never a stray root of the trace)."""
        span = parent if parent is not None else self.root
        return self._trace.set_span_in_context(span) if span is not None else None

    def _start(self, key: tuple[str, ...], name: str, ts: float, parent: Span | None, attrs: dict[str, Any]) -> Span:
        if key in self.open:  # a round started again in one process (should not happen): end the stale one
            self._end(key, ts, error="restarted")
        span = self._tracer.start_span(name, self._ctx(parent), attributes=_clean(attrs), start_time=_ns(ts))
        self.open[key], self.started[key] = span, ts
        return span

    def _end(
        self, key: tuple[str, ...], ts: float, *, attrs: dict[str, Any] | None = None, error: str | None = None
    ) -> None:
        span = self.open.pop(key, None)
        self.task_of.pop(key, None)
        if span is None:
            return
        span.set_attributes(_clean(attrs or {}))
        self._finish(span, ts, error)

    def _end_all(self, ts: float, error: str | None) -> None:
        """End every open span but the run's, innermost first (sessions, then rounds, then the rest)."""
        order = {"session": 0, "work": 1, "review": 1}
        for key in sorted(self.open, key=lambda k: order.get(k[0], 2)):
            self._end(key, ts, error=error)

    def _finish(self, span: Span, ts: float, error: str | None, *, ok: bool = False) -> None:
        status = self._trace.Status
        if error is not None:
            span.set_attribute("error.type", error)
            span.set_status(status(self._trace.StatusCode.ERROR, error))
        elif ok:
            span.set_status(status(self._trace.StatusCode.OK))
        span.end(_ns(ts))

    def _mark(self, name: str, ts: float, attrs: dict[str, Any]) -> None:
        if self.root is not None:
            self.root.add_event(name, _clean(attrs), _ns(ts))

    def _text(self, value: str) -> str:
        text = self.redact(value)
        return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + f"… [{len(text) - MAX_TEXT} more chars]"


def _ns(ts: float) -> int:
    return int(ts * 1_000_000_000)


def _clean(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes worth sending: None (OpenTelemetry warns on it) and empty strings dropped."""
    return {k: v for k, v in attrs.items() if v is not None and v != ""}


#: `gen_ai.provider.name` by model name prefix (the convention's names; squad's offline models are its own).
PROVIDERS = {
    "bedrock:": "aws.bedrock",
    "vertex:": "gcp.vertex_ai",
    "scripted:": "squad.scripted",
    "replay:": "squad.replay",
}


def _provider(model: str) -> str:
    """`gen_ai.provider.name` for a model name: Claude through the Anthropic API unless its prefix says otherwise."""
    return next((name for prefix, name in PROVIDERS.items() if model.startswith(prefix)), "anthropic")
