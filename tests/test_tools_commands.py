"""Allowed commands are confined (issue 10, item 1): the arguments a model adds after an allowed prefix
may not name anything outside the worktree, and options that write files, load configuration or plugins
or run programs need the rule's explicit allow. Through the real `run` tool (Toolbox.call), real ruff,
real pytest, real git; nothing outside the worktree may change."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
from conftest import git
from tools_support import SENTINEL_TEXT, call, make_ctx, make_outside, snapshot

from squad.config import Settings, parse_settings
from squad.errors import ConfigError

PY = shlex.quote(sys.executable)
RUFF = f"{PY} -m ruff check"
PYTEST = f"{PY} -m pytest"
BAD_PY = "import os\nimport sys\n\n\ndef f():\n    x = 1\n    return os\n"  # F401 (sys), F841 (x)


@pytest.fixture
def outside(repo: Path) -> Path:
    out = make_outside(repo)
    (out / "bad.py").write_text(BAD_PY)
    return out


@pytest.fixture
def worktree(repo: Path, outside: Path) -> Path:
    (repo / "src").mkdir()
    (repo / "src" / "bad.py").write_text(BAD_PY)
    (repo / "tests").mkdir()
    (repo / "tests" / "test_ok.py").write_text("def test_ok():\n    assert True\n")
    (repo / "pyproject.toml").write_text("[tool.ruff]\nline-length = 120\n")
    (repo / "leakdir").symlink_to(outside, target_is_directory=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "project")
    return repo


def settings(*allowed: object) -> Settings:
    return Settings.model_validate({"commands": {"allowed": list(allowed), "test": "", "timeout_s": 60}})


#: Hostile argument lists, each for the default rules as shipped (`ruff check`, `pytest`, `python -m
#: pytest`, `git status`) and for the same prefixes spelt with this interpreter (so they could really run).
HOSTILE = [
    # ruff writing or reading outside, or writing at all without an allow
    "ruff check --fix {out}/bad.py",
    "ruff check --fix ../outside/bad.py",
    "ruff check --fix .",
    "ruff check --output-file {out}/report.txt .",
    "ruff check --output-file=../outside/report.txt .",
    "ruff check -o ../outside/report.txt .",
    "ruff check -o{out}/report.txt .",
    "ruff check --cache-dir {out}/cache .",
    "ruff check --cache-dir=cache .",
    "ruff check --config {out}/ruff.toml .",
    "ruff check --config \"cache-dir = '{out}/cache'\" .",
    "ruff check leakdir",
    "ruff check leakdir/bad.py",
    "ruff check src/../../outside",
    "ruff check .squad",
    "ruff check .SQUAD/agents",
    # pytest writing, deleting, or loading plugins and configuration
    "pytest --basetemp={out}",
    "pytest --basetemp .",
    "pytest --junitxml {out}/junit.xml",
    "pytest --junitxml=junit.xml",
    "pytest -p no_such_plugin",
    "pytest -pno_such_plugin",
    "pytest -xp no_such_plugin",
    "pytest -c {out}/pytest.ini",
    "pytest --rootdir={out}",
    "pytest -o cache_dir={out}/cache",
    "pytest --override-ini=cache_dir=../outside/cache",
    "pytest @args.txt",
    "pytest {out}",
    "pytest ~/.ssh",
    "pytest tests --cov-report=html:{out}/cov",
    "python -m pytest --debug={out}/debug.log",
    "python -m pytest --log-file ../outside/log.txt",
    # git reading outside, or running programs through options
    "git status -- ../outside",
    "git status {out}",
    "git status .git",
    "git status .GIT/config",
    "git status --output={out}/status.txt",
    "git status --outp={out}/status.txt",
]


def _expand(command: str, outside: Path) -> str:
    return command.format(out=outside)


def _spelt_here(command: str) -> str:
    """The same command with this interpreter's ruff/pytest, so that on broken code it really runs."""
    for plain, here in (("python -m pytest", PYTEST), ("ruff check", RUFF), ("pytest", PYTEST)):
        if command.startswith(plain + " "):
            return here + command[len(plain) :]
    return command


@pytest.mark.parametrize("command", HOSTILE)
def test_hostile_arguments_to_the_shipped_rules_are_refused(worktree: Path, outside: Path, command: str) -> None:
    """The default allowlist, as shipped, cannot be used to read, write or delete outside the worktree,
    or to load code or configuration through an option."""
    (worktree / "args.txt").write_text(f"--basetemp={outside}\n")
    before_out, before_in = snapshot(outside), snapshot(worktree / "src")
    text = _expand(command, outside)
    shipped = call(make_ctx(worktree, settings=Settings()), "run", {"command": text})
    here = _spelt_here(text)
    runnable = call(make_ctx(worktree, settings=settings(PYTEST, RUFF, "git status")), "run", {"command": here})
    for result in (shipped, runnable):
        assert result.is_error and "refused" in result.content, result.content
        assert SENTINEL_TEXT not in result.content
    assert snapshot(outside) == before_out
    assert snapshot(worktree / "src") == before_in


