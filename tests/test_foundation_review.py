"""Hostile-input regressions for the foundation (issue 2): each test is a defect found by trying it for real."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import git

from squad.cli.decisions import decisions
from squad.cli.doctor import doctor
from squad.config import load_settings, load_team, parse_charter, parse_settings
from squad.errors import ConfigError, SquadError, UsageError
from squad.infra.ledger import Ledger, parse_text
from squad.infra.scaffold import scaffold

CHARTER = "---\nname: tester\nrole: Tests\n---\nBody.\n"


def _squad(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "squad", *args], cwd=cwd, capture_output=True, text=True)


# ---------------------------------------------------------------------------------------------------------
# Config files that cannot be read as text


def test_binary_settings_file_is_a_config_error_naming_the_file(repo: Path) -> None:
    scaffold(repo)
    (repo / ".squad/squad.toml").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8") as err:
        load_settings(repo)
    assert err.value.path == repo / ".squad/squad.toml"
    result = _squad(repo, "team")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert ".squad/squad.toml" in result.stderr


def test_settings_path_that_is_a_directory_is_a_config_error(repo: Path) -> None:
    (repo / ".squad/squad.toml").mkdir(parents=True)
    with pytest.raises(ConfigError, match="cannot read") as err:
        load_settings(repo)
    assert err.value.path == repo / ".squad/squad.toml"


def test_binary_charter_is_a_config_error_and_doctor_reports_it(repo: Path) -> None:
    scaffold(repo)
    (repo / ".squad/agents/tester.md").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not UTF-8") as err:
        load_team(repo)
    assert err.value.path == repo / ".squad/agents/tester.md"
    result = CliRunner().invoke(doctor, ["--json"], catch_exceptions=False)
    checks = {c["name"]: c for c in json.loads(result.output)}
    assert result.exit_code == 1 and checks["charter tester"]["status"] == "error"


def test_byte_order_mark_is_tolerated(repo: Path) -> None:
    """Windows editors save UTF-8 with a BOM; it must not read as 'no front matter' or bad TOML."""
    scaffold(repo)
    (repo / ".squad/squad.toml").write_bytes(b"\xef\xbb\xbf[concurrency]\nmax_agents = 2\n")
    (repo / ".squad/agents/tester.md").write_bytes(b"\xef\xbb\xbf" + CHARTER.encode())
    assert load_settings(repo).concurrency.max_agents == 2
    assert load_team(repo).get("tester").role == "Tests"
    (repo / ".squad/agents/tester.md").write_bytes(CHARTER.replace("\n", "\r\n").encode())
    assert load_team(repo).get("tester").body == "Body."


# ---------------------------------------------------------------------------------------------------------
# Charter and settings errors name a line


def test_empty_front_matter_names_a_line() -> None:
    with pytest.raises(ConfigError, match="missing required key 'name'") as err:
        parse_charter("---\n---\nbody\n", Path("a.md"))
    assert err.value.line == 1


def test_duplicate_front_matter_key_is_an_error_at_the_second_one() -> None:
    """PyYAML silently keeps the last of two equal keys; a charter that says two names must not pass."""
    with pytest.raises(ConfigError, match="'name' is set twice") as err:
        parse_charter("---\nname: tester\nrole: Tests\nname: other\n---\n", Path("tester.md"))
    assert err.value.line == 4


def test_array_of_tables_names_its_header_line() -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings("# comment\n[[models]]\ndefault = 'x'\n", Path("squad.toml"))
    assert err.value.line == 2


def test_doctor_warns_when_a_charter_name_differs_from_its_file_name(repo: Path) -> None:
    scaffold(repo)
    (repo / ".squad/agents/tester.md").write_text(CHARTER.replace("name: tester", "name: qa"))
    result = CliRunner().invoke(doctor, ["--json"], catch_exceptions=False)
    check = {c["name"]: c for c in json.loads(result.output)}["charter tester"]
    assert check["status"] == "warn"
    assert "'qa'" in check["message"] and "tester.md" in check["message"]


# ---------------------------------------------------------------------------------------------------------
# Ledger: a carriage return in entry text


def test_lone_carriage_return_cannot_smuggle_a_heading_into_the_ledger(repo: Path) -> None:
    """Files are read back with universal newlines, so a bare CR is a line break and must be checked as one."""
    ledger = Ledger(repo)
    file = ledger.personal_file("ada")
    with pytest.raises(SquadError, match="would start a new entry"):
        ledger.append(file, title="One", decision="keep\r## not a heading")
    assert not file.exists()
    entry = ledger.append(file, title="Two", decision="x\ry", context="a\r\nb")
    parsed = ledger.parse()
    assert parsed.problems == [] and ledger.check() == []
    assert [(e.id, e.decision, e.context) for e in parsed.entries] == [(entry.id, "x\ny", "a\nb")]
    assert parsed.entries[0].raw == entry.raw


def test_lone_carriage_return_parses_the_same_from_disk_and_from_git(repo: Path) -> None:
    """The work tree is read with universal newlines, a git blob as is: both must give the same raw text."""
    text = '## T\r<!-- squad-decision {"id":"01JD4V9Q1S8Y2E6W8X5Y0Z1A2B","date":"d"} -->\r\r**Decision.** x\r'
    entries = parse_text(text, Path("f.md")).entries
    assert len(entries) == 1 and entries[0].raw == parse_text(text.replace("\r", "\n"), Path("f.md")).entries[0].raw


# ---------------------------------------------------------------------------------------------------------
# Exit codes: bad arguments are usage errors (2), not failed work (1)


@pytest.mark.parametrize(
    "args",
    [
        ["--title", "", "--decision", "d"],
        ["--title", "two\nlines", "--decision", "d"],
        ["--title", "t", "--decision", "## heading"],
        ["--title", "t", "--decision", "d", "--run", "../../etc"],
        ["--title", "t", "--decision", "d", "--tag", ""],
        ["--title", "t", "--decision", "d", "--person", "!!!"],
    ],
)
def test_add_with_bad_arguments_exits_2(repo: Path, args: list[str]) -> None:
    git(repo, "config", "user.email", "ada@example.com")
    result = CliRunner().invoke(decisions, ["add", *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ")
    assert not (repo / "decisions").exists()


def test_ledger_input_errors_are_usage_errors(repo: Path) -> None:
    with pytest.raises(UsageError, match="needs a title"):
        Ledger(repo).append(Ledger(repo).personal_file("ada"), title=" ", decision="d")


# ---------------------------------------------------------------------------------------------------------
# init: a file where a directory belongs


@pytest.mark.parametrize("blocker", [".squad", ".squad/agents", "decisions"])
def test_init_with_a_file_where_a_directory_belongs_is_exit_2_and_writes_nothing(repo: Path, blocker: str) -> None:
    (repo / blocker).parent.mkdir(parents=True, exist_ok=True)
    (repo / blocker).write_text("in the way\n")
    with pytest.raises(UsageError, match=f"{blocker} is a file") as err:
        scaffold(repo)
    assert err.value.exit_code == 2
    assert not (repo / "AGENTS.md").exists() and not (repo / ".gitignore").exists()
    assert not (repo / ".squad/squad.toml").exists()
    result = _squad(repo, "init")
    assert result.returncode == 2 and "Traceback" not in result.stderr and f"{blocker} is a file" in result.stderr
