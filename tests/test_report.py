"""`squad report`: the page model of a real run, the CLI, escaping, and the page in headless Chromium.

Runs are real: `squad demo` (the scripted team through the whole pipeline) and a `squad run` with the real
AnthropicModel against the loopback Messages API (priced, so its costs are not zero) whose task, plan,
findings, decisions and test output are full of HTML and `</script>`. The browser is Debian's Chromium,
driven over the DevTools protocol (tests/browser.py); `.ci/run` installs it, so CI never skips those tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from browser import Browser, chromium_path
from conftest import git
from messages_server import MessagesServer, Reply

from squad.domain.events import parse_event
from squad.infra.journal import Journal
from squad.infra.ledger import parse_text
from squad.orchestration.report_html import render_html, script_json
from squad.orchestration.report_page import page_data

PY = sys.executable
READY = "window.squadReport && window.squadReport.ready"


def _squad(cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 180) -> Any:
    return subprocess.run([PY, "-m", "squad", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def _events(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()]


class Run:
    """A finished run: its repo, folder, events and what `squad cost --json` says about it."""

    def __init__(self, repo: Path, run: str) -> None:
        self.repo, self.run = repo, run
        self.dir = repo / ".squad" / "runs" / run
        self.events = _events(self.dir)
        out = _squad(repo, "cost", run, "--json")
        assert out.returncode == 0, out.stderr
        self.cost = json.loads(out.stdout)

    def count(self, kind: str, **match: Any) -> Counter[str]:
        """How many events of `kind` (matching `match`) each agent has."""
        return Counter(
            e["agent"] for e in self.events if e["type"] == kind and all(e.get(k) == v for k, v in match.items())
        )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Run:
    repo = tmp_path_factory.mktemp("report") / "demo"
    out = _squad(repo.parent, "demo", "--keep", str(repo), "--json")
    assert out.returncode == 0, out.stderr
    return Run(repo, json.loads(out.stdout)["run"])


# ---------------------------------------------------------------------------------------------------------
# the page model


def test_page_model_of_the_demo_run(demo: Run) -> None:
    page = page_data(demo.dir)
    json.dumps(page, allow_nan=False)  # plain JSON, no NaN: the page's JSON.parse takes it

    # one lane per agent, one bar per model call (the priced `model_call` events), one per tool call
    agents = set(demo.count("model_call")) | set(demo.count("task_started"))
    lanes = {lane["id"]: lane for lane in page["lanes"] if lane["kind"] == "agent"}
    assert set(lanes) == agents and len(agents) >= 4
    for agent, lane in lanes.items():
        kinds = Counter(s["kind"] for s in lane["spans"])
        assert kinds["model"] == demo.count("model_call")[agent], agent
        assert kinds["tool"] == demo.count("agent.tool_call")[agent], agent
        for s in lane["spans"]:
            assert 0 <= s["t0"] <= s["t1"] <= page["run"]["duration_s"] and 0 <= s["track"] < lane["tracks"]
    # tracks: as many as the agent had sessions (setup included) at once, no more
    for agent, lane in lanes.items():
        edges = sorted(
            (t, step)
            for s in lane["spans"]
            if s["kind"] in ("plan", "setup", "work", "review")
            for t, step in ((s["t0"], 1), (s["t1"], -1))
        )
        at_once = max(sum(step for _, step in edges[: i + 1]) for i in range(len(edges)))
        assert lane["tracks"] == at_once, agent
    # every model call carries its time to first token (the planner's too: the priced record has it)
    model_spans = [s for lane in lanes.values() for s in lane["spans"] if s["kind"] == "model"]
    assert model_spans and all(s["ttft"] is not None for s in model_spans)
    # the reviewer reviews several tasks at once: its lane has several tracks, and no two reviews overlap in one
    reviews = sorted((s for s in lanes["reviewer"]["spans"] if s["kind"] == "review"), key=lambda s: s["t0"])
    assert lanes["reviewer"]["tracks"] >= 2
    for a in reviews:
        assert not [b for b in reviews if b is not a and b["track"] == a["track"] and b["t0"] < a["t1"] <= b["t1"]]

    # the same numbers as `squad cost --json`
    assert page["costs"] == {k: v for k, v in demo.cost.items() if k != "run"}

    # the rejected round: its work bar and its review are marked, the findings are the reviewer's
    docs = next(t for t in page["tasks"] if t["id"] == "docs")
    assert [r["review"]["verdict"] for r in docs["rounds"]] == ["reject", "approve"]
    assert docs["rounds"][0]["author"] != docs["rounds"][1]["author"]
    verdict = next(e for e in demo.events if e["type"] == "verdict" and e["task"] == "docs")
    shown = docs["rounds"][0]["review"]["findings"]
    assert [f["message"] for f in shown] == [f["message"] for f in verdict["findings"]]
    first_author = docs["rounds"][0]["author"]
    work = [s for s in lanes[first_author]["spans"] if s["kind"] == "work" and s["task"] == "docs"]
    assert [s["state"] for s in work] == ["rejected"]
    assert {s["state"] for s in lanes["reviewer"]["spans"] if s["kind"] == "review" and s["task"] == "docs"} == {
        "reject",
        "approve",
    }
    assert any(m["kind"] == "lockout" and m["lane"] == first_author for m in page["marks"])

    # each task's transcript: every tool call of the task (all rounds, author and reviewer) with its result
    for task in page["tasks"]:
        calls = [e for e in page["transcripts"][task["id"]] if e["kind"] == "tool_call"]
        assert len(calls) == sum(demo.count("agent.tool_call", task=task["id"]).values())
        assert all(c["result"] for c in calls)
    assert any("Run the tests with" in (c.get("result") or "") for c in page["transcripts"]["docs"])

    # the run's decisions, each linked to the task it was taken in; the tests, the integration run last
    ledger = parse_text((demo.dir / "ledger.md").read_text(), Path("ledger.md"))
    assert [d["id"] for d in page["decisions"]] == [e.id for e in ledger.entries]
    assert all(d["task"] in {t["id"] for t in page["tasks"]} for d in page["decisions"])
    assert len(page["tests"]) == sum(1 for e in demo.events if e["type"] == "tests")
    assert page["tests"][-1]["where"] == "integration" and page["tests"][-1]["passed"]
    assert page["run"]["status"] == "done" and page["warnings"] == []


def test_a_torn_journal_and_an_unfinished_run_still_make_a_page(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "20261129-000000-abcd").create()
    for record in (
        {"type": "run_started", "run": journal.run, "task_text": "t", "base_commit": "abc"},
        {"type": "plan", "tasks": [{"id": "api", "agent": "backend", "goal": "g"}]},
        {"type": "task_started", "task": "api", "agent": "backend", "round": 0, "lease": "api"},
        {"type": "model_call", "agent": "backend", "task": "api", "model": "m", "latency_s": float("nan")},
    ):
        journal.emit(parse_event(record))
    with journal.events_path.open("a") as fh:
        fh.write('{"ts": 1, "type": "agent.tool_c')  # a writer killed mid-line
    page = page_data(journal.dir)
    json.dumps(page, allow_nan=False)
    assert page["run"]["status"] == "unfinished" and page["tasks"][0]["status"] == "working"
    backend = next(lane for lane in page["lanes"] if lane["id"] == "backend")
    assert [s["state"] for s in backend["spans"] if s["kind"] == "work"] == ["open"]
    assert len(page["warnings"]) == 1 and "events.jsonl:5" in page["warnings"][0]
    assert str(tmp_path) not in json.dumps(page)  # no machine paths in the page


# ---------------------------------------------------------------------------------------------------------
# the CLI


def test_cli_writes_the_page_and_refuses_unknown_runs(demo: Run, tmp_path: Path) -> None:
    out = _squad(demo.repo, "report")
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == demo.dir / "report.html" and (demo.dir / "report.html").stat().st_size > 0

    target = tmp_path / "pages" / "run.html"
    out = _squad(demo.repo, "report", demo.run, "--out", str(target), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"run": demo.run, "path": str(target), "bytes": target.stat().st_size}

    out = _squad(demo.repo, "report", "20990101-000000-nope")
    assert out.returncode == 2
    assert "no run '20990101-000000-nope'" in out.stderr and "Traceback" not in out.stderr

    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    out = _squad(empty, "report")
    assert out.returncode == 2 and "no runs recorded yet" in out.stderr


# ---------------------------------------------------------------------------------------------------------
# escaping

HOSTILE = '</script><script>window.__pwned="{where}"</script><img src=x onerror="window.__pwned=1"> & <b>bold</b>'


class _Scripts(HTMLParser):
    """The <script> elements of a page, as a browser's tokenizer splits them."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._open: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self._open = dict(attrs)
            self.scripts.append((self._open, ""))

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._open = None


