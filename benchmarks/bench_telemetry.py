"""Traces benchmark: what the span-building journal listener costs per event, next to the fold, at two sizes.

The journals are `bench_report`'s synthetic runs (1,000 and 20,000 events shaped like real ones). Measured,
side by side: the fold alone (`RunState.apply`, what every run already does per event), the tracer's
per-event work on the emitting thread (`RunTracer.__call__`: spans made and handed to the batch processor),
and the flush at the end (`close`: the SDK encodes and exports every span), once to the SDK's in-memory
exporter and once over real OTLP/HTTP to the loopback collector of the tests.
Run: `python benchmarks/run.py telemetry` (or this file directly).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the loopback OTLP collector lives with the tests
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from bench_report import SIZES, _Sim  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk.trace.export import SpanExporter  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from otlp_collector import OtlpCollector  # noqa: E402

from squad.domain.events import Event, parse_event  # noqa: E402
from squad.domain.state import fold  # noqa: E402
from squad.infra.jsonl import read_jsonl  # noqa: E402
from squad.infra.spans import RunTracer  # noqa: E402
from squad.infra.telemetry import make_provider  # noqa: E402


def _traced(run: str, events: list[Event], exporter: SpanExporter) -> tuple[float, float]:
    """(seconds feeding the events, seconds closing = flushing every span) of one tracer."""
    tracer = RunTracer(run, make_provider(run, exporter), request_model=lambda _a, _t: "claude-sonnet-5-5")
    start = time.perf_counter()
    for event in events:
        tracer(event)
    fed = time.perf_counter()
    tracer.close()
    return fed - start, time.perf_counter() - fed


def main() -> None:
    # The synthetic events arrive as fast as a loop can feed them (a real run spreads them over hours): a queue
    # that holds every span, so the flush exports all of them instead of the SDK dropping the overflow.
    os.environ.setdefault("OTEL_BSP_MAX_QUEUE_SIZE", "65536")
    rows: dict[int, dict[str, Any]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="squad-bench-telemetry-"))
    try:
        for size in SIZES:
            folder = tmp / f"20261129-000000-n{size}"
            _Sim(folder.name, seed=size).write(size, folder)
            events = [parse_event(r) for r in read_jsonl(folder / "events.jsonl")]
            fold_s = min(_timed(lambda events=events, run=folder.name: fold(run, events)) for _ in range(3))
            memory = [InMemorySpanExporter() for _ in range(3)]
            feed_s, close_s = min(_traced(folder.name, events, m) for m in memory)
            with OtlpCollector() as collector:
                _fed, otlp_close_s = _traced(folder.name, events, OTLPSpanExporter(f"{collector.url}/v1/traces"))
                otlp_spans = len(collector.spans)
            n = len(events)
            rows[size] = {
                "events": n,
                "spans": len(memory[0].get_finished_spans()),
                "fold_us": fold_s * 1e6 / n,
                "feed_us": feed_s * 1e6 / n,
                "ratio": feed_s / fold_s,
                "close_ms": close_s * 1000,
                "otlp_close_ms": otlp_close_s * 1000,
                "otlp_spans": otlp_spans,
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    small, large = rows[SIZES[0]], rows[SIZES[1]]
    lines = [
        ("events", "{:,}", "events"),
        ("spans made", "{:,}", "spans"),
        ("fold per event, µs", "{:.1f}", "fold_us"),
        ("tracer per event, µs", "{:.1f}", "feed_us"),
        ("tracer / fold", "{:.1f}", "ratio"),
        ("flush to memory at close, ms", "{:.0f}", "close_ms"),
        ("flush over OTLP/HTTP at close, ms", "{:.0f}", "otlp_close_ms"),
        ("spans the collector decoded", "{:,}", "otlp_spans"),
    ]
    print(f"{'':36}{SIZES[0]:>12,}{SIZES[1]:>12,}{'ratio':>9}")
    for label, fmt, key in lines:
        a, b = small[key], large[key]
        print(f"{label:36}{fmt.format(a):>12}{fmt.format(b):>12}{b / a if a else 0:>8.1f}x")


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
