"""Text for rich: every value squad prints through rich (names, tasks, titles, model output, paths, errors) is
data, so its square brackets must never be read as markup (`[/]` would crash the print, `[models]` would vanish,
`[link=...]` would turn into a link). Literal markup squad writes itself stays outside `escape`."""

from __future__ import annotations


def escape(text: object) -> str:
    """`text` as rich shows it verbatim."""
    from rich.markup import escape as rich_escape

    return rich_escape(str(text))
