"""End to end through the CLI in a child process: `squad run --agent` with a `bedrock:` and a `vertex:` model, no
script and no Anthropic key, against the loopback Bedrock runtime and Vertex endpoint (tests/cloud_servers.py).

The real SDK clients sign (SigV4) or authenticate (a service-account JWT grant) every request; a 429 and an error
inside a stream are retried; the work is reviewed and merged; `squad cost` prices the calls under the provider's
name. Neither the credentials nor the provider variables reach the agents' commands, and no credential is written
to the run folder or printed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cloud_servers import AWS_SECRET_KEY, AWS_SESSION_TOKEN, BedrockServer, VertexServer
from conftest import git
from messages_server import MessagesServer, Reply
from test_run_e2e import APPROVE, _env, _events, _setup, _squad, _tool

PY = sys.executable
TASK = "add a health check"
TASK_ID = "add-a-health-check"
# The agent's `run` command and the test command: fails when it can see any provider variable or credential.
ENVDUMP = """import os, sys
names = ("AWS_", "GOOGLE_", "ANTHROPIC_", "CLOUDSDK_")
leaked = sorted(k for k in os.environ if k.startswith(names) or "TOKEN" in k or "CREDENTIALS" in k)
print("LEAKED:", leaked)
sys.exit(3 if leaked else 0)
"""


@contextmanager
def _bedrock(tmp_path: Path) -> Iterator[tuple[MessagesServer, str, dict[str, str], list[str]]]:
    with BedrockServer() as server:
        model = "bedrock:us.anthropic.claude-sonnet-4-5-20250929-v1:0"
        yield server, model, server.aws_env(), [AWS_SECRET_KEY, AWS_SESSION_TOKEN]


@contextmanager
def _vertex(tmp_path: Path) -> Iterator[tuple[MessagesServer, str, dict[str, str], list[str]]]:
    with VertexServer() as server:
        key = server.service_account_file(tmp_path)  # names the project: none in the environment
        env = {
            "GOOGLE_APPLICATION_CREDENTIALS": str(key),
            "CLOUD_ML_REGION": server.region,
            "ANTHROPIC_VERTEX_BASE_URL": f"{server.url}/v1",
        }
        private_key = json.loads(key.read_text())["private_key"].splitlines()[1]
        yield server, "vertex:claude-sonnet-4-5@20250929", env, [private_key, "ya29.loopback-access-token"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("provider", "throttled", "stream_error"),
    [
        (_bedrock, Reply.error(429, "ThrottlingException", "Too many requests"), "throttlingException"),
        (_vertex, Reply.error(429, "RESOURCE_EXHAUSTED", "Quota exceeded"), "overloaded_error"),
    ],
    ids=["bedrock", "vertex"],
)
def test_run_agent_on_a_cloud_provider(
    repo: Path, tmp_path: Path, provider: object, throttled: Reply, stream_error: str
) -> None:
    with provider(tmp_path) as (server, model, provider_env, secrets):  # type: ignore[operator]
        _setup(repo, ["backend", "reviewer"], f'[models]\ndefault = "{model}"\n')
        (repo / "envdump.py").write_text(ENVDUMP)
        git(repo, "commit", "-qam", "stricter envdump")
        server.script(
            f"backend/{TASK_ID}",
            throttled,
            Reply(text="Writing it.", tool_calls=[_tool("write_file", path="app.py", content="def health():\n")]),
            Reply(tool_calls=[_tool("run", command=f"{PY} envdump.py")]),
            Reply(tool_calls=[_tool("finish", summary="Added health()")]),
        )
        server.script(
            f"reviewer/{TASK_ID}", Reply(text="Reading", stream_error=stream_error), Reply(tool_calls=[APPROVE])
        )
        env = _env(**provider_env)
        env.pop("ANTHROPIC_API_KEY")  # a cloud user has none
        out = _squad(repo, "run", TASK, "--agent", "backend", "--json", env=env)
        requests = list(server.requests)
        leftover = server.pending(f"backend/{TASK_ID}") + server.pending(f"reviewer/{TASK_ID}")

    assert out.returncode == 0, out.stderr + out.stdout
    report = json.loads(out.stdout)
    run = report["run"]
    assert report["status"] == "done" and [t["status"] for t in report["tasks"]] == ["approved"]
    assert leftover == 0
    assert git(repo, "show", f"squad/{run}:app.py") == "def health():\n"
    assert report["tests"]["passed"] is True and "LEAKED: []" in report["tests"]["output_tail"]

    # every request went to the provider's route, authenticated (the server refuses anything else)
    assert [r.status for r in requests].count(429) == 1 and all(r.status in (200, 429) for r in requests)
    route = "/invoke-with-response-stream" if model.startswith("bedrock:") else ":streamRawPredict"
    assert all(r.path.endswith(route) for r in requests)
    tool_results = [
        block["content"]
        for r in requests
        if r.agent == "backend"
        for m in r.body["messages"]
        if m["role"] == "user"
        for block in m["content"]
        if isinstance(block, dict) and block.get("type") == "tool_result" and "LEAKED" in str(block.get("content"))
    ]
    assert tool_results and all("LEAKED: []" in c for c in tool_results), tool_results

    # the 429 and the error inside the stream were retried, and the journal says so
    retries = sorted((e["agent"], e["attempt"]) for e in _events(repo, run) if e["type"] == "agent.model_retry")
    assert retries == [("backend", 1), ("reviewer", 1)]

    # priced under the provider's name (regional endpoints: list price + 10%)
    cost = json.loads(_squad(repo, "cost", run, "--json", env=env).stdout)
    assert cost["by_model"].keys() == {model} and cost["total"]["cost_usd"] > 0
    assert cost["total"]["calls"] == len([r for r in requests if r.status == 200]) - 1  # the torn stream is unbilled

    # no credential in the run folder or the output
    folder = repo / ".squad" / "runs" / run
    written = "".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())
    for secret in secrets:
        assert secret not in written and secret not in out.stdout + out.stderr
