"""Model-supplied regular expressions and globs are measured before they are compiled (issue 10, item 2).

Compiling cannot be interrupted (it holds the GIL, no timeout applies), and the `regex` module expands
counted repeats: a 21-character pattern costs half a second and 300 MB, one more level all the memory there
is. `search` (offered to reviewers too) and the glob of `list_files`/`search` must refuse such patterns
with a clear tool error. The real bombs run in a child process with an address-space limit, so a
regression fails the test instead of taking the machine down."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git
from tools_support import call, make_ctx

CHILD = r"""
import asyncio, json, resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))
from squad.agents.tools import ToolContext, default_toolbox
from squad.config import Settings
ctx = ToolContext(worktree=Path(sys.argv[1]), run_id="r", agent="reviewer", task="t", settings=Settings(),
                  base_commit="", allowed=frozenset({"search", "list_files"}))
out = []
for name, args in json.loads(sys.argv[2]):
    result = asyncio.run(default_toolbox().call(name, args, ctx))
    out.append([result.is_error, result.content])
print(json.dumps(out))
"""


@pytest.fixture
def ctx(repo: Path):  # type: ignore[no-untyped-def]
    (repo / "data.txt").write_text("a" * 200 + "\n" + "def handler(request):\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "data")
    return make_ctx(repo)


def _in_child(repo: Path, calls: list[tuple[str, dict[str, object]]]) -> list[tuple[bool, str]]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(repo), json.dumps(calls)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return [(bool(e), str(c)) for e, c in json.loads(out.stdout)]


@pytest.mark.timeout(180)
def test_compile_bombs_are_refused_before_compiling(ctx) -> None:  # type: ignore[no-untyped-def]
    bombs = [
        r"((a{100}){100}){100}",  # 10^6 nodes: 0.5 s, 300 MB
        r"(?:(?:a{1000}){1000}){1000}",  # 10^9: out of memory
        r"(((a{50}){50}){50}){50}",
        r"[\w\W]{10}{10}{10}{10}{10}{10}",
        r"x{4294967295}",
    ]
    results = _in_child(ctx.worktree, [("search", {"pattern": bomb}) for bomb in bombs])
    for bomb, (is_error, content) in zip(bombs, results, strict=True):
        assert is_error, (bomb, content)
        assert ("too large to compile" in content or "above the limit" in content) and "hint:" in content, content


def test_long_deep_and_nested_patterns_are_clear_tool_errors(ctx) -> None:  # type: ignore[no-untyped-def]
    long = call(ctx, "search", {"pattern": "a" * 5000})
    assert long.is_error and "5,000 characters" in long.content and "limit" in long.content
    deep = call(ctx, "search", {"pattern": "(" * 300 + "a" + ")" * 300})
    assert deep.is_error and "nests groups" in deep.content, deep.content
    counted = call(ctx, "search", {"pattern": r"(?:a{100}){1000}"})
    assert counted.is_error and "too large to compile" in counted.content and "(a{100}){100}" in counted.content
    glob = call(ctx, "list_files", {"pattern": "*a" * 1000})
    assert glob.is_error and "glob" in glob.content and "limit" in glob.content, glob.content
    in_search = call(ctx, "search", {"pattern": "def", "glob": "?" * 5000})
    assert in_search.is_error and "glob" in in_search.content


def test_ordinary_patterns_still_work(ctx) -> None:  # type: ignore[no-untyped-def]
    for pattern, expected in (
        (r"def \w+\(", "data.txt:2: def handler(request):"),
        (r"a{200}", "data.txt:1:"),
        (r".{150,}", "data.txt:1:"),
        (r"(?i)HANDLER\b", "data.txt:2:"),
        (r"[[:alpha:]]+\(request\)", "data.txt:2:"),
    ):
        result = call(ctx, "search", {"pattern": pattern})
        assert not result.is_error and expected in result.content, (pattern, result.content)
    bad = call(ctx, "search", {"pattern": "foo("})
    assert bad.is_error and "invalid regular expression" in bad.content
    listed = call(ctx, "list_files", {"pattern": "**/*.txt"})
    assert not listed.is_error and "data.txt" in listed.content
