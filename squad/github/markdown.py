"""Markdown squad writes to GitHub — comments, reviews, PR bodies, job summaries — with every value escaped for
the place it goes. One small set of escapers, used everywhere squad renders markdown:

- `text(s)`: untrusted one-line prose (a decision title, a login, link text): sanitized, whitespace folded,
  markdown punctuation backslash-escaped (no emphasis, link, image, HTML, table cell or block can start),
  `@mentions` put in code spans (GitHub links mentions in rendered text, escapes or entities notwithstanding),
  URLs defanged (`hxxps://`, `www[.]`) so GitHub's autolinker leaves them alone.
- `code(s)`: a code span that can hold any string: one line, invisible characters shown as `<U+XXXX>`, a
  backtick fence longer than any backtick run inside.
- `cell(md)`: rendered inline markdown placed in a GFM table cell: every live `|` escaped.
- `link(label, url)`: a link squad itself makes (to this repository on GitHub): label through `text`, the
  URL https only and percent-encoded.
- `model(s)`: markdown a model wrote (summaries, finding messages). It is PARSED (markdown-it, CommonMark)
  and re-emitted from the tokens: text through `text`'s escaping, code as code, emphasis and lists kept, and
  images, links and raw HTML dropped (their text kept) — an image or link in a comment is fetched or
  clicked, which is how a prompt-injected model would exfiltrate what it read. `quote` wraps the result.

Escaping happens on the way OUT; sanitizing PR text on the way into a prompt is `squad.github.sanitize`.
"""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING
from urllib.parse import quote as url_quote
from urllib.parse import urlsplit

from squad.github.sanitize import sanitize_code, sanitize_line, sanitize_text

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

#: GitHub mentions: `@user`, `@org/team`, not inside a word (emails are not mentions).
_MENTION_RE = re.compile(r"(?<![A-Za-z0-9_`])@[A-Za-z0-9][A-Za-z0-9_-]*(?:/[A-Za-z0-9][A-Za-z0-9_.-]*)?")
#: What can start inline markup anywhere: code, emphasis, links and images (`!` needs `[`), HTML and autolinks,
#: entities, escapes, table cells, strikethrough, GitHub math. The rest of ASCII punctuation stays readable.
_PUNCT_RE = re.compile(r"[\\`*_\[\]<&|~$]")
#: What can start a block at the beginning of a line: headings, quotes, list items, setext underlines.
_LINE_START_RE = re.compile(r"^(\s*)([#>+=-]|\d+[.)])")
_SCHEME_RE = re.compile(r"(?i)\b(h)tt(ps?)(?=:)|\b(f)t(p)(?=:)")
_WWW_RE = re.compile(r"(?i)\bwww\.")
_BACKTICKS_RE = re.compile(r"`+")
_LIVE_PIPE_RE = re.compile(r"(?<!\\)\|")


def _defang(s: str) -> str:
    """`https://x` -> `hxxps://x`, `ftp://` -> `fxp://`, `www.x` -> `www[.]x`: visible, never autolinked."""
    s = _SCHEME_RE.sub(lambda m: f"{m[1]}xx{m[2]}" if m[1] else f"{m[3]}x{m[4]}", s)
    return _WWW_RE.sub(lambda m: m[0][:3] + "[.]", s)


def _escape(s: str) -> str:
    """Prose already sanitized and on one line: mentions in code spans, URLs defanged, punctuation escaped."""
    out: list[str] = []
    pos = 0
    for m in _MENTION_RE.finditer(s):
        out.append(_PUNCT_RE.sub(r"\\\g<0>", _defang(s[pos : m.start()])))
        out.append(code(m.group(0)))
        pos = m.end()
    out.append(_PUNCT_RE.sub(r"\\\g<0>", _defang(s[pos:])))
    return _LINE_START_RE.sub(lambda m: m[1] + (m[2][:-1] + "\\" + m[2][-1]), "".join(out))


def _clip(s: str, limit: int) -> str:
    return s if len(s) <= limit else s[: max(0, limit - 1)] + "…"


def text(value: object, limit: int = 200) -> str:
    """One line of untrusted prose, escaped for any inline markdown context (also link text)."""
    clean = " ".join(sanitize_text(str(value) if value is not None else "").split())
    return _escape(_clip(clean, limit))


