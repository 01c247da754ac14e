"""End to end through the CLI in a child process: `squad run` with the real AnthropicModel against the
loopback Messages-API server, `kill -9` then `--resume`, a budget stop, a real SIGINT, invalid plans.

Nothing of ours is mocked: the real SDK over real HTTP, real git worktrees, real tools, real signals.
Synchronisation is by polling the run journal (events.jsonl), never by sleeping a guessed time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import git
from messages_server import MessagesServer, RecordedRequest, Reply

API_KEY = "sk-ant-e2e-0123456789"
PY = sys.executable

CHARTERS = {
    "lead": "name: lead\nrole: tech lead\ntools: [read, team]\n",
    "backend": "name: backend\nrole: backend engineer\ntools: [read, write, run, team]\nowns: ['*.py']\n",
    "tester": "name: tester\nrole: test engineer\ntools: [read, write, team]\nowns: ['*.md']\n",
    "reviewer": "name: reviewer\nrole: code reviewer\ntools: [read]\nreviewer: true\n",
}

# Run by the `run` tool and as the test command: prints what a child process can see of our secrets,
# and fails (exit 3) when it sees any, so a passing integration test also proves the scrubbing.
ENVDUMP = """import os, sys
leaked = sorted(k for k, v in os.environ.items() if k.startswith("ANTHROPIC_") or "TOKEN" in k or "sk-ant-" in v)
print("LEAKED:", leaked)
sys.exit(3 if leaked else 0)
"""


def _setup(repo: Path, agents: list[str], settings: str = "", test: str = f"{PY} envdump.py") -> None:
    agents_dir = repo / ".squad" / "agents"
    agents_dir.mkdir(parents=True)
    for name in agents:
        (agents_dir / f"{name}.md").write_text(f"---\n{CHARTERS[name]}---\nYou are the {name}.\n")
    (repo / ".squad" / "squad.toml").write_text(
        f'[commands]\ntest = "{test}"\nallowed = ["{PY} envdump.py"]\n'
        "[retry]\nbase_delay_s = 0.01\n" + settings  # the injected failures are retried at once
    )
    (repo / "envdump.py").write_text(ENVDUMP)
    (repo / ".gitignore").write_text(".squad/runs/\n__pycache__/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "squad setup")


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}


def _squad(
    repo: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "squad", *args], cwd=repo, capture_output=True, text=True, timeout=timeout, env=env or _env()
    )


def _popen(repo: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PY, "-m", "squad", *args], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _events(repo: Path, run: str) -> list[dict[str, Any]]:
    """The run's events; unreadable (torn) lines are skipped, as the journal's reader does."""
    out = []
    for line in (repo / ".squad" / "runs" / run / "events.jsonl").read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _wait_for_event(
    repo: Path, proc: subprocess.Popen[str], match: Callable[[dict[str, Any]], bool], timeout: float = 60
) -> str:
    """Poll the journal of the (only) run until an event matches; return the run id."""
    runs_dir = repo / ".squad" / "runs"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in runs_dir.glob("*/events.jsonl") if runs_dir.exists() else ():
            if any(match(e) for e in _events(repo, path.parent.name)):
                return path.parent.name
        if proc.poll() is not None:
            raise AssertionError(f"squad exited ({proc.returncode}) before the event: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no matching event within {timeout}s: {proc.communicate()}")


def _worktrees(repo: Path, run: str) -> list[Path]:
    common = Path(git(repo, "rev-parse", "--git-common-dir").strip()).resolve()
    return sorted((common / "squad" / "worktrees" / run).glob("*"))


def _tool(name: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "input": args}


APPROVE = _tool("submit_verdict", verdict="approve", summary="Looks right.", findings=[])


# ---------------------------------------------------------------------------------------------------------
# 1. the real AnthropicModel, through the real SDK, against the loopback Messages API


def _shared_prefix(req: RecordedRequest) -> tuple[str, int]:
    """(JSON of tools + system blocks up to the last cache_control, number of system blocks in it)."""
    system = req.body["system"]
    marks = [i for i, b in enumerate(system) if b.get("cache_control")]
    assert len(marks) == 1, f"one cache breakpoint expected, got {marks}"
    return json.dumps([req.body["tools"], system[: marks[0] + 1]]), marks[0] + 1


@pytest.mark.timeout(120)
def test_run_with_the_anthropic_model_over_http(repo: Path) -> None:
    _setup(repo, ["lead", "backend", "tester", "reviewer"], '[models]\ndefault = "claude-sonnet-5-5"\n')
    plan = [
        {"id": "api", "agent": "backend", "goal": "Add app.py with health().", "files": ["app.py"]},
        {"id": "docs", "agent": "tester", "goal": "Write HEALTH.md.", "files": ["HEALTH.md"]},
    ]
    with MessagesServer(api_key=API_KEY) as server:
        server.script(
            "lead/plan",
            Reply.error(529, "overloaded_error", "injected overload"),
            Reply(tool_calls=[_tool("submit_plan", tasks=plan)]),
        )
        server.script(
            "backend/api",
            Reply.error(529, "overloaded_error", "injected overload"),  # retried, and journaled
            Reply(text="Writing it.", tool_calls=[_tool("write_file", path="app.py", content="def health():\n")]),
            Reply(tool_calls=[_tool("run", command=f"{PY} envdump.py")]),
            Reply(tool_calls=[_tool("finish", summary="Added health()")]),
        )
        server.script(
            "tester/docs",
            Reply(tool_calls=[_tool("write_file", path="HEALTH.md", content="health() says ok\n")]),
            Reply(tool_calls=[_tool("finish", summary="Documented")]),
        )
        server.script("reviewer/api", Reply(tool_calls=[APPROVE]))
        # a mid-stream `error` event (after the first delta) on the reviewer's first call: also retried
        server.script(
            "reviewer/docs", Reply(text="Reading", stream_error="overloaded_error"), Reply(tool_calls=[APPROVE])
        )
        env = _env(ANTHROPIC_BASE_URL=server.url, ANTHROPIC_API_KEY=API_KEY, DEPLOY_TOKEN="tok-not-for-children")
        out = _squad(repo, "run", "add a health check", "--json", env=env)
        requests = list(server.requests)
        leftover = {k: server.pending(k) for k in ("lead/plan", "backend/api", "tester/docs", "reviewer/docs")}

    assert out.returncode == 0, out.stderr + out.stdout
    report = json.loads(out.stdout)
    run = report["run"]
    assert report["status"] == "done" and {t["status"] for t in report["tasks"]} == {"approved"}
    assert set(leftover.values()) == {0}  # every scripted reply was used
    # the branch holds the work of both tasks; the integration test command (envdump) passed
    assert git(repo, "show", f"squad/{run}:app.py") == "def health():\n"
    assert git(repo, "show", f"squad/{run}:HEALTH.md") == "health() says ok\n"
    assert report["tests"]["passed"] is True and "LEAKED: []" in report["tests"]["output_tail"]

    # the SDK sent our key on every request, to the real endpoint, streaming, with the claude model
    assert {r.status for r in requests} == {200, 529}
    # (anthropic 2.x sends the API key as `Authorization: Bearer`, 0.x as `x-api-key`; the server takes both)
    sent = {r.headers.get("x-api-key") or r.headers.get("authorization", "").removeprefix("Bearer ") for r in requests}
    assert sent == {API_KEY}
    assert {r.path.split("?")[0] for r in requests} == {"/v1/messages"}
    assert {r.body["model"] for r in requests} == {"claude-sonnet-5-5"} and all(r.body["stream"] for r in requests)

    # the shared prefix: byte-identical across every specialist (workers and the reviewer), with the
    # cache breakpoint at its end and the agent's own charter right after it
    specialists = [r for r in requests if r.agent != "lead"]
    assert {r.agent for r in specialists} == {"backend", "tester", "reviewer"}
    prefix, n_shared = _shared_prefix(specialists[0])
    for r in specialists:
        assert _shared_prefix(r) == (prefix, n_shared)
        assert [t["name"] for t in r.body["tools"]] == sorted(t["name"] for t in r.body["tools"])
        assert f"You are the {r.agent}." in r.body["system"][n_shared]["text"]
    assert run not in prefix and str(time.gmtime().tm_year) + "-" not in prefix  # no run id / timestamp in it

    # no secret reached the tool subprocess: the `run` tool's output went back to the model
    run_results = [
        block["content"]
        for r in server_requests_of(requests, "backend")
        for m in r.body["messages"]
        if m["role"] == "user"
        for block in m["content"]
        if isinstance(block, dict) and block.get("type") == "tool_result" and "LEAKED" in str(block.get("content"))
    ]
    assert run_results and all("LEAKED: []" in c and "exit code 0" in c.lower() for c in run_results), run_results

    # the injected failures were retried, and the journal says so (the planner's call too)
    events = _events(repo, run)
    retries = [e for e in events if e["type"] == "agent.model_retry"]
    by_agent = {e["agent"]: e for e in retries}  # tasks run in parallel: any order
    assert sorted((e["agent"], e["task"], e["attempt"]) for e in retries) == [
        ("backend", "api", 1),
        ("lead", "plan", 1),
        ("reviewer", "docs", 1),
    ]
    assert "529" in by_agent["backend"]["error"] and "overloaded_error" in by_agent["reviewer"]["error"]
    assert not [e for e in events if "text_delta" in e["type"]]  # streamed text stays out of the journal

    # `squad cost`: one call per successful request, cache writes and reads as the server reported them
    cost = json.loads(_squad(repo, "cost", run, "--json").stdout)
    total = cost["total"]
    torn = next(r for r in requests if r.agent == "reviewer" and r.task == "docs")  # the stream that failed
    billed = [r for r in requests if r.status == 200 and r is not torn]
    assert total["calls"] == len(billed) == len(requests) - 3
    # the planner sends the specialists' exact prefix (same tools, same context pack), so its call writes the
    # one cache entry and every specialist call reads it (the failed stream read it too, but was never billed)
    planner = next(r for r in requests if r.agent == "lead" and r.status == 200)
    assert _shared_prefix(planner) == (prefix, n_shared)
    assert total["cache_write_tokens"] == _cached_tokens(specialists[0])
    assert total["cache_read_tokens"] == _cached_tokens(specialists[0]) * (len(billed) - 1)
    assert total["input_tokens"] > 0 and total["output_tokens"] > 0 and total["cost_usd"] > 0
    assert cost["by_model"].keys() == {"claude-sonnet-5-5"}
    assert 0 < total["cache_hit_rate"] < 1 and total == report["usage"]["total"]
    human = _squad(repo, "cost", run)
    assert human.returncode == 0 and "cache" in human.stdout.lower()


def server_requests_of(requests: list[RecordedRequest], agent: str) -> list[RecordedRequest]:
    return [r for r in requests if r.agent == agent and r.status == 200]


def _cached_tokens(req: RecordedRequest) -> int:
    """The cache tokens the loopback server bills for this request's prefix (its own chars / 4 rule)."""
    system = req.body["system"]
    mark = max(i for i, b in enumerate(system) if b.get("cache_control"))
    return len(json.dumps([req.body.get("tools", []), system[: mark + 1]], sort_keys=True)) // 4


