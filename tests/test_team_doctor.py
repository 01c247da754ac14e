"""`squad team` and `squad doctor` on scaffolded, edited and broken repos."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from squad.cli.doctor import _parse_git_version, doctor
from squad.cli.team import team
from squad.errors import ConfigError
from squad.infra.scaffold import scaffold, template_bytes

BAD_TOML = "[models]\ndefault = 'claude-sonnet-4-5'\n\n[budgets]\nagnet_turns = 3\n"
BAD_TOOL = "---\nname: ops\nrole: Operations\ntools: [read, wrte]\n---\nRuns things.\n"
BAD_YAML = "---\nname: [docs\nrole: Docs\n---\n"


def _squad(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command line, in a child process."""
    return subprocess.run([sys.executable, "-m", "squad", *args], cwd=repo, capture_output=True, text=True)


def _doctor_json(env: dict[str, str] | None = None) -> tuple[int, dict[str, dict[str, str]]]:
    result = CliRunner().invoke(doctor, ["--json"], env=env, catch_exceptions=False)
    return result.exit_code, {c["name"]: c for c in json.loads(result.output)}


@pytest.fixture
def team_repo(repo: Path) -> Path:
    scaffold(repo)
    return repo


# ---------------------------------------------------------------------------------------------------------
# team


def test_team_plain_table(team_repo: Path) -> None:
    result = CliRunner().invoke(team, [], catch_exceptions=False)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["name", "role", "model", "owns", "reviewer"]
    assert [ln.split()[0] for ln in lines[1:]] == ["backend", "lead", "reviewer", "tester"]
    reviewer = next(ln for ln in lines if ln.startswith("reviewer"))
    assert "Code reviewer" in reviewer and reviewer.rstrip().endswith("yes")
    assert "\x1b[" not in result.output  # no colour codes off a tty


def test_team_json_resolves_models(team_repo: Path) -> None:
    settings = team_repo / ".squad/squad.toml"
    settings.write_text(settings.read_text().replace('reviewer = ""', 'reviewer = "claude-opus-4-1"', 1))
    charter = team_repo / ".squad/agents/tester.md"
    charter.write_text(charter.read_text().replace('model: ""', 'model: "claude-haiku-4-5"', 1))
    result = CliRunner().invoke(team, ["--json"], catch_exceptions=False)
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["reviewer"]["model"] == "claude-opus-4-1"  # reviewer default from settings
    assert rows["tester"]["model"] == "claude-haiku-4-5"  # the charter's own
    assert rows["backend"]["model"] == "claude-sonnet-5-5"  # the global default
    assert rows["backend"]["owns"] == ["src/**", "lib/**", "app/**"]
    assert rows["reviewer"]["reviewer"] is True
    assert "write_file" not in rows["reviewer"]["tools"]
    assert rows["tester"]["path"] == ".squad/agents/tester.md"


def test_team_bad_settings_names_file_and_line(team_repo: Path) -> None:
    (team_repo / ".squad/squad.toml").write_text(BAD_TOML)
    result = CliRunner().invoke(team, [])
    assert isinstance(result.exception, ConfigError)
    assert result.exception.exit_code == 2
    assert result.exception.line == 5
    assert "did you mean 'agent_turns'" in result.exception.message


def test_team_bad_charter_through_the_real_cli(team_repo: Path) -> None:
    (team_repo / ".squad/agents/ops.md").write_text(BAD_TOOL)
    proc = _squad(team_repo, "team")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"error: {team_repo / '.squad/agents/ops.md'}:4: ")
    assert "did you mean 'write'" in proc.stderr


def test_team_without_init_says_how_to_fix(repo: Path) -> None:
    proc = _squad(repo, "team")
    assert proc.returncode == 2
    assert "squad init" in proc.stderr


# ---------------------------------------------------------------------------------------------------------
# doctor


def test_doctor_healthy_repo(team_repo: Path) -> None:
    code, checks = _doctor_json()
    assert code == 0
    assert {n: c["status"] for n, c in checks.items() if c["status"] == "error"} == {}
    for name in ("git", "git dir", "settings", "team", "models", "api key"):
        assert checks[name]["status"] == "ok", checks[name]
    assert checks["team"]["message"] == "3 worker(s), 1 reviewer(s)"


def test_doctor_never_prints_the_key(team_repo: Path) -> None:
    secret = "sk-ant-doctor-must-not-print-this"
    result = CliRunner().invoke(doctor, [], env={"ANTHROPIC_API_KEY": secret}, catch_exceptions=False)
    assert "ANTHROPIC_API_KEY is set" in result.output
    assert secret not in result.output


