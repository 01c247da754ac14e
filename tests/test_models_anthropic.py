"""AnthropicModel through the real anthropic SDK over real HTTP, against the loopback Messages server.

Covers the mapping to our types, prompt caching layout, and every failure mode: what is retried
(and how long we wait), what is not (and what the error says), fallback and the circuit breaker.
Waits go through a manual clock (`runtime.clock.slept` says what was waited), so nothing here is timed.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest
from conftest import NetworkAccessError
from messages_server import MessagesServer, Reply
from model_fakes import ManualClock

from squad.config import (
    BudgetSettings,
    CircuitBreakerSettings,
    ModelsSettings,
    RateLimitSettings,
    RetrySettings,
    Settings,
)
from squad.errors import ModelError
from squad.models import (
    AnthropicModel,
    Message,
    ModelRequest,
    ModelRuntime,
    SystemBlock,
    TextBlock,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    create_model,
)

pytestmark = pytest.mark.timeout(30)

TOOLS = tuple(
    ToolSpec(name, f"{name} tool", {"type": "object", "properties": {"path": {"type": "string"}}})
    for name in ("finish", "read_file", "write_file")
)
SHARED = (
    SystemBlock("You are part of a team. Repo norms: be careful.", cache=False),
    SystemBlock("Repo map:\n" + "src/app.py\n" * 50, cache=True),
)


def settings(**over: Any) -> Settings:
    """Fast settings: tiny retry delays, short read timeout, no rate limits, no fallback."""
    base = {
        "retry": RetrySettings(max_attempts=3, base_delay_s=0.01, max_wait_s=0.5),
        "models": ModelsSettings(request_timeout_s=2.0),
        "rate_limits": RateLimitSettings(requests_per_minute=0, input_tokens_per_minute=0, output_tokens_per_minute=0),
        "circuit_breaker": CircuitBreakerSettings(failure_threshold=50, cooldown_s=30),
    }
    base.update(over)
    return Settings(**base)


def request(
    agent: str = "backend", task: str = "add-api", charter: str = "You are backend.", **kw: Any
) -> ModelRequest:
    system = (*SHARED, SystemBlock(charter))
    return ModelRequest(
        system=system,
        messages=(Message("user", (TextBlock("Do the task."),)),),
        tools=TOOLS,
        max_tokens=256,
        agent=agent,
        task=task,
        **kw,
    )


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def managed(
    name: str = "claude-sonnet-5-5", st: Settings | None = None, recorder: Any = None
) -> tuple[Any, ModelRuntime]:
    """create_model with a manual clock whose sleeps pass at once (and are kept in `runtime.clock.slept`)."""
    st = st or settings()
    runtime = ModelRuntime.from_settings(st, recorder=recorder, clock=ManualClock(autojump=True))
    return create_model(name, settings=st, runtime=runtime), runtime


def slept(runtime: ModelRuntime) -> list[float]:
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    return clock.slept


# --------------------------------------------------------------------------------------------------
# Success path


def test_stream_maps_text_tool_use_usage_and_request_id(messages_server: MessagesServer) -> None:
    messages_server.script(
        "backend/add-api",
        Reply(text="Let me read it.", tool_calls=[{"name": "read_file", "input": {"path": "app.py"}}]),
    )
    events: list[dict[str, Any]] = []
    model = AnthropicModel("claude-sonnet-5-5", settings=settings())
    resp = run(model.complete(request(), on_event=events.append))

    assert resp.text == "Let me read it."
    assert [(t.name, t.input) for t in resp.tool_uses] == [("read_file", {"path": "app.py"})]
    assert resp.stop_reason == "tool_use"
    assert resp.request_id and resp.request_id.startswith("req_")
    assert resp.usage.cache_creation_input_tokens > 0 and resp.usage.cache_read_input_tokens == 0
    assert resp.usage.input_tokens > 0 and resp.usage.output_tokens > 0
    assert resp.ttft_s is not None and 0 < resp.ttft_s <= resp.latency_s
    assert "".join(e["text"] for e in events if e["type"] == "text_delta") == "Let me read it."
    assert len([e for e in events if e["type"] == "text_delta"]) > 1  # really streamed in pieces

    (seen,) = messages_server.requests
    assert seen.headers["x-squad-agent"] == "backend/add-api"
    assert seen.body["stream"] is True and seen.body["model"] == "claude-sonnet-5-5"
    assert seen.headers.get("authorization") == "Bearer sk-test-not-a-real-key" or seen.headers.get("x-api-key")


def test_second_call_reads_the_cache_and_messages_round_trip(messages_server: MessagesServer) -> None:
    model = AnthropicModel("claude-sonnet-5-5", settings=settings())
    history = (
        Message("user", (TextBlock("Do the task."),)),
        Message("assistant", (ToolUseBlock("toolu_1", "read_file", {"path": "a.py"}),)),
        Message("user", (ToolResultBlock("toolu_1", "no such file", is_error=True),)),
    )
    first = run(model.complete(request()))
    second = run(
        model.complete(
            ModelRequest(
                system=request().system, messages=history, tools=TOOLS, agent="tester", task="t2", tool_choice="finish"
            )
        )
    )
    assert first.usage.cache_creation_input_tokens == second.usage.cache_read_input_tokens > 0
    body = messages_server.requests[1].body
    assert body["messages"][1]["content"][0] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "read_file",
        "input": {"path": "a.py"},
    }
    assert body["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": "no such file",
        "is_error": True,
    }
    assert body["tool_choice"] == {"type": "tool", "name": "finish"}


def test_shared_prefix_is_byte_identical_across_specialists(messages_server: MessagesServer) -> None:
    """8 specialists concurrently: the tools and the system blocks up to the breakpoint are the same
    bytes on the wire, and cache_control sits on the last shared block, not on the charter after it.
    (The API orders the prompt tools -> system -> messages whatever the JSON key order.)"""
    model, _ = managed()

    async def main() -> list[Any]:
        return await asyncio.gather(
            *(model.complete(request(agent=f"agent{i}", charter=f"You are agent {i}.")) for i in range(8))
        )

    responses = run(main())
    assert len(messages_server.requests) == 8
    mark = '"cache_control":{"type":"ephemeral"}}'
    tools_bytes, system_prefixes = set(), set()
    for rec in messages_server.requests:
        raw = rec.raw.decode()
        tools_bytes.add(raw[raw.index('"tools":') : raw.index('],"stream"')])
        system_prefixes.add(raw[raw.index('"system":') : raw.index(mark) + len(mark)])
        assert raw.count('"cache_control"') == 1
        assert [("cache_control" in b) for b in rec.body["system"]] == [False, True, False]
        assert rec.body["system"][2]["text"] == f"You are {rec.agent.replace('agent', 'agent ')}."
        assert [t["name"] for t in rec.body["tools"]] == ["finish", "read_file", "write_file"]
    assert len(tools_bytes) == 1 and len(system_prefixes) == 1
    assert "You are agent" not in next(iter(system_prefixes))
    # The server caches by that prefix: one agent writes it, the seven others read it.
    assert sorted(r.usage.cache_creation_input_tokens > 0 for r in responses) == [False] * 7 + [True]
    assert sum(r.usage.cache_read_input_tokens > 0 for r in responses) == 7


# --------------------------------------------------------------------------------------------------
# Transient failures: retried


@pytest.mark.parametrize(
    ("failure", "reported"),
    [
        (Reply.error(429, "rate_limit_error", retry_after="0.2"), "returned 429 rate_limit_error"),
        (Reply.error(529, "overloaded_error"), "returned 529 overloaded_error"),
        (Reply.error(500, "api_error"), "returned 500 api_error"),
        (Reply.error(503, "api_error"), "returned 503 api_error"),
        (Reply(text="partial", stream_error="overloaded_error"), "overloaded_error event in the middle of the stream"),
        (Reply(drop=True), "no response from the Messages API"),
        (Reply(stall_s=5), "read timed out after the response started"),
        (Reply(text="cut short", truncate=True), "ended before the message was complete"),
        (Reply(raw_body="", content_type="text/event-stream"), "ended before the message started"),
        (
            Reply(raw_body='{"type": "message", "content": []}', content_type="application/json"),
            "answered 200 with application/json instead of an event stream",
        ),
        (Reply(raw_body="<html>Sign in</html>"), "answered 200 with text/html; charset=utf-8 instead of an event"),
    ],
    ids=[
        "429-retry-after",
        "529",
        "500",
        "503",
        "stream-error-event",
        "dropped-connection",
        "stall-after-headers",
        "stream-ends-early",
        "empty-event-stream",
        "200-json-not-a-stream",
        "200-html-not-a-stream",
    ],
)
def test_transient_failures_are_retried(messages_server: MessagesServer, failure: Reply, reported: str) -> None:
    messages_server.script("backend", failure, Reply(text="recovered"))
    events: list[dict[str, Any]] = []
    # A short read timeout only where the stall needs one: on a loaded machine it would cut healthy replies short.
    st = settings(models=ModelsSettings(request_timeout_s=0.5 if failure.stall_s else 5.0))
    model, runtime = managed(st=st)
    resp = run(model.complete(request(), on_event=events.append))

    assert resp.text == "recovered"
    assert len(messages_server.requests) == 2
    retries = [e for e in events if e["type"] == "model_retry"]
    assert len(retries) == 1 and retries[0]["attempt"] == 1, [
        (e["error"], r.status) for e, r in zip(retries, messages_server.requests, strict=False)
    ]
    assert reported in retries[0]["error"]
    assert slept(runtime) == [pytest.approx(retries[0]["wait_s"], abs=5e-4)]  # waited what the event says
    if failure.headers.get("retry-after"):
        assert slept(runtime) == [0.2]
    else:
        assert 0 < slept(runtime)[0] <= 0.01  # base_delay_s with jitter
    assert runtime.spend.run.turns == 1  # one call, however many attempts


def test_a_proxy_page_instead_of_a_stream_fails_cleanly_with_what_it_sent(messages_server: MessagesServer) -> None:
    """ANTHROPIC_BASE_URL answering 200 with an HTML page: retried, then a ModelError quoting the page
    (its first 200 characters), never the SDK's bare AssertionError."""
    page = "<html><head><title>Corporate proxy: sign in</title></head><body>" + "Please sign in. " * 40
    messages_server.script("backend", *[Reply(raw_body=page)] * 3)
    model, runtime = managed()
    with pytest.raises(ModelError, match=r"3 attempt\(s\) failed, last: .*instead of an event stream") as info:
        run(model.complete(request()))
    assert len(messages_server.requests) == 3 and len(slept(runtime)) == 2
    quoted = " ".join(page.split())[:200]
    assert repr(quoted) in info.value.message and " ".join(page.split())[:201] not in info.value.message
    assert "fallback" in (info.value.hint or "")


