"""The ledger's format, parser, append validation, status and digest, on real files in real git repos."""

from __future__ import annotations

import os
import stat
from datetime import date
from pathlib import Path

import pytest
from conftest import git
from filelock import FileLock

from squad.errors import LedgerError, UsageError
from squad.infra.ledger import Ledger, is_ulid, parse_text, person_slug, render_entry

RUN = "20261122-063107-ab12"
ID_A = "01JD0000000000000000000001"
ID_B = "01JD0000000000000000000002"


def meta(entry_id: str = ID_A, **extra: object) -> str:
    import json

    return "<!-- squad-decision " + json.dumps({"id": entry_id, "date": "2026-11-22T06:31:07Z", **extra}) + " -->"


def test_append_round_trips_and_writes_header(repo: Path) -> None:
    ledger = Ledger(repo)
    file = ledger.run_file(RUN)
    assert file == repo / "decisions/2026/11/2026-11-22-20261122-063107-ab12.md"
    a = ledger.append(
        file, title="Use SQLite", decision="One file.\n\nNo server.", context="Need storage", agent="backend", run=RUN
    )
    b = ledger.append(
        file, title="Use Postgres", decision="Scale.", consequences="Ops work", supersedes=[a.id], tags=["db"]
    )
    lines = file.read_text().split("\n")
    assert lines[0] == f"# Decisions — run {RUN}, 2026-11-22"
    assert lines[a.line - 1] == "## Use SQLite" and lines[b.line - 1] == "## Use Postgres"
    parsed = ledger.parse()
    assert parsed.problems == []
    assert parsed.entries == [a, b]
    got = parsed.entries[0]
    assert (got.title, got.decision, got.context, got.consequences) == (
        "Use SQLite",
        "One file.\n\nNo server.",
        "Need storage",
        "",
    )
    assert (got.agent, got.run, got.file) == (
        "backend",
        RUN,
        Path("decisions/2026/11/2026-11-22-20261122-063107-ab12.md"),
    )
    assert is_ulid(a.id) and a.id < b.id
    assert parsed.entries[1].supersedes == (a.id,) and parsed.entries[1].tags == ("db",)
    assert ledger.status(parsed.entries) == {a.id: "superseded", b.id: "active"}
    assert a.raw in file.read_text() and b.raw.endswith("**Consequences.** Ops work\n")


def test_personal_file_header_and_slug(repo: Path) -> None:
    ledger = Ledger(repo)
    file = ledger.personal_file("Ada Lovelace", date(2026, 3, 4))
    assert file == repo / "decisions/2026/03/2026-03-04-ada-lovelace.md"
    ledger.append(file, title="t", decision="d")
    assert file.read_text().startswith("# Decisions — ada-lovelace, 2026-03-04\n\n## t\n")
    with pytest.raises(UsageError, match="no letters or digits"):
        ledger.personal_file("!!!")
    with pytest.raises(UsageError, match="cannot name a ledger file"):
        ledger.run_file("../evil")


def test_person_slug_sources(repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("USER", "Unix User")
    assert person_slug(repo) == "unix-user"
    git(repo, "config", "user.name", "Grace Hopper")
    assert person_slug(repo) == "grace-hopper"
    git(repo, "config", "user.email", "G.Hopper+x@navy.example")
    assert person_slug(repo) == "g-hopper-x"
    git(repo, "config", "--unset", "user.email")
    git(repo, "config", "--unset", "user.name")
    monkeypatch.delenv("USER")
    with pytest.raises(UsageError, match="all unset") as info:
        person_slug(repo)
    assert "--person" in (info.value.hint or "")


def test_run_ledger_outside_decisions_and_supersedes_within_it(repo: Path) -> None:
    ledger = Ledger(repo)
    run_ledger = repo / ".squad/runs" / RUN / "ledger.md"
    first = ledger.append(run_ledger, title="A", decision="a", agent="backend", run=RUN)
    second = ledger.append(run_ledger, title="B", decision="b", agent="tester", run=RUN, supersedes=[first.id])
    assert run_ledger.read_text().startswith(f"# Decisions — run {RUN}, ")
    assert second.file == Path(".squad/runs") / RUN / "ledger.md"
    parsed = ledger.parse_file(run_ledger)
    assert [e.id for e in parsed.entries] == [first.id, second.id] and parsed.problems == []
    assert ledger.parse().entries == []  # not under decisions/


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"title": "  "}, "needs a title"),
        ({"title": "two\nlines"}, "one line"),
        ({"decision": " \n"}, "needs decision text"),
        ({"decision": "ok\n## Not a heading"}, "would start a new entry"),
        ({"context": "**Decision.** sneaky"}, "would start a new section"),
        ({"consequences": "<!-- squad-decision {} -->"}, "reserved for entry metadata"),
        ({"tags": ["ok", ""]}, "tags must be"),
        ({"agent": "a\nb"}, "agent must be one line"),
        ({"supersedes": ["not-an-id"]}, "not an entry id"),
        ({"supersedes": [ID_A]}, f"supersedes unknown id.*{ID_A}"),
    ],
)
def test_append_rejects_bad_input_and_writes_nothing(repo: Path, fields: dict, message: str) -> None:
    ledger = Ledger(repo)
    file = ledger.personal_file("me")
    args = {"title": "t", "decision": "d", **fields}
    with pytest.raises(UsageError, match=message):
        ledger.append(file, **args)
    assert not file.exists()