# ---------------------------------------------------------------------------------------------------------
# 2. kill -9 mid-run, then --resume


def _team_script(slow_ms: int, *, with_quick: bool = True, with_plan: bool = True) -> dict[str, Any]:
    """lead plans `quick` (backend) and `slow` (tester); `slow`'s first turn takes `slow_ms`."""
    plan = [
        {"id": "quick", "agent": "backend", "goal": "quick.py", "files": ["quick.py"]},
        {"id": "slow", "agent": "tester", "goal": "SLOW.md", "files": ["SLOW.md"]},
    ]
    scripts: list[dict[str, Any]] = []
    if with_plan:
        scripts.append({"agent": "lead", "task": "plan", "turns": [{"tool_calls": [_tool("submit_plan", tasks=plan)]}]})
    if with_quick:
        scripts += [
            {
                "agent": "backend",
                "task": "quick",
                "turns": [
                    {"tool_calls": [_tool("write_file", path="quick.py", content="Q = 1\n")]},
                    {"tool_calls": [_tool("finish", summary="quick")]},
                ],
            },
            {"agent": "reviewer", "task": "quick", "turns": [{"tool_calls": [APPROVE]}]},
        ]
    scripts += [
        {
            "agent": "tester",
            "task": "slow",
            "turns": [
                {"latency_ms": slow_ms, "tool_calls": [_tool("write_file", path="SLOW.md", content="slow\n")]},
                {"tool_calls": [_tool("finish", summary="slow")]},
            ],
        },
        {"agent": "reviewer", "task": "slow", "turns": [{"tool_calls": [APPROVE]}]},
    ]
    return {"version": 1, "scripts": scripts}


