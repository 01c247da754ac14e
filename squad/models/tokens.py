"""Cheap token estimates (chars / 4) used before a call, by the rate governor and the budget."""

from __future__ import annotations

import hashlib
import json

from squad.models.base import ModelRequest, TextBlock, ToolResultBlock, ToolUseBlock

CHARS_PER_TOKEN = 4


def estimate_input_tokens(request: ModelRequest) -> int:
    """Roughly how many input tokens `request` costs: its characters / 4 (tools, system, messages)."""
    chars = sum(len(block.text) for block in request.system)
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description) + len(json.dumps(tool.input_schema))
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