def test_dangling_supersedes_allowed_with_check_false_but_reported_by_check(repo: Path) -> None:
    ledger = Ledger(repo)
    file = ledger.personal_file("me")
    entry = ledger.append(file, title="t", decision="d", supersedes=[ID_A], check=False)
    problems = ledger.check()
    assert [str(p) for p in problems] == [f"{entry.location}: {entry.id} supersedes unknown id {ID_A}"]


def test_append_outside_git_repo_is_a_clear_error(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    ledger = Ledger(plain)
    with pytest.raises(LedgerError, match="not inside a git repository") as info:
        ledger.append(ledger.personal_file("me"), title="t", decision="d")
    assert "git init" in (info.value.hint or "")


def test_lock_lives_in_git_common_dir_also_from_a_worktree(repo: Path, tmp_path: Path) -> None:
    wt = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "-b", "side", str(wt))
    lock = Ledger(wt).lock_path(Path("decisions/x.md"))
    assert lock.parent == (repo / ".git/squad/locks").resolve()
    Ledger(wt).append(Path("decisions/x.md"), title="t", decision="d")
    assert lock.exists()
    assert git(repo, "status", "--porcelain") == ""  # nothing of ours in the main work tree
    assert git(wt, "status", "--porcelain").strip() == "?? decisions/"


def test_lock_timeout_names_the_lock_file(repo: Path) -> None:
    ledger = Ledger(repo, lock_timeout=0.2)
    file = ledger.personal_file("me")
    lock_path = ledger.lock_path(file)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    # flock locks belong to open file descriptions, so a second FileLock conflicts even in this process.
    with FileLock(str(lock_path)), pytest.raises(LedgerError) as info:
        ledger.append(file, title="t", decision="d")
    assert str(lock_path) in info.value.message and "timed out" in info.value.message
    assert "retry" in (info.value.hint or "")
    assert ledger.append(file, title="t", decision="d").title == "t"  # free again


def test_append_keeps_file_mode_and_removes_stale_temp_files(repo: Path) -> None:
    ledger = Ledger(repo)
    file = ledger.personal_file("me")
    ledger.append(file, title="t", decision="d")
    assert stat.S_IMODE(file.stat().st_mode) == 0o644
    os.chmod(file, 0o664)
    stale = file.parent / f".{file.name}.abc123.tmp"
    stale.write_text("half an entry")
    ledger.append(file, title="t2", decision="d2")
    assert stat.S_IMODE(file.stat().st_mode) == 0o664
    assert not stale.exists()


# -- parser ---------------------------------------------------------------------------------------------