def _write_script(path: Path, script: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(script))
    return f"scripted:{path}"


@pytest.mark.timeout(120)
def test_kill_9_then_resume_does_not_redo_approved_work(repo: Path, tmp_path: Path) -> None:
    _setup(repo, ["lead", "backend", "tester", "reviewer"])
    model = _write_script(tmp_path / "first.yaml", _team_script(60_000))
    proc = _popen(repo, "run", "two files", "--model", model)
    run = _wait_for_event(repo, proc, lambda e: e["type"] == "task_approved" and e["task"] == "quick")
    _wait_for_event(repo, proc, lambda e: e["type"] == "agent.turn_start" and e["task"] == "slow")  # mid-call
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    registered = f"/squad/worktrees/{run}/"  # how git lists the run's worktrees (under the git common dir)
    assert registered in git(repo, "worktree", "list")  # the killed run left them registered
    events_path = repo / ".squad" / "runs" / run / "events.jsonl"
    before = _events(repo, run)
    assert not [e for e in before if e["type"] in ("interrupted", "run_finished")]  # no chance to clean up
    assert [e["task"] for e in before if e["type"] == "task_started"] == ["quick", "slow"] or [
        e["task"] for e in before if e["type"] == "task_started"
    ] == ["slow", "quick"]
    # kill -9 can tear the last line mid-write; make sure there is one, so resume must cope with it
    with events_path.open("ab") as fh:
        fh.write(b'{"ts": 1.0, "type": "task_sta')

    # The resume script has no entries for the planner or for `quick`: re-planning, or redoing the
    # approved task, would be a "no script entry" model error and fail the run.
    resume_script = _team_script(10, with_quick=False, with_plan=False)
    out = _squad(
        repo, "run", "--resume", run, "--json", "--model", _write_script(tmp_path / "resume.yaml", resume_script)
    )
    assert out.returncode == 0, out.stderr + out.stdout
    report = json.loads(out.stdout)
    assert report["status"] == "done" and report["run"] == run
    raw = events_path.read_bytes().splitlines()
    torn = raw.index(b'{"ts": 1.0, "type": "task_sta')  # kept (append-only), ended, and skipped
    after = _events(repo, run)[len(before) :]
    assert json.loads(raw[torn + 1])["type"] == "run_resumed"
    assert [e["task"] for e in after if e["type"] == "task_started"] == ["slow"]
    assert not [e for e in after if e.get("task") == "quick" and e["type"].startswith(("agent.", "model_call"))]
    assert not [e for e in after if e["type"] == "plan"]
    assert git(repo, "show", f"squad/{run}:quick.py") == "Q = 1\n"
    assert git(repo, "show", f"squad/{run}:SLOW.md") == "slow\n"
    assert _worktrees(repo, run) == []
    assert registered not in git(repo, "worktree", "list")  # ... and the finished resume removed them
    log = _squad(repo, "log", run)
    assert log.returncode == 0 and "run_resumed" in log.stdout

    # proof that the guard above bites: the resume script refuses a call for the approved task
    import asyncio

    from squad.errors import ModelError
    from squad.models import ModelRequest, ScriptedModel, TextBlock
    from squad.models.base import Message

    guard = ScriptedModel(resume_script)
    ask = ModelRequest(
        system=(), messages=(Message("user", (TextBlock("x"),)),), tools=(), agent="backend", task="quick"
    )
    with pytest.raises(ModelError, match="no script entry for agent 'backend' on task 'quick'"):
        asyncio.run(guard.complete(ask))


