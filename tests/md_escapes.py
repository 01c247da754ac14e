"""Counting escapes: what hostile text achieved in markdown squad posted, or in a prompt squad sent.

Markdown is parsed the way GitHub does it (CommonMark + GFM tables, by markdown-it) and every construct squad
itself never writes from untrusted text is an escape: an image, a link off this repository, raw HTML other than
squad's marker and `<sub>`, a live `@mention`, a bare URL GitHub would autolink, a heading squad did not write,
a table row whose cells do not line up. A prompt escapes when hostile text sits outside an UNTRUSTED fence, a
fence closes early, or an invisible/control character arrives raw.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from markdown_it import MarkdownIt
from markdown_it.token import Token

OUR_HTML = {"<!-- squad:review -->", "<sub>", "</sub>"}
OUR_HEADINGS = re.compile(
    r"^(\S+ )?squad review: \w+$|^Findings$|^Decisions$|^Not reviewed$|^The review did not complete$"
    r"|^Inline review$|^Follow-ups$|^Tasks$|^Decisions this run adds$"
)
_MENTION = re.compile(r"(?<![A-Za-z0-9_`])@[A-Za-z0-9]")
_AUTOLINK = re.compile(r"(?i)\b(?:https?|ftp)://|\bwww\.")
_PROMPT_BAD = re.compile(
    "[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\U000e0000-\U000e007f"
    "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]"
)
_FENCE_OPEN = re.compile(r"^(`{3,}) UNTRUSTED (\S+) — data, not instructions$")


def _walk(tokens: Iterable[Token]) -> Iterator[Token]:
    for tok in tokens:
        yield tok
        if tok.children:
            yield from _walk(tok.children)


def comment_escapes(markdown: str, repo: str) -> list[str]:
    """Every escape in `markdown` (see the module docstring), described."""
    found: list[str] = []
    tokens = MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(markdown)
    heading = False
    for tok in _walk(tokens):
        if tok.type == "image":
            found.append(f"image: {tok.attrs.get('src')}")
        elif tok.type == "link_open":
            href = str(tok.attrs.get("href", ""))
            if not href.startswith(f"https://github.com/{repo}/"):
                found.append(f"link: {href}")
        elif tok.type in ("html_inline", "html_block") and tok.content.strip() not in OUR_HTML:
            found.append(f"html: {tok.content.strip()[:80]}")
        elif tok.type == "heading_open":
            heading = True
        elif tok.type == "inline" and heading:
            heading = False
            if not OUR_HEADINGS.match(tok.content):
                found.append(f"heading: {tok.content[:80]}")
        elif tok.type == "text":
            if _MENTION.search(tok.content):
                found.append(f"mention: {tok.content[:80]}")
            if _AUTOLINK.search(tok.content):
                found.append(f"autolink: {tok.content[:80]}")
    found += _table_rows(markdown)
    return found


def _table_rows(markdown: str) -> list[str]:
    """Rows whose number of live `|` differs from their table's header (GFM splits at unescaped pipes)."""
    found: list[str] = []
    width: int | None = None
    for line in markdown.split("\n"):
        if not line.startswith("|"):
            width = None
            continue
        cells = len(re.findall(r"(?<!\\)\|", line))
        if width is None:
            width = cells
        elif cells != width:
            found.append(f"table row: {line[:80]}")
    return found


def prompt_escapes(prompt: str, canaries: Iterable[str], line_canaries: Iterable[str] = ()) -> list[str]:
    """Escapes in a prompt: raw invisible/control characters; a canary outside every UNTRUSTED fence; a fence
    that closes before its end label; a `line_canary` (from a one-line value) at the start of a line."""
    found = [f"raw U+{ord(m.group()):04X}" for m in _PROMPT_BAD.finditer(prompt)]
    outside: list[str] = []
    lines = prompt.split("\n")
    i = 0
    while i < len(lines):
        m = _FENCE_OPEN.match(lines[i])
        if not m:
            outside.append(lines[i])
            i += 1
            continue
        ticks, kind = m.groups()
        j = i + 1
        while j < len(lines) and not re.fullmatch(rf"`{{{len(ticks)},}}\s*", lines[j]):
            j += 1
        if j + 1 >= len(lines) or lines[j + 1] != f"(end of UNTRUSTED {kind})":
            found.append(f"fence {kind} closed early at line {j + 1}")
        i = j + 1
    rest = "\n".join(outside)
    found += [f"outside a fence: {c}" for c in canaries if c in rest]
    for c in line_canaries:
        found += [f"own line: {line[:80]}" for line in lines if line.lstrip().startswith(c)]
    return found
