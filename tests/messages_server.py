"""A loopback HTTP/1.1 server that speaks the Anthropic Messages API (JSON and SSE), for tests.

The real `anthropic` SDK talks to it over real sockets, so everything between our code and the wire
is exercised. Replies are scripted per agent (routed on the `x-squad-agent: <agent>/<task>` header,
one queue per key) so concurrent tests stay deterministic; unscripted calls get a short text reply.
Every request is recorded (monotonic timestamp, headers, JSON body) for assertions.

Every stop reason of the API can be sent (`Reply.stop_reason`, with `stop_details` for a refusal); `cut`
sends a reply the way the API ends one at max_tokens: the last block stops halfway (a tool call's JSON
arguments unfinished) and the stop reason is `max_tokens`.

Error injection (see `Reply`): an HTTP error status with `retry-after`, an `error` event in the
middle of a stream, a dropped connection, a stall after the headers, and a raw body of any content type
(what a misconfigured proxy at ANTHROPIC_BASE_URL answers: JSON, an HTML page).

Usage::

    with MessagesServer() as server:
        server.script("backend", Reply(text="hi"), Reply(tool_calls=[{"name": "finish", "input": {}}]))
        os.environ["ANTHROPIC_BASE_URL"] = server.url
        ...
        assert server.requests[0].body["model"] == "claude-sonnet-4-5"
"""

from __future__ import annotations