def test_retry_after_ms_is_honoured(messages_server: MessagesServer) -> None:
    messages_server.script("backend", Reply.error(429, "rate_limit_error", retry_after_ms="250", retry_after="9"))
    events: list[dict[str, Any]] = []
    model, runtime = managed()
    run(model.complete(request(), on_event=events.append))
    assert [e["wait_s"] for e in events if e["type"] == "model_retry"] == [0.25] and slept(runtime) == [0.25]


def test_huge_retry_after_fails_fast_with_a_clear_message(messages_server: MessagesServer) -> None:
    """A retry-after of 3600 s must neither hang nor be ignored: no fallback -> a ModelError saying so."""
    messages_server.script("backend", Reply.error(429, "rate_limit_error", retry_after="3600"))
    model, runtime = managed()
    with pytest.raises(ModelError, match=r"asked to wait 3600 s .*max_wait_s = 0.5 s") as info:
        run(model.complete(request()))
    assert slept(runtime) == [] and runtime.governor.paused_for == 0  # no wait, and nobody else held up
    assert len(messages_server.requests) == 1
    assert "fallback" in (info.value.hint or "")


def test_backoff_is_capped_and_attempts_are_bounded(messages_server: MessagesServer) -> None:
    messages_server.script("backend", *[Reply.error(529, "overloaded_error")] * 5)
    events: list[dict[str, Any]] = []
    st = settings(retry=RetrySettings(max_attempts=4, base_delay_s=10.0, max_wait_s=0.1))
    model, runtime = managed(st=st)
    with pytest.raises(ModelError, match=r"4 attempt\(s\) failed.*529 overloaded_error"):
        run(model.complete(request(), on_event=events.append))
    waits = [e["wait_s"] for e in events if e["type"] == "model_retry"]
    assert len(waits) == 3 and all(w <= 0.1 for w in waits)
    assert len(slept(runtime)) == 3 and max(slept(runtime)) <= 0.1
    assert len(messages_server.requests) == 4


