"""`squad run` benchmarks: the real Coordinator on a temp git repo, measured side by side in one run.

1. Parallel efficiency: a scripted plan of 8 independent tasks (8 workers, 5 turns each) plus a one-turn
   review per task, every model turn sleeping 200 ms. Prints `wall / ideal critical path`, where the
   ideal is the latencies along the longest chain (plan + 5 worker turns + 1 review turn), for a
   concurrency cap of 8 and for a cap of 1 (the serial baseline), and where the wall time went.
2. Coordinator CPU per agent turn: the same run with no latency; our process's CPU time and that of
   its children (git, mostly) divided by the number of model turns.
3. Prompt caching: 8 specialists with 8 different charters, each a 5-turn agent loop on the same
   context pack, through AnthropicModel (real SDK, real HTTP) against the loopback Messages server,
   once with the shared cache breakpoint and once without. Billed input tokens and dollars.

No test command and no rate limits in runs 1 and 2: those measure the coordinator, not pytest or the
governor. Run: `python benchmarks/run.py run` (or this file directly).
"""

from __future__ import annotations

import asyncio
import json
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the loopback Messages server lives with the tests
sys.path.insert(0, str(ROOT))

from _common import git as _git  # noqa: E402
from messages_server import MessagesServer, Reply  # noqa: E402

from squad.config import (  # noqa: E402
    Charter,
    CommandSettings,
    ConcurrencySettings,
    RateLimitSettings,
    Settings,
    load_settings,
    load_team,
)
from squad.models.base import Usage  # noqa: E402

WORKERS = 8
TURNS = 5
LATENCY_MS = 200
MODEL = "claude-sonnet-5-5"  # the default model: a current Sonnet
#: System blocks of the shared prefix: ContextPack.system_blocks() ends with the cache breakpoint.
SHARED_BLOCKS = 4


# ---------------------------------------------------------------------------------------------------------
# 1 and 2: the coordinator on a scripted team


def make_repo(parent: Path) -> Path:
    """A small project with a lead, 8 workers (each owning one package) and a reviewer."""
    root = parent / "repo"
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    (root / "AGENTS.md").write_text("# Norms\n\nSmall changes, typed Python, tests for every change.\n")
    (root / ".gitignore").write_text(".squad/runs/\n__pycache__/\n")
    agents = root / ".squad" / "agents"
    agents.mkdir(parents=True)
    (agents / "lead.md").write_text("---\nname: lead\nrole: tech lead\ntools: [read, team]\n---\nYou plan.\n")
    (agents / "reviewer.md").write_text(
        "---\nname: reviewer\nrole: code reviewer\ntools: [read]\nreviewer: true\n---\nYou review.\n"
    )
    for i in range(WORKERS):
        pkg = root / f"pkg{i}"
        pkg.mkdir()
        (pkg / "mod.py").write_text(f"VALUE = {i}\n")
        (agents / f"w{i}.md").write_text(
            f"---\nname: w{i}\nrole: engineer for pkg{i}\ntools: [read, write, team]\nowns: ['pkg{i}/**']\n---\n"
            f"You look after pkg{i}.\n"
        )
    (root / ".squad" / "squad.toml").write_text("")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "project")
    return root


def make_script(latency_ms: int) -> dict[str, Any]:
    """Plan -> 8 independent tasks of 5 worker turns each -> one approving review turn per task."""
    lat = {"latency_ms": latency_ms} if latency_ms else {}
    plan = [
        {"id": f"t{i}", "agent": f"w{i}", "goal": f"Improve pkg{i}.", "files": [f"pkg{i}/mod.py"]} for i in range(8)
    ]
    scripts: list[dict[str, Any]] = [
        {
            "agent": "lead",
            "task": "plan",
            "turns": [{**lat, "tool_calls": [{"name": "submit_plan", "input": {"tasks": plan}}]}],
        }
    ]
    for i in range(WORKERS):
        path = f"pkg{i}/mod.py"
        calls = [
            {"name": "list_files", "input": {"pattern": f"pkg{i}/"}},
            {"name": "read_file", "input": {"path": path}},
            {"name": "write_file", "input": {"path": path, "content": f"VALUE = {i}\nDOUBLE = {2 * i}\n"}},
            {"name": "edit_file", "input": {"path": path, "old": f"DOUBLE = {2 * i}", "new": f"DOUBLE: int = {2 * i}"}},
            {"name": "finish", "input": {"summary": f"Added DOUBLE to pkg{i}"}},
        ]
        scripts.append({"agent": f"w{i}", "task": f"t{i}", "turns": [{**lat, "tool_calls": [c]} for c in calls]})
        verdict = {"verdict": "approve", "summary": "Fine.", "findings": []}
        scripts.append(
            {
                "agent": "reviewer",
                "task": f"t{i}",
                "turns": [{**lat, "tool_calls": [{"name": "submit_verdict", "input": verdict}]}],
            }
        )
    return {"version": 1, "scripts": scripts}