def test_parser_tolerates_hand_edits() -> None:
    text = (
        "# Decisions — me, 2026-11-22\r\n\r\n\r\n"
        "##   Spaced title  \r\n\r\n"
        + meta(ID_A, future_key=1, agent=None)
        + "\r\n\r\n**Decision.** kept\r\nsecond line\r\n\r\n\r\n"
        "## Minimal\n" + meta(ID_B) + "\n**Decision.** x"
    )
    result = parse_text(text, Path("f.md"))
    assert result.problems == []
    assert [(e.title, e.line, e.decision) for e in result.entries] == [
        ("Spaced title", 4, "kept\nsecond line"),
        ("Minimal", 12, "x"),
    ]


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("## T\n<!-- squad-decision {bad json} -->\n**Decision.** d\n", 3, "bad JSON in metadata comment on line 4"),
        ("## T\n\n**Decision.** d\n", 3, "has no '<!-- squad-decision"),
        ('## T\n<!-- squad-decision {"date": "x"} -->\n**Decision.** d\n', 3, "has no 'id'"),
        ("## T\n<!-- squad-decision [1] -->\n", 3, "not a JSON object"),
        ('## T\n<!-- squad-decision {"id": "x"}\n', 3, "not closed"),
    ],
)
def test_parser_reports_unreadable_entry_at_heading_and_keeps_going(body: str, line: int, message: str) -> None:
    text = "# Decisions — me, 2026-11-22\n\n" + body + "\n## Good\n" + meta(ID_B) + "\n\n**Decision.** fine\n"
    result = parse_text(text, Path("decisions/f.md"))
    assert len(result.problems) == 1
    problem = result.problems[0]
    assert (problem.file, problem.line) == (Path("decisions/f.md"), line)
    assert message in problem.message and str(problem).startswith(f"decisions/f.md:{line}: ")
    assert [e.title for e in result.entries] == ["Good"]


def test_parser_reports_suspicious_entries_but_keeps_them() -> None:
    text = (
        "# Decisions — me, 2026-11-22\n"
        "stray preamble\n\n"
        "## No decision\n" + meta("manual-1", supersedes="oops") + "\n\nloose text\n\n**Context.** c\n"
    )
    result = parse_text(text, Path("f.md"))
    messages = [str(p) for p in result.problems]
    assert (
        messages[0]
        == "f.md:2: text before the first entry (expected only the '# Decisions — …' header): 'stray preamble'"
    )
    assert all(m.startswith("f.md:4: entry 'No decision' (manual-1): ") for m in messages[1:])
    joined = "\n".join(messages)
    for expected in (
        "is not a ULID",
        "'supersedes' must be a list",
        "text outside",
        "on line 7",
        "no **Decision.** text",
    ):
        assert expected in joined
    assert [(e.id, e.context) for e in result.entries] == [("manual-1", "c")]


def test_non_utf8_file_is_a_problem_and_readme_is_ignored(repo: Path) -> None:
    ledger = Ledger(repo)
    ledger.append(ledger.personal_file("me"), title="t", decision="d")
    (repo / "decisions/README.md").write_text("# About\n\nfree text\n")
    bad = repo / "decisions/2026/bad.md"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(b"# Decisions\n\xff\xfe")
    parsed = ledger.parse()
    assert len(parsed.entries) == 1
    assert [(p.file, p.line) for p in parsed.problems] == [(Path("decisions/2026/bad.md"), 1)]
    assert "not UTF-8" in parsed.problems[0].message


def test_render_escapes_comment_terminator_in_metadata() -> None:
    text = render_entry(id=ID_A, title="t", date="2026-11-22T00:00:00Z", decision="d", agent="x-->y")
    assert text.count("-->") == 1
    (entry,) = parse_text(text, Path("f.md")).entries
    assert entry.agent == "x-->y"


# -- digest ---------------------------------------------------------------------------------------------


def test_digest_is_bounded_active_first_newest_first(repo: Path) -> None:
    ledger = Ledger(repo)
    file = ledger.personal_file("me")
    old = ledger.append(file, title="Old choice", decision="old " * 50)
    ids = [ledger.append(file, title=f"Choice {i}", decision=f"text {i} " * 30).id for i in range(30)]
    ledger.append(file, title="Replacement", decision="new", supersedes=[old.id])
    full = ledger.digest(100_000)
    lines = full.split("\n")
    assert lines[0].startswith("Decisions (31 active, 1 superseded)")
    assert lines[1].startswith("- [") and "Replacement" in lines[1]  # newest active first
    assert "Choice 29" in lines[2] and "Choice 0" in lines[-2]
    assert "Old choice" in lines[-1] and "SUPERSEDED by" in lines[-1]
    assert "omitted" not in full

    small = ledger.digest(200)
    assert len(small) <= 800
    assert "Replacement" in small and "Old choice" not in small
    shown = sum(1 for line in small.split("\n") if line.startswith("- ["))
    assert f"({32 - shown} more decisions omitted" in small

    run_entry = parse_text(
        render_entry(id=ID_B, title="Unlanded", date="2099-01-01T00:00:00Z", decision="x"), Path("r")
    )
    assert "Unlanded" in ledger.digest(200, extra=run_entry.entries).split("\n")[1]
    assert ids[0] in full