# --------------------------------------------------------------------------------------------------
# Final failures: not retried, and the message says what to do


@pytest.mark.parametrize(
    ("reply", "pattern", "hint"),
    [
        (Reply.error(401, "authentication_error"), r"authentication failed \(401\)", "ANTHROPIC_API_KEY"),
        (Reply.error(403, "permission_error", "no access"), r"permission denied \(403\)", "ANTHROPIC_API_KEY"),
        (
            Reply.error(404, "not_found_error", "model: claude-nope"),
            r"unknown model name 'claude-sonnet-5-5'",
            "squad.toml",
        ),
        (
            Reply.error(413, "request_too_large", "Request exceeds the maximum size"),
            r"context too large for agent 'backend' on task 'add-api'",
            "context",
        ),
        (
            Reply.error(400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"),
            r"context too large for agent 'backend' on task 'add-api'.*prompt is too long",
            "split the task",
        ),
        (
            Reply.error(400, "invalid_request_error", "messages: roles must alternate"),
            r"rejected the request of agent 'backend'.*roles must alternate",
            "bug",
        ),
    ],
    ids=["401", "403", "404", "413", "400-prompt-too-long", "400-other"],
)
def test_final_errors_are_not_retried(messages_server: MessagesServer, reply: Reply, pattern: str, hint: str) -> None:
    messages_server.script("backend", reply)
    model, runtime = managed()
    with pytest.raises(ModelError, match=pattern) as info:
        run(model.complete(request()))
    assert hint in (info.value.hint or "")
    assert len(messages_server.requests) == 1
    assert runtime.spend.run.turns == 0 and slept(runtime) == []


def test_real_401_from_a_wrong_key(monkeypatch: pytest.MonkeyPatch) -> None:
    with MessagesServer(api_key="the-right-key") as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "a-wrong-key")
        with pytest.raises(ModelError, match="401") as info:
            run(AnthropicModel("claude-sonnet-5-5", settings=settings()).complete(request()))
        assert "check ANTHROPIC_API_KEY" in (info.value.hint or "")
        monkeypatch.setenv("ANTHROPIC_API_KEY", "the-right-key")
        assert run(AnthropicModel("claude-sonnet-5-5", settings=settings()).complete(request())).text == "ok"