def test_text_with_html_never_leaves_its_json_block(demo: Run) -> None:
    page = page_data(demo.dir)
    page["run"]["task"] = HOSTILE.format(where="task")
    page["tasks"][0]["goal"] = HOSTILE.format(where="goal") + "\u2028<!--"
    page["transcripts"]["docs"][0]["text"] = HOSTILE.format(where="transcript")
    html = render_html(page)
    parser = _Scripts()
    parser.feed(html)
    kinds = [attrs.get("type") for attrs, _ in parser.scripts]
    # the data block, one block per transcript, the page script: nothing else became a script
    assert kinds == ["application/json"] * (1 + len(page["transcripts"])) + [None]
    data = json.loads(parser.scripts[0][1])
    assert data["run"]["task"] == page["run"]["task"] and data["tasks"][0]["goal"] == page["tasks"][0]["goal"]
    assert json.loads(parser.scripts[1 + list(page["transcripts"]).index("docs")][1])[0]["text"] == (
        HOSTILE.format(where="transcript")
    )
    assert "<img" not in html and "<b>" not in html
    assert "<" not in script_json({"a": "</script><!--"})


# ---------------------------------------------------------------------------------------------------------
# in the browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs chromium for the report tests (.ci/run installs it)")
        pytest.skip("no chromium on PATH (apt-get install -y chromium)")
    with Browser(width=1400, height=1000) as b:
        yield b


