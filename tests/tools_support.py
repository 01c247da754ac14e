"""Helpers shared by the tests/test_tools_*.py files: a ToolContext on a real repo and a sync `call`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from conftest import git

from squad.agents.tools import Toolbox, ToolContext, ToolResult, default_toolbox
from squad.config import ALL_TOOLS, Settings

EVERY_TOOL = frozenset({*ALL_TOOLS, "submit_verdict"})
SENTINEL_TEXT = "SENTINEL-7f3a-do-not-leak"


def make_ctx(root: Path, **overrides: Any) -> ToolContext:
    """A context with every tool allowed, based on the repo's current HEAD."""
    fields: dict[str, Any] = {
        "worktree": root,
        "run_id": "20261122-063000-abcd",
        "agent": "backend",
        "task": "t1",
        "settings": Settings(),
        "base_commit": git(root, "rev-parse", "HEAD").strip(),
        "ledger_file": None,
        "allowed": EVERY_TOOL,
    }
    fields.update(overrides)
    return ToolContext(**fields)


def call(ctx: ToolContext, name: str, args: Any, toolbox: Toolbox | None = None) -> ToolResult:
    """Run one tool call to completion through Toolbox.call, the way the agent loop does."""
    return asyncio.run((toolbox or default_toolbox()).call(name, args, ctx))


def make_outside(repo: Path) -> Path:
    """A directory next to the repo holding a sentinel file no tool may read or change."""
    out = repo.parent / "outside"
    out.mkdir(exist_ok=True)
    (out / "secret.txt").write_text(SENTINEL_TEXT + "\n")
    return out


def snapshot(directory: Path) -> dict[str, tuple[int, bytes]]:
    """Every entry below `directory` (links not followed): its mode and, for files, its bytes."""
    out: dict[str, tuple[int, bytes]] = {}
    for path in sorted(directory.rglob("*")):
        st = path.lstat()
        out[str(path.relative_to(directory))] = (st.st_mode, path.read_bytes() if path.is_file() else b"")
    return out
