"""`squad decisions ...` through click's CliRunner and through a real `squad` process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import git

from squad.cli.decisions import decisions
from squad.infra.ledger import Ledger, is_ulid

RUN = "20261122-063107-ab12"


@pytest.fixture
def me(repo: Path) -> Path:
    git(repo, "config", "user.email", "Ada.Lovelace@example.com")
    return repo


def cli(*args: str) -> Result:
    return CliRunner().invoke(decisions, list(args))


def add(*args: str) -> str:
    result = cli("add", *args)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_add_prints_only_the_id_and_writes_personal_or_run_file(me: Path) -> None:
    result = cli("add", "--title", "Use SQLite", "--decision", "One file.", "--context", "c", "--tag", "db")
    assert result.exit_code == 0 and result.stderr == ""
    new_id = result.stdout.strip()
    assert is_ulid(new_id) and result.stdout == new_id + "\n"
    personal = list((me / "decisions").rglob("*-ada-lovelace.md"))
    assert len(personal) == 1 and new_id in personal[0].read_text()

    run_id = add(
        "--title", "Run one", "--decision", "d", "--agent", "backend", "--run", RUN, "--supersedes", new_id[:12]
    )
    run_file = Ledger(me).run_file(RUN)
    assert run_id in run_file.read_text() and f'"supersedes":["{new_id}"]' in run_file.read_text()

    other = add("--title", "Bob's", "--decision", "d", "--person", "Bob")
    assert other in next((me / "decisions").rglob("*-bob.md")).read_text()


def test_add_bad_input_is_a_clear_error(me: Path) -> None:
    result = cli("add", "--title", "t", "--decision", "d", "--supersedes", "01JD0000000000000000000009")
    assert result.exit_code == 2 and "no decision with id '01JD0000000000000000000009'" in result.stderr
    result = cli("add", "--title", "", "--decision", "d")
    assert result.exit_code == 2 and "error: a decision needs a title" in result.stderr
    assert not (me / "decisions").exists()


def test_list_json_filters_and_status(me: Path) -> None:
    old = add("--title", "Old", "--decision", "d", "--agent", "backend", "--run", RUN)
    new = add("--title", "New", "--decision", "d", "--agent", "tester", "--run", RUN, "--supersedes", old)
    mine = add("--title", "Mine", "--decision", "d")
    rows = json.loads(cli("list", "--json").stdout)
    assert [r["id"] for r in rows] == [old, new, mine]
    first = rows[0]
    assert {"id", "title", "status", "agent", "run", "date", "supersedes", "superseded_by", "file"} <= set(first)
    assert (first["status"], first["superseded_by"], first["agent"], first["run"]) == (
        "superseded",
        [new],
        "backend",
        RUN,
    )
    assert rows[1]["supersedes"] == [old] and rows[2]["run"] is None
    assert rows[2]["file"].startswith("decisions/") and rows[2]["file"].endswith("-ada-lovelace.md")

    def ids(*args: str) -> list[str]:
        return [r["id"] for r in json.loads(cli("list", "--json", *args).stdout)]

    assert ids("--status", "active") == [new, mine]
    assert ids("--status", "superseded") == [old]
    assert ids("--agent", "tester") == [new]
    assert ids("--run", RUN) == [old, new]

    plain = cli("list")  # not a tty: tab-separated lines
    assert plain.exit_code == 0
    assert [line.split("\t")[0] for line in plain.stdout.splitlines()] == [old, new, mine]
    assert plain.stdout.splitlines()[0].split("\t")[2:] == ["superseded", "backend", RUN, "Old"]


def test_list_warns_about_problems_on_stderr_and_lists_the_rest(me: Path) -> None:
    good = add("--title", "Good", "--decision", "d")
    file = next((me / "decisions").rglob("*.md"))
    file.write_text(file.read_text() + "\n## Broken\n<!-- squad-decision {nope} -->\n")
    lines = file.read_text().split("\n")
    result = cli("list", "--json")
    assert result.exit_code == 0
    assert [r["id"] for r in json.loads(result.stdout)] == [good]
    rel = file.relative_to(me)
    assert result.stderr.startswith(f"warning: {rel}:{lines.index('## Broken') + 1}: entry 'Broken': bad JSON")


def test_show_by_prefix_ambiguous_and_unknown(me: Path) -> None:
    a = add("--title", "Alpha", "--decision", "first", "--consequences", "more work")
    b = add("--title", "Beta", "--decision", "second", "--supersedes", a)
    shown = cli("show", a[:20].lower())
    assert shown.exit_code == 0
    assert "## Alpha" in shown.stdout and "**Consequences.** more work" in shown.stdout
    assert f"status: superseded (by {b})" in shown.stdout
    assert json.loads(cli("show", b, "--json").stdout)["supersedes"] == [a]

    common = a[: next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)]
    assert common  # same millisecond or not, both ids start with the same timestamp digits
    ambiguous = cli("show", common)
    assert ambiguous.exit_code == 2
    assert "is ambiguous" in ambiguous.stderr and a in ambiguous.stderr and b in ambiguous.stderr
    assert cli("show", "ZZZZ").exit_code == 2


def test_search_regex_and_bad_regex(me: Path) -> None:
    a = add("--title", "Use SQLite", "--decision", "embedded database")
    add("--title", "Logging", "--decision", "structured logs")
    b = add("--title", "Backups", "--decision", "nightly", "--context", "the SQLITE file is precious")
    assert [r["id"] for r in json.loads(cli("search", "SQLite", "--json").stdout)] == [a]
    assert [r["id"] for r in json.loads(cli("search", "-i", "sqlite", "--json").stdout)] == [a, b]
    assert json.loads(cli("search", "nomatch", "--json").stdout) == []
    bad = cli("search", "(unclosed")
    assert bad.exit_code == 2 and "bad regular expression '(unclosed'" in bad.stderr


def test_check_ok_problems_and_json(me: Path) -> None:
    add("--title", "One", "--decision", "d")
    add("--title", "Two", "--decision", "d", "--run", RUN)
    ok = cli("check")
    assert ok.exit_code == 0 and ok.stdout == "ok: 2 entries in 2 files\n"
    git(me, "add", "-A")
    git(me, "commit", "-q", "-m", "decisions")

    file = Ledger(me).run_file(RUN)
    file.write_text(file.read_text().replace("**Decision.** d", "**Decision.** edited"))
    bad = cli("check", "--base", "HEAD")
    rel = file.relative_to(me)
    assert bad.exit_code == 1
    assert bad.stdout.startswith(f"{rel}:3: landed entry ") and "was modified since HEAD" in bad.stdout
    payload = json.loads(cli("check", "--base", "HEAD", "--json").stdout)
    assert payload["ok"] is False and payload["entries"] == 2 and payload["files"] == 2
    assert [(p["file"], p["line"]) for p in payload["problems"]] == [(str(rel), 3)]
    assert cli("check", "--base", "nope").exit_code == 2


def test_outside_a_repo_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli("list")
    assert result.exit_code == 2 and "not inside a git repository" in result.stderr


def _squad() -> list[str]:
    exe = shutil.which("squad", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "squad"]


@pytest.mark.timeout(60)
def test_real_squad_process_add_check_and_tamper(me: Path) -> None:
    def squad(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*_squad(), "decisions", *args], cwd=me, capture_output=True, text=True, timeout=30)

    added = squad("add", "--title", "From a process", "--decision", "real CLI", "--run", RUN, "--agent", "lead")
    assert added.returncode == 0, added.stderr
    new_id = added.stdout.strip()
    assert is_ulid(new_id)
    assert squad("check").stdout == "ok: 1 entries in 1 files\n"
    git(me, "add", "-A")
    git(me, "commit", "-q", "-m", "landed")
    file = Ledger(me).run_file(RUN)
    file.write_text(file.read_text().replace(new_id, new_id[:-1] + "0" if new_id[-1] != "0" else new_id[:-1] + "1"))
    tampered = squad("check", "--base", "HEAD")
    assert tampered.returncode == 1
    assert (
        f"{file.relative_to(me)}:3: landed entry {new_id} ('From a process') was deleted since HEAD" in tampered.stdout
    )
    unknown = squad("show", "ZZZZ")
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: no decision with id 'ZZZZ'")
