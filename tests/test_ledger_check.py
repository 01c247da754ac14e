"""`Ledger.check` and `compare`: every rule violation found at the right file:line, in real git repos."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import git

import squad.infra.ledger._git as ledger_git
from squad.errors import UsageError
from squad.infra.git import NO_HOOKS
from squad.infra.ledger import Entry, Ledger, compare

RUN = "20261122-063107-ab12"


def landed(repo: Path) -> tuple[Ledger, list[Entry]]:
    """Three entries in a run file and one in a personal file, committed."""
    ledger = Ledger(repo)
    run_file = ledger.run_file(RUN)
    entries = [ledger.append(run_file, title=f"run-{i}", decision=f"d{i}", run=RUN) for i in range(3)]
    entries.append(ledger.append(ledger.personal_file("ada"), title="personal", decision="p"))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "decisions")
    return ledger, entries


def test_clean_ledger_and_new_appends_pass(repo: Path) -> None:
    ledger, entries = landed(repo)
    assert ledger.check() == [] and ledger.check("HEAD") == []
    ledger.append(ledger.run_file(RUN), title="later", decision="x", supersedes=[entries[0].id])
    ledger.append(ledger.personal_file("bob"), title="bob's", decision="y")
    assert ledger.check("HEAD") == []


def test_modified_landed_entry_is_reported_at_its_line(repo: Path) -> None:
    ledger, entries = landed(repo)
    target = entries[1]
    path = repo / target.file
    path.write_text(path.read_text().replace("**Decision.** d1", "**Decision.** d1, quietly changed"))
    problems = ledger.check("HEAD")
    assert len(problems) == 1
    assert (problems[0].file, problems[0].line) == (target.file, target.line)
    assert f"landed entry {target.id} ('run-1') was modified since HEAD" in problems[0].message
    assert ledger.check() == []  # without a base, an edit is not visible


def test_deleted_landed_entries_are_reported_at_their_base_location(repo: Path) -> None:
    ledger, entries = landed(repo)
    run_path = repo / entries[0].file
    run_path.write_text(run_path.read_text().replace(entries[1].raw, ""))
    (repo / entries[3].file).unlink()
    # Entries after the deleted one moved up; their text is unchanged, so they are not "modified".
    problems = sorted(ledger.check("HEAD"), key=lambda p: str(p.file))
    assert [(p.file, p.line) for p in problems] == [
        (entries[1].file, entries[1].line),
        (entries[3].file, entries[3].line),
    ]
    assert all("was deleted since HEAD" in p.message for p in problems)


def test_duplicate_ids_report_both_locations(repo: Path) -> None:
    ledger, entries = landed(repo)
    dup = entries[0]
    personal = repo / entries[3].file
    personal.write_text(personal.read_text() + "\n" + dup.raw)
    line = personal.read_text().split("\n").index(f"## {dup.title}") + 1
    problems = ledger.check()
    assert sorted(str(p) for p in problems) == sorted(
        [
            f"{dup.file}:{dup.line}: duplicate id {dup.id} (also at {entries[3].file}:{line})",
            f"{entries[3].file}:{line}: duplicate id {dup.id} (also at {dup.location})",
        ]
    )


def test_dangling_supersedes_and_mangled_entries(repo: Path) -> None:
    ledger, entries = landed(repo)
    personal = repo / entries[3].file
    ghost = "01JD0000000000000000000009"
    text = personal.read_text() + (
        "\n## Hand written\n"
        '<!-- squad-decision {"id":"01JD0000000000000000000008","date":"2026-11-22T00:00:00Z",'
        f'"supersedes":["{ghost}"]}} -->\n\n**Decision.** x\n'
        "\n## Mangled\n<!-- squad-decision {oops} -->\n\n**Decision.** y\n"
    )
    personal.write_text(text)
    lines = text.split("\n")
    hand, mangled = lines.index("## Hand written") + 1, lines.index("## Mangled") + 1
    problems = {(p.file, p.line): p.message for p in ledger.check()}
    assert set(problems) == {(entries[3].file, hand), (entries[3].file, mangled)}
    assert problems[(entries[3].file, hand)] == f"01JD0000000000000000000008 supersedes unknown id {ghost}"
    assert "bad JSON in metadata comment" in problems[(entries[3].file, mangled)]


def test_base_tree_is_read_with_one_ls_tree_and_one_cat_file(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = Ledger(repo)
    for i in range(20):
        ledger.append(ledger.personal_file(f"person{i}"), title=f"t{i}", decision="d")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "many files")
    calls: list[list[str]] = []
    real_run = subprocess.run

    def spy(cmd: list[str], *args: object, **kwargs: object) -> subprocess.CompletedProcess:
        calls.append(cmd)
        return real_run(cmd, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(ledger_git.subprocess, "run", spy)
    at_head = ledger.entries_at("HEAD")
    assert len(at_head.entries) == 20 and at_head.problems == []
    assert [c[1 + len(NO_HOOKS)] for c in calls] == ["rev-parse", "ls-tree", "cat-file"]
    assert all(tuple(c[1 : 1 + len(NO_HOOKS)]) == NO_HOOKS for c in calls)  # through squad.infra.git
    assert {e.raw for e in at_head.entries} == {e.raw for e in ledger.parse().entries}


def test_unknown_base_ref_is_a_usage_error(repo: Path) -> None:
    with pytest.raises(UsageError, match="unknown git ref 'no-such-branch'"):
        Ledger(repo).check("no-such-branch")


def test_compare_by_id() -> None:
    from squad.infra.ledger import parse_text, render_entry

    def entry(entry_id: str, decision: str) -> Entry:
        text = render_entry(id=entry_id, title="t", date="2026-11-22T00:00:00Z", decision=decision)
        return parse_text(text, Path("f.md")).entries[0]

    a, b, c, d = (f"01JD000000000000000000000{n}" for n in range(1, 5))
    base = [entry(a, "x"), entry(b, "x"), entry(c, "x")]
    head = [entry(a, "x"), entry(b, "changed"), entry(d, "new")]
    diff = compare(base, head)
    assert [e.id for e in diff.added] == [d]
    assert [e.id for e in diff.modified] == [b] and diff.previous[b].decision == "x"
    assert [e.id for e in diff.deleted] == [c]
