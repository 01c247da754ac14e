"""Traces, piece by piece: when they are on, the redaction of secrets, resume and fallback in the span tree,
and that a failing tracer never fails a run. The whole path over real OTLP/HTTP is tests/test_telemetry_e2e.py.

Spans go to the SDK's in-memory exporter through the same provider a run uses (`make_provider`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from squad.config import TelemetrySettings, parse_settings
from squad.domain import events as ev
from squad.domain.usage import Usage
from squad.errors import ConfigError
from squad.infra.env import is_secret_name, scrubbed_env
from squad.infra.journal import Journal
from squad.infra.redact import REDACTED, Redactor
from squad.infra.spans import RunTracer
from squad.infra.telemetry import make_provider, run_trace_id, traces_target

RUN = "20261129-120000-abcd"


def _tracer(exporter: InMemorySpanExporter, **kwargs: object) -> RunTracer:
    return RunTracer(RUN, make_provider(RUN, exporter), **kwargs)  # type: ignore[arg-type]


def _by_name(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


# ---------------------------------------------------------------------------------------------------------
# on or off


def test_traces_are_off_unless_an_endpoint_is_given() -> None:
    off = TelemetrySettings()
    assert traces_target(off, {}) is None
    assert traces_target(off, {"OTEL_SERVICE_NAME": "x"}) is None


def test_the_standard_variables_win_over_the_settings_file() -> None:
    file = TelemetrySettings(otlp_endpoint="http://collector:4318/")
    assert traces_target(file, {}).url == "http://collector:4318/v1/traces"  # type: ignore[union-attr]
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://other:4318"}
    target = traces_target(file, env)
    assert target is not None and target.url == "http://other:4318/v1/traces" and "OTEL_EXPORTER" in target.why
    env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = "http://traces:9999/custom"  # the signal's own: used as is
    assert traces_target(file, env).url == "http://traces:9999/custom"  # type: ignore[union-attr]
    grpc = traces_target(file, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://g:4317"})
    assert grpc is not None and (grpc.url, grpc.protocol) == ("http://g:4317", "grpc")
    assert traces_target(file, {"OTEL_SDK_DISABLED": "true"}) is None
    assert traces_target(file, {"OTEL_TRACES_EXPORTER": "none"}) is None


def test_a_bad_endpoint_in_the_settings_is_a_config_error_with_its_line() -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings('[models]\ndefault = "x"\n\n[telemetry]\notlp_endpoint = "localhost:4318"\n', Path("s.toml"))
    assert err.value.line == 5 and "telemetry.otlp_endpoint" in str(err.value)


# ---------------------------------------------------------------------------------------------------------
# secrets


def test_the_redactor_removes_secret_values_and_credential_shapes() -> None:
    redact = Redactor({"MY_API_KEY": "opaque-value-1234", "PATH": "/usr/bin", "SHORT_TOKEN": "abc"})
    text = (
        "key opaque-value-1234, path /usr/bin, abc, sk-ant-api03-abcdefghijklmnop, ghp_abcdefghijklmnopqrstuvwxyz0123,"
        " AKIAABCDEFGHIJKLMNOP, https://user:pw123@example.com/x, password=hunter2 and token: 'xyz'"
    )
    out = redact(text)
    for secret in ("opaque-value-1234", "sk-ant-api03", "ghp_", "AKIAABCD", "pw123", "hunter2", "xyz"):
        assert secret not in out, secret
    assert "/usr/bin" in out and ", abc," in out  # not secrets: kept (a 3-character value is not redacted)
    assert out.count(REDACTED) == 7


def test_collector_headers_are_secrets_that_never_reach_an_agents_command() -> None:
    assert is_secret_name("OTEL_EXPORTER_OTLP_HEADERS") and is_secret_name("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
    env = scrubbed_env({"OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Basic eHg=", "OTEL_SERVICE_NAME": "squad"})
    assert env == {"OTEL_SERVICE_NAME": "squad"}


def test_without_content_no_text_is_exported_and_with_it_text_is_redacted() -> None:
    def run(content: bool) -> tuple[ReadableSpan, ...]:
        exporter = InMemorySpanExporter()
        tracer = _tracer(exporter, content=content, env={"DEPLOY_TOKEN": "deploy-secret-value"})
        tracer(ev.RunStarted(ts=10.0, run=RUN, task_text="do it with deploy-secret-value"))
        call = dict(agent="backend", task="api", lease="api", turn=1, name="read_file", duration_s=0.5)
        tracer(ev.ToolCalled(ts=11.0, args={"path": ".env"}, result="TOKEN=ghp_abcdefghijklmnopqrstuvwxyz01", **call))
        tracer(ev.RunFinished(ts=12.0, status="failed", error="boom: deploy-secret-value"))
        tracer.close()
        return exporter.get_finished_spans()

    plain = run(False)
    tool = _by_name(plain, "execute_tool read_file")
    assert "gen_ai.tool.call.result" not in (tool.attributes or {})
    root = _by_name(plain, "squad run")
    assert "squad.request" not in (root.attributes or {}) and "squad.error" not in (root.attributes or {})
    assert root.status.description == "failed"  # the status, not the message
    texts = run(True)
    root = _by_name(texts, "squad run")
    assert (root.attributes or {})["squad.request"] == f"do it with {REDACTED}"
    assert (root.attributes or {})["squad.error"] == f"boom: {REDACTED}"
    assert (_by_name(texts, "execute_tool read_file").attributes or {})["gen_ai.tool.call.result"] == REDACTED


# ---------------------------------------------------------------------------------------------------------
# the tree


def test_a_resumed_run_adds_its_spans_to_the_same_trace() -> None:
    exporters = [InMemorySpanExporter(), InMemorySpanExporter()]  # a provider's shutdown stops its exporter
    first = _tracer(exporters[0])
    first(ev.RunStarted(ts=1.0, run=RUN, task_text="x"))
    first(ev.TaskStarted(ts=2.0, task="api", agent="backend", round=0, lease="api"))
    first(ev.Interrupted(ts=3.0))
    first.close()
    second = _tracer(exporters[1])
    second(ev.RunResumed(ts=10.0, run=RUN, task_text="x"))
    second(ev.RunFinished(ts=11.0, status="done"))
    second.close()
    spans = exporters[0].get_finished_spans() + exporters[1].get_finished_spans()
    assert {s.context.trace_id for s in spans} == {run_trace_id(RUN)}
    first_root, resumed = _by_name(spans, "squad run"), _by_name(spans, "squad run (resumed)")
    assert (first_root.attributes or {})["squad.run.status"] == "interrupted" and first_root.end_time == 3_000_000_000
    interrupted_work = _by_name(spans, "work api round 0")
    assert interrupted_work.end_time == 3_000_000_000 and interrupted_work.status.description == "interrupted"
    assert resumed.parent is None and (resumed.attributes or {})["squad.run.resumed"] is True
    assert run_trace_id(RUN) != run_trace_id("20261129-120000-abce")


def test_a_fallback_changes_the_requested_model_of_the_next_call_only() -> None:
    exporter = InMemorySpanExporter()
    tracer = _tracer(exporter, request_model=lambda agent, task: "claude-main")
    tracer(ev.RunStarted(ts=1.0, run=RUN))
    who = dict(agent="backend", task="api", lease="api")
    tracer(ev.TurnStarted(ts=2.0, turn=1, **who))
    tracer(ev.ModelFellBack(ts=3.0, model="claude-spare", after="claude-main", reason="overloaded", **who))
    usage = Usage(input_tokens=10, output_tokens=5, cache_creation_input_tokens=100, cache_read_input_tokens=1000)
    tracer(
        ev.ModelCalled(ts=4.0, model="claude-spare-2026", usage=usage, latency_s=0.25, stop_reason="tool_use", **who)
    )
    tracer(ev.ModelCalled(ts=5.0, model="claude-main-2026", usage=usage, latency_s=0.5, **who))
    tracer.close()
    spare, main = sorted(
        (s for s in exporter.get_finished_spans() if s.name.startswith("chat ")), key=lambda s: s.end_time or 0
    )
    assert spare.name == "chat claude-spare" and main.name == "chat claude-main"
    a = spare.attributes or {}
    assert (a["gen_ai.request.model"], a["gen_ai.response.model"]) == ("claude-spare", "claude-spare-2026")
    assert a["gen_ai.provider.name"] == "anthropic" and a["gen_ai.usage.input_tokens"] == 1110
    assert (spare.start_time, spare.end_time) == (3_750_000_000, 4_000_000_000)
    session = _by_name(exporter.get_finished_spans(), "invoke_agent backend")
    assert spare.parent is not None and spare.parent.span_id == session.context.span_id
    assert [e.name for e in session.events] == ["model_fallback"]


def test_a_failing_tracer_stops_tracing_but_never_fails_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(agent: str, task: str) -> str:
        raise RuntimeError("a bug in the model lookup")

    journal = Journal(tmp_path, RUN).create()
    exporter = InMemorySpanExporter()
    tracer = _tracer(exporter, request_model=broken)
    journal.listeners.append(tracer)
    journal.emit(ev.RunStarted(run=RUN))
    journal.emit(ev.ModelCalled(agent="backend", task="api", model="m"))  # the lookup raises in here
    journal.emit(ev.RunFinished(status="done"))
    tracer.close()
    assert [e.type for e in journal.read_events()] == ["run_started", "model_call", "run_finished"]
    err = capsys.readouterr().err
    assert err.count("warning: traces stopped: RuntimeError: a bug in the model lookup") == 1
    root = _by_name(exporter.get_finished_spans(), "squad run")  # what was open is still ended and exported
    assert root.status.description == "unfinished"


def test_an_event_whose_round_is_not_open_lands_under_the_run() -> None:
    exporter = InMemorySpanExporter()
    tracer = _tracer(exporter)
    tracer(ev.RunResumed(ts=1.0, run=RUN))
    # a resumed run's review whose start was journaled by the process that crashed
    tracer(ev.TestsRan(ts=2.0, task="api", where="api", command="pytest", exit_code=1, passed=False))
    tracer(ev.RunFinished(ts=3.0, status="failed"))
    tracer.close()
    spans = exporter.get_finished_spans()
    root, tests = _by_name(spans, "squad run (resumed)"), _by_name(spans, "tests")
    assert tests.parent is not None and tests.parent.span_id == root.context.span_id
    assert tests.status.description == "failed" and (tests.attributes or {})["squad.tests.exit_code"] == 1


def test_the_provider_name_follows_the_model_name() -> None:
    exporter = InMemorySpanExporter()
    names = ["claude-sonnet-5-5", "bedrock:anthropic.claude-x", "vertex:claude-x@1", "scripted:t.yaml", "replay:r"]
    tracer = _tracer(exporter, request_model=lambda agent, task: agent)  # each agent asks for its name's model
    tracer(ev.RunStarted(ts=1.0, run=RUN))
    for i, name in enumerate(names):
        tracer(ev.ModelCalled(ts=2.0 + i, agent=name, task="plan", model="m"))
    tracer.close()
    found = {
        (s.attributes or {})["gen_ai.request.model"]: (s.attributes or {})["gen_ai.provider.name"]
        for s in exporter.get_finished_spans()
        if s.name.startswith("chat ")
    }
    providers = ["anthropic", "aws.bedrock", "gcp.vertex_ai", "squad.scripted", "squad.replay"]
    assert found == dict(zip(names, providers, strict=True))


def test_worktree_setup_is_timed_and_the_tests_after_it_start_when_it_ended() -> None:
    exporter = InMemorySpanExporter()
    tracer = _tracer(exporter)
    tracer(ev.RunStarted(ts=1.0, run=RUN))
    tracer(ev.ReviewStarted(ts=10.0, task="api", reviewer="reviewer", round=0))
    where = dict(task="api", lease="api")
    tracer(ev.WorkspacePrepared(ts=11.0, steps=[{"action": "copy", "path": ".env"}], duration_s=0.5, **where))
    tracer(ev.SetupRan(ts=14.0, command="npm ci --token=s3cret-abc", exit_code=1, duration_s=3.0, **where))
    tracer(ev.SetupDone(ts=14.5, ok=False, duration_s=3.5, failure="npm ci failed", **where))
    tracer(ev.TestsRan(ts=20.0, task="api", where="api", command="pytest", exit_code=0, passed=True))
    tracer(ev.RunFinished(ts=21.0, status="failed"))
    tracer.close()
    spans = exporter.get_finished_spans()
    review = _by_name(spans, "review api round 0")
    prepare, setup, tests = (_by_name(spans, n) for n in ("prepare worktree", "setup", "tests"))
    assert all(s.parent is not None and s.parent.span_id == review.context.span_id for s in (prepare, setup, tests))
    assert (prepare.start_time, prepare.end_time) == (10_500_000_000, 11_000_000_000)
    assert (setup.start_time, setup.end_time) == (11_000_000_000, 14_000_000_000)
    assert setup.status.description == "failed" and (setup.attributes or {})["squad.setup.exit_code"] == 1
    assert (setup.attributes or {})["squad.setup.command"] == f"npm ci --{REDACTED}"  # a secret even in config
    assert tests.start_time == 14_500_000_000  # after the setup, not from the review's start
