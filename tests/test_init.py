"""`squad init`: scaffolds every file, is idempotent, keeps user edits, restores only what --force names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import typing
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import git
from pydantic import BaseModel

from squad.cli.init import init
from squad.config import Settings, load_team, parse_charter, parse_settings
from squad.errors import NotARepoError, UsageError
from squad.infra.scaffold import FILES, scaffold, template_bytes

EXPECTED = [*FILES, ".gitignore"]


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Bytes and mtime (ns) of every file outside .git: proof that nothing was touched."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and ".git" not in path.relative_to(root).parts[:1]:
            out[path.relative_to(root).as_posix()] = (path.read_bytes(), path.stat().st_mtime_ns)
    return out


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(init, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_fresh_repo_gets_every_file(repo: Path) -> None:
    code, out = _invoke()
    assert code == 0
    lines = out.splitlines()
    for rel in FILES:
        assert f"created  {rel}" in lines
        assert (repo / rel).read_bytes() == template_bytes(FILES[rel])
    assert any(line.startswith("created  .gitignore") for line in lines)
    assert (repo / ".gitignore").read_text().splitlines()[-1] == ".squad/runs/"
    assert git(repo, "check-ignore", ".squad/runs/20261122-063100-k3x9/events.jsonl").strip()
    # The scaffolded team is valid and complete.
    team = load_team(repo)
    assert sorted(team.agents) == ["backend", "lead", "reviewer", "tester"]
    assert [c.name for c in team.reviewers] == ["reviewer"]
    assert set(team.agents["reviewer"].tool_names()) <= {
        "list_files",
        "read_file",
        "search",
        "read_decisions",
        "diff",
        "record_decision",
        "finish",
    }


def test_second_run_changes_nothing(repo: Path) -> None:
    assert _invoke()[0] == 0
    before = _snapshot(repo)
    code, out = _invoke()
    assert code == 0
    assert _snapshot(repo) == before
    statuses = {line.split()[1]: line.split()[0] for line in out.splitlines() if not line.startswith("squad init")}
    assert statuses == dict.fromkeys(EXPECTED, "unchanged")
    assert "nothing changed" in out


def test_json_lists_every_file(repo: Path) -> None:
    code, out = _invoke("--json")
    assert code == 0
    data = json.loads(out)
    assert [d["path"] for d in data] == EXPECTED
    assert {d["status"] for d in data} == {"created"}


def test_user_edits_are_kept_and_force_restores_only_the_named_file(repo: Path) -> None:
    scaffold(repo)
    backend, tester = repo / ".squad/agents/backend.md", repo / ".squad/agents/tester.md"
    edited_backend = backend.read_text().replace('owns: ["src/**", "lib/**", "app/**"]', 'owns: ["server/**"]')
    edited_tester = tester.read_text() + "\nAlso test the CLI.\n"
    backend.write_text(edited_backend)
    tester.write_text(edited_tester)

    code, out = _invoke()
    assert code == 0
    assert "kept       .squad/agents/backend.md" in out
    assert "--force .squad/agents/backend.md" in out
    assert backend.read_text() == edited_backend

    before = _snapshot(repo)
    code, out = _invoke("--force", "./.squad/agents/backend.md", "--json")
    assert code == 0
    status = {d["path"]: d["status"] for d in json.loads(out)}
    assert status[".squad/agents/backend.md"] == "restored"
    assert status[".squad/agents/tester.md"] == "kept"
    assert backend.read_bytes() == template_bytes("agents/backend.md")
    after = _snapshot(repo)
    changed = {k for k in after if after[k] != before.get(k)}
    assert changed == {".squad/agents/backend.md"}
    assert tester.read_text() == edited_tester


def test_force_of_unknown_path_is_a_usage_error(repo: Path) -> None:
    with pytest.raises(UsageError, match=r"not a file squad init manages: README\.md"):
        scaffold(repo, force=["README.md"])
    assert not (repo / ".squad").exists()  # validated before anything is written


def test_a_directory_in_the_way_is_a_clear_error(repo: Path) -> None:
    (repo / "AGENTS.md").mkdir()
    with pytest.raises(UsageError, match=r"AGENTS\.md is a directory"):
        scaffold(repo)


def test_existing_agents_md_and_gitignore_are_respected(repo: Path) -> None:
    (repo / "AGENTS.md").write_text("# Our norms\n")
    (repo / ".gitignore").write_text("node_modules/")  # no trailing newline
    outcomes = {o.path: o.status for o in scaffold(repo)}
    assert outcomes["AGENTS.md"] == "kept"
    assert "--force" not in next(o.note for o in scaffold(repo) if o.path == "AGENTS.md")
    assert (repo / "AGENTS.md").read_text() == "# Our norms\n"
    assert outcomes[".gitignore"] == "updated"
    lines = (repo / ".gitignore").read_text().splitlines()
    assert lines[0] == "node_modules/" and lines[-1] == ".squad/runs/"


def test_gitignore_untouched_when_runs_already_ignored(repo: Path) -> None:
    (repo / ".gitignore").write_text(".squad/\n")
    outcomes = {o.path: o.status for o in scaffold(repo)}
    assert outcomes[".gitignore"] == "unchanged"
    assert (repo / ".gitignore").read_text() == ".squad/\n"


def test_init_from_a_subdirectory_scaffolds_at_the_top(repo: Path) -> None:
    sub = repo / "pkg" / "deep"
    sub.mkdir(parents=True)
    os.chdir(sub)
    assert _invoke()[0] == 0
    assert (repo / ".squad/squad.toml").is_file()
    assert not (sub / ".squad").exists()


def test_outside_a_repo_is_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    result = CliRunner().invoke(init, [])
    assert isinstance(result.exception, NotARepoError)
    assert result.exception.exit_code == 2
    # The real command line renders the message and exits 2.
    proc = subprocess.run(
        [sys.executable, "-m", "squad", "init"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "error: not inside a git repository" in proc.stderr
    assert not (tmp_path / ".squad").exists()


# ---------------------------------------------------------------------------------------------------------
# [workspace] suggestions for what this checkout holds and worktrees will not


def _node_and_python_checkout(repo: Path) -> None:
    (repo / ".venv").mkdir()
    (repo / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (repo / "node_modules" / "x").mkdir(parents=True)
    (repo / ".env").write_text("SECRET=1\n")
    (repo / "package.json").write_text("{}\n")
    (repo / "package-lock.json").write_text("{}\n")
    (repo / "venv").mkdir()  # a folder named venv that is no virtualenv: not suggested


def test_init_suggests_workspace_settings_as_comments(repo: Path) -> None:
    _node_and_python_checkout(repo)
    assert _invoke()[0] == 0
    text = (repo / ".squad/squad.toml").read_text()
    lines = text.splitlines()
    for key, value in [
        ("setup", '["npm ci"]'),
        ("copy", '[".env"]'),
        ("link", '[".venv", "node_modules"]'),
    ]:
        i = lines.index(f"{key} = []")
        assert lines[i + 1].startswith(f"# {key} = {value}  # squad init: "), lines[i + 1]
    # Comments only: the settings are still exactly the defaults...
    assert parse_settings(text, Path("squad.toml")) == Settings()
    # ...and taking a suggestion is swapping one line for the other.
    i = lines.index("link = []")
    lines[i : i + 2] = [lines[i + 1][2:].split("  #")[0]]
    taken = parse_settings("\n".join(lines), Path("squad.toml"))
    assert taken.workspace.link == [".venv", "node_modules"]

    # Idempotent: a second init leaves it alone, also once what it found is gone.
    before = _snapshot(repo)
    (repo / ".env").unlink()
    before.pop(".env")
    code, out = _invoke()
    assert code == 0 and "unchanged  .squad/squad.toml" in out.splitlines()
    assert _snapshot(repo) == before
    # A real edit is kept, as for every file.
    (repo / ".squad/squad.toml").write_text(text.replace("submodules = true", "submodules = false"))
    statuses = {d["path"]: d["status"] for d in json.loads(_invoke("--json")[1])}
    assert statuses[".squad/squad.toml"] == "kept"


def test_init_suggests_nothing_for_tracked_or_absent_things(repo: Path) -> None:
    (repo / ".env").write_text("PUBLIC=1\n")
    git(repo, "add", ".env")
    git(repo, "commit", "-q", "-m", "tracked .env")
    assert _invoke()[0] == 0
    assert (repo / ".squad/squad.toml").read_bytes() == template_bytes("squad.toml")


# ---------------------------------------------------------------------------------------------------------
# The settings template documents every setting and parses to exactly the defaults.


def _sections() -> list[tuple[str, type[BaseModel], bool]]:
    """(name, model, is_table_of_models) for every section of Settings."""
    out = []
    for name, field in Settings.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.append((name, ann, False))
        else:
            assert typing.get_origin(ann) is dict, f"unexpected section type {ann}"
            value = typing.get_args(ann)[1]
            out.append((name, value, True))
    return out


def test_settings_template_is_exactly_the_defaults() -> None:
    text = template_bytes("squad.toml").decode()
    assert parse_settings(text, Path("squad.toml")) == Settings()


def test_settings_template_sets_and_documents_every_field() -> None:
    text = template_bytes("squad.toml").decode()
    data = tomllib.loads(text)
    lines = text.splitlines()
    for name, model, is_table in _sections():
        if is_table:
            # A table keyed by user-chosen names (pricing): documented as a commented example.
            assert f"# [{name}." in text, f"[{name}] has no example"
            for key in _keys(model):
                assert any(ln.startswith(f"# {key} = ") for ln in lines), f"{name}.{key} not documented"
            continue
        assert f"[{name}]" in lines, f"section [{name}] missing"
        assert set(data[name]) == set(_keys(model)), f"[{name}] keys differ from the model"
        for key in _keys(model):
            i = next(i for i, ln in enumerate(lines) if ln.startswith(f"{key} = ") and _section_of(lines, i) == name)
            assert lines[i - 1].startswith("# "), f"{name}.{key} has no comment above it"


def _keys(model: type[BaseModel]) -> list[str]:
    """The TOML keys of a section: field aliases where set (`copy` is `copy_` in Python)."""
    return [f.alias or n for n, f in model.model_fields.items()]


def _section_of(lines: list[str], index: int) -> str:
    for ln in reversed(lines[:index]):
        if ln.startswith("["):
            return ln.strip("[] ")
    return ""


@pytest.mark.parametrize("name", [n for n in FILES.values() if n.startswith("agents/")])
def test_charter_templates_parse(name: str) -> None:
    charter = parse_charter(template_bytes(name).decode(), Path(name))
    assert charter.name == Path(name).stem
    assert len(charter.body) > 500  # a real prompt, not a stub
    assert charter.model_for(Settings()) == Settings().models.default
