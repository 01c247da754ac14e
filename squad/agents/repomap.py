"""The repo map: every tracked file of a commit, and the top-level definitions of its most connected Python files.

Built once per commit and shared by every agent of a run (it sits in the cached prompt prefix), so the text
is a pure function of the commit and the token budget: sorted inputs, ties broken by path, no set or hash
order anywhere a float sum or an output line depends on it.

How it is made:
1. one `git ls-tree -r -l` lists the commit's files with their blob ids;
2. one `git cat-file --batch` stream reads every Python blob (under `MAX_BLOB_BYTES`) — one git process for
   the whole commit, not one per file;
3. `squad.agents.symbols.analyze` reads each with `ast` (other languages are listed by name: no parser for
   them is dependency-free and offline);
4. files are ranked by how much the others use them: imports, and uses of the names they define weighted
   as aider's repo map weighs them (`benchmarks/eval_repomap_rank.py` measured this against PageRank over
   the same graph and plainer rankings, on real projects' history: it ranked best);
5. the map is cut to the budget: the definitions of as many top files as fit, then every file by name
   (summarised per folder when the list is too long).

Steps 1-4 are cached per commit in `<git common dir>/squad/cache/repomap/`, so a second run at the same commit
reads no blob (nor even lists the tree), and a run at a new commit parses only the blobs that changed since
the newest cached commit.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from squad.agents.symbols import FileSymbols, analyze, module_name
from squad.errors import WorkspaceError
from squad.infra.git import git_common_dir, run_git
from squad.models.tokens import estimate_text_tokens as estimate_tokens

#: Bump when the analysis or the ranking changes: old cache files are then ignored.
CACHE_VERSION = "1"
#: Python blobs larger than this are listed by name only (generated code, vendored bundles).
MAX_BLOB_BYTES = 512_000
#: Cached commits kept; older cache files are deleted when a new one is written.
KEEP_CACHED = 16
RANKINGS = ("pagerank", "pagerank-imports", "uses", "importers", "path")


@dataclass(frozen=True)
class RepoAnalysis:
    """What the map of one commit is drawn from: every path, the Python files ranked, and what each defines."""

    commit: str
    files: tuple[str, ...]
    ranked: tuple[str, ...]  # Python paths, most referenced first
    lines: dict[str, tuple[tuple[int, str], ...]]  # Python path -> its definitions (`FileSymbols.lines`)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": CACHE_VERSION,
            "commit": self.commit,
            "files": list(self.files),
            "ranked": list(self.ranked),
            "lines": {p: [list(x) for x in v] for p, v in self.lines.items()},
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> RepoAnalysis:
        return RepoAnalysis(
            commit=str(data["commit"]),
            files=tuple(data["files"]),
            ranked=tuple(data["ranked"]),
            lines={str(p): tuple((int(i), str(t)) for i, t in v) for p, v in data["lines"].items()},
        )


# ------------------------------------------------------------------------------------------------ git


def list_tree(root: Path, commit: str) -> tuple[list[str], dict[str, tuple[str, int]]]:
    """(every path of `commit`, sorted; {python path: (blob id, size)} for the `.py` blobs worth parsing)."""
    out = run_git(root, "ls-tree", "-r", "-l", "-z", "--full-tree", commit, text=False)
    if out.returncode != 0:
        raise WorkspaceError(f"cannot list files of {commit}: {out.stderr.decode(errors='replace').strip()}")
    paths: list[str] = []
    python: dict[str, tuple[str, int]] = {}
    for record in out.stdout.decode("utf-8", errors="replace").split("\0"):
        if not record:
            continue
        meta, _, path = record.partition("\t")
        mode, kind, sha, size = meta.split(None, 3)
        paths.append(path)
        parseable = kind == "blob" and mode in ("100644", "100755") and path.endswith(".py")
        if parseable and size.strip().isdigit() and int(size) <= MAX_BLOB_BYTES:
            python[path] = (sha, int(size))
    return sorted(paths), python


def read_blobs(root: Path, shas: Iterable[str]) -> dict[str, bytes]:
    """The contents of `shas`, read through ONE `git cat-file --batch` process (missing ids are left out)."""
    wanted = sorted(set(shas))
    if not wanted:
        return {}
    out = run_git(root, "cat-file", "--batch", input=("\n".join(wanted) + "\n").encode(), text=False)
    if out.returncode != 0:
        raise WorkspaceError(f"cannot read blobs: {out.stderr.decode(errors='replace').strip()}")
    data, pos, blobs = out.stdout, 0, {}
    while pos < len(data):
        eol = data.index(b"\n", pos)
        header = data[pos:eol].split()
        pos = eol + 1
        if len(header) != 3:  # "<id> missing"
            continue
        size = int(header[2])
        blobs[header[0].decode()] = data[pos : pos + size]
        pos += size + 1  # the content is followed by a newline
    return blobs


# ------------------------------------------------------------------------------------------------ cache
# Two files per commit: `<commit>.json`, the analysis a map is drawn from (all a warm build reads), and
# `<commit>.symbols.json`, each Python blob's full analysis, read only by a cold build of a later commit to
# skip the blobs it already parsed.


def cache_dir(root: Path) -> Path:
    """Where analyses are cached: under the git common dir, shared by every worktree, never in a work tree."""
    return git_common_dir(root) / "squad" / "cache" / "repomap" / f"v{CACHE_VERSION}"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing or torn: rebuild
        return None
    return data if isinstance(data, dict) and data.get("version") == CACHE_VERSION else None


def _load(directory: Path, commit: str) -> RepoAnalysis | None:
    data = _read_json(directory / f"{commit}.json")
    try:
        return RepoAnalysis.from_json(data) if data is not None and data.get("commit") == commit else None
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _write(directory: Path, name: str, data: dict[str, Any]) -> None:
    """Atomically (temp file + rename): a concurrent reader sees the whole file or none."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(data, separators=(",", ":"), sort_keys=True))  # dumps: C encoder, dump is not
        os.replace(tmp, directory / name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _store(directory: Path, analysis: RepoAnalysis, blobs: dict[str, str], symbols: dict[str, FileSymbols]) -> None:
    """Cache both files of `analysis.commit` and keep only the newest `KEEP_CACHED` commits."""
    with contextlib.suppress(OSError):  # a read-only or full disk costs the cache, not the run
        directory.mkdir(parents=True, exist_ok=True)
        full = {"version": CACHE_VERSION, "blobs": blobs, "symbols": {p: s.to_json() for p, s in symbols.items()}}
        _write(directory, f"{analysis.commit}.symbols.json", full)
        _write(directory, f"{analysis.commit}.json", analysis.to_json())
        for pattern in ("*.symbols.json", "*[0-9a-f].json"):
            cached = sorted(directory.glob(pattern), key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
            for old in cached[KEEP_CACHED:]:
                old.unlink(missing_ok=True)


def _previous(directory: Path, but: str) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """(blobs, raw symbols) of the most recently cached other commit: most of its blobs are likely unchanged."""
    with contextlib.suppress(OSError):
        files = [p for p in directory.glob("*.symbols.json") if not p.name.startswith(but)]
        for path in sorted(files, key=lambda p: (p.stat().st_mtime, p.name), reverse=True)[:1]:
            data = _read_json(path)
            if data is not None and isinstance(data.get("blobs"), dict) and isinstance(data.get("symbols"), dict):
                return data["blobs"], data["symbols"]
    return {}, {}


# ------------------------------------------------------------------------------------------------ analysis


def analyze_commit(root: Path, commit: str, *, use_cache: bool = True) -> RepoAnalysis:
    """The analysis of `commit` (a full sha): from the cache when present, else built (and cached).

    A build reads only the Python blobs the newest cached commit did not already have analysed.
    """
    directory = cache_dir(root) if use_cache else None
    if directory is not None and (hit := _load(directory, commit)) is not None:
        return hit
    files, python = list_tree(root, commit)
    symbols = symbols_of(root, python, _previous(directory, commit) if directory is not None else ({}, {}))
    lines = {p: s.lines for p, s in symbols.items()}
    analysis = RepoAnalysis(commit, tuple(files), tuple(rank(symbols)), lines)
    if directory is not None:
        _store(directory, analysis, {p: python[p][0] for p in symbols}, symbols)
    return analysis


def symbols_of(
    root: Path,
    python: dict[str, tuple[str, int]],
    previous: tuple[dict[str, str], dict[str, dict[str, Any]]] = ({}, {}),
) -> dict[str, FileSymbols]:
    """The analysis of each Python file (`{path: (blob, size)}` from `list_tree`), sorted by path; blobs that
    `previous` (blobs, raw symbols of a cached commit) already analysed are not read again."""
    old_blobs, old_symbols = previous
    symbols: dict[str, FileSymbols] = {}
    missing: dict[str, str] = {}
    for path, (sha, _size) in python.items():
        reused = None
        if old_blobs.get(path) == sha and path in old_symbols:
            with contextlib.suppress(KeyError, TypeError, ValueError, AttributeError):
                reused = FileSymbols.from_json(old_symbols[path])
        if reused is not None:
            symbols[path] = reused
        else:
            missing[path] = sha
    contents = read_blobs(root, missing.values())
    for path, sha in missing.items():
        if sha in contents:
            symbols[path] = analyze(path, contents[sha])
    return {p: symbols[p] for p in sorted(symbols)}


# ------------------------------------------------------------------------------------------------ ranking


def _resolver(paths: Iterable[str]) -> dict[str, str]:
    """Dotted module name -> path, for full names and for unambiguous suffixes of two or more parts
    (`src/pkg/mod.py` is imported as `pkg.mod`)."""
    exact: dict[str, str] = {}
    suffixes: dict[str, list[str]] = defaultdict(list)
    for path in sorted(paths):
        name = module_name(path)
        if not name:
            continue
        exact.setdefault(name, path)
        parts = name.split(".")
        for i in range(1, len(parts) - 1):
            suffixes[".".join(parts[i:])].append(path)
    out = {k: v[0] for k, v in suffixes.items() if len(v) == 1}
    out.update(exact)
    return out


def _weight(ident: str, definers: int) -> float:
    """How much one use of `ident` says about the files defining it (after aider's repo map): long, specific
    names say a lot; private names and names many files define say little."""
    weight = 1.0
    if len(ident) >= 8 and ("_" in ident.strip("_") or (ident[0].isupper() and not ident.isupper())):
        weight *= 10
    if ident.startswith("_"):
        weight *= 0.1
    if definers > 5:
        weight *= 0.1
    return weight


def edges(symbols: dict[str, FileSymbols], *, uses: bool = True) -> dict[str, dict[str, float]]:
    """The reference graph: {file: {file it imports or uses names of: weight}}, self-loops left out."""
    modules = _resolver(symbols)
    definers: dict[str, list[str]] = defaultdict(list)
    for path in sorted(symbols):
        for name in symbols[path].names:
            definers[name].append(path)
    graph: dict[str, dict[str, float]] = {}
    for path in sorted(symbols):
        out: dict[str, float] = defaultdict(float)
        for module, names in symbols[path].imports:
            targets = [modules[f"{module}.{n}"] for n in names if f"{module}.{n}" in modules]
            if not targets and module in modules:
                targets = [modules[module]]
            for target in targets:
                out[target] += 1.0
        if uses:
            for ident, count in symbols[path].uses:
                owners = definers.get(ident, ())
                for owner in owners:
                    out[owner] += _weight(ident, len(owners)) * math.sqrt(count)
        out.pop(path, None)
        graph[path] = {k: out[k] for k in sorted(out)}
    return graph


def pagerank(graph: dict[str, dict[str, float]], *, damping: float = 0.85, rounds: int = 100) -> dict[str, float]:
    """PageRank of a weighted graph (power iteration; a file that references nothing spreads its rank evenly)."""
    nodes = sorted(graph)
    if not nodes:
        return {}
    n = len(nodes)
    rank = dict.fromkeys(nodes, 1.0 / n)
    totals = {v: sum(graph[v].values()) for v in nodes}
    for _ in range(rounds):
        dangling = sum(rank[v] for v in nodes if not totals[v])
        new = dict.fromkeys(nodes, (1.0 - damping) / n + damping * dangling / n)
        for v in nodes:
            if totals[v]:
                share = damping * rank[v] / totals[v]
                for w, weight in graph[v].items():
                    new[w] += share * weight
        delta = sum(abs(new[v] - rank[v]) for v in nodes)
        rank = new
        if delta < 1e-9:
            break
    return rank


def rank(symbols: dict[str, FileSymbols], method: str = "uses") -> list[str]:
    """Python paths, most referenced first (ties by path). `method` is one of `RANKINGS`:

    uses (the default: weighted uses of its names and imports pointing at the file), pagerank (PageRank over
    the same graph, as aider does), pagerank-imports (over imports only), importers (files that import it),
    path (alphabetical: the baseline). `benchmarks/eval_repomap_rank.py` measured them on seven projects'
    history: the top files by `uses` hold more of what later commits changed than by PageRank (mean recall
    0.407 vs 0.378), the other rankings trail.
    """
    if method == "path":
        return sorted(symbols)
    graph = edges(symbols, uses=method not in ("importers", "pagerank-imports"))
    if method.startswith("pagerank"):
        score = pagerank(graph)
    else:
        score = dict.fromkeys(graph, 0.0)
        for targets in graph.values():
            for target, weight in targets.items():
                score[target] += 1.0 if method == "importers" else weight
    return sorted(score, key=lambda p: (-round(score[p], 12), p))


# ------------------------------------------------------------------------------------------------ text


def _block(path: str, lines: tuple[tuple[int, str], ...], *, detail: bool) -> str:
    """A file's entry: its path, then its definitions indented (class members only with `detail`)."""
    out = [path]
    for indent, text in lines:
        if indent == 0 or detail:
            out.append("  " * (indent + 1) + text)
    return "\n".join(out)


def render(analysis: RepoAnalysis, max_tokens: int, listing: Callable[[Sequence[str], int], str]) -> str:
    """The map of `analysis` within `max_tokens`: the definitions of the top-ranked files (with class members
    while they fit, then top-level only), then every file by name via `listing(files, tokens)`."""
    files = analysis.files
    if not files:
        return "(the repository has no tracked files)"
    plain = listing(files, max_tokens)
    reserve = min(estimate_tokens(plain), max(max_tokens // 3, 1))
    names = listing(files, reserve)
    head = "Definitions of the most referenced Python files, most referenced first:\n\n"
    tail = "\n\nFiles:\n" + names
    room = max_tokens - estimate_tokens(head + tail)
    blocks: list[str] = []
    used = 0
    for path in analysis.ranked:
        lines = analysis.lines[path]
        if not lines:
            continue
        for detail in (True, False):
            block = _block(path, lines, detail=detail)
            cost = estimate_tokens(block + "\n\n")
            if used + cost <= room:
                blocks.append(block)
                used += cost
                break
        else:
            break
    if not blocks:
        return plain
    return head + "\n\n".join(blocks) + tail
