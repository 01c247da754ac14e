"""Model-supplied regular expressions and globs, measured before they are compiled.

The `regex` module bounds matching time (`timeout=`) but not compiling, and it expands counted repeats:
`((a{100}){100}){100}` (21 characters) compiles to a million nodes, half a second and 300 MB, and one
more level exhausts memory, all while holding the GIL (a compile cannot be interrupted). So a pattern is
scanned first, in linear time, and refused with a clear tool error unless it is short, shallow, has no
huge repeat count, and its weight is small. The weight is the size the pattern expands to: an atom
weighs 1, a group the sum of its content, a counted repeat `X{m,n}` multiplies X by its largest count.
Every pattern accepted compiles in milliseconds (`python benchmarks/run.py tools` measures the worst).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import regex

from squad.agents.tools.base import ToolError

#: Longest regular expression `search` accepts (characters).
MAX_PATTERN_CHARS = 2000
#: Longest glob `list_files`/`search` accept (characters).
MAX_GLOB_CHARS = 1000
#: Deepest group nesting; the compiler recurses per level.
MAX_NESTING = 50
#: Largest count in a counted repeat `{m,n}`.
MAX_REPEAT = 10_000
#: Largest weight (expanded size) of a pattern.
MAX_WEIGHT = 20_000

_COUNT = re.compile(r"\{(\d*)(?:(,)(\d*))?\}")
_POSIX_CLASS = re.compile(r"\[:\^?[A-Za-z_]+:\]")
_INLINE_FLAGS = re.compile(r"\(\?[a-zA-Z^-]+\)")
_CALL = re.compile(r"\(\?(?:R|[+-]?\d+|&\w+|P>\w+)\)")


class PatternError(ToolError):
    """A pattern was refused before compiling: too long, too deep, too large a count or weight."""


@dataclass
class _Frame:
    total: int = 0
    last: int = 0  # weight of the last atom, which a quantifier multiplies


def weight(pattern: str) -> int:
    """The expanded size of `pattern` (see module docstring); PatternError if it nests too deep or has a
    count above MAX_REPEAT. Over-estimates rather than under-estimates; syntax errors are left to the
    compiler."""
    stack = [_Frame()]
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        top = stack[-1]
        if ch == "\\":
            i = _escape_end(pattern, i)
            top.last = 1
            top.total += 1
            continue
        if ch == "[":
            i = _class_end(pattern, i)
            top.last = 1
            top.total += 1
            continue
        if ch == "(":
            skip = _INLINE_FLAGS.match(pattern, i) or _CALL.match(pattern, i)
            if skip:
                i = skip.end()
                top.last = 1
                top.total += 1
                continue
            if pattern.startswith("(?#", i):
                end = pattern.find(")", i)
                i = n if end == -1 else end + 1
                continue
            if len(stack) > MAX_NESTING:
                raise PatternError(
                    f"the pattern nests groups more than {MAX_NESTING} deep", hint="use fewer nested parentheses"
                )
            stack.append(_Frame())
            i += 1
            if pattern.startswith("?(", i):  # conditional `(?(1)yes|no)`: skip the condition
                end = pattern.find(")", i + 2)
                i = n if end == -1 else end + 1
            continue
        if ch == ")" and len(stack) > 1:  # an unbalanced one is an atom here; the compiler refuses it
            done = stack.pop()
            parent = stack[-1]
            parent.last = max(done.total, 1)
            parent.total += parent.last
            i += 1
            continue
        if ch == "|":
            top.last = 0
            i += 1
            continue
        if ch == "{":
            count = _COUNT.match(pattern, i)
            if count:
                low = int(count[1] or 0)
                high = int(count[3]) if count[3] else None
                biggest = max(low, high or 0)
                if biggest > MAX_REPEAT:
                    raise PatternError(
                        f"the repeat count {count[0]} is above the limit of {MAX_REPEAT:,}",
                        hint="use a smaller count, or + / * for 'any number'",
                    )
                if count[2] is None or biggest:
                    top.total += top.last * (max(biggest, 1) - 1)
                    top.last *= max(biggest, 1)
                i = count.end()
                continue
        if ch in "*+?":
            i += 1
            continue
        top.last = 1
        top.total += 1
        i += 1
    while len(stack) > 1:  # unclosed groups (the compiler refuses them): count what they hold
        done = stack.pop()
        stack[-1].total += done.total
    return stack[0].total


def _escape_end(pattern: str, i: int) -> int:
    """Index just past the escape sequence starting at `pattern[i] == '\\'`."""
    nxt = pattern[i + 1 : i + 2]
    if nxt in ("p", "P", "N", "g") and pattern[i + 2 : i + 3] in ("{", "<"):
        close = "}" if pattern[i + 2] == "{" else ">"
        end = pattern.find(close, i + 3)
        return len(pattern) if end == -1 else end + 1
    if nxt == "x":
        return min(i + 4, len(pattern))
    if nxt == "u":
        return min(i + 6, len(pattern))
    if nxt == "U":
        return min(i + 10, len(pattern))
    return i + 2


def _class_end(pattern: str, i: int) -> int:
    """Index just past the character class opening at `pattern[i] == '['` (the rest of the pattern when
    it never closes: the compiler then refuses it)."""
    j = i + 1
    if pattern[j : j + 1] == "^":
        j += 1
    if pattern[j : j + 1] == "]":
        j += 1
    while j < len(pattern):
        ch = pattern[j]
        if ch == "\\":
            j = _escape_end(pattern, j)
            continue
        if ch == "[":
            posix = _POSIX_CLASS.match(pattern, j)
            if posix:
                j = posix.end()
                continue
        if ch == "]":
            return j + 1
        j += 1
    return len(pattern)


def check_length(pattern: str, *, what: str, max_chars: int) -> None:
    """PatternError if `pattern` is longer than `max_chars`."""
    if len(pattern) > max_chars:
        raise PatternError(
            f"the {what} is {len(pattern):,} characters long; the limit is {max_chars:,}",
            hint=f"use a shorter, more specific {what}",
        )


def check(pattern: str, *, what: str = "regular expression", max_chars: int = MAX_PATTERN_CHARS) -> None:
    """PatternError unless regular expression `pattern` is within every bound (length, nesting, counts,
    weight)."""
    check_length(pattern, what=what, max_chars=max_chars)
    total = weight(pattern)
    if total > MAX_WEIGHT:
        raise PatternError(
            f"the {what} {_short(pattern)} is too large to compile: its repeats expand to about {total:,} "
            f"elements (the limit is {MAX_WEIGHT:,})",
            hint="nested counted repeats multiply, e.g. (a{100}){100} is 10,000; use + or * instead of big counts",
        )


@lru_cache(maxsize=256)
def compile_regex(pattern: str, flags: int = 0) -> regex.Pattern[str]:
    """`regex.compile` for a model-supplied pattern, after `check`; a bad pattern is a ToolError."""
    check(pattern)
    try:
        return regex.compile(pattern, flags)
    except regex.error as exc:
        raise ToolError(
            f"invalid regular expression {_short(pattern)}: {exc}",
            hint="escape special characters such as ( [ { . * + ? with a backslash for a literal match",
        ) from None
    except (RecursionError, MemoryError, OverflowError) as exc:  # not reached within the bounds; belt and braces
        what = type(exc).__name__
        raise PatternError(f"the regular expression {_short(pattern)} cannot be compiled ({what})") from None


def _short(pattern: str) -> str:
    return repr(pattern) if len(pattern) <= 80 else repr(pattern[:77]) + "..."
