"""The DAG scheduler, the reviser policy and the dependency merge, on their own."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from conftest import git

from squad.config import Charter, Team
from squad.domain.plan import PlanTask
from squad.domain.task import Phase, pick_reviser
from squad.infra.workspace import Workspace
from squad.orchestration.scheduler import schedule

A, NH, B = Phase.APPROVED, Phase.NEEDS_HUMAN, Phase.BLOCKED


def _t(tid: str, *deps: str) -> PlanTask:
    return PlanTask(id=tid, agent="backend", goal=tid, depends_on=deps)


class _Recorder:
    """run_one for the scheduler: each task waits for its gate; records starts, ends and peak parallelism."""

    def __init__(self, results: dict[str, Phase] | None = None) -> None:
        self.gates: dict[str, asyncio.Event] = {}
        self.log: list[str] = []
        self.running = 0
        self.peak = 0
        self.results = results or {}

    def gate(self, tid: str) -> asyncio.Event:
        return self.gates.setdefault(tid, asyncio.Event())

    async def __call__(self, task: PlanTask) -> Phase:
        self.log.append(f"start {task.id}")
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await self.gate(task.id).wait()
        finally:
            self.running -= 1
        self.log.append(f"end {task.id}")
        return self.results.get(task.id, A)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_concurrency_cap_is_respected() -> None:
    async def main() -> None:
        rec = _Recorder()
        tasks = [_t(f"t{i}") for i in range(5)]
        runner = asyncio.create_task(schedule(tasks, rec, max_parallel=2))
        await _settle()
        assert rec.log == ["start t0", "start t1"]
        rec.gate("t1").set()
        await _settle()
        assert rec.log[-1] == "start t2" and rec.running == 2
        for i in (0, 2, 3, 4):
            rec.gate(f"t{i}").set()
        assert await runner == {f"t{i}": A for i in range(5)}
        assert rec.peak == 2

    asyncio.run(main())


def test_dependent_starts_as_soon_as_its_deps_are_approved_not_in_waves() -> None:
    async def main() -> None:
        rec = _Recorder()
        # a -> c; b is slow and independent. c must start when a ends, while b still runs.
        tasks = [_t("a"), _t("b"), _t("c", "a"), _t("d", "a", "c")]
        runner = asyncio.create_task(schedule(tasks, rec, max_parallel=4))
        await _settle()
        assert rec.log == ["start a", "start b"]
        rec.gate("a").set()
        await _settle()
        assert rec.log == ["start a", "start b", "end a", "start c"]  # b still running
        rec.gate("c").set()
        await _settle()
        assert rec.log[-1] == "start d"
        rec.gate("b").set()
        rec.gate("d").set()
        await runner

    asyncio.run(main())


def test_failed_dependency_blocks_dependents_transitively() -> None:
    async def main() -> None:
        rec = _Recorder({"a": NH})
        for tid in "abcd":
            rec.gate(tid).set()
        out = await schedule([_t("a"), _t("b", "a"), _t("c", "b"), _t("d")], rec, max_parallel=1)
        assert out == {"a": NH, "b": B, "c": B, "d": A}
        assert "start b" not in rec.log and "start c" not in rec.log

    asyncio.run(main())


def test_known_outcomes_are_not_rerun() -> None:
    async def main() -> None:
        rec = _Recorder()
        rec.gate("b").set()
        out = await schedule([_t("a"), _t("b", "a")], rec, max_parallel=2, done={"a": A})
        assert out == {"a": A, "b": A} and rec.log == ["start b", "end b"]

    asyncio.run(main())


def test_cancel_stops_every_running_task() -> None:
    async def main() -> None:
        rec = _Recorder()
        runner = asyncio.create_task(schedule([_t("a"), _t("b")], rec, max_parallel=2))
        await _settle()
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
        assert rec.running == 0  # both were cancelled and awaited

    asyncio.run(main())


def _team() -> Team:
    return Team(
        agents={
            "alead": Charter(name="alead", role="lead", tools=["read", "team"]),  # cannot write: never picked
            "backend": Charter(name="backend", role="b", owns=["src/**"], tools=["read", "write", "team"]),
            "tester": Charter(name="tester", role="t", owns=["tests/**"], tools=["read", "write", "team"]),
            "docs": Charter(name="docs", role="d", owns=["docs/*.md"], tools=["read", "write", "team"]),
            "reviewer": Charter(name="reviewer", role="r", reviewer=True),
        }
    )


def test_reviser_is_never_a_locked_out_author_nor_a_reviewer_nor_read_only() -> None:
    team = _team()
    files = ("tests/test_api.py",)
    assert pick_reviser(team, files, ["backend"]).name == "tester"  # type: ignore[union-attr]  # owns the file
    assert pick_reviser(team, files, ["backend", "tester"]).name == "docs"  # type: ignore[union-attr]
    # The read-only lead cannot do the work, so it is never handed a revision: a person is needed instead.
    assert pick_reviser(team, files, ["backend", "tester", "docs"]) is None


def test_reviser_without_owner_match_is_by_name() -> None:
    assert pick_reviser(_team(), ("other/file.txt",), ["docs"]).name == "backend"  # type: ignore[union-attr]


def test_merge_commits_merges_dependencies_and_reports_conflicts(repo: Path) -> None:
    def commit_on(branch: str, name: str, text: str) -> str:
        git(repo, "switch", "-q", "-c", branch, "main")
        (repo / name).write_text(text)
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", branch)
        return git(repo, "rev-parse", "HEAD").strip()

    a = commit_on("dep-a", "a.txt", "a\n")
    b = commit_on("dep-b", "b.txt", "b\n")
    clash = commit_on("dep-c", "a.txt", "other\n")
    git(repo, "switch", "-q", "main")
    ws = Workspace(repo)
    lease = ws.lease("20261122-000001-aaaa", "task", a)
    assert ws.merge_commits(lease, [a, b]) == []  # a is already in; b is merged
    assert (lease.path / "b.txt").read_text() == "b\n" and (lease.path / "a.txt").read_text() == "a\n"
    head = ws.head(lease.path)
    assert ws.merge_commits(lease, [clash]) == ["a.txt"]
    assert ws.head(lease.path) == head and not git(lease.path, "status", "--porcelain")  # aborted
