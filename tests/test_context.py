"""ContextPack: bounded, deterministic, byte-identical shared prefix with the breakpoint at its end."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import git

from squad.agents.context import ContextPack, agent_system, estimate_tokens, repo_map, tracked_files, truncate_to_tokens
from squad.config import Charter, Settings
from squad.errors import WorkspaceError


def test_small_repo_map_lists_every_file_sorted() -> None:
    text = repo_map(["b.py", "a/x.py", "a/y.py"], 1000)
    assert text.splitlines() == ["3 tracked files.", "a/x.py", "a/y.py", "b.py"]


def test_big_repo_map_is_summarised_within_budget_and_deterministic() -> None:
    files = [f"pkg{d}/mod/file_{i:04d}.py" for d in range(30) for i in range(200)] + ["README.md"]
    for budget in (2000, 400, 60):
        text = repo_map(files, budget)
        assert estimate_tokens(text) <= budget
        assert text.startswith("6001 tracked files.")
        assert text == repo_map(list(reversed(files)), budget)  # order of input does not matter
    mid = repo_map(files, 2000)
    assert "pkg0/mod/ (200 files): file_0000.py" in mid
    small = repo_map(files, 60)
    assert "pkg" in small


def test_truncate_to_tokens_says_what_was_cut() -> None:
    text = "".join(f"line {i}\n" for i in range(1000))
    cut = truncate_to_tokens(text, 100, "AGENTS.md")
    assert estimate_tokens(cut) <= 100
    assert "AGENTS.md truncated" in cut and cut.startswith("line 0\n")
    assert truncate_to_tokens("short", 100, "x") == "short"


def _charter(name: str, **kw: object) -> Charter:
    return Charter(name=name, role=f"{name} engineer", body=f"Body of {name}.", **kw)  # type: ignore[arg-type]


def test_shared_blocks_identical_and_cached_last_charter_after_breakpoint() -> None:
    pack = ContextPack(commit="c" * 40, agents_md="norms", repo_map="1 tracked files.\na.py", decisions="")
    a = agent_system(pack, _charter("backend", owns=["src/**"]), ["read_file", "finish", "write_file"])
    b = agent_system(pack, _charter("tester"), ["finish"])
    shared = pack.system_blocks()
    assert a[: len(shared)] == b[: len(shared)] == shared
    assert [blk.cache for blk in shared] == [False] * (len(shared) - 1) + [True]
    assert not a[-1].cache and "`backend`" in a[-1].text and "src/**" in a[-1].text
    assert "finish, read_file, write_file" in a[-1].text  # tools sorted
    assert "Body of backend." in a[-1].text
    assert pack.commit not in "".join(blk.text for blk in shared)  # no run-specific ids in the prefix


def test_build_reads_agents_md_and_files_at_the_commit(repo: Path) -> None:
    (repo / "AGENTS.md").write_text("# Norms\nUse tabs.\n")
    (repo / "src").mkdir()
    (repo / "src" / "app.py").write_text("print(1)\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "c2")
    (repo / "AGENTS.md").write_text("uncommitted edit\n")  # the pack reads the commit, not the work tree
    (repo / "untracked.py").write_text("")
    from squad.infra.ledger import Ledger

    ledger = Ledger(repo)
    ledger.append(ledger.personal_file("alice"), title="Use tabs everywhere", decision="Tabs, not spaces.")
    settings = Settings()
    p1 = ContextPack.build(repo, settings)
    p2 = ContextPack.build(repo, settings, "HEAD")
    assert p1 == p2 and p1.system_blocks() == p2.system_blocks()
    assert "Use tabs." in p1.agents_md
    assert tracked_files(repo, p1.commit) == ["AGENTS.md", "README.md", "src/app.py"]
    assert "untracked.py" not in p1.repo_map and "src/app.py" in p1.repo_map
    assert "Use tabs everywhere" in p1.decisions and "Use tabs everywhere" in p1.system_blocks()[-1].text
    settings.context.decisions_tokens = 0  # digest switched off
    assert ContextPack.build(repo, settings).decisions == ""


def test_build_needs_a_commit(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    with pytest.raises(WorkspaceError, match="not a commit"):
        ContextPack.build(tmp_path, Settings())
