"""The repo map of a generated 5,000-file Python repo: cold build, warm (cached) build, a bare `git ls-tree`
listing and the old names-only map, side by side; then how the blobs are read (one `git cat-file --batch`
stream, GitPython's object database, one `git cat-file` per file) and where a cold build spends its time.

The repo: 50 packages of 100 modules; each module defines two classes and three functions and imports a few
others, most often from a handful of `core` modules (so a few files are heavily referenced, as in real code).
Set SQUAD_BENCH_DIR to choose the file system (default: /dev/shm when present, else the temp dir).
Run: `python benchmarks/run.py repomap`.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import git

from squad.agents.context import repo_map
from squad.agents.repomap import analyze_commit, cache_dir, list_tree, rank, read_blobs, render
from squad.agents.symbols import analyze
from squad.infra.git import run_git
from squad.models.tokens import estimate_text_tokens

N_PKGS, PER_PKG = 50, 100
BUDGET = 4000


def _module(rng: random.Random, pkg: int, mod: int) -> str:
    imports = {f"pkg00.core{rng.randrange(5)}" for _ in range(2)}  # the heavily used core
    imports |= {f"pkg{rng.randrange(N_PKGS):02d}.mod{rng.randrange(PER_PKG):03d}" for _ in range(3)}
    lines = [f'"""Module {mod} of package {pkg}."""', "", "from __future__ import annotations", ""]
    lines += [f"import {name}" for name in sorted(imports)]
    lines += [""]
    for c in range(2):
        lines += [
            "",
            f"class Thing{pkg}x{mod}x{c}:",
            f'    """Thing {c}."""',
            "",
            "    size: int = 0",
            "",
            "    def __init__(self, size: int, name: str = 'x') -> None:",
            "        self.size = size",
            "        self.name = name",
            "",
            f"    def grow_{c}(self, by: int) -> int:",
            "        total = self.size + by",
            "        return total",
        ]
    for f in range(3):
        target = sorted(imports)[f % len(imports)]
        lines += [
            "",
            "",
            f"def compute_{pkg}_{mod}_{f}(values: list[int], *, scale: float = 1.0) -> float:",
            f'    """Function {f}."""',
            f"    base = {target}.core_helper(values) if hasattr({target}, 'core_helper') else 0",
            "    return sum(v * scale for v in values) + base",
        ]
    return "\n".join(lines) + "\n"


def make_repo(parent: Path) -> Path:
    rng = random.Random(7)
    root = parent / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    for p in range(N_PKGS):
        folder = root / f"pkg{p:02d}"
        folder.mkdir()
        (folder / "__init__.py").write_text("")
        for m in range(PER_PKG - 1):
            (folder / f"mod{m:03d}.py").write_text(_module(rng, p, m))
    for c in range(5):
        (root / "pkg00" / f"core{c}.py").write_text(
            f'"""Core {c}."""\n\n\ndef core_helper(values: list[int]) -> int:\n    return len(values)\n'
        )
    (root / "README.md").write_text("# generated\n")
    (root / "pyproject.toml").write_text('[project]\nname = "generated"\n')
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "generated")
    return root


def _median(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _gitpython_read(root: Path, shas: list[str]) -> int:
    """Every blob through GitPython's object database (a persistent `git cat-file`), one Repo, closed."""
    from git import Repo
    from git.db import GitCmdObjectDB

    total = 0
    with Repo(root, odbt=GitCmdObjectDB) as repo:
        for sha in shas:
            total += len(repo.odb.stream(bytes.fromhex(sha)).read())
    return total


def _one_process_per_blob(root: Path, shas: list[str]) -> int:
    return sum(len(run_git(root, "cat-file", "blob", sha, text=False).stdout) for sha in shas)


def main() -> None:
    base = os.environ.get("SQUAD_BENCH_DIR") or ("/dev/shm" if Path("/dev/shm").is_dir() else None)
    parent = Path(tempfile.mkdtemp(prefix="squad-bench-repomap-", dir=base))
    try:
        root = make_repo(parent)
        sha = git(root, "rev-parse", "HEAD").strip()
        files, python = list_tree(root, sha)
        print(f"repo: {len(files)} files ({len(python)} Python) at {parent}")

        def cold() -> str:
            shutil.rmtree(cache_dir(root), ignore_errors=True)
            return render(analyze_commit(root, sha), BUDGET, repo_map)

        def warm() -> str:
            return render(analyze_commit(root, sha), BUDGET, repo_map)

        def ls_tree() -> str:
            out = run_git(root, "ls-tree", "-r", "-z", "--name-only", sha, text=False).stdout.decode()
            return "\n".join(sorted(p for p in out.split("\0") if p))

        t_ls = _median(ls_tree, 9)
        t_old = _median(lambda: repo_map(ls_tree().splitlines(), BUDGET), 9)
        t_cold = _median(cold, 3)
        text = cold()
        t_warm = _median(warm, 9)
        print(f"  git ls-tree listing (the old map's input): {t_ls * 1000:8.1f} ms")
        print(f"  old map: file names only, from ls-tree:    {t_old * 1000:8.1f} ms")
        print(f"  repo map, cold (no cache):                 {t_cold * 1000:8.1f} ms  ({t_cold / t_ls:.0f}x ls-tree)")
        print(f"  repo map, warm (cached per commit):        {t_warm * 1000:8.1f} ms  ({t_warm / t_ls:.1f}x ls-tree)")

        shas = [s for s, _ in python.values()]
        t_batch = _median(lambda: read_blobs(root, shas), 3)
        t_gitpython = _median(lambda: _gitpython_read(root, shas), 3)
        some = shas[:200]
        t_each = _median(lambda: _one_process_per_blob(root, some), 1) * len(shas) / len(some)
        print(f"reading {len(shas)} blobs:")
        print(f"  one `git cat-file --batch` (squad):        {t_batch * 1000:8.1f} ms")
        print(
            f"  GitPython object database:                 {t_gitpython * 1000:8.1f} ms  ({t_gitpython / t_batch:.1f}x)"
        )
        print(f"  one `git cat-file` per blob (estimated):   {t_each * 1000:8.1f} ms  ({t_each / t_batch:.0f}x)")

        blobs = read_blobs(root, shas)
        by_sha = {s: p for p, (s, _) in python.items()}
        t = time.perf_counter()
        symbols = {by_sha[s]: analyze(by_sha[s], data) for s, data in blobs.items()}
        t_parse = time.perf_counter() - t
        t_rank = _median(lambda: rank(symbols), 1)
        print("cold build, by stage:")
        print(
            f"  ls-tree -l {t_ls * 1000:.0f} ms, cat-file {t_batch * 1000:.0f} ms, ast {t_parse * 1000:.0f} ms, "
            f"rank {t_rank * 1000:.0f} ms"
        )

        tokens = estimate_text_tokens(text)
        shown = [line for line in text.splitlines() if line and not line.startswith((" ", "Definitions", "Files"))]
        print(
            f"map: {tokens} of {BUDGET} tokens ({'fits' if tokens <= BUDGET else 'OVER BUDGET'}); "
            f"definitions of {len(shown) - text[text.index('Files:') :].count(chr(10))} files; first lines:"
        )
        for line in text.splitlines()[:12]:
            print("  | " + line)
    finally:
        shutil.rmtree(parent, ignore_errors=True)