def bench_settings(root: Path, cap: int) -> Settings:
    """The repo's settings with the cap set, no test command, no rate limits (we measure the coordinator)."""
    return load_settings(root).model_copy(
        update={
            "concurrency": ConcurrencySettings(max_agents=cap),
            "commands": CommandSettings(test=""),
            "rate_limits": RateLimitSettings(
                requests_per_minute=0, input_tokens_per_minute=0, output_tokens_per_minute=0
            ),
        }
    )


def run_once(root: Path, script: Path, cap: int) -> tuple[float, float, float, list[dict[str, Any]]]:
    """One coordinator run: (wall s, our CPU s, children's CPU s, journal events)."""
    from squad.orchestration import Coordinator, RunConfig

    coord = Coordinator(RunConfig.build(root, bench_settings(root, cap), load_team(root), model=f"scripted:{script}"))
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    report = asyncio.run(coord.run("improve every package"))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    children = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    if report.status != "done":
        raise RuntimeError(f"bench run ended {report.status}: {report.error}")
    events_file = root / ".squad" / "runs" / report.run / "events.jsonl"
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    return wall, cpu, children, events


def breakdown(events: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """Where the wall time went, from the journal's timestamps (seconds)."""

    def ts(kind: str, pick: Callable[[list[float]], float] = min, **match: Any) -> float:
        hits = [e["ts"] for e in events if e["type"] == kind and all(e.get(k) == v for k, v in match.items())]
        return pick(hits)

    start = ts("run_started")
    lease = [ts("task_started", task=f"t{i}") - ts("plan") for i in range(WORKERS)]
    work = [ts("task_committed", task=f"t{i}") - ts("task_started", task=f"t{i}") for i in range(WORKERS)]
    review_gap = [ts("review_started", task=f"t{i}") - ts("task_committed", task=f"t{i}") for i in range(WORKERS)]
    review = [ts("task_approved", task=f"t{i}") - ts("review_started", task=f"t{i}") for i in range(WORKERS)]
    last_approved = ts("task_approved", max)
    return [
        ("context pack", ts("context") - start),
        ("plan (1 turn)", ts("plan") - ts("context")),
        ("lease, max over tasks", max(lease)),
        ("work, max (5 turns + commit)", max(work)),
        ("commit -> review start, max", max(review_gap)),
        ("review, max (1 turn)", max(review)),
        ("integrate (merge 8, ledger)", ts("run_finished") - last_approved),
        ("first lease -> last approval", last_approved - ts("plan")),
    ]


def parallel_and_cpu(parent: Path) -> None:
    root = make_repo(parent)
    slow, fast = parent / "slow.json", parent / "fast.json"
    slow.write_text(json.dumps(make_script(LATENCY_MS)))
    fast.write_text(json.dumps(make_script(0)))
    run_once(root, fast, 8)  # warm-up: imports, git's caches
    ideal = (1 + TURNS + 1) * LATENCY_MS / 1000
    wall8, _, _, ev8 = run_once(root, slow, 8)
    wall1, _, _, _ = run_once(root, slow, 1)
    print(f"1. parallel efficiency: {WORKERS} tasks x {TURNS} turns, {LATENCY_MS} ms/turn, 1 review turn each")
    print(f"   ideal critical path (plan + {TURNS} work + 1 review turn) = {ideal:.2f} s")
    print(f"   cap 8: wall {wall8:6.2f} s   wall / ideal = {wall8 / ideal:.2f}  (aim <= 1.15)")
    serial_ideal = (1 + WORKERS * (TURNS + 1)) * LATENCY_MS / 1000
    print(
        f"   cap 1: wall {wall1:6.2f} s   wall / ideal = {wall1 / ideal:.2f}  "
        f"(serial ideal {serial_ideal:.2f} s; speedup cap 8 vs 1 = {wall1 / wall8:.2f}x)"
    )
    print("   where the cap-8 wall time went (from the journal):")
    for label, secs in breakdown(ev8):
        print(f"     {label:<30s} {secs * 1000:7.0f} ms")

    turns = 1 + WORKERS * (TURNS + 1)
    runs = 3
    cpu = children = 0.0
    for _ in range(runs):
        _, c, ch, _ = run_once(root, fast, 8)
        cpu += c
        children += ch
    print(f"2. coordinator CPU per agent turn (latency 0, cap 8, {turns} turns/run, mean of {runs} runs):")
    print(f"   our process   {cpu / runs / turns * 1000:6.2f} ms/turn   ({cpu / runs * 1000:.0f} ms/run)")
    print(f"   git children  {children / runs / turns * 1000:6.2f} ms/turn   ({children / runs * 1000:.0f} ms/run)")


# ---------------------------------------------------------------------------------------------------------
# 3: prompt caching


def _charters() -> list[Charter]:
    roles = ["backend", "frontend", "tester", "docs", "infra", "security", "data", "perf"]
    return [
        Charter(
            name=r, role=f"{r} engineer", tools=["read", "write", "team"], owns=[f"{r}/**"], body=f"You are the {r}."
        )
        for r in roles
    ]


async def _specialists(server: MessagesServer, cache: bool, worktree: Path) -> Usage:
    """8 specialists, 5 turns each, all started at once as the coordinator does; the usage the server billed."""
    from squad.agents.context import ContextPack, agent_system
    from squad.agents.loop import AgentLimits, run_agent
    from squad.agents.tools import ToolContext, allowed_tools, default_toolbox
    from squad.models import AnthropicModel
    from squad.models.base import SystemBlock

    settings = Settings()
    pack = ContextPack.build(ROOT, settings, "HEAD")  # this repository: a real AGENTS.md, map and ledger
    toolbox = default_toolbox()
    model = AnthropicModel(MODEL, settings=settings, api_key="bench", base_url=server.url)
    base = _git(worktree, "rev-parse", "HEAD").strip()

    async def one(charter: Charter) -> Usage:
        allowed = allowed_tools(charter)
        system = agent_system(pack, charter, allowed)
        if not cache:
            system = tuple(SystemBlock(b.text, cache=False) for b in system)
        ctx = ToolContext(worktree, "bench", charter.name, "t", settings, base, None, frozenset(allowed))
        result = await run_agent(
            model=model,
            toolbox=toolbox,
            ctx=ctx,
            system=system,
            prompt=f"Improve {charter.name}/.",
            limits=AgentLimits(max_turns=TURNS + 1, timeout_s=60, max_tokens=1024),
            emit=lambda _event: None,
        )
        if result.stop_reason != "finished":
            raise RuntimeError(f"{charter.name} stopped: {result.stop_reason} {result.error}")
        return result.usage

    usages = await asyncio.gather(*(one(c) for c in _charters()))
    await model.aclose()
    return sum(usages, Usage())


def _tokens(obj: Any) -> int:
    return len(json.dumps(obj)) // 4


def _estimate(bodies: list[dict[str, Any]], writers: int) -> Usage:
    """What the API would bill for these request bodies: the prefix (tools + system blocks up to the shared
    breakpoint, block 4) is written by the first `writers` requests and read by the rest (writers=0: no cache).
    Output tokens are left out: they are the same either way."""
    usage = Usage()
    for n, body in enumerate(bodies):
        prefix = _tokens([body.get("tools", []), body["system"][:SHARED_BLOCKS]])
        total = _tokens([body.get("tools", []), body["system"], body["messages"]])
        if not writers:
            usage = usage + Usage(input_tokens=total)
        elif n < writers:
            usage = usage + Usage(input_tokens=total - prefix, cache_creation_input_tokens=prefix)
        else:
            usage = usage + Usage(input_tokens=total - prefix, cache_read_input_tokens=prefix)
    return usage


def _line(label: str, u: Usage, base: float | None = None) -> float:
    from squad.models.pricing import price

    billed = u.input_tokens + 1.25 * u.cache_creation_input_tokens + 0.1 * u.cache_read_input_tokens
    usd = price(MODEL, Usage(u.input_tokens, 0, u.cache_creation_input_tokens, u.cache_read_input_tokens))
    ratio = f"  {billed / base:5.2f}x" if base else ""
    print(
        f"     {label:<34s}{u.input_tokens:>8d}{u.cache_creation_input_tokens:>8d}{u.cache_read_input_tokens:>8d}"
        f"{billed:>10.0f}  ${usd:.4f}{ratio}"
    )
    return billed


def caching(parent: Path) -> None:
    worktree = parent / "wt"
    worktree.mkdir()
    _git(worktree, "init", "-q", "-b", "main")
    (worktree / "README.md").write_text("Bench project.\n" * 40)
    _git(worktree, "add", "-A")
    _git(worktree, "commit", "-q", "-m", "x")
    served: dict[bool, tuple[list[dict[str, Any]], Usage]] = {}
    for cache in (False, True):
        with MessagesServer() as server:
            for c in _charters():
                server.script(
                    f"{c.name}/t",
                    Reply(tool_calls=[{"name": "list_files", "input": {}}]),
                    Reply(tool_calls=[{"name": "read_file", "input": {"path": "README.md"}}]),
                    Reply(text="Looking around.", tool_calls=[{"name": "search", "input": {"pattern": "Bench"}}]),
                    Reply(tool_calls=[{"name": "write_file", "input": {"path": f"{c.name}.txt", "content": "x\n"}}]),
                    Reply(tool_calls=[{"name": "finish", "input": {"summary": "done"}}]),
                )
            usage = asyncio.run(_specialists(server, cache, worktree))
            bodies = [r.body for r in sorted(server.requests, key=lambda r: r.ts) if r.status == 200]
            served[cache] = (bodies, usage)
    on, off = served[True][0], served[False][0]
    if not all(b["system"][SHARED_BLOCKS - 1].get("cache_control") for b in on):
        raise RuntimeError("the breakpoint is not on the last shared block; SHARED_BLOCKS is stale")
    prefix = _tokens([on[0]["tools"], on[0]["system"][:SHARED_BLOCKS]])
    print(f"3. prompt caching: {WORKERS} specialists (8 charters) x {TURNS} turns on one context pack, {MODEL} prices")
    print(f"   shared prefix (tools + context pack) ~{prefix} tokens; {len(on)} requests per scenario")
    print("   billed-equiv = input + 1.25 x cache write + 0.1 x cache read (input tokens only)")
    print(f"     {'':<34s}{'input':>8s}{'write':>8s}{'read':>8s}{'billed':>10s}  {'dollars':<8s} vs none")
    print("   (a) expected API billing, from the recorded request bytes (chars/4):")
    base = _line("no cache breakpoint", _estimate(off, 0))
    _line("breakpoint, 8 first turns at once", _estimate(on, WORKERS), base)
    _line("breakpoint, first call warms it (squad)", _estimate(on, 1), base)
    print("   (b) as the loopback server billed it (its cache simulation is naive, see the note):")
    server_base = _line("no cache breakpoint", served[False][1])
    _line("breakpoint", served[True][1], server_base)
    print(
        "   note: (b) leaves the tool definitions out of uncached input, and lets the 8 simultaneous first calls\n"
        "   read an entry the first of them is still writing. The real API makes an entry readable only once\n"
        "   the response that writes it has begun, so 8 parallel first turns would all pay the write. squad's\n"
        "   planner sends the same tools and context pack, so its call warms the cache: a run pays the last line\n"
        "   of (a)."
    )


def main() -> None:
    parent = Path(tempfile.mkdtemp(prefix="squad-bench-run-"))
    try:
        parallel_and_cpu(parent)
        caching(parent)
    finally:
        shutil.rmtree(parent, ignore_errors=True)


if __name__ == "__main__":
    main()