def _open(browser: Browser, path: Path) -> None:
    browser.events.clear()
    browser.open(path.as_uri(), ready=READY)


def _drawn(browser: Browser) -> dict[str, dict[str, int]]:
    """Per timeline lane: how many rectangles each bar path draws (one `M` per bar)."""
    return browser.evaluate(
        """Object.fromEntries([...document.querySelectorAll('#tl-svg g[data-lane]')].map(g => [g.dataset.lane,
        Object.fromEntries([...g.querySelectorAll('path[data-class]')].map(p =>
          [p.dataset.class, ((p.getAttribute('d') || '').match(/M/g) || []).length]))]))"""
    )


def _chart(browser: Browser, which: str) -> dict[str, Any]:
    """What the cost chart of `which` (agent | model) shows: bar values and the table's total row."""
    return browser.evaluate(
        f"""(() => {{
        const box = document.querySelector('[data-chart="{which}"]');
        const bars = [...box.querySelectorAll('rect.c-cost[data-name]')]
          .map(r => [r.dataset.name, Number(r.dataset.cost)]);
        const tokens = {{}};
        for (const r of box.querySelectorAll('rect[data-part]'))
          tokens[r.dataset.name + '/' + r.dataset.part] = Number(r.dataset.tokens);
        const total = box.querySelector('tr.total [data-field="cost_usd"]');
        return {{bars: Object.fromEntries(bars), tokens, total: Number(total.dataset.value), text: total.textContent}};
        }})()"""
    )


def _check_costs(browser: Browser, run: Run) -> None:
    for which, key in (("agent", "by_agent"), ("model", "by_model")):
        chart = _chart(browser, which)
        assert chart["bars"] == {name: line["cost_usd"] for name, line in run.cost[key].items()}
        assert sum(chart["bars"].values()) == pytest.approx(run.cost["total"]["cost_usd"], abs=1e-6)
        assert chart["total"] == run.cost["total"]["cost_usd"]
        assert chart["text"] == f"${run.cost['total']['cost_usd']:.4f}"
        for name, line in run.cost[key].items():
            for part in ("input", "output", "cache_write", "cache_read"):
                assert chart["tokens"][f"{name}/{part}"] == line[f"{part}_tokens"]


@pytest.mark.timeout(180)
def test_demo_report_in_headless_chromium(demo: Run, browser: Browser, tmp_path: Path) -> None:
    path = tmp_path / "demo.html"
    assert _squad(demo.repo, "report", "--out", str(path)).returncode == 0
    _open(browser, path)
    assert browser.errors() == []
    assert browser.requests() == [path.as_uri()]  # nothing but the file itself: no CDN, no fonts, no beacons

    drawn = _drawn(browser)
    agents = set(demo.count("model_call")) | set(demo.count("task_started"))
    lanes = browser.evaluate("[...document.querySelectorAll('#tl-svg g[data-kind=agent]')].map(g => g.dataset.lane)")
    assert sorted(lanes) == sorted(agents)
    labels = browser.evaluate("[...document.querySelectorAll('.tl-labels div')].map(d => d.textContent)")
    assert set(agents) <= set(labels)
    for agent in agents:
        assert drawn[agent]["model"] == demo.count("model_call")[agent], agent
        assert drawn[agent]["tool"] + drawn[agent]["tool-error"] == demo.count("agent.tool_call")[agent], agent
    assert drawn["docs"]["work-rejected"] == 1 and drawn["reviewer"]["review-reject"] == 1

    _check_costs(browser, demo)

    # the rejected round shows the reviewer's findings; the task's transcript opens with every tool call
    verdict = next(e for e in demo.events if e["type"] == "verdict" and e["task"] == "docs")
    rejected = browser.evaluate("document.querySelector('#task-docs [data-verdict=reject]').textContent")
    assert all(f["message"] in rejected for f in verdict["findings"])
    browser.evaluate("document.querySelector('[data-open-transcript=docs]').click()")
    shown = browser.evaluate("document.querySelectorAll('[data-transcript=docs] .tr-entry.tool_call').length")
    assert shown == sum(demo.count("agent.tool_call", task="docs").values())

    # zoomed into the first second, the page redraws without errors and still draws the calls in view
    browser.evaluate("document.querySelector('#tl-tools button:nth-child(3)').click()")
    browser.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    assert browser.evaluate("window.squadReport.redraws") >= 2 and browser.errors() == []