# ---------------------------------------------------------------------------------------------------------
# 3. a budget stop


@pytest.mark.timeout(90)
def test_budget_stop_before_the_call_that_would_exceed_it(repo: Path) -> None:
    _setup(repo, ["backend", "reviewer"], "[budgets]\nrun_usd = 0.2\n")
    with MessagesServer(api_key=API_KEY) as server:
        # 50,000 output tokens at $10/MTok: $0.50 spent after the first call, past run_usd = 0.2
        server.script(
            "backend",
            Reply(tool_calls=[_tool("write_file", path="a.py", content="A = 1\n")], usage={"output_tokens": 50_000}),
            Reply(tool_calls=[_tool("finish", summary="never sent")]),
        )
        env = _env(ANTHROPIC_BASE_URL=server.url, ANTHROPIC_API_KEY=API_KEY)
        out = _squad(repo, "run", "add a", "--agent", "backend", "--json", env=env)
        requests = list(server.requests)
    assert out.returncode == 1, out.stderr + out.stdout
    report = json.loads(out.stdout)
    assert [r.agent for r in requests] == ["backend"]  # the second call was never sent; no review either
    assert report["status"] == "failed" and report["cost_usd"] >= 0.5
    (task,) = report["tasks"]
    assert task["status"] == "failed"
    events = _events(repo, report["run"])
    status = next(e for e in events if e["type"] == "task_status")
    for text in (status["reason"], _squad(repo, "log", report["run"]).stdout):
        assert "budget run_usd would be exceeded" in text, text
        assert "budgets.run_usd" in text and "squad.toml" in text, text  # the key to raise
    stop = next(e for e in events if e["type"] == "agent.agent_stop")
    assert stop["stop_reason"] == "budget" and stop["turns"] == 2
    assert "budget run_usd" in report["error"] and "raise budgets.run_usd" in report["error"]  # printed as error:


@pytest.mark.timeout(120)
def test_a_resumed_run_keeps_its_spend_and_stops_where_the_original_would(repo: Path) -> None:
    """Budgets come back from the journal: the resumed run does not start counting from zero again."""
    _setup(repo, ["backend", "reviewer"], "[budgets]\nrun_output_tokens = 1500\n")
    write = Reply(tool_calls=[_tool("write_file", path="a.py", content="A = 1\n")], usage={"output_tokens": 1000})
    with MessagesServer(api_key=API_KEY) as server:
        server.script("backend", write, Reply(tool_calls=[_tool("finish", summary="a")], stall_s=60))
        env = _env(ANTHROPIC_BASE_URL=server.url, ANTHROPIC_API_KEY=API_KEY)
        proc = subprocess.Popen(
            [PY, "-m", "squad", "run", "add a", "--agent", "backend"],
            cwd=repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        run = _wait_for_event(repo, proc, lambda e: e["type"] == "agent.turn_start" and e.get("turn") == 2)
        while len(server.requests) < 2:  # the second call is in flight (the test's timeout is the failsafe)
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        spent = sum(e["usage"]["output_tokens"] for e in _events(repo, run) if e["type"] == "model_call")
        assert spent == 1000  # the killed call was never answered, so it cost nothing

        # Resumed, the attempt starts over: its first call is allowed (1,000 of 1,500 spent), its second is
        # refused before it is sent. With budgets starting from zero it would finish and go to review.
        server.script("backend", write, Reply(tool_calls=[_tool("finish", summary="a")]))
        server.script("reviewer", Reply(tool_calls=[APPROVE]))
        sent_before = len(server.requests)
        out = _squad(repo, "run", "--resume", run, "--json", env=env)
        resumed_requests = list(server.requests)[sent_before:]
    assert out.returncode == 1, out.stderr + out.stdout
    report = json.loads(out.stdout)
    assert [r.agent for r in resumed_requests] == ["backend"]
    assert report["status"] == "failed" and "budget run_output_tokens" in report["error"]
    assert report["usage"]["total"]["output_tokens"] == 2000


# ---------------------------------------------------------------------------------------------------------
# 4. Ctrl-C: a real SIGINT to the `squad run` process


@pytest.mark.timeout(120)
def test_sigint_saves_state_keeps_worktrees_and_resume_finishes(repo: Path, tmp_path: Path) -> None:
    _setup(repo, ["lead", "backend", "tester", "reviewer"])
    proc = _popen(repo, "run", "two files", "--model", _write_script(tmp_path / "first.yaml", _team_script(60_000)))
    # Ctrl-C while `slow` is inside its (60 s) model call
    run = _wait_for_event(repo, proc, lambda e: e["type"] == "agent.turn_start" and e["task"] == "slow")
    proc.send_signal(signal.SIGINT)
    _out, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert f"squad run --resume {run}" in stderr
    events = _events(repo, run)
    assert events[-1]["type"] == "interrupted"
    stop = next(e for e in events if e["type"] == "agent.agent_stop" and e["task"] == "slow")
    assert stop["stop_reason"] == "cancelled"
    assert (repo / ".squad" / "runs" / run / "events.jsonl").read_bytes().endswith(b"\n")
    assert any(p.name == "slow" for p in _worktrees(repo, run))  # kept for resume

    # `quick` may or may not have been approved before the signal: the resume script covers what is left
    approved = {e["task"] for e in events if e["type"] == "task_approved"}
    resume_script = _team_script(10, with_quick="quick" not in approved, with_plan=False)
    out = _squad(
        repo, "run", "--resume", run, "--json", "--model", _write_script(tmp_path / "resume.yaml", resume_script)
    )
    assert out.returncode == 0, out.stderr + out.stdout
    assert json.loads(out.stdout)["status"] == "done"
    assert git(repo, "show", f"squad/{run}:SLOW.md") == "slow\n" and _worktrees(repo, run) == []


@pytest.mark.timeout(60)
def test_ctrl_c_kills_a_running_test_command(repo: Path, tmp_path: Path) -> None:
    # The test command (the baseline, run before anyone works) hangs; Ctrl-C must not wait for it: its process
    # group is killed, state is saved, and squad exits 130 at once.
    hang = tmp_path / "hang.py"
    hang.write_text(
        f"import os, pathlib, time\npathlib.Path({str(tmp_path / 'hanging')!r}).write_text(str(os.getpid()))\n"
        f"time.sleep(120)\npathlib.Path({str(tmp_path / 'woke')!r}).write_text('woke')\n"
    )
    _setup(repo, ["backend", "reviewer"], test=f"{PY} {hang}")
    script = {
        "version": 1,
        "scripts": [
            {
                "agent": "backend",
                "turns": [
                    {"tool_calls": [_tool("write_file", path="a.py", content="A = 1\n")]},
                    {"tool_calls": [_tool("finish", summary="a")]},
                ],
            }
        ],
    }
    proc = _popen(repo, "run", "add a", "--agent", "backend", "--model", _write_script(tmp_path / "s.yaml", script))
    # The first run of the test command is the baseline, on the base commit before any specialist starts.
    _wait_for_event(repo, proc, lambda e: e["type"] == "context")
    marker = tmp_path / "hanging"
    while not (marker.exists() and marker.read_text()):  # the test command runs
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    hanging_pid = int(marker.read_text())
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)  # a failsafe, far less than the hanging command's 120 s
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "squad run --resume" in err
    with pytest.raises(ProcessLookupError):  # the test command's process group was killed ...
        os.kill(hanging_pid, 0)
    assert not (tmp_path / "woke").exists()  # ... before its sleep ended: squad did not wait for it
    events = [json.loads(line) for line in next((repo / ".squad" / "runs").iterdir()).joinpath("events.jsonl").open()]
    assert any(e["type"] == "interrupted" for e in events)