def code(value: object, limit: int = 300) -> str:
    """A code span holding `value` verbatim (invisible characters and newlines shown as `<U+XXXX>`)."""
    content = _clip(sanitize_line(str(value) if value is not None else ""), limit)
    if not content.strip():
        return "` `" if not content else f"`{content}`"
    longest = max((len(m.group(0)) for m in _BACKTICKS_RE.finditer(content)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if content.startswith(("`", " ")) or content.endswith(("`", " ")) else ""
    return f"{ticks}{pad}{content}{pad}{ticks}"


def cell(markdown: str) -> str:
    """Inline markdown made safe as one GFM table cell: one line, every live `|` escaped (in code spans too:
    GFM splits cells before it parses inlines)."""
    return _LIVE_PIPE_RE.sub(r"\\|", " ".join(markdown.split()))


def link(label: object, url: str) -> str:
    """A link squad makes: `label` escaped as text, `url` https (or a loopback test server) and percent-encoded."""
    parts = urlsplit(url)
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost")):
        return text(label)
    safe = url_quote(url, safe=":/?#=&%~+,@!$'*;")
    safe = safe.replace("(", "%28").replace(")", "%29").replace("'", "%27")
    return f"[{text(label)}]({safe})"


def quote(markdown: str) -> str:
    """A blockquote around multi-line markdown (whatever it holds ends with the quote)."""
    return "\n".join(f"> {line}" if line else ">" for line in markdown.split("\n"))


def fence(content: str, info: str = "") -> str:
    """A fenced code block holding `content` verbatim: the fence is longer than any backtick run inside."""
    longest = max((len(m.group(0)) for m in _BACKTICKS_RE.finditer(content)), default=0)
    ticks = "`" * max(3, longest + 1)
    body = content if content.endswith("\n") or not content else content + "\n"
    return f"{ticks}{re.sub(r'[^A-Za-z0-9_+-]', '', info)}\n{body}{ticks}"


# ---------------------------------------------------------------------------------------------------------
# Model-written markdown: parse, then re-emit from the tokens


@cache
def _parser() -> MarkdownIt:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


_INLINE_MARKUP = {
    "em_open": "_",
    "em_close": "_",
    "strong_open": "**",
    "strong_close": "**",
    "s_open": "~~",
    "s_close": "~~",
}


def _inline(children: list[Token], *, one_line: bool) -> str:
    out: list[str] = []
    for tok in children:
        kind = tok.type
        if kind == "text":
            out.append(_escape(tok.content))
        elif kind == "code_inline":
            out.append(code(tok.content, limit=2000))
        elif kind in ("softbreak", "hardbreak"):
            out.append(" " if one_line else "\n")
        elif kind in _INLINE_MARKUP:
            out.append(_INLINE_MARKUP[kind])
        elif kind == "link_close":
            out.append(" (link removed)")
        elif kind == "image":
            alt = " ".join(c.content for c in tok.children or [] if c.type in ("text", "code_inline"))
            out.append(_escape(f"[image: {alt}]" if alt.strip() else "[image]"))
        elif kind == "html_inline":
            out.append(_escape(tok.content))
        # link_open: nothing (the label follows as text)
    return "".join(out)


def model(value: str | None, *, limit: int = 4000, one_line: bool = False) -> str:
    """Model-written markdown, re-emitted safe (see the module docstring). `one_line` for a table cell."""
    blocks: list[str] = []
    depth = 0  # list nesting
    bullet = False  # the next paragraph starts a list item
    heading = False
    row: list[str] | None = None  # cells of a table row being read
    for tok in _parser().parse(_clip(sanitize_text(value), limit)):
        kind = tok.type
        indent = "  " * max(0, depth - 1)
        if kind in ("bullet_list_open", "ordered_list_open"):
            depth += 1
        elif kind in ("bullet_list_close", "ordered_list_close"):
            depth -= 1
        elif kind == "list_item_open":
            bullet = True
        elif kind == "heading_open":
            heading = True
        elif kind == "tr_open":
            row = []
        elif kind == "tr_close" and row is not None:
            blocks.append(" · ".join(c for c in row if c.strip()))
            row = None
        elif kind == "inline":
            body = _inline(tok.children or [], one_line=one_line)
            if row is not None:
                row.append(body)
                continue
            if heading:
                body, heading = (f"**{body}**" if body.strip() else ""), False
            if depth:
                lead = f"{indent}- " if bullet else f"{indent}  "
                body, bullet = lead + body.replace("\n", "\n" + indent + "  "), False
            blocks.append(body)
        elif kind in ("fence", "code_block"):
            content = sanitize_code(tok.content)
            if one_line:
                blocks.append(code(" ⏎ ".join(content.rstrip("\n").split("\n")), limit=2000))
            else:
                blocks.append(fence(content))
        elif kind == "html_block":
            blocks.append(_escape(" ".join(tok.content.split())))
        elif kind == "hr":
            blocks.append("* * *")
    blocks = [b for b in blocks if b.strip()]
    return " ".join(" ".join(b.split()) for b in blocks) if one_line else "\n\n".join(blocks)
