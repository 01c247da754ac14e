"""OpenTelemetry traces of runs, opt-in: `[telemetry] otlp_endpoint` in .squad/squad.toml or the OTEL_* variables.

`run_telemetry` wraps one run: when traces are on it attaches a `squad.infra.spans.RunTracer` to the
run's journal (so the trace is built from the very events the journal, `squad log` and the report read)
and, whatever way the run ends, exports every span before it returns. One trace per run: its id derives
from the run id, so a resumed run adds its spans to the trace of the run it continues.

Export is OTLP over HTTP (http/protobuf) to the endpoint given; the exporter reads the standard
variables for the rest (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _COMPRESSION, _CERTIFICATE, the
OTEL_BSP_* batching, OTEL_TRACES_SAMPLER, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES).

What leaves the machine by default: names (agents, tasks, tools, models), numbers (tokens, cost, turns,
exit codes), statuses, commits and branches. Text (the request, plan goals, summaries, findings, tool
arguments and results, test output, error messages) only with `[telemetry] content = true`, and even then
without the values of secret environment variables or anything shaped like a key or a token.

The OpenTelemetry SDK and its exporter are the optional extra `otel`: no `opentelemetry` module is
imported unless traces are on, and when they are on without it the run stops before it starts with an
error naming the extra.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from squad import __version__
from squad.config import TelemetrySettings
from squad.errors import ConfigError
from squad.infra.spans import RequestModel, RunTracer

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from squad.infra.journal import Journal

#: How to get the OpenTelemetry packages squad uses.
INSTALL_HINT = "pip install 'squad-agents[otel]'"


@dataclass(frozen=True)
class Target:
    """Where a run's traces go and why they are on (for error messages)."""

    url: str
    protocol: str
    why: str


def traces_target(settings: TelemetrySettings, env: Mapping[str, str]) -> Target | None:
    """Where traces go, or None when they are off.

    The standard variables win over `[telemetry] otlp_endpoint` (they are this machine's, the file is the
    project's): OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as is, OTEL_EXPORTER_OTLP_ENDPOINT with /v1/traces
    added for OTLP/HTTP. OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn traces off.
    """
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "").strip()
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip()
        or "http/protobuf"
    )
    suffix = "/v1/traces" if protocol.startswith("http") else ""
    if url := env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip():
        return Target(url, protocol, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set")
    if base := env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
        return Target(base.rstrip("/") + suffix, protocol, "OTEL_EXPORTER_OTLP_ENDPOINT is set")
    if settings.otlp_endpoint:
        return Target(settings.otlp_endpoint.rstrip("/") + suffix, protocol, "[telemetry] otlp_endpoint is set")
    return None


def make_exporter(target: Target) -> SpanExporter:
    """The OTLP exporter for `target` (headers, timeout, compression, certificates from the OTEL_* variables).

    Raises:
        ConfigError: the OpenTelemetry packages are not installed, or the protocol is not one squad speaks.
    """
    if target.protocol == "http/protobuf":
        module, label, hint = (
            "opentelemetry.exporter.otlp.proto.http.trace_exporter",
            "OTLP/HTTP exporter",
            INSTALL_HINT,
        )
    elif target.protocol == "grpc":
        module, label = "opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "OTLP/gRPC exporter"
        hint = "pip install opentelemetry-exporter-otlp-proto-grpc"
    else:
        raise ConfigError(
            f"traces are on ({target.why}) but the OTLP protocol {target.protocol!r} is not supported",
            hint="set OTEL_EXPORTER_OTLP_PROTOCOL to http/protobuf (the default) or grpc",
        )
    for name, what in (("opentelemetry.sdk.trace", "OpenTelemetry SDK"), (module, label)):
        try:
            exporter_module = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(
                f"traces are on ({target.why}) but the {what} is not installed ({exc})",
                hint=f"{hint}, or turn traces off (no endpoint, or OTEL_SDK_DISABLED=true)",
            ) from None
    exporter: SpanExporter = exporter_module.OTLPSpanExporter(endpoint=target.url)
    return exporter


def make_provider(run: str, exporter: SpanExporter) -> TracerProvider:
    """A tracer provider of its own for one run (the global one is left alone): batched export, the run's
    trace id, `service.name` squad unless OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES say otherwise."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class RunIds(RandomIdGenerator):
        """Every root span of this provider belongs to the run's one trace."""

        def generate_trace_id(self) -> int:
            return run_trace_id(run)

    resource = Resource.create({"service.version": __version__})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "squad"}))
    provider = TracerProvider(resource=resource, id_generator=RunIds(), shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def run_trace_id(run: str) -> int:
    """The trace id of a run (128 bits, never 0): the same in the process that starts it and in a resume."""
    return int.from_bytes(hashlib.sha256(f"squad-run:{run}".encode()).digest()[:16], "big") or 1


@contextlib.contextmanager
def run_telemetry(
    journal: Journal,
    settings: TelemetrySettings,
    request_model: RequestModel | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> Iterator[RunTracer | None]:
    """Trace the run written to `journal` while the block runs (None: traces are off, nothing imported).

    Every span is exported before the block exits, whether the run finished, failed or was interrupted.

    Raises:
        ConfigError: traces are on but cannot be sent (see `make_exporter`); raised before the run starts.
    """
    env = os.environ if env is None else env
    target = traces_target(settings, env)
    if target is None:
        yield None
        return
    provider = make_provider(journal.run, make_exporter(target))
    tracer = RunTracer(journal.run, provider, content=settings.content, request_model=request_model, env=env)
    journal.listeners.append(tracer)
    try:
        yield tracer
    finally:
        with contextlib.suppress(ValueError):
            journal.listeners.remove(tracer)
        tracer.close()
