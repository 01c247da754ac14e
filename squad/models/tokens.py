"""Cheap token estimates (chars / 4) used before a call, by the rate governor and the budget."""

from __future__ import annotations

import hashlib
import json

from squad.models.base import ModelRequest, TextBlock, ToolResultBlock, ToolSpec, ToolUseBlock

CHARS_PER_TOKEN = 4


#: Characters of recently seen tool lists, by identity (each entry keeps its tuple alive, so an id is never
#: reused while cached). Every call of a run sends the same tool list; serialising its schemas each time
#: was most of the cost of an estimate, and each call is estimated by the budget and the rate governor.
_TOOL_CHARS: dict[int, tuple[tuple[ToolSpec, ...], int]] = {}


def _tool_chars(tools: tuple[ToolSpec, ...]) -> int:
    hit = _TOOL_CHARS.get(id(tools))
    if hit is not None and hit[0] is tools:
        return hit[1]
    chars = sum(len(t.name) + len(t.description) + len(json.dumps(t.input_schema)) for t in tools)
    if len(_TOOL_CHARS) >= 64:  # a few lists per run: keep the cache small
        _TOOL_CHARS.clear()
    _TOOL_CHARS[id(tools)] = (tools, chars)
    return chars


def estimate_input_tokens(request: ModelRequest) -> int:
    """Roughly how many input tokens `request` costs: its characters / 4 (tools, system, messages)."""
    chars = sum(len(block.text) for block in request.system) + _tool_chars(request.tools)
    for message in request.messages:
        for block in message.content:
            if isinstance(block, TextBlock):
                chars += len(block.text)
            elif isinstance(block, ToolResultBlock):
                chars += len(block.content) + len(block.tool_use_id)
            elif isinstance(block, ToolUseBlock):
                chars += len(block.name) + len(json.dumps(block.input))
    return max(1, chars // CHARS_PER_TOKEN)


def estimate_text_tokens(text: str) -> int:
    """Tokens of a piece of text, chars / 4 (at least 1 for non-empty text)."""
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def cached_prefix(request: ModelRequest) -> tuple[str, int] | None:
    """The cacheable prefix of `request` (tools, then system blocks up to the last `cache=True` block),
    as (sha256 of its exact content, estimated tokens counted like `estimate_input_tokens`); None when
    the request sets no breakpoint."""
    last = max((i for i, block in enumerate(request.system) if block.cache), default=None)
    if last is None:
        return None
    digest = hashlib.sha256()
    chars = 0
    for tool in request.tools:
        schema = json.dumps(tool.input_schema)
        digest.update(json.dumps([tool.name, tool.description, schema]).encode())
        chars += len(tool.name) + len(tool.description) + len(schema)
    for block in request.system[: last + 1]:
        digest.update(b"\x00" + block.text.encode())
        chars += len(block.text)
    return digest.hexdigest(), max(1, chars // CHARS_PER_TOKEN)