# ---------------------------------------------------------------------------------------------------------
# 5. invalid plans through the CLI

BAD_PLAN = [{"id": "ui", "agent": "frontend", "goal": "a page"}]
GOOD_PLAN = [{"id": "api", "agent": "backend", "goal": "a.py", "files": ["a.py"]}]


def _plan_script(*plans: list[dict[str, Any]]) -> dict[str, Any]:
    worker = {
        "agent": "backend",
        "task": "api",
        "turns": [
            {"tool_calls": [_tool("write_file", path="a.py", content="A = 1\n")]},
            {"tool_calls": [_tool("finish", summary="a")]},
        ],
    }
    lead = {"agent": "lead", "task": "plan", "turns": [{"tool_calls": [_tool("submit_plan", tasks=p)]} for p in plans]}
    return {"version": 1, "scripts": [lead, worker, {"agent": "reviewer", "turns": [{"tool_calls": [APPROVE]}]}]}


@pytest.mark.timeout(90)
def test_invalid_plan_is_sent_back_once_then_the_valid_one_runs(repo: Path, tmp_path: Path) -> None:
    _setup(repo, ["lead", "backend", "reviewer"])
    model = _write_script(tmp_path / "p.yaml", _plan_script(BAD_PLAN, GOOD_PLAN))
    out = _squad(repo, "run", "add a", "--json", "--model", model)
    assert out.returncode == 0, out.stderr + out.stdout
    report = json.loads(out.stdout)
    assert [t["id"] for t in report["tasks"]] == ["api"]
    (invalid,) = [e for e in _events(repo, report["run"]) if e["type"] == "plan_invalid"]
    assert invalid["attempt"] == 1 and "unknown agent 'frontend'" in invalid["errors"][0]
    assert git(repo, "show", f"squad/{report['run']}:a.py") == "A = 1\n"


