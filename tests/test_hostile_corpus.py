"""A hostile corpus (issue 10): tool calls with hostile arguments across every tool, each checked for an
escape, counted, and the count must be zero.

An escape is any of: a sentinel file's text outside the worktree appearing in a result (a read), anything
outside the worktree created, changed or deleted (a write), or a protected file inside it changed
(`.squad/`, a ledger file, `.git` config and hooks). The worktree holds what agent code could have planted:
symlinks to the outside file and directory, a hard link to the outside file, an `@args` file. Real tools
through Toolbox.call, real ruff/pytest/git for the commands (spelt with this interpreter, so a command that
is wrongly allowed really runs).
"""

from __future__ import annotations

import re
import shlex
import sys
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from conftest import git
from tools_support import SENTINEL_TEXT, call, make_ctx, snapshot

from squad.config import Settings

PY = shlex.quote(sys.executable)
SQUAD_TOML = "[commands]\nallowed = ['pytest']\n"
LEDGER = "decisions/2026/11/2026-11-22-20261122-063000-abcd.md"
ENTRY = (
    "## Leaked\n"
    '<!-- squad-decision {{"id":"01JD0000000000000000000000","date":"2026-11-22T06:31:07Z","agent":"x",'
    '"run":null,"supersedes":[],"tags":[]}} -->\n\n**Context.** {secret}\n\n**Decision.** {secret}\n\n'
    "**Consequences.** {secret}\n"
)


def _corpus(out: Path) -> list[tuple[str, Any]]:
    """(tool, arguments) pairs; `out` is the outside directory."""
    secret = str(out / "secret.txt")
    reads = [
        "/etc/passwd",
        secret,
        "../outside/secret.txt",
        "src/../../outside/secret.txt",
        "leak.txt",
        "leakdir/secret.txt",
        "hard.txt",
        ".git/config",
        ".GIT/config",
        "~/.ssh/id_rsa",
        "leakdir",
        "bad\x00name",
    ]
    writes = [
        "../outside/pwned.txt",
        str(out / "pwned.txt"),
        "leakdir/pwned.txt",
        "leak.txt",
        "hard.txt",
        ".squad/squad.toml",
        ".SQUAD/squad.toml",
        ".\u017fquad/squad.toml",
        ".squad./squad.toml",
        LEDGER,
        LEDGER.upper(),
        ".git/hooks/post-commit",
        ".git\u200c/config",
        "SQUAD~1/agents/lead.md",
    ]
    run = [
        f"{PY} -m ruff check --output-file={out}/report.txt .",
        f"{PY} -m ruff check --fix {out}/bad.py",
        f"{PY} -m ruff check -o ../outside/report.txt src",
        f"{PY} -m ruff check --cache-dir ../outside/cache src",
        f"{PY} -m ruff check --config \"cache-dir = '{out}/cache'\" src",
        f"{PY} -m ruff check leakdir",
        f"{PY} -m pytest --basetemp={out}",
        f"{PY} -m pytest -o cache_dir={out}/cache tests",
        f"{PY} -m pytest --junitxml ../outside/junit.xml tests",
        f"{PY} -m pytest @args.txt",
        f"{PY} -m pytest -p conftest_plugin tests",
        f"{PY} -m pytest --rootdir=/ tests",
        "ruff check --fix ../outside/bad.py",
        "pytest --basetemp ..",
        "git status -- ../outside",
        "git status .git",
        "git status --output=../outside/status.txt",
        f"cat {secret}",
        f"sh -c 'cat {secret}'",
        ["git", "status;", "cat", secret],
    ]
    calls: list[tuple[str, Any]] = []
    calls += [("read_file", {"path": p}) for p in reads]
    calls += [("write_file", {"path": p, "content": "pwned\n"}) for p in writes]
    calls += [("edit_file", {"path": p, "old": "SENTINEL", "new": "pwned"}) for p in ("leak.txt", "hard.txt", secret)]
    calls += [("edit_file", {"path": ".squad/squad.toml", "old": "pytest", "new": "sh"})]
    calls += [("run", {"command": c}) for c in run]
    calls += [
        ("search", {"pattern": "SENTINEL"}),
        ("search", {"pattern": "SENTINEL", "glob": "leak*"}),
        ("search", {"pattern": "SENTINEL", "glob": "../**"}),
        ("search", {"pattern": r"((a{100}){100}){100}"}),
        ("search", {"pattern": "x", "glob": "*a" * 2000}),
        ("list_files", {"pattern": "../*"}),
        ("list_files", {"pattern": "/etc/*"}),
        ("diff", {}),
        ("diff", {"path": "../outside"}),
        ("diff", {"path": "leakdir"}),
        ("read_decisions", {"query": "SENTINEL"}),
        ("read_decisions", {}),
        ("read_file", [["path", "hard.txt"]]),
        ("read_file", "hard.txt"),
        ("write_file", {"path": "ok\udcff.txt", "content": "x"}),
        ("write_file", {"path": "ok.txt", "content": "x\ud800"}),
        ("record_decision", {"title": "t", "decision": "../outside/secret.txt"}),
    ]
    return calls


