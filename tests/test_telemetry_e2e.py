"""Traces end to end: `squad run` in a child process exports over real OTLP/HTTP to a loopback collector.

The collector (tests/otlp_collector.py) decodes the protobuf the real exporter sends, so these tests check
what actually leaves the machine: the span tree of a scripted run, the GenAI attributes and times of every
model call against the journal's own events, that no prompt text or secret is exported by default (a fake
API key and a secret token in the environment, secret-looking text in a tool result), that `content = true`
exports text with the secrets redacted, that an interrupted run still flushes its spans, and that without
telemetry no `opentelemetry` module is imported at all, while telemetry on without the extra is a clear error.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import git
from otlp_collector import CollectedSpan, OtlpCollector

FIXTURES = Path(__file__).parent / "fixtures"
SCRIPT = FIXTURES / "run_traced.yaml"
PY = sys.executable
TASK = "add a health check PROMPT-TEXT-7f3a"
API_KEY = "sk-ant-api03-FAKE-otel-key-0123456789abcdef"
TOKEN = "plain-words-token-value-9137"  # a secret by its variable's name, not by its shape
HEADER = "hdr-s3cret-value-42"
# In the repo, read by the backend: its result is in the journal (the transcript) and must not be exported.
CONFIG_ENV = (
    "DB_URL=postgres://app:hunter2-pw@db.internal/app\n"
    "GITHUB_TOKEN=ghp_0123456789abcdefghijABCDEFGHIJ012345\n"
    "NOTE=CONFIG-FILE-TEXT\n"
)
CHARTERS = {
    "lead": "name: lead\nrole: tech lead\ntools: [read, team]\n",
    "backend": "name: backend\nrole: backend engineer\ntools: [read, write, team]\nowns: ['*.py']\n",
    "tester": "name: tester\nrole: test engineer\ntools: [read, write, team]\nowns: ['*.md']\n",
    "reviewer": "name: reviewer\nrole: code reviewer\ntools: [read]\nreviewer: true\n",
}
#: Text that is only ever prompt, model output, tool result or a secret: none of it may be in a default trace.
NEVER_BY_DEFAULT = [
    "PROMPT-TEXT",
    "GOAL-API-TEXT",
    "MODEL-TEXT",
    "SUMMARY-TEXT",
    "VERDICT-TEXT",
    "FINDING-TEXT",
    "CONFIG-FILE-TEXT",
    "hunter2",
    "ghp_0123456789",
]
SECRETS = [API_KEY, TOKEN, HEADER, "hunter2", "ghp_0123456789"]


def _setup(repo: Path, settings: str = "") -> None:
    agents = repo / ".squad" / "agents"
    agents.mkdir(parents=True)
    for name, charter in CHARTERS.items():
        (agents / f"{name}.md").write_text(f"---\n{charter}---\nYou are the {name}.\n")
    test = f"{PY} -m compileall -q ."
    (repo / ".squad" / "squad.toml").write_text(f'[commands]\ntest = "{test}"\n{settings}')
    (repo / ".gitignore").write_text(".squad/runs/\n__pycache__/\n")
    (repo / "config.env").write_text(CONFIG_ENV)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "squad setup")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env |= {"ANTHROPIC_API_KEY": API_KEY, "DEPLOY_TOKEN": TOKEN, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    return env | extra


def _squad(repo: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, *args], cwd=repo, capture_output=True, text=True, timeout=90, env=env)


def _events(repo: Path, run: str) -> list[dict[str, Any]]:
    path = repo / ".squad" / "runs" / run / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _ns(ts: float) -> int:
    return int(ts * 1_000_000_000)


def _texts(spans: list[CollectedSpan]) -> str:
    return "\n".join(text for s in spans for text in s.strings())


@pytest.mark.timeout(120)
def test_a_run_exports_one_trace_with_the_span_tree_and_genai_attributes(repo: Path) -> None:
    _setup(repo)
    with OtlpCollector() as collector:
        env = _env(OTEL_EXPORTER_OTLP_ENDPOINT=collector.url, OTEL_EXPORTER_OTLP_HEADERS=f"x-collector-auth={HEADER}")
        out = _squad(repo, "-m", "squad", "run", TASK, "--json", "--model", f"scripted:{SCRIPT}", env=env)
        assert out.returncode == 0, out.stderr + out.stdout
    run = json.loads(out.stdout)["run"]
    events = _events(repo, run)
    spans = collector.spans
    # OTLP over HTTP to /v1/traces, with the standard headers variable honoured; one trace, one root
    assert set(collector.paths) == {"/v1/traces"}
    assert all(h.get("x-collector-auth") == HEADER for h in collector.headers)
    assert {s.trace_id for s in spans} == {spans[0].trace_id}
    root = collector.one("squad run")
    assert root.parent_id == "" and [s for s in spans if not s.parent_id] == [root]
    assert root.attributes["squad.run.id"] == run and root.attributes["squad.run.status"] == "done"
    assert root.status_code == 1  # OK
    assert root.resource["service.name"] == "squad"
    started = next(e for e in events if e["type"] == "run_started")
    finished = next(e for e in events if e["type"] == "run_finished")
    assert (root.start, root.end) == (_ns(started["ts"]), _ns(finished["ts"]))

    # the run's children: context, plan, every round (work and review), integration
    children = [c.name for c in collector.children(root)]  # by start time: api and notes run side by side
    assert children[:3] == ["context", "tests", "plan"] and children[-1] == "integration"
    baseline = collector.children(root)[1]  # the test command on the base commit, before anyone is paid
    assert baseline.attributes["squad.tests.where"] == "baseline" and baseline.attributes["squad.tests.passed"]
    assert sorted(children[3:-1]) == sorted(
        [f"{kind} {task} round 0" for kind in ("work", "review") for task in ("api", "notes")]
        + ["work notes round 1", "review notes round 1"]
    )
    work = collector.one("work notes round 1")
    assert (work.attributes["squad.agent"], work.attributes["squad.task.round"]) == ("backend", 1)
    task_started = next(e for e in events if e["type"] == "task_started" and e["task"] == "notes" and e["round"] == 1)
    committed = next(e for e in events if e["type"] == "task_committed" and e["task"] == "notes" and e["round"] == 1)
    assert (work.start, work.end) == (_ns(task_started["ts"]), _ns(committed["ts"]))
    rejected = collector.one("review notes round 0")
    assert rejected.attributes["squad.verdict"] == "reject" and rejected.attributes["squad.findings"] == 1
    # a review holds its tests and its reviewer's session; the integration its merges, ledger commit and tests
    assert sorted(c.name for c in collector.children(rejected)) == ["invoke_agent reviewer", "tests"]
    assert sorted(c.name for c in collector.children(collector.one("integration"))) == [
        "commit decisions",
        "merge api",
        "merge notes",
        "tests",
    ]
    # the plan holds the lead's session (it reads before planning) with its model call; each work round its
    # author's session
    [lead] = collector.children(collector.one("plan"))
    assert lead.name == "invoke_agent lead"
    assert [c.name for c in collector.children(lead)] == [f"chat scripted:{SCRIPT}", "execute_tool submit_plan"]
    assert [c.name for c in collector.children(work)] == ["invoke_agent backend"]

    # every model call: one `chat` span with its GenAI attributes and the event's own times and tokens
    calls = [e for e in events if e["type"] == "model_call"]
    chats = sorted(collector.named(f"chat scripted:{SCRIPT}"), key=lambda s: s.end)
    assert len(chats) == len(calls) == 9
    for span, call in zip(chats, sorted(calls, key=lambda e: e["ts"]), strict=True):
        a, u = span.attributes, call["usage"]
        assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "squad.scripted"
        assert a["gen_ai.request.model"] == f"scripted:{SCRIPT}" and a["gen_ai.response.model"] == "scripted"
        assert a["gen_ai.agent.name"] == call["agent"]
        total_input = u["input_tokens"] + u["cache_creation_input_tokens"] + u["cache_read_input_tokens"]
        assert a["gen_ai.usage.input_tokens"] == total_input
        assert a["gen_ai.usage.output_tokens"] == u["output_tokens"]
        assert a["gen_ai.usage.cache_creation.input_tokens"] == u["cache_creation_input_tokens"]
        assert a["gen_ai.usage.cache_read.input_tokens"] == u["cache_read_input_tokens"]
        assert a["gen_ai.response.finish_reasons"] == [call["stop_reason"]]
        assert span.kind == 3  # CLIENT
        assert span.end == _ns(call["ts"]) and span.start == _ns(call["ts"] - call["latency_s"])
        parent = collector.parent(span)
        assert parent.name == f"invoke_agent {call['agent']}"  # the lead's planning is an agent session too
    assert sum(s.attributes["gen_ai.usage.cache_read.input_tokens"] for s in chats) > 0  # the shared prefix
    slow = next(s for s in chats if s.end - s.start >= 100_000_000)  # the 120 ms call is 120 ms long
    assert slow.attributes["gen_ai.agent.name"] == "backend"

    # every tool call: an `execute_tool` span under its agent's session, timed by the event's duration
    tool_events = [e for e in events if e["type"] == "agent.tool_call"]
    tools = [s for s in spans if s.name.startswith("execute_tool ")]
    assert len(tools) == len(tool_events) and len(tools) >= 10
    read = collector.one("execute_tool read_file")
    assert read.attributes["gen_ai.tool.name"] == "read_file" and "gen_ai.tool.call.result" not in read.attributes
    assert collector.parent(read).name == "invoke_agent backend"
    read_event = next(e for e in tool_events if e["name"] == "read_file")
    assert "CONFIG-FILE-TEXT" in read_event["result"]  # the journal has it; the trace must not
    assert read.end == _ns(read_event["ts"]) and read.start == _ns(read_event["ts"] - read_event["duration_s"])

    # by default, no prompt, model text, tool result or secret in any name, attribute or event
    exported = _texts(spans)
    for text in [*NEVER_BY_DEFAULT, *SECRETS]:
        assert text not in exported, text
    # ... and `squad run` wrote the report page and said where
    page = json.loads(out.stdout)["report_html"]
    assert page == str(repo / ".squad" / "runs" / run / "report.html") and Path(page).stat().st_size > 1000


@pytest.mark.timeout(120)
def test_content_true_exports_text_but_never_a_secret(repo: Path) -> None:
    with OtlpCollector() as collector:
        _setup(repo, f'[telemetry]\notlp_endpoint = "{collector.url}"\ncontent = true\n')
        task = f"{TASK} (deploy with {TOKEN}, key {API_KEY})"
        out = _squad(repo, "-m", "squad", "run", task, "--json", "--model", f"scripted:{SCRIPT}", env=_env())
        assert out.returncode == 0, out.stderr + out.stdout
    root = collector.one("squad run")
    request = root.attributes["squad.request"]
    assert request.startswith("add a health check PROMPT-TEXT-7f3a (deploy with [redacted], key [redacted])")
    assert "GOAL-API-TEXT" in collector.one("plan").attributes["squad.plan"]
    result = collector.one("execute_tool read_file").attributes["gen_ai.tool.call.result"]
    assert "CONFIG-FILE-TEXT" in result and "db.internal/app" in result and "hunter2" not in result
    assert "GITHUB_TOKEN=[redacted]" in result
    assert "FINDING-TEXT" in collector.one("review notes round 0").attributes["squad.findings.text"]
    exported = _texts(collector.spans)
    for secret in SECRETS:
        assert secret not in exported, secret


@pytest.mark.timeout(120)
def test_an_interrupted_run_still_exports_its_spans(repo: Path, tmp_path: Path) -> None:
    _setup(repo)
    script = tmp_path / "slow.yaml"
    script.write_text(
        SCRIPT.read_text()
        .replace('text: "MODEL-TEXT reading the config first."', "latency_ms: 60000", 1)
        .replace("        latency_ms: 120\n", "", 1)
    )
    with OtlpCollector() as collector:
        env = _env(OTEL_EXPORTER_OTLP_ENDPOINT=collector.url)
        proc = subprocess.Popen(
            [PY, "-m", "squad", "run", TASK, "--model", f"scripted:{script}"],
            cwd=repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        run = _wait_for(repo, proc, lambda e: e["type"] == "agent.turn_start" and e["task"] == "api")
        proc.send_signal(signal.SIGINT)
        _out, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, stderr
    root = collector.one("squad run")
    assert root.attributes["squad.run.id"] == run and root.attributes["squad.run.status"] == "interrupted"
    interrupted = next(e for e in _events(repo, run) if e["type"] == "interrupted")
    assert root.end == _ns(interrupted["ts"])
    session = next(s for s in collector.named("invoke_agent backend") if collector.parent(s).name == "work api round 0")
    assert session.attributes["squad.stop_reason"] == "cancelled" and session.status_code == 2
    assert collector.one("plan").end > 0  # what happened before the Ctrl-C is there too


def _wait_for(repo: Path, proc: subprocess.Popen[str], match: Any, timeout: float = 60) -> str:
    runs = repo / ".squad" / "runs"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in runs.glob("*/events.jsonl") if runs.exists() else ():
            if any(match(e) for e in _events(repo, path.parent.name)):
                return path.parent.name
        if proc.poll() is not None:
            raise AssertionError(f"squad exited ({proc.returncode}) before the event: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no matching event within {timeout}s")


@pytest.mark.timeout(120)
def test_without_telemetry_no_opentelemetry_module_is_imported(repo: Path) -> None:
    _setup(repo)
    out = _squad(
        repo, "-X", "importtime", "-m", "squad", "run", TASK, "--json", "--model", f"scripted:{SCRIPT}", env=_env()
    )
    assert out.returncode == 0, out.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")]
    assert "squad.infra.telemetry" in imported  # the run did go through the telemetry switch ...
    assert not [m for m in imported if m.startswith("opentelemetry")]  # ... and imported nothing of the SDK


@pytest.mark.timeout(60)
def test_telemetry_on_without_the_extra_is_a_clear_error(repo: Path, tmp_path: Path) -> None:
    _setup(repo)
    hidden = tmp_path / "no-otel"
    (hidden / "opentelemetry").mkdir(parents=True)  # shadows the installed packages, as if never installed
    (hidden / "opentelemetry" / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    env = _env(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", PYTHONPATH=str(hidden))
    out = _squad(repo, "-m", "squad", "run", TASK, "--model", f"scripted:{SCRIPT}", env=env)
    assert out.returncode == 2, out.stderr
    assert "traces are on (OTEL_EXPORTER_OTLP_ENDPOINT is set)" in out.stderr
    assert "pip install 'squad-agents[otel]'" in out.stderr and "Traceback" not in out.stderr
    assert not (repo / ".squad" / "runs").exists() or not list((repo / ".squad" / "runs").iterdir())
