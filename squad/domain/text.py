"""Text that can cross every boundary: no lone surrogates.

Python strings may hold lone surrogates (U+D800..U+DFFF): `\\ud800` escapes in JSON from a model or a
gateway, file names decoded with `surrogateescape`. They cannot be encoded as UTF-8, so one of them in a
tool result or a journal line makes the SDK's request encoder or a file write raise, ending the run.
These helpers find them (to refuse a tool call with a clear error) and replace them (where text only
has to be shown).
"""

from __future__ import annotations

import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


def has_surrogates(text: str) -> bool:
    """Whether `text` holds a lone surrogate (and so cannot be encoded as UTF-8)."""
    return not text.isascii() and _SURROGATE.search(text) is not None


def clean_text(text: str) -> str:
    """`text` with every lone surrogate replaced: a `surrogateescape`d byte becomes `\\xNN` (a file name
    that is not UTF-8 stays recognisable), any other surrogate becomes U+FFFD."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub(_replace, text)


def _replace(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else "\ufffd"


def find_surrogate(value: Any, where: str = "") -> str | None:
    """The location (`content`, `tasks[0].goal`, ...) of the first string in a JSON value holding a lone
    surrogate, or None. Keys are checked too."""
    if isinstance(value, str):
        return (where or "(value)") if has_surrogates(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{where}.{key}" if where else str(key)
            if isinstance(key, str) and has_surrogates(key):
                return name
            found = find_surrogate(item, name)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = find_surrogate(item, f"{where}[{i}]")
            if found:
                return found
    return None


def clean_json(value: Any) -> Any:
    """A copy of a JSON value with `clean_text` applied to every string (keys included)."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(k) if isinstance(k, str) else k: clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value
