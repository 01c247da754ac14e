"""The coordinator runs a run's blocking git work on the run's own thread pool, sized by the cap, closed at the end.

asyncio's default pool has min(32, cpus + 4) threads, so on a small machine 8 concurrent tasks queued there
for their leases and commits (benchmarks/bench_run.py); the run's pool has one thread per task that may run.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_coordinator_e2e import PARALLEL_SCRIPT, _setup

from squad.config import load_settings, load_team
from squad.infra.workspace import Workspace
from squad.orchestration import Coordinator, RunConfig


@pytest.mark.timeout(60)
def test_git_work_runs_on_the_runs_own_pool_of_max_agents_threads(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _setup(repo, ["lead", "backend", "reviewer"], "[concurrency]\nmax_agents = 2\n")
    script = tmp_path / "parallel.yaml"
    script.write_text(yaml.safe_dump(PARALLEL_SCRIPT))
    threads: dict[str, set[threading.Thread]] = {"lease": set(), "commit": set(), "merge_into": set()}
    for name, seen in threads.items():
        real = getattr(Workspace, name)

        def observed(self: Workspace, *args: Any, _real: Any = real, _seen: Any = seen, **kwargs: Any) -> Any:
            _seen.add(threading.current_thread())  # the real method still does the work
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(Workspace, name, observed)

    coord = Coordinator(RunConfig.build(repo, load_settings(repo), load_team(repo), model=f"scripted:{script}"))
    report = asyncio.run(coord.run("five files"))
    assert report.status == "done", report.error
    used = set().union(*threads.values())
    assert all(threads.values()), threads
    assert {t.name.rsplit("_", 1)[0] for t in used} == {f"squad-{report.run}"}, "not asyncio's default pool"
    assert len(used) <= 2, "one thread per task that may run at once"
    for t in used:
        t.join(5)
    assert not any(t.is_alive() for t in used), "the run's pool is shut down when the run ends"