import collections
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted reply. Defaults give a successful text response.

    Attributes:
        text: assistant text (streamed in a few deltas).
        tool_calls: `[{"name": ..., "input": {...}, "id": optional}]`, streamed as input_json_delta; with
            `"input_json": "<raw text>"` instead of `input`, that text is sent as is, in one delta (what a
            gateway might send: a bare string, a number, lone surrogate escapes, invalid JSON).
        stop_reason: default `tool_use` when there are tool calls, else `end_turn` (`max_tokens` with `cut`).
        stop_details: sent with the stop reason (a refusal's `{"type": "refusal", "category", "explanation"}`).
        cut: end the last content block halfway (its text, or its tool call's JSON arguments), as the API
            does when the reply reaches max_tokens.
        usage: overrides for usage fields (input_tokens, output_tokens, cache_*).
        status: HTTP status; non-200 sends an error body of `error_type` / `message`.
        headers: extra response headers (e.g. `retry-after`, `anthropic-ratelimit-*`).
        stream_error: send an SSE `error` event of this type after the first content delta.
        drop: close the connection without any response.
        stall_s: after the headers (and message_start), go silent for this long, then close.
        truncate: end the stream cleanly right after the first content delta (no message_stop).
        delay_s: wait this long before answering at all.
        raw_body: answer `status` with exactly this body and `content_type`, whatever was asked (a proxy's
            JSON, an HTML login page).
        content_type: the content type of `raw_body`.
    """

    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str | None = None
    stop_details: dict[str, Any] | None = None
    cut: bool = False
    usage: dict[str, int] | None = None
    status: int = 200
    error_type: str = "api_error"
    message: str = "injected error"
    headers: dict[str, str] = field(default_factory=dict)
    stream_error: str | None = None
    drop: bool = False
    stall_s: float = 0.0
    truncate: bool = False
    delay_s: float = 0.0
    raw_body: str | None = None
    content_type: str = "text/html; charset=utf-8"

    @staticmethod
    def error(status: int, error_type: str, message: str = "injected error", **headers: str) -> Reply:
        """An HTTP error reply; keyword headers use `_` for `-` (retry_after -> retry-after)."""
        return Reply(
            status=status,
            error_type=error_type,
            message=message,
            headers={k.replace("_", "-"): v for k, v in headers.items()},
        )


@dataclass
class RecordedRequest:
    """What the server saw: when (time.monotonic), where, headers (lower-case keys), the JSON body,
    the status it answered (-1: dropped) and the client's address."""

    ts: float
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes
    status: int = 0
    peer: tuple[str, int] = ("", 0)  # client address: the same port means a reused keep-alive connection

    @property
    def agent(self) -> str:
        """The `<agent>` part of the x-squad-agent header ('' when absent)."""
        return self.headers.get("x-squad-agent", "").partition("/")[0]

    @property
    def task(self) -> str:
        return self.headers.get("x-squad-agent", "").partition("/")[2]


_ERROR_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class MessagesServer:
    """Threaded loopback Messages API server. Start with `start()` or use as a context manager.

    Subclasses speak another wire format over the same scripting (tests/cloud_servers.py: Bedrock, Vertex)
    by setting `handler` to a `_Handler` subclass.
    """

    handler: type[BaseHTTPRequestHandler]  # set below, once _Handler exists

    def __init__(self, *, api_key: str | None = None, models: set[str] | None = None, delay_s: float = 0.0) -> None:
        self.api_key = api_key  # None: any non-empty key or bearer token is accepted
        self.models = models  # None: any model name is accepted; else others get 404
        self.delay_s = delay_s  # default latency before each reply
        self.requests: list[RecordedRequest] = []
        self._queues: dict[str, collections.deque[Reply]] = collections.defaultdict(collections.deque)
        self._cached_prefixes: set[str] = set()
        self._lock = threading.Lock()
        self._counter = 0
        self.stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), self.handler)
        self._httpd.app = self
        self._thread: threading.Thread | None = None

    # -- lifecycle
    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> MessagesServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> MessagesServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting
    def script(self, key: str, *replies: Reply) -> None:
        """Queue replies for `key`: `agent/task` (exact) or `agent` (any task) or `*` (anyone)."""
        with self._lock:
            self._queues[key].extend(replies)

    def pending(self, key: str) -> int:
        """How many scripted replies for `key` have not been used."""
        with self._lock:
            return len(self._queues[key])

    def requests_for(self, agent: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.agent == agent]

    # -- internals used by the handler
    def _next_reply(self, route: str) -> Reply:
        agent = route.partition("/")[0]
        with self._lock:
            for key in (route, agent, "*"):
                queue = self._queues.get(key)
                if queue:
                    return queue.popleft()
        return Reply(text="ok")

    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(req)

    def _new_id(self, prefix: str) -> str:
        with self._lock:
            self._counter += 1
            return f"{prefix}_{self._counter:06d}"

    def _cache_usage(self, body: dict[str, Any]) -> tuple[int, int]:
        """(cache_creation, cache_read) tokens: the prefix up to the last cache_control, chars/4."""
        system = body.get("system")
        if not isinstance(system, list):
            return 0, 0
        marks = [i for i, block in enumerate(system) if isinstance(block, dict) and block.get("cache_control")]
        if not marks:
            return 0, 0
        prefix = json.dumps([body.get("tools", []), system[: marks[-1] + 1]], sort_keys=True)
        tokens = max(1, len(prefix) // 4)
        digest = hashlib.sha256(prefix.encode()).hexdigest()
        with self._lock:
            if digest in self._cached_prefixes:
                return 0, tokens
            self._cached_prefixes.add(digest)
            return tokens, 0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # listen backlog: many agents connect at once
    allow_reuse_address = True
    app: MessagesServer


@dataclass(frozen=True)
class Call:
    """An accepted request: the model it asks for (from the body or the URL) and whether to stream."""

    model: str
    stream: bool


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server: _Server
    stream_content_type = "text/event-stream"
    request_id_header = "request-id"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_GET(self) -> None:
        self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": "only POST /v1/messages"}})

    def do_POST(self) -> None:
        app = self.server.app
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = {}
        rec = RecordedRequest(time.monotonic(), "POST", self.path, headers, body, raw, peer=self.client_address[:2])
        app._record(rec)
        call = self._accept(rec)
        if call is None:  # refused: _accept has answered
            return None

        reply = app._next_reply(headers.get("x-squad-agent", ""))
        delay = reply.delay_s or app.delay_s
        if delay:
            app.stopping.wait(delay)
        if reply.drop:
            rec.status = -1
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return None
        if reply.raw_body is not None:
            rec.status = reply.status
            return self._raw(reply.status, reply.raw_body.encode(), reply.content_type, reply.headers)
        if reply.status != 200:
            rec.status = reply.status
            return self._error(
                reply.status,
                reply.error_type or _ERROR_STATUS.get(reply.status, "api_error"),
                reply.message,
                reply.headers,
            )
        rec.status = 200
        message = self._message(body, reply, call.model)
        if call.stream:
            return self._stream(message, reply)
        return self._json(200, message, reply.headers)

    # -- the wire format's hooks (overridden by the cloud providers' handlers)
    def _accept(self, rec: RecordedRequest) -> Call | None:
        """Route and authenticate `rec`: the model and whether to stream, or None after answering an error."""
        app = self.server.app
        body = rec.body
        if self.path.split("?")[0] != "/v1/messages":
            return self._refuse(rec, 404, "not_found_error", f"no route {self.path}")
        key = rec.headers.get("x-api-key") or rec.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not key or (app.api_key is not None and key != app.api_key):
            return self._refuse(rec, 401, "authentication_error", "invalid x-api-key")
        if not isinstance(body, dict) or "model" not in body or "messages" not in body:
            return self._refuse(rec, 400, "invalid_request_error", "model and messages are required")
        if app.models is not None and body["model"] not in app.models:
            return self._refuse(rec, 404, "not_found_error", f"model: {body['model']}")
        return Call(body["model"], bool(body.get("stream")))

    def _refuse(self, rec: RecordedRequest, status: int, error_type: str, message: str) -> None:
        rec.status = status
        self._error(status, error_type, message)

    # -- building replies
    def _message(self, body: dict[str, Any], reply: Reply, model: str) -> dict[str, Any]:
        app = self.server.app
        content: list[dict[str, Any]] = []
        if reply.text:
            content.append({"type": "text", "text": reply.text})
        for call in reply.tool_calls:
            content.append(
                {
                    "type": "tool_use",
                    "id": call.get("id") or app._new_id("toolu"),
                    "name": call["name"],
                    "input": call.get("input", {}),
                    **({"input_json": call["input_json"]} if "input_json" in call else {}),
                }
            )
        creation, read = app._cache_usage(body)
        prompt = len(json.dumps(body.get("messages", []))) // 4 + len(json.dumps(body.get("system", ""))) // 4
        usage = {
            "input_tokens": max(1, prompt - creation - read),
            "output_tokens": max(1, len(json.dumps(content)) // 4),
            "cache_creation_input_tokens": creation,
            "cache_read_input_tokens": read,
        }
        usage.update(reply.usage or {})
        return {
            "id": app._new_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": reply.stop_reason or _default_stop(reply),
            "stop_sequence": None,
            "stop_details": reply.stop_details,
            "usage": usage,
        }

    def _base_headers(self, extra: dict[str, str] | None) -> None:
        self.send_header(self.request_id_header, self.server.app._new_id("req"))
        for name, value in (extra or {}).items():
            self.send_header(name, value)

    def _json(self, status: int, payload: dict[str, Any], extra: dict[str, str] | None = None) -> None:
        self._raw(status, json.dumps(payload).encode(), "application/json", extra)

    def _raw(self, status: int, data: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self._base_headers(extra)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, error_type: str, message: str, extra: dict[str, str] | None = None) -> None:
        self._json(status, {"type": "error", "error": {"type": error_type, "message": message}}, extra)

    def _stream(self, message: dict[str, Any], reply: Reply) -> None:
        self.send_response(200)
        self.send_header("content-type", self.stream_content_type)
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self._base_headers(reply.headers)
        self.end_headers()
        usage = message["usage"]
        start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
        self._event("message_start", {"type": "message_start", "message": start})
        if reply.stall_s:
            self.server.app.stopping.wait(reply.stall_s)
            self.close_connection = True
            return
        last = len(message["content"]) - 1
        for index, block in enumerate(message["content"]):
            for event in _block_events(index, block, cut=reply.cut and index == last):
                self._event(event["type"], event)
                if reply.truncate and event["type"] == "content_block_delta":
                    self._end_chunks()
                    return
                if reply.stream_error and event["type"] == "content_block_delta":
                    self._stream_error(reply.stream_error, reply.message)
                    self._end_chunks()
                    return
        if reply.stream_error:  # no content delta to interrupt: fail right after message_start
            self._stream_error(reply.stream_error, reply.message)
            self._end_chunks()
            return
        self._event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": message["stop_reason"],
                    "stop_sequence": None,
                    "stop_details": message["stop_details"],
                },
                "usage": usage,
            },
        )
        self._event("message_stop", {"type": "message_stop"})
        self._end_chunks()

    def _event(self, name: str, data: dict[str, Any]) -> None:
        """One streamed event (here: SSE) in one HTTP chunk."""
        self._chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

    def _stream_error(self, error_type: str, message: str) -> None:
        """An error inside a 200 stream (here: an SSE `error` event)."""
        self._event("error", {"type": "error", "error": {"type": error_type, "message": message}})

    def _chunk(self, payload: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
        self.wfile.flush()

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


MessagesServer.handler = _Handler


def _default_stop(reply: Reply) -> str:
    if reply.cut:
        return "max_tokens"
    return "tool_use" if reply.tool_calls else "end_turn"


def _block_events(index: int, block: dict[str, Any], *, cut: bool = False) -> Iterator[dict[str, Any]]:
    """content_block_start / delta(s) / stop for one block, split like the real API does; `cut` sends only
    the first half of the block's text or JSON (a reply that reached max_tokens inside this block)."""
    if block["type"] == "text":
        yield {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
        text = block["text"][: len(block["text"]) // 2] if cut else block["text"]
        step = max(1, len(text) // 3)
        for i in range(0, len(text), step):
            yield {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "text_delta", "text": text[i : i + step]},
            }
    else:
        yield {
            "type": "content_block_start",
            "index": index,
            "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}},
        }
        raw = block["input_json"] if "input_json" in block else json.dumps(block["input"])
        raw = raw[: len(raw) // 2] if cut else raw
        step = max(1, len(raw)) if "input_json" in block else max(1, len(raw) // 2)
        for i in range(0, len(raw), step):
            yield {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "input_json_delta", "partial_json": raw[i : i + step]},
            }
    yield {"type": "content_block_stop", "index": index}