@pytest.fixture
def planted(tmp_path: Path, repo: Path) -> Path:
    """The repo as agent code could leave it, next to an outside directory with a sentinel."""
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.txt").write_text(SENTINEL_TEXT + "\n")
    (out / "bad.py").write_text("import os\nimport sys\nprint(os)\n")
    (repo / ".squad").mkdir()
    (repo / ".squad" / "squad.toml").write_text(SQUAD_TOML)
    (repo / LEDGER).parent.mkdir(parents=True)
    (repo / LEDGER).write_text("# squad decisions: run 20261122-063000-abcd, 2026-11-22\n")
    (repo / "src").mkdir()
    (repo / "src" / "app.py").write_text("print('hi')\n")
    (repo / "tests").mkdir()
    (repo / "tests" / "test_ok.py").write_text("def test_ok():\n    assert True\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "project")
    (repo / "leak.txt").symlink_to(out / "secret.txt")
    (repo / "leakdir").symlink_to(out, target_is_directory=True)
    (repo / "hard.txt").hardlink_to(out / "secret.txt")
    (repo / "args.txt").write_text(f"--basetemp={out}\n")
    (out / "ledger.md").write_text(ENTRY.format(secret=SENTINEL_TEXT))
    (repo / "decisions" / "linked.md").hardlink_to(out / "ledger.md")
    return out


def _protected(repo: Path) -> dict[str, bytes]:
    """The protected files' bytes, plus every path a macOS or Windows file system would take for a
    protected one (`.SQUAD/x`, `.ſquad/x`, `DECISIONS/...`): writing those there writes the real thing."""
    files = [repo / ".squad" / "squad.toml", repo / LEDGER, repo / ".git" / "config"]
    files += sorted((repo / ".git" / "hooks").iterdir())
    out = {str(p): p.read_bytes() for p in files}
    for path in repo.rglob("*"):
        parts = path.relative_to(repo).parts
        squashed = [_squash(part) for part in parts]
        lookalike = squashed[0] in (".squad", "squad~1", "decisions", "decisi~1") or ".git" in squashed
        if lookalike and parts[0] not in (".git", ".squad") and path != repo / LEDGER and path.is_file():
            out[str(path)] = path.read_bytes()
    return out


def _squash(part: str) -> str:
    """A name as a lenient file system might see it: compatibility-decomposed, case-folded, ASCII only,
    without trailing dots."""
    return re.sub(r"[^a-z0-9.~_-]", "", unicodedata.normalize("NFKD", part).casefold()).rstrip(".")


@pytest.mark.timeout(300)
def test_no_hostile_call_escapes_the_worktree(repo: Path, planted: Path) -> None:
    settings = Settings.model_validate(
        {
            "commands": {
                "allowed": [
                    "python -m pytest",
                    "pytest",
                    "ruff check",
                    "git status",
                    f"{PY} -m pytest",
                    f"{PY} -m ruff check",
                ],
                "timeout_s": 60,
            }
        }
    )
    ctx = make_ctx(repo, settings=settings)
    calls = _corpus(planted)
    tools = {name for name, _ in calls}
    assert len(calls) >= 40 and tools >= {"read_file", "write_file", "edit_file", "run", "search", "list_files", "diff"}
    outside, inside = snapshot(planted), _protected(repo)
    escapes: list[str] = []
    for name, args in calls:
        result = call(ctx, name, args)
        what = []
        if SENTINEL_TEXT in result.content:
            what.append("read the sentinel")
        if snapshot(planted) != outside:
            what.append("changed the outside directory")
            outside = snapshot(planted)
        if _protected(repo) != inside:
            what.append("changed a protected file")
            inside = _protected(repo)
        if what:
            escapes.append(f"{name}({args!r}): {', '.join(what)}: {result.content[:200]!r}")
    assert escapes == [], f"{len(escapes)} of {len(calls)} calls escaped:\n" + "\n".join(escapes)
    assert (planted / "secret.txt").read_text() == SENTINEL_TEXT + "\n"