def test_real_404_for_an_unknown_model(monkeypatch: pytest.MonkeyPatch) -> None:
    with MessagesServer(models={"claude-sonnet-5-5"}) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        no_dollars = settings(budgets=BudgetSettings(run_usd=0, agent_usd=0))  # no price: dollars fail closed
        model, _ = managed("claude-sonnet-9-9", st=no_dollars)
        with pytest.raises(ModelError, match="unknown model name 'claude-sonnet-9-9'") as info:
            run(model.complete(request()))
        assert ".squad/agents/backend.md" in (info.value.hint or "")


def test_missing_api_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, messages_server: MessagesServer) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(ModelError, match="ANTHROPIC_API_KEY is not set"):
        run(AnthropicModel("claude-sonnet-5-5", settings=settings()).complete(request()))
    assert messages_server.requests == []


# --------------------------------------------------------------------------------------------------
# Fallback and circuit breaker


def test_fallback_after_repeated_overload(messages_server: MessagesServer) -> None:
    messages_server.script("backend", *[Reply.error(529, "overloaded_error")] * 3, Reply(text="from fallback"))
    events: list[dict[str, Any]] = []
    recorded: list[Any] = []
    st = settings(models=ModelsSettings(fallback=["claude-haiku-5-5"], request_timeout_s=2))
    model, runtime = managed(st=st, recorder=lambda req, resp: recorded.append((req.agent, resp.model)))
    resp = run(model.complete(request(), on_event=events.append))
    assert resp.text == "from fallback" and resp.model == "claude-haiku-5-5"
    assert [r.body["model"] for r in messages_server.requests] == ["claude-sonnet-5-5"] * 3 + ["claude-haiku-5-5"]
    (fb,) = [e for e in events if e["type"] == "model_fallback"]
    assert fb["model"] == "claude-haiku-5-5" and "3 attempt(s) failed" in fb["reason"]
    assert recorded == [("backend", "claude-haiku-5-5")]
    assert resp.cost_usd > 0 and runtime.spend.run.usd == pytest.approx(resp.cost_usd)
    assert runtime.spend.model("claude-haiku-5-5").turns == 1 and runtime.spend.model("claude-sonnet-5-5").turns == 0


def test_huge_retry_after_fails_over_to_the_fallback(messages_server: MessagesServer) -> None:
    """The fallback is called at once: a retry-after we refuse to honour does not pause anyone."""
    messages_server.script("backend", Reply.error(429, "rate_limit_error", retry_after="3600"), Reply(text="fb"))
    st = settings(
        models=ModelsSettings(fallback=["claude-haiku-5-5"], request_timeout_s=2),
        retry=RetrySettings(max_attempts=3, base_delay_s=0.01, max_wait_s=5),
    )
    model, runtime = managed(st=st)
    assert run(model.complete(request())).text == "fb"
    first, second = messages_server.requests
    assert (first.body["model"], second.body["model"]) == ("claude-sonnet-5-5", "claude-haiku-5-5")
    assert slept(runtime) == [] and runtime.governor.paused_for == 0