def test_doctor_missing_key_is_a_warning(team_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    code, checks = _doctor_json()
    assert code == 0
    assert checks["api key"]["status"] == "warn"
    assert "export ANTHROPIC_API_KEY" in checks["api key"]["fix"]


def test_doctor_reports_every_bad_charter_and_bad_settings(team_repo: Path) -> None:
    (team_repo / ".squad/squad.toml").write_text(BAD_TOML)
    (team_repo / ".squad/agents/ops.md").write_text(BAD_TOOL)
    (team_repo / ".squad/agents/docs.md").write_text(BAD_YAML)
    proc = _squad(team_repo, "doctor")
    assert proc.returncode == 1
    out = proc.stdout
    assert f"{team_repo / '.squad/squad.toml'}:5: " in out
    assert f"{team_repo / '.squad/agents/ops.md'}:4: " in out
    assert f"{team_repo / '.squad/agents/docs.md'}:3: " in out
    assert "squad doctor: 3 error(s)" in out
    # Good charters are still checked, and git checks still run.
    assert "ok     charter backend" in out
    assert "ok     git " in out


def test_doctor_needs_a_reviewer_and_a_worker(team_repo: Path) -> None:
    (team_repo / ".squad/agents/reviewer.md").unlink()
    code, checks = _doctor_json()
    assert code == 1
    assert checks["team"]["status"] == "error"
    assert "reviewer: true" in checks["team"]["fix"]
    (team_repo / ".squad/agents/reviewer.md").write_bytes(template_bytes("agents/reviewer.md"))
    for name in ("lead", "backend", "tester"):
        (team_repo / f".squad/agents/{name}.md").unlink()
    code, checks = _doctor_json()
    assert code == 1
    assert "only reviewers" in checks["team"]["message"]


def test_doctor_duplicate_agent_names(team_repo: Path) -> None:
    text = (team_repo / ".squad/agents/backend.md").read_text()
    (team_repo / ".squad/agents/backend2.md").write_text(text)
    code, checks = _doctor_json()
    assert code == 1
    assert checks["charter backend2"]["status"] == "error"
    assert "also used by .squad/agents/backend.md" in checks["charter backend2"]["message"]


def test_doctor_checks_model_names(team_repo: Path) -> None:
    script = team_repo / "script.yaml"
    script.write_text("version: 1\nscripts: []\n")
    settings = team_repo / ".squad/squad.toml"
    text = settings.read_text()
    settings.write_text(text.replace('default = "claude-sonnet-5-5"', 'default = "scripted:script.yaml"', 1))
    code, checks = _doctor_json(env={"ANTHROPIC_API_KEY": ""})
    assert code == 0, checks
    assert checks["models"]["status"] == "ok"
    assert checks["api key"]["status"] == "ok"  # only scripted models: no key needed

    settings.write_text(text.replace("fallback = []", 'fallback = ["gpt-4o", "scripted:missing.yaml"]', 1))
    code, checks = _doctor_json()
    assert code == 1
    message = checks["models"]["message"]
    assert "'gpt-4o' ([models] fallback): not a known model name" in message
    assert "missing.yaml not found" in message

    run = team_repo / ".squad/runs/20261122-063107-a1b2"
    run.mkdir(parents=True)
    (run / "responses.jsonl").write_text("")
    text = text.replace('default = "claude-sonnet-5-5"', 'default = "replay:20261122-063107-a1b2"', 1)
    settings.write_text(text.replace("fallback = []", 'fallback = ["replay:20990101-000000-zzzz"]', 1))
    code, checks = _doctor_json(env={"ANTHROPIC_API_KEY": ""})
    assert code == 1
    message = checks["models"]["message"]
    assert "replay:20261122-063107-a1b2" not in message  # a recorded run of this repo is a valid model
    assert "'replay:20990101-000000-zzzz' ([models] fallback): no recorded run to replay" in message


def test_doctor_test_command_not_on_path(team_repo: Path) -> None:
    settings = team_repo / ".squad/squad.toml"
    settings.write_text(settings.read_text().replace('test = "python -m pytest -q"', 'test = "no-such-tool-xyz run"'))
    code, checks = _doctor_json()
    assert code == 0  # a warning, not an error
    assert checks["test command"]["status"] == "warn"
    assert "'no-such-tool-xyz'" in checks["test command"]["message"]


#: As root (CI runs the suite as root) a read-only directory stops no one: the doctor runs without the
#: capabilities that let root write and read anywhere (util-linux's setpriv), so it meets a real EACCES.
_NO_ROOT_OVERRIDE = ["--bounding-set", "-dac_override,-dac_read_search", "--inh-caps", "-dac_override,-dac_read_search"]


def test_doctor_unwritable_git_dir(team_repo: Path) -> None:
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "as root this test needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE"
        prefix = [setpriv, *_NO_ROOT_OVERRIDE, "--"]
    git_dir = team_repo / ".git"
    git_dir.chmod(0o555)
    try:
        out = subprocess.run(
            [*prefix, sys.executable, "-m", "squad", "doctor", "--json"],
            cwd=team_repo,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        git_dir.chmod(0o755)
    assert out.returncode == 1, out.stderr
    check = {c["name"]: c for c in json.loads(out.stdout)}["git dir"]
    assert check["status"] == "error" and "is not writable (Permission denied)" in check["message"], check


def test_doctor_outside_a_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    code, checks = _doctor_json()
    assert code == 1
    assert checks["repository"]["status"] == "error"
    assert checks["git"]["status"] == "ok"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("git version 2.39.5\n", (2, 39, 5)),
        ("git version 2.39.3 (Apple Git-146)\n", (2, 39, 3)),
        ("git version 2.45.1.windows.1\n", (2, 45, 1)),
        ("git version 2.20\n", (2, 20, 0)),
        ("hg 6.0\n", None),
    ],
)
def test_parse_git_version(text: str, expected: tuple[int, int, int] | None) -> None:
    assert _parse_git_version(text) == expected


def test_this_projects_own_team_is_valid() -> None:
    """squad's own `.squad/` (made by `squad init`, then tuned) must stay loadable and complete."""
    from squad.config import load_settings, load_team

    root = Path(__file__).resolve().parent.parent
    settings = load_settings(root, required=True)
    roster = load_team(root)
    assert roster.agents["backend"].owns[0] == "squad/**"
    assert set(roster.agents["tester"].owns) == {"tests/**", "benchmarks/**"}
    assert [c.name for c in roster.reviewers] == ["reviewer"]
    assert settings.commands.allowed == ["python -m pytest", "ruff check", "ruff format --check"]
