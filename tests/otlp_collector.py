"""A loopback OTLP/HTTP trace collector for tests: decodes each protobuf export the real exporter sends.

`POST /v1/traces` with an `ExportTraceServiceRequest` body (the message types come from
`opentelemetry-proto`, what the OTLP exporter itself encodes with); every span is kept as a plain
`CollectedSpan`, with its resource, and every request's headers are recorded. It answers with an empty
`ExportTraceServiceResponse`, as a collector does.

Usage::

    with OtlpCollector() as collector:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.url
        ...
        root = collector.one("squad run")
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


@dataclass
class CollectedSpan:
    """One exported span, decoded. Ids are hex; times are Unix nanoseconds."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    start: int
    end: int
    attributes: dict[str, Any]
    status_code: int  # 0 unset, 1 ok, 2 error
    status_message: str
    events: list[tuple[str, int, dict[str, Any]]]
    resource: dict[str, Any]

    def strings(self) -> Iterator[str]:
        """Every text this span exports: its name, attribute and event values, status message."""
        yield self.name
        yield self.status_message
        for values in [self.attributes, *(attrs for _n, _t, attrs in self.events)]:
            for value in values.values():
                yield from (str(v) for v in (value if isinstance(value, list) else [value]))
        yield from (name for name, _t, _a in self.events)


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind) if kind else None


def _attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


@dataclass
class OtlpCollector:
    """The collector; a context manager that serves on 127.0.0.1 on a free port."""

    spans: list[CollectedSpan] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                collector._keep(self.path, dict(self.headers.items()), request)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _keep(self, path: str, headers: dict[str, str], request: ExportTraceServiceRequest) -> None:
        found = []
        for rs in request.resource_spans:
            resource = _attrs(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    found.append(
                        CollectedSpan(
                            name=s.name,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_id=s.parent_span_id.hex(),
                            kind=s.kind,
                            start=s.start_time_unix_nano,
                            end=s.end_time_unix_nano,
                            attributes=_attrs(s.attributes),
                            status_code=s.status.code,
                            status_message=s.status.message,
                            events=[(e.name, e.time_unix_nano, _attrs(e.attributes)) for e in s.events],
                            resource=resource,
                        )
                    )
        with self._lock:
            self.paths.append(path)
            self.headers.append({k.lower(): v for k, v in headers.items()})
            self.spans.extend(found)

    def __enter__(self) -> OtlpCollector:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------------------------ queries

    def named(self, name: str) -> list[CollectedSpan]:
        return [s for s in self.spans if s.name == name]

    def one(self, name: str) -> CollectedSpan:
        found = self.named(name)
        assert len(found) == 1, f"{len(found)} spans named {name!r}: {sorted({s.name for s in self.spans})}"
        return found[0]

    def children(self, parent: CollectedSpan) -> list[CollectedSpan]:
        return sorted((s for s in self.spans if s.parent_id == parent.span_id), key=lambda s: (s.start, s.name))

    def parent(self, span: CollectedSpan) -> CollectedSpan:
        return next(s for s in self.spans if s.span_id == span.parent_id)
