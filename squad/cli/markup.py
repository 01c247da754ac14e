"""Text for rich: every value squad prints through rich (names, tasks, titles, model output, paths, errors) is
data, so its square brackets must never be read as markup (`[/]` would crash the print, `[models]` would vanish,
`[link=...]` would turn into a link). Literal markup squad writes itself stays outside `escape`."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def escape(text: object) -> str:
    """`text` as rich shows it verbatim."""
    from rich.markup import escape as rich_escape

    return rich_escape(str(text))


#: Width of output that goes to a file or a CI log: rich's default there is 80 columns, which cut a run's title
#: and its `next:` command mid-line in every CI log. Logs wrap long lines themselves; a terminal keeps its width.
LOG_WIDTH = 200


def console(**options: Any) -> Console:
    """A rich Console for stdout: the terminal's width, or `$COLUMNS`, or LOG_WIDTH when it is not a terminal."""
    from rich.console import Console

    if "width" not in options and not sys.stdout.isatty() and not os.environ.get("COLUMNS", "").isdigit():
        options["width"] = LOG_WIDTH
    return Console(**options)
