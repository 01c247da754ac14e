"""The prompts squad sends, as package data files rendered with `str.format` (never inline f-strings).

One file per prompt (`<name>.md`). Values are substituted with `str.format_map`, so a value's own braces
are never interpreted and literal braces in a template are written `{{` / `}}`. Files are read once and
cached: the texts that end up in the shared, cached prompt prefix (`preamble`) must stay byte-stable.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any


@cache
def template(name: str) -> str:
    """The raw text of prompt `name` (without its trailing newline)."""
    return resources.files(__package__).joinpath(f"{name}.md").read_text(encoding="utf-8").rstrip("\n")


def render(_name: str, /, **values: Any) -> str:
    """Prompt `_name` with `{field}`s replaced by `values` (a missing value is a KeyError naming it)."""
    return template(_name).format_map(values)