@pytest.mark.timeout(90)
def test_twice_invalid_plan_fails_with_the_errors(repo: Path, tmp_path: Path) -> None:
    _setup(repo, ["lead", "backend", "reviewer"])
    twice_bad = [*BAD_PLAN, {"id": "api", "agent": "backend", "goal": "x", "depends_on": ["nope"]}]
    model = _write_script(tmp_path / "p.yaml", _plan_script(BAD_PLAN, twice_bad))
    out = _squad(repo, "run", "add a", "--model", model)
    assert out.returncode == 1, out.stderr + out.stdout
    assert "plan is invalid after one retry" in out.stderr
    assert "unknown agent 'frontend'" in out.stderr and "depends_on 'nope'" in out.stderr
    (run,) = [p.name for p in (repo / ".squad" / "runs").iterdir()]
    events = _events(repo, run)
    assert [e["attempt"] for e in events if e["type"] == "plan_invalid"] == [1, 2]
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "failed"
    assert not [e for e in events if e["type"] == "task_started"]


# ---------------------------------------------------------------------------------------------------------
# 6. no git process squad starts sees a secret


def test_no_git_subprocess_sees_a_secret(repo: Path, tmp_path: Path) -> None:
    real_git = shutil.which("git")
    assert real_git
    log = tmp_path / "git-envs.log"
    wrapper_dir = tmp_path / "bin"
    wrapper_dir.mkdir()
    wrapper = wrapper_dir / "git"
    wrapper.write_text(f'#!/bin/sh\nenv >> "{log}"\necho "---- $*" >> "{log}"\nexec "{real_git}" "$@"\n')
    wrapper.chmod(0o755)
    _setup(repo, ["lead", "backend", "reviewer"], test=f"{PY} -c pass")
    plan = [{"id": "api", "agent": "backend", "goal": "a.py", "files": ["a.py"]}]
    script = {
        "version": 1,
        "scripts": [
            {"agent": "lead", "task": "plan", "turns": [{"tool_calls": [_tool("submit_plan", tasks=plan)]}]},
            {
                "agent": "backend",
                "turns": [
                    {"tool_calls": [_tool("write_file", path="a.py", content="A = 1\n"), _tool("diff")]},
                    {"tool_calls": [_tool("record_decision", title="A is one", decision="A = 1.")]},
                    {"tool_calls": [_tool("finish", summary="a")]},
                ],
            },
            {"agent": "reviewer", "turns": [{"tool_calls": [_tool("diff"), APPROVE]}]},
        ],
    }
    env = _env(
        PATH=f"{wrapper_dir}{os.pathsep}{os.environ['PATH']}",
        ANTHROPIC_API_KEY="sk-ant-secret-value",
        DEPLOY_TOKEN="tok-not-for-children",
    )
    out = _squad(repo, "run", "add a", "--json", "--model", _write_script(tmp_path / "s.yaml", script), env=env)
    assert out.returncode == 0, out.stderr + out.stdout
    envs = log.read_text()
    assert envs.count("----") > 10  # squad ran git many times (worktrees, commits, merges, ledger, tools)
    assert "sk-ant-secret-value" not in envs and "tok-not-for-children" not in envs
    assert "ANTHROPIC_API_KEY" not in envs and "DEPLOY_TOKEN" not in envs
    # every git process of the run went through squad.infra.git (hooks off), not a helper of its own
    calls = [line for line in envs.splitlines() if line.startswith("---- ")]
    assert calls and all(line.startswith("---- -c core.hooksPath=/dev/null ") for line in calls), calls
