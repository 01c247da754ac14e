"""Which ranking puts first the files that later work touches? An offline evaluation over real git history.

For each repository given: take the commit `--back` first-parent commits before its tip, rank its Python
files with every method in `squad.agents.repomap.RANKINGS`, then replay the following first-parent commits
(a merged pull request counts as one): for each that changed Python files already present at the snapshot,
the share of them found in the top K ranked files (recall@K), averaged over commits. A repo map shows the
definitions of the top files only, so the better ranking is the one whose top K holds what tasks then change.

Not a `bench_*` module (run.py does not run it): it needs repositories with history.
Run: `python benchmarks/eval_repomap_rank.py PATH_TO_REPO_OR_GIT_DIR ... [--back 300]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from squad.agents.repomap import RANKINGS, list_tree, rank, symbols_of
from squad.infra.git import run_git


def _git(root: Path, *args: str) -> str:
    out = run_git(root, *args)
    if out.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed in {root}: {out.stderr}")
    return out.stdout


def evaluate(root: Path, back: int, ks: tuple[int, ...]) -> dict[str, dict[str, float]]:
    commits = _git(root, "rev-list", "--first-parent", "HEAD").split()
    if len(commits) <= back:
        raise SystemExit(f"{root}: only {len(commits)} commits")
    snapshot = commits[back]
    symbols = symbols_of(root, list_tree(root, snapshot)[1])
    present = set(symbols)
    log = _git(root, "log", "--first-parent", "-m", "--name-only", "--format=@@%H", f"{snapshot}..HEAD")
    tasks = [set(chunk.split()[1:]) & present for chunk in log.split("@@") if chunk.strip()]
    tasks = [t for t in tasks if t]
    rankings = {m: rank(symbols, m) for m in RANKINGS}
    result: dict[str, dict[str, float]] = {}
    n = len(present)
    for method, order in rankings.items():
        row = {}
        for k in ks:
            top = set(order[: min(k, n)]) if k >= 1 else set(order[: max(1, round(n * k))])
            row[f"{k}"] = statistics.mean(len(t & top) / len(t) for t in tasks) if tasks else 0.0
        result[method] = row
    print(f"{root}: {n} Python files at {snapshot[:10]}, {len(tasks)} later commits touching them")
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("repos", nargs="+", type=Path)
    parser.add_argument("--back", type=int, default=300)
    args = parser.parse_args(argv)
    ks = (10, 20, 0.2)
    totals: dict[str, list[float]] = {m: [] for m in RANKINGS}
    for repo in args.repos:
        result = evaluate(repo, args.back, ks)
        for method, row in result.items():
            print(f"  {method:17s} " + "  ".join(f"recall@{k}={v:.3f}" for k, v in row.items()))
            totals[method].append(statistics.mean(row.values()))
    print("mean over repos and K:")
    for method, values in sorted(totals.items(), key=lambda kv: -statistics.mean(kv[1])):
        print(f"  {method:17s} {statistics.mean(values):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
