"""The repo map: symbols of the most referenced Python files, every file by name, within budget, deterministic,
and cached per commit (a second build reads no blob; a build at a new commit reads only the changed ones)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git

from squad.agents.context import ContextPack, repo_map
from squad.agents.repomap import analyze_commit, cache_dir, rank, render
from squad.agents.symbols import analyze
from squad.config import Settings
from squad.models.tokens import estimate_text_tokens

CORE = '''"""The core."""

from dataclasses import dataclass


@dataclass
class Book:
    isbn: str
    title: str

    def label(self, upper: bool = False) -> str:
        return self.title.upper() if upper else self.title

    def _hidden(self) -> None: ...


def load_books(path: str, *, limit: int = 10) -> list[Book]:
    return []


def _private_helper() -> None: ...
'''


def _commit(repo: Path, files: dict[str, str], message: str = "c") -> str:
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD").strip()


def _shop(repo: Path) -> str:
    """A package whose `core` five modules import, a leaf nobody imports, a broken file and non-Python files."""
    files = {"shop/__init__.py": "", "shop/core.py": CORE, "docs/guide.md": "# guide\n", "Makefile": "all:\n"}
    for i in range(5):
        files[f"shop/use{i}.py"] = (
            f"from .core import Book, load_books\n\n\ndef use{i}() -> Book:\n    return load_books('x')[0]\n"
        )
    files["shop/zz_leaf.py"] = "def lonely() -> int:\n    return 1\n"
    files["shop/broken.py"] = "def broken(:\n"
    return _commit(repo, files)


def _map(repo: Path, sha: str, budget: int = 4000) -> str:
    return render(analyze_commit(repo, sha), budget, repo_map)


def test_python_definitions_with_signatures_others_by_name(repo: Path) -> None:
    sha = _shop(repo)
    text = _map(repo, sha)
    core = text[text.index("shop/core.py\n") :].split("\n\n")[0].splitlines()
    assert core == [
        "shop/core.py",
        "  class Book",
        "    isbn: str",
        "    title: str",
        "    def label(self, upper: bool=False) -> str",
        "  def load_books(path: str, *, limit: int=10) -> list[Book]",
    ]  # private names stay out
    files = text[text.index("Files:") :]
    for name in ("Makefile", "README.md", "docs/guide.md", "shop/broken.py", "shop/core.py"):
        assert name in files  # every tracked file by name, the unparseable one too
    assert analyze("x.py", b"def broken(:\n").error


def test_a_heavily_imported_module_ranks_before_a_leaf(repo: Path) -> None:
    sha = _shop(repo)
    ranked = list(analyze_commit(repo, sha).ranked)
    assert ranked[0] == "shop/core.py" and ranked.index("shop/core.py") < ranked.index("shop/zz_leaf.py")
    text = _map(repo, sha)
    assert text.index("shop/core.py") < text.index("shop/zz_leaf.py")
    # relative imports resolve to the module file: core is imported by five files
    symbols = {
        "pkg/a.py": analyze("pkg/a.py", b"from . import b\nfrom .b import thing\n"),
        "pkg/b.py": analyze("pkg/b.py", b"def thing(): ...\n"),
        "pkg/c.py": analyze("pkg/c.py", b""),
    }
    assert rank(symbols, "importers")[0] == "pkg/b.py"


@pytest.mark.parametrize("budget", [60, 200, 600, 2000])
def test_the_token_budget_holds(repo: Path, budget: int) -> None:
    files = {f"pkg{d}/mod{i}.py": CORE.replace("Book", f"Book{d}x{i}") for d in range(6) for i in range(30)}
    sha = _commit(repo, files)
    text = _map(repo, sha, budget)
    assert estimate_text_tokens(text) <= budget
    assert "pkg" in text
    if budget >= 600:
        assert "def load_books(" in text  # symbols for the top files
        assert text.count("\n  class ") >= 2


def test_the_same_bytes_twice_and_across_processes(repo: Path) -> None:
    sha = _shop(repo)
    first = _map(repo, sha)
    assert _map(repo, sha) == first  # cached
    code = (
        "import sys; from pathlib import Path; from squad.agents.context import repo_map; "
        "from squad.agents.repomap import analyze_commit, render; "
        "sys.stdout.write(render(analyze_commit(Path('.'), sys.argv[1], use_cache=False), 4000, repo_map))"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code, sha],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert outs == {first}  # cold builds in other processes (other hash seeds) give the same bytes


def _logging_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put a `git` on PATH that logs each command line, and the ids fed to `cat-file`, before running git."""
    real = subprocess.run(["which", "git"], capture_output=True, text=True, check=True).stdout.strip()
    log = tmp_path / "git.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    wrapper = bin_dir / "git"
    wrapper.write_text(
        f'#!/bin/sh\necho "---- $*" >> "{log}"\n'
        f'case "$*" in *cat-file*) tmp=$(mktemp); cat > "$tmp"; cat "$tmp" >> "{log}"; '
        f'exec "{real}" "$@" < "$tmp";; esac\nexec "{real}" "$@"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    log.write_text("")
    return log


def test_the_cache_is_used_and_a_new_commit_reads_only_changed_blobs(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = _shop(repo)
    log = _logging_git(tmp_path, monkeypatch)
    first = _map(repo, sha)
    assert log.read_text().count("cat-file --batch") == 1  # ONE stream for every blob
    assert len([line for line in log.read_text().splitlines() if len(line) == 40]) == 9  # the 9 .py blobs
    log.write_text("")
    assert _map(repo, sha) == first
    assert "cat-file" not in log.read_text() and "ls-tree" not in log.read_text()  # no blob read, no listing
    assert list(cache_dir(repo).glob(f"{sha}*.json"))

    monkeypatch.undo()
    second = _commit(repo, {"shop/zz_leaf.py": "def lonely() -> int:\n    return 2\n"})
    changed = git(repo, "rev-parse", f"{second}:shop/zz_leaf.py").strip()
    log = _logging_git(tmp_path, monkeypatch)
    _map(repo, second)
    fed = [line for line in log.read_text().splitlines() if len(line) == 40]
    assert fed == [changed]  # the other eight analyses came from the first commit's cache


def test_a_torn_cache_file_is_rebuilt(repo: Path) -> None:
    sha = _shop(repo)
    first = _map(repo, sha)
    (cache_dir(repo) / f"{sha}.json").write_text('{"version": "1", "comm')
    assert _map(repo, sha) == first


def test_the_context_pack_carries_the_map(repo: Path) -> None:
    _shop(repo)
    pack = ContextPack.build(repo, Settings())
    block = next(b.text for b in pack.system_blocks() if b.text.startswith("# Repository map"))
    assert "def load_books(path: str" in block and "Makefile" in block
