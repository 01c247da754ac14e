"""`squad doctor`'s environment checks on real repos, real venvs and real interpreters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import git

from squad.cli.doctor import doctor
from squad.infra.scaffold import scaffold


def doctor_json() -> tuple[int, dict[str, dict[str, str]]]:
    result = CliRunner().invoke(doctor, ["--json"], catch_exceptions=False)
    return result.exit_code, {c["name"]: c for c in json.loads(result.output)}


def make_venv(path: Path, *, with_host_packages: bool) -> Path:
    """A fresh venv; with_host_packages makes this environment's packages (pytest...) importable in it."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    site = next(path.glob("lib/python3*/site-packages"))
    if with_host_packages:
        (site / "_host_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return site


@pytest.fixture
def team_repo(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    scaffold(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "squad init")
    monkeypatch.delenv("PYTHONPATH", raising=False)
    return repo


def set_setting(repo: Path, old: str, new: str) -> None:
    path = repo / ".squad/squad.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def on_path(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


def test_test_command_interpreter_without_pytest_is_named(
    team_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The case from the field: squad's `python` on PATH had no pytest and doctor said ok."""
    make_venv(tmp_path / "bare", with_host_packages=False)
    on_path(monkeypatch, tmp_path / "bare" / "bin")
    code, checks = doctor_json()
    check = checks["test command"]
    assert code == 0 and check["status"] == "warn"
    assert str(tmp_path / "bare" / "bin" / "python") in check["message"]
    assert "cannot import pytest" in check["message"] and "No module named pytest" in check["message"]
    assert "-m pip install pytest" in check["fix"]

    make_venv(tmp_path / "good", with_host_packages=True)
    on_path(monkeypatch, tmp_path / "good" / "bin")
    check = doctor_json()[1]["test command"]
    assert check["status"] == "ok"
    assert check["message"] == (
        f"`python -m pytest -q`: {tmp_path / 'good' / 'bin' / 'python'} (Python {sys.version.split()[0]}) "
        "can import pytest"
    )


def test_test_command_script_and_package_manager_dry_runs(
    team_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pytest").write_text(f"#!{sys.executable}\nimport sys\nsys.exit(__import__('pytest').main())\n")
    (bin_dir / "npm").write_text("#!/bin/sh\necho 10.9.0\n")  # npm itself is not installed here
    for tool in ("pytest", "npm"):
        (bin_dir / tool).chmod(0o755)
    on_path(monkeypatch, bin_dir)

    set_setting(team_repo, 'test = "python -m pytest -q"', 'test = "pytest -q"')
    check = doctor_json()[1]["test command"]
    assert check["status"] == "ok" and "pytest" in check["message"] and "starts" in check["message"]

    set_setting(team_repo, 'test = "pytest -q"', 'test = "npm test"')
    (team_repo / "package.json").write_text('{"scripts": {"build": "tsc"}}')
    check = doctor_json()[1]["test command"]
    assert check["status"] == "warn" and "no 'test' script" in check["message"]
    (team_repo / "package.json").write_text('{"scripts": {"test": "jest"}}')
    check = doctor_json()[1]["test command"]
    assert check["status"] == "ok" and "10.9.0" in check["message"]


def test_editable_install_into_this_checkout_is_explained(
    team_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (team_repo / "pyproject.toml").write_text("[project]\nname = 'demo'\nversion = '0.1'\n")
    (team_repo / "src" / "demo").mkdir(parents=True)
    (team_repo / "src" / "demo" / "__init__.py").write_text("")
    site = make_venv(tmp_path / "venv", with_host_packages=True)
    (site / "__editable__.demo-0.1.pth").write_text(f"{team_repo / 'src'}\n")
    on_path(monkeypatch, tmp_path / "venv" / "bin")

    check = doctor_json()[1]["python imports"]
    assert check["status"] == "ok"
    assert f"{tmp_path / 'venv' / 'bin' / 'python'} has this checkout installed editable" in check["message"]
    assert "worktree's src first on PYTHONPATH" in check["message"]

    # A package mapped to a folder of another name cannot be redirected: say so.
    (site / "__editable__.other-1.pth").write_text("import __editable___other_finder\n")
    (site / "__editable___other_finder.py").write_text(f"MAPPING = {{'other': {str(team_repo / 'impl')!r}}}\n")
    (team_repo / "impl").mkdir()
    check = doctor_json()[1]["python imports"]
    assert check["status"] == "warn" and "'other'" in check["message"] and check["fix"]

    # An isolated interpreter ignores PYTHONPATH (python -I -m pytest is handled through pytest's option).
    (site / "__editable__.other-1.pth").unlink()
    allowed = 'allowed = ["python -I tools/check.py", "python -Im pytest"'
    set_setting(team_repo, 'allowed = ["python -m pytest"', allowed)
    check = doctor_json()[1]["python imports"]
    assert check["status"] == "warn"
    assert "`python -I tools/check.py`" in check["message"] and "python -Im pytest" not in check["message"]


def test_untracked_environment_that_worktrees_would_lack(team_repo: Path) -> None:
    (team_repo / ".gitignore").write_text(".squad/runs/\n.env\n.venv\nnode_modules/\n")
    git(team_repo, "commit", "-q", "-am", "ignore")
    (team_repo / ".venv").mkdir()
    (team_repo / "node_modules").mkdir()
    (team_repo / ".env").write_text("A=1\n")
    check = doctor_json()[1]["untracked"]
    assert check["status"] == "warn"
    assert check["message"].startswith(".venv/, node_modules/, .env are untracked here")
    assert "Node still finds this checkout's node_modules" in check["message"]
    assert check["fix"] == 'set in .squad/squad.toml [workspace]: link = [".venv", "node_modules"], copy = [".env"]'

    set_setting(team_repo, "copy = []", 'copy = [".env"]')
    set_setting(team_repo, "link = []", 'link = [".venv", "node_modules"]')
    code, checks = doctor_json()
    assert code == 0
    assert "untracked" not in checks
    assert checks["workspace"]["status"] == "ok"
    assert checks["workspace"]["message"] == "each worktree gets copy .env; link .venv, node_modules"


def test_configured_workspace_paths_that_would_fail_every_lease(team_repo: Path) -> None:
    (team_repo / "notes.txt").write_text("not ignored\n")
    set_setting(team_repo, "copy = []", 'copy = ["missing.env", "README.md", "notes.txt"]')
    code, checks = doctor_json()
    assert code == 1
    message = checks["workspace"]["message"]
    assert "'missing.env' does not exist here" in message
    assert "'README.md' is tracked by git" in message
    assert "'notes.txt' is not ignored by git" in message


def test_submodules(team_repo: Path) -> None:
    sub = team_repo.parent / "lib"
    sub.mkdir()
    git(sub, "init", "-q", "-b", "main")
    (sub / "x.txt").write_text("x\n")
    git(sub, "add", "-A")
    git(sub, "commit", "-q", "-m", "lib")
    git(team_repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub), "vendor/lib")
    git(team_repo, "commit", "-q", "-m", "submodule")
    assert doctor_json()[1]["submodules"]["status"] == "ok"

    set_setting(team_repo, "submodules = true", "submodules = false")
    check = doctor_json()[1]["submodules"]
    assert check["status"] == "warn" and "empty folders" in check["message"]
    assert check["fix"] == "set [workspace] submodules = true in .squad/squad.toml"

    set_setting(team_repo, "submodules = false", "submodules = true")
    git(team_repo, "submodule", "deinit", "-q", "--force", "vendor/lib")
    check = doctor_json()[1]["submodules"]
    assert check["status"] == "warn" and check["fix"] == "git submodule update --init -- vendor/lib"


def test_a_repository_without_commits_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "fresh"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    scaffold(root)
    monkeypatch.chdir(root)
    code, checks = doctor_json()
    assert code == 1
    assert checks["commits"]["status"] == "error"
    assert checks["commits"]["fix"] == "make a first commit: git add -A && git commit -m 'Initial commit'"
    # Human output too: one line each, and the fix.
    result = CliRunner().invoke(doctor, [], catch_exceptions=False)
    assert result.exit_code == 1
    assert "error  commits" in result.output and "fix: make a first commit" in result.output