def test_circuit_breaker_opens_fails_fast_then_recovers(messages_server: MessagesServer) -> None:
    st = settings(
        retry=RetrySettings(max_attempts=2, base_delay_s=0.0, max_wait_s=0.1),
        circuit_breaker=CircuitBreakerSettings(failure_threshold=3, cooldown_s=0.3),
    )
    model, runtime = managed(st=st)
    messages_server.script("backend", *[Reply.error(500, "api_error")] * 3)
    with pytest.raises(ModelError, match="2 attempt"):
        run(model.complete(request()))
    with pytest.raises(ModelError, match="circuit breaker open after 3 consecutive failures"):
        run(model.complete(request()))
    assert len(messages_server.requests) == 3  # the second call never reached the server after the 3rd failure
    assert runtime.breakers["claude-sonnet-5-5"].is_open
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    clock.advance(0.29)
    with pytest.raises(ModelError, match="circuit breaker open"):
        run(model.complete(request()))
    clock.advance(0.02)
    assert run(model.complete(request())).text == "ok"  # half-open trial succeeds and closes it
    assert not runtime.breakers["claude-sonnet-5-5"].is_open
    assert runtime.breakers["claude-sonnet-5-5"].failures == 0


def test_open_breaker_routes_straight_to_the_fallback(messages_server: MessagesServer) -> None:
    st = settings(
        retry=RetrySettings(max_attempts=1, base_delay_s=0.0, max_wait_s=0.1),
        circuit_breaker=CircuitBreakerSettings(failure_threshold=1, cooldown_s=60),
        models=ModelsSettings(fallback=["claude-haiku-5-5"], request_timeout_s=2),
    )
    model, _ = managed(st=st)
    messages_server.script("backend", Reply.error(529, "overloaded_error"))
    assert run(model.complete(request())).model == "claude-haiku-5-5"
    assert run(model.complete(request())).model == "claude-haiku-5-5"
    models = [r.body["model"] for r in messages_server.requests]
    assert models == ["claude-sonnet-5-5", "claude-haiku-5-5", "claude-haiku-5-5"]


# --------------------------------------------------------------------------------------------------
# The suite's network guard


def test_default_endpoint_in_tests_is_a_closed_loopback_port() -> None:
    """Without a loopback server, AnthropicModel hits the guard's 127.0.0.1:9, never the real API."""
    model = AnthropicModel("claude-sonnet-5-5", settings=settings())
    with pytest.raises(ModelError, match=r"no response from the Messages API at http://127\.0\.0\.1:9") as info:
        run(model.complete(request()))
    assert "ANTHROPIC_BASE_URL" in (info.value.hint or "")


@pytest.mark.parametrize("base_url", ["https://api.anthropic.com", None], ids=["explicit", "sdk-default"])
def test_guard_refuses_the_real_api_host(monkeypatch: pytest.MonkeyPatch, base_url: str | None) -> None:
    if base_url is None:
        monkeypatch.delenv("ANTHROPIC_BASE_URL")  # the SDK falls back to https://api.anthropic.com
    else:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", base_url)
    model = AnthropicModel("claude-sonnet-5-5", settings=settings())
    with pytest.raises(ModelError) as info:
        run(model.complete(request()))
    chain: list[BaseException] = []
    exc: BaseException | None = info.value
    while exc is not None:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert any(isinstance(e, NetworkAccessError) for e in chain), [type(e) for e in chain]


def test_build_params_is_json_stable() -> None:
    model = AnthropicModel("claude-sonnet-5-5")
    a = json.dumps(model.build_params(request(agent="a")))
    b = json.dumps(model.build_params(request(agent="b")))
    assert a == b  # agent/task are routing metadata, never part of the prompt


def test_importing_squad_models_does_not_import_the_sdk() -> None:
    code = (
        "import sys\n"
        "import squad.models as m\n"
        "from squad.config import Settings\n"
        "rt = m.ModelRuntime.from_settings(Settings())\n"
        "model = m.create_model('claude-sonnet-5-5', settings=Settings(), runtime=rt)\n"
        "assert 'anthropic' not in sys.modules and 'httpx2' not in sys.modules, 'SDK imported too early'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
