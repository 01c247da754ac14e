"""ScriptedModel: per-(agent, task) binding, simulated latency and usage, clear errors, journal replay."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from messages_server import MessagesServer, Reply
from model_fakes import ManualClock

from squad.config import RateLimitSettings, RetrySettings, Settings
from squad.errors import ConfigError, ModelError
from squad.models import (
    Message,
    ModelRequest,
    ModelResponse,
    ModelRuntime,
    ScriptedModel,
    SystemBlock,
    TextBlock,
    ToolSpec,
    create_model,
)

pytestmark = pytest.mark.timeout(30)

TOOLS = tuple(ToolSpec(n, n, {"type": "object"}) for n in ("finish", "read_file", "write_file"))

SCRIPT = """\
version: 1
scripts:
  - agent: backend
    task: add-api
    turns:
      - text: "Reading the code first."
        latency_ms: 50
        tool_calls:
          - {name: read_file, input: {path: app.py}}
      - tool_calls:
          - {name: finish, input: {summary: "Added /health"}}
  - agent: backend
    turns:
      - text: "any task"
  - agent: tester
    turns:
      - text: "I test."
        usage: {input_tokens: 7, output_tokens: 3, cache_read_input_tokens: 100}
        stop_reason: max_tokens
"""


def request(agent: str, task: str, tools: tuple[ToolSpec, ...] = TOOLS) -> ModelRequest:
    return ModelRequest(
        system=(SystemBlock("s"),), messages=(Message("user", (TextBlock("go"),)),), tools=tools, agent=agent, task=task
    )


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "script.yaml"
    path.write_text(SCRIPT)
    return path


def test_plays_turns_per_agent_and_task(script: Path) -> None:
    clock = ManualClock(autojump=True)
    model = ScriptedModel(script, sleep=clock.sleep)
    events: list[dict[str, Any]] = []

    async def main() -> list[ModelResponse]:
        # Arrival order interleaved on purpose: each pair follows its own entry.
        other = model.complete(request("backend", "other"))
        first = model.complete(request("backend", "add-api"), on_event=events.append)
        return [*await asyncio.gather(other, first), await model.complete(request("backend", "add-api"))]

    other, first, second = asyncio.run(main())
    assert clock.slept == [0.05]  # the turn's latency_ms, simulated
    assert other.text == "any task" and other.stop_reason == "end_turn"
    assert first.text == "Reading the code first." and first.stop_reason == "tool_use"
    assert [(t.name, t.input) for t in first.tool_uses] == [("read_file", {"path": "app.py"})]
    assert first.latency_s == pytest.approx(0.05)
    assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0
    assert second.tool_uses[0].input == {"summary": "Added /health"}
    assert events == [{"type": "text_delta", "text": "Reading the code first.", "agent": "backend", "task": "add-api"}]


def test_turn_usage_and_stop_reason_override(script: Path) -> None:
    resp = asyncio.run(ScriptedModel(script).complete(request("tester", "t")))
    assert (resp.usage.input_tokens, resp.usage.output_tokens, resp.usage.cache_read_input_tokens) == (7, 3, 100)
    assert resp.stop_reason == "max_tokens"


def test_running_out_of_turns_names_file_line_and_entry(script: Path) -> None:
    model = ScriptedModel(script)

    async def main() -> None:
        for _ in range(3):
            await model.complete(request("backend", "add-api"))

    with pytest.raises(ModelError, match=r"script entry #1 \(agent 'backend', task 'add-api'\) has run out") as info:
        asyncio.run(main())
    assert info.value.path == script and info.value.line == 3
    assert str(info.value).startswith(f"{script}:3: ")


def test_no_matching_entry_is_a_clear_error(script: Path) -> None:
    model = ScriptedModel(script)
    with pytest.raises(
        ModelError, match=r"no script entry for agent 'reviewer'.*agents in the script: backend, tester"
    ):
        asyncio.run(model.complete(request("reviewer", "x")))

    async def two_backend_tasks() -> None:
        await model.complete(request("backend", "one"))
        await model.complete(request("backend", "add-api"))  # the add-api entry is still free
        await model.complete(request("backend", "three"))

    with pytest.raises(ModelError, match=r"every entry for 'backend' is bound"):
        asyncio.run(two_backend_tasks())


def test_tool_not_offered_is_refused(script: Path) -> None:
    with pytest.raises(
        ModelError, match=r"calls tool 'read_file', which the request does not offer \(offered: finish\)"
    ):
        asyncio.run(ScriptedModel(script).complete(request("backend", "add-api", tools=TOOLS[:1])))


@pytest.mark.parametrize(
    ("text", "pattern", "line"),
    [
        ("version: 2\nscripts: []\n", "needs `version: 1`", 1),
        ("version: 1\nscripts:\n  - turns: [{text: hi}]\n", r"entry #1 needs an `agent:`", 3),
        ("version: 1\nscripts:\n  - agent: a\n    turns: []\n", "non-empty `turns:`", 3),
        (
            "version: 1\nscripts:\n  - agent: a\n    turns: [{txt: hi}]\n",
            r"turn 1 is malformed \(unknown keys: txt\)",
            3,
        ),
        ("version: 1\nscripts:\n  - agent: a\n    turns: [{tool_calls: [{input: {}}]}]\n", "turn 1 is malformed", 3),
        ("version: 1\nscripts: [\n", "invalid YAML", 3),
    ],
)
def test_malformed_scripts_are_config_errors_with_lines(tmp_path: Path, text: str, pattern: str, line: int) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=pattern) as info:
        ScriptedModel(path)
    assert info.value.path == path and info.value.line == line


def test_json_file_and_dict_scripts(tmp_path: Path) -> None:
    data = {"version": 1, "scripts": [{"agent": "a", "turns": [{"tool_calls": [{"name": "finish", "input": {}}]}]}]}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(data))
    for model in (ScriptedModel(path), ScriptedModel(data)):
        resp = asyncio.run(model.complete(request("a", "t")))
        assert resp.stop_reason == "tool_use" and resp.tool_uses[0].name == "finish"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="invalid JSON") as info:
        ScriptedModel(path)
    assert info.value.line == 1


def test_missing_script_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read model script"):
        ScriptedModel(tmp_path / "nope.yaml")


def test_create_model_scripted_goes_through_the_runtime(script: Path) -> None:
    st = Settings(
        rate_limits=RateLimitSettings(requests_per_minute=0, input_tokens_per_minute=0, output_tokens_per_minute=0)
    )
    recorded: list[tuple[str, str]] = []
    runtime = ModelRuntime.from_settings(st, recorder=lambda req, resp: recorded.append((req.agent, resp.text)))
    backend = create_model(f"scripted:{script}", settings=st, runtime=runtime)
    tester = create_model(f"scripted:{script}", settings=st, runtime=runtime)  # same bindings: one backend
    asyncio.run(backend.complete(request("backend", "x")))
    resp = asyncio.run(tester.complete(request("tester", "y")))
    assert resp.cost_usd == 0
    assert recorded == [("backend", "any task"), ("tester", "I test.")]
    assert runtime.spend.run.turns == 2
    with pytest.raises(ConfigError, match="unknown model name 'gpt-4'"):
        create_model("gpt-4", settings=st, runtime=runtime)
    bad_fallback = Settings(models={"fallback": ["claude-haiku-5-5", "gpt-4"]})
    with pytest.raises(ConfigError, match="unknown model name 'gpt-4'"):
        create_model(f"scripted:{script}", settings=bad_fallback, runtime=runtime)


def test_replay_from_journal_reproduces_a_real_run(tmp_path: Path, messages_server: MessagesServer) -> None:
    """Record a run through the real SDK (the recorder writes responses.jsonl), then replay offline."""
    messages_server.script(
        "backend/add-api",
        Reply(text="first", tool_calls=[{"name": "read_file", "input": {"path": "x"}}]),
        Reply(tool_calls=[{"name": "finish", "input": {"summary": "done"}}]),
    )
    st = Settings(
        rate_limits=RateLimitSettings(requests_per_minute=0, input_tokens_per_minute=0, output_tokens_per_minute=0)
    )
    journal = tmp_path / "responses.jsonl"
    counters: dict[tuple[str, str], int] = {}

    def recorder(req: ModelRequest, resp: ModelResponse) -> None:
        key = (req.agent, req.task)
        counters[key] = counters.get(key, 0) + 1
        row = {"agent": req.agent, "task": req.task, "index": counters[key] - 1, "response": resp.to_dict()}
        with journal.open("a") as fh:
            fh.write(json.dumps(row) + "\n")

    runtime = ModelRuntime.from_settings(st, recorder=recorder)
    model = create_model("claude-sonnet-5-5", settings=st, runtime=runtime)

    async def play(m: Any) -> list[ModelResponse]:
        return [
            await m.complete(request("backend", "add-api")),
            await m.complete(request("tester", "t")),
            await m.complete(request("backend", "add-api")),
        ]

    original = asyncio.run(play(model))
    replay = ScriptedModel.from_journal(tmp_path)
    again = asyncio.run(play(replay))
    assert [r.to_dict() for r in again] == [r.to_dict() for r in original]
    with pytest.raises(ModelError, match=r"no recorded response for agent 'backend' on task 'add-api', call #2"):
        asyncio.run(replay.complete(request("backend", "add-api")))


def test_replay_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"responses\.jsonl not found"):
        ScriptedModel.from_journal(tmp_path)
    (tmp_path / "responses.jsonl").write_text('{"agent": "a", "task": "t", "index": 0, "response": {}}\n\n{bad\n')
    with pytest.raises(ModelError, match="unreadable recorded response") as info:
        ScriptedModel.from_journal(tmp_path)
    assert info.value.line == 1


def test_scripted_error_turns_rehearse_failures(tmp_path: Path) -> None:
    """`error:` turns: transient ones are retried by the Retrying policy, others are final."""
    data = {
        "version": 1,
        "scripts": [
            {"agent": "a", "turns": [{"error": "overloaded_error"}, {"text": "second try"}]},
            {"agent": "b", "turns": [{"error": "invalid_request_error"}]},
        ],
    }
    path = tmp_path / "s.json"
    path.write_text(json.dumps(data))
    st = Settings(
        rate_limits=RateLimitSettings(requests_per_minute=0, input_tokens_per_minute=0, output_tokens_per_minute=0),
        retry=RetrySettings(max_attempts=3, base_delay_s=0.001, max_wait_s=0.01),
    )
    runtime = ModelRuntime.from_settings(st)
    model = create_model(f"scripted:{path}", settings=st, runtime=runtime)
    events: list[dict[str, Any]] = []
    assert asyncio.run(model.complete(request("a", "t"), on_event=events.append)).text == "second try"
    assert [e["type"] for e in events] == ["model_retry", "text_delta"]
    with pytest.raises(ModelError, match=r"scripted invalid_request_error \(script entry #2"):
        asyncio.run(model.complete(request("b", "t")))


def test_synthetic_usage_simulates_the_prompt_cache() -> None:
    model = ScriptedModel({"version": 1, "scripts": [{"agent": a, "turns": [{"text": "ok"}]} for a in "abc"]})
    shared = SystemBlock("shared context " * 200, cache=True)

    def call(agent: str, system: tuple[SystemBlock, ...]) -> ModelResponse:
        req = ModelRequest(system=system, messages=(Message("user", (TextBlock("go"),)),), tools=TOOLS, agent=agent)
        return asyncio.run(model.complete(req))

    first = call("a", (shared, SystemBlock("charter a")))
    second = call("b", (shared, SystemBlock("charter b is longer")))
    assert first.usage.cache_creation_input_tokens > 700 and first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation_input_tokens == 0
    assert 0 < second.usage.input_tokens < 20  # only the charter and the message are uncached
    # Without a breakpoint nothing is cached: the whole prompt is plain input.
    plain = call("c", (SystemBlock(shared.text), SystemBlock("charter c")))
    assert plain.usage.cache_creation_input_tokens == plain.usage.cache_read_input_tokens == 0
    assert plain.usage.input_tokens > 700