def _hostile_repo(repo: Path) -> None:
    agents = repo / ".squad" / "agents"
    agents.mkdir(parents=True)
    charters = {
        "lead": "name: lead\nrole: tech lead\ntools: [read, team]\n",
        "backend": "name: backend\nrole: backend engineer\ntools: [read, write, team]\nowns: ['*.py']\n",
        "tester": "name: tester\nrole: test engineer\ntools: [read, write, team]\nowns: ['*.md']\n",
        "reviewer": "name: reviewer\nrole: code reviewer\ntools: [read]\nreviewer: true\n",
    }
    for name, front in charters.items():
        (agents / f"{name}.md").write_text(f"---\n{front}---\nYou are the {name}.\n")
    (repo / "hostile_test.py").write_text(f"print({HOSTILE.format(where='tests')!r})\n")
    (repo / ".squad" / "squad.toml").write_text(
        f'[models]\ndefault = "claude-sonnet-5-5"\n[commands]\ntest = "{PY} hostile_test.py"\n'
    )
    (repo / ".gitignore").write_text(".squad/runs/\n__pycache__/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "squad setup")


def _tool(name: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "input": args}


@pytest.mark.timeout(180)
def test_hostile_priced_run_in_headless_chromium(repo: Path, browser: Browser, tmp_path: Path) -> None:
    _hostile_repo(repo)
    plan = [{"id": "api", "agent": "backend", "goal": HOSTILE.format(where="goal"), "files": ["app.py"]}]
    finding = {"file": HOSTILE.format(where="file"), "line": 1, "severity": "blocking", "message": HOSTILE}
    usage = {"input_tokens": 1200, "output_tokens": 300, "cache_read_input_tokens": 5000}
    with MessagesServer(api_key="sk-ant-report") as server:
        planned = Reply(text=HOSTILE.format(where="plan"), tool_calls=[_tool("submit_plan", tasks=plan)])
        server.script("lead/plan", planned)
        server.script(
            "backend/api",
            Reply(tool_calls=[_tool("write_file", path="app.py", content=HOSTILE.format(where="file"))], usage=usage),
            Reply(
                tool_calls=[
                    _tool("record_decision", title=HOSTILE.format(where="decision")[:190], decision=HOSTILE),
                    _tool("finish", summary=HOSTILE.format(where="summary")),
                ]
            ),
        )
        server.script(
            "reviewer/api",
            Reply(tool_calls=[_tool("submit_verdict", verdict="reject", summary=HOSTILE, findings=[finding])]),
        )
        server.script("tester/api-r1", Reply(tool_calls=[_tool("finish", summary="fixed")], usage=usage))
        server.script(
            "reviewer/api-r1", Reply(tool_calls=[_tool("submit_verdict", verdict="approve", summary="ok", findings=[])])
        )
        env = {**os.environ, "ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": "sk-ant-report"}
        out = _squad(repo, "run", HOSTILE.format(where="task"), "--json", env=env)
    assert out.returncode == 0, out.stderr + out.stdout
    run = Run(repo, json.loads(out.stdout)["run"])
    assert run.cost["total"]["cost_usd"] > 0  # priced calls: the chart has real dollars to agree on

    path = tmp_path / "hostile.html"
    assert _squad(repo, "report", run.run, "--out", str(path)).returncode == 0
    _open(browser, path)
    browser.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    browser.evaluate("document.querySelector('[data-open-transcript=api]').click()")
    assert browser.errors() == []
    assert browser.evaluate("window.__pwned === undefined")
    assert browser.requests() == [path.as_uri()]  # the <img src=x> never became a request
    assert browser.evaluate("document.querySelectorAll('img').length") == 0
    assert browser.evaluate("document.querySelectorAll('script').length") == 3  # data, one transcript, the page's
    assert browser.evaluate("[...document.querySelectorAll('b')].filter(b => b.textContent === 'bold').length") == 0
    text = browser.evaluate("document.body.innerText")
    for where in ("task", "goal", "file", "plan", "summary", "tests"):
        assert HOSTILE.format(where=where) in text, where  # shown as the text it is
    assert HOSTILE.format(where="decision")[:190] in text
    _check_costs(browser, run)
    drawn = _drawn(browser)
    for agent, n in run.count("model_call").items():
        assert drawn[agent]["model"] == n