def test_confined_arguments_still_run(worktree: Path) -> None:
    """What agents normally do keeps working: paths inside, selections, verbosity, node ids."""
    ctx = make_ctx(worktree, settings=settings(PYTEST, RUFF, "git status"))
    plugin = call(ctx, "run", {"command": f"{PYTEST} -q -p no:cacheprovider tests/test_ok.py"})
    assert "refused" in plugin.content  # -p is a plugin load: even `no:` needs the allow
    ran = call(ctx, "run", {"command": f"{PYTEST} -q -x --tb=short tests/test_ok.py::test_ok -k 'ok and not slow'"})
    assert not ran.is_error and "1 passed" in ran.content, ran.content
    linted = call(ctx, "run", {"command": f"{RUFF} --select F841 --no-cache src"})
    assert not linted.is_error and "F841" in linted.content and "exit code 1" in linted.content, linted.content
    status = call(ctx, "run", {"command": "git status --short -uno ."})
    assert not status.is_error and "exit code 0" in status.content, status.content


def test_a_table_rule_allows_named_options_whose_values_stay_confined(worktree: Path, outside: Path) -> None:
    ctx = make_ctx(worktree, settings=settings({"run": RUFF, "allow": ["--fix", "--output-file"]}, PYTEST))
    fixed = call(ctx, "run", {"command": f"{RUFF} --fix --no-cache --select F841 --unsafe-fixes src/bad.py"})
    assert "--unsafe-fixes" in fixed.content and "refused" in fixed.content  # allowed: only what the rule names
    fixed = call(ctx, "run", {"command": f"{RUFF} --fix --no-cache --select F401 src/bad.py"})
    assert not fixed.is_error and "1 fixed" in fixed.content, fixed.content
    assert "import sys" not in (worktree / "src" / "bad.py").read_text()
    report = call(ctx, "run", {"command": f"{RUFF} --no-cache --select F841 --output-file=report.txt src"})
    assert not report.is_error and "F841" in (worktree / "report.txt").read_text()
    before = snapshot(outside)
    for escape in (f"--output-file={outside}/r.txt", "--output-file", "--fix"):
        target = [f"{outside}/r.txt"] if escape == "--output-file" else []
        argv = [sys.executable, "-m", "ruff", "check", "--no-cache", escape, *target, "../outside/bad.py"]
        refused = call(ctx, "run", {"command": argv})
        assert refused.is_error and "refused" in refused.content, refused.content
    assert snapshot(outside) == before
    # The same option under another rule (pytest) is still refused.
    assert call(ctx, "run", {"command": f"{PYTEST} --junitxml=j.xml"}).is_error


def test_an_at_file_or_an_abbreviated_git_option_cannot_smuggle_arguments(worktree: Path, outside: Path) -> None:
    (worktree / "args.txt").write_text(f"--junitxml={outside}/x.xml\ntests\n")
    ctx = make_ctx(worktree, settings=settings(PYTEST, "git"))
    at = call(ctx, "run", {"command": f"{PYTEST} @args.txt"})
    assert at.is_error and "@file" in at.content
    for hostile in ("git -c core.pager=touch status", "git --exec-path=. status", "git diff --outp=x.txt"):
        result = call(ctx, "run", {"command": hostile})
        assert result.is_error and "refused" in result.content, (hostile, result.content)
    assert not (outside / "x.xml").exists() and not (worktree / "x.txt").exists()
    grep_count = call(ctx, "run", {"command": "git grep -c ok -- tests"})  # -c after the subcommand: a count
    assert not grep_count.is_error and "tests/test_ok.py:1" in grep_count.content, grep_count.content


def test_rule_syntax_in_squad_toml(tmp_path: Path) -> None:
    """Old configs (plain strings) load unchanged; tables add allows; mistakes name file:line."""
    path = tmp_path / "squad.toml"
    old = parse_settings('[commands]\nallowed = ["pytest", "ruff check"]\n', path)
    assert old.commands.allowed == ["pytest", "ruff check"]
    new = parse_settings(
        '[commands]\nallowed = [\n  "pytest",\n  { run = "ruff check", allow = ["--fix", "-o"] },\n]\n', path
    )
    table = new.commands.allowed[1]
    assert not isinstance(table, str) and table.run == "ruff check" and table.allow == ["--fix", "-o"]
    for text, words in (
        ('[commands]\nallowed = ["pytest", { run = "ruff", allow = ["fix"] }]\n', ["squad.toml:2", "'fix'"]),
        ('[commands]\nallowed = ["pytest", { run = "ruff", alow = [] }]\n', ["squad.toml:2", "alow"]),
        ('[commands]\nallowed = ["ruff \\"check"]\n', ["squad.toml:2", "cannot split"]),
    ):
        with pytest.raises(ConfigError) as err:
            parse_settings(text, path)
        for word in words:
            assert word in str(err.value), str(err.value)
