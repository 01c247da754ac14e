"""`squad report`: render a run's page model (`report_page.page_data`) into one self-contained HTML file.

The page needs no server and no network: CSS, JavaScript and the data are inline, and a Content
Security Policy allows only those exact inline blocks (by hash) and nothing from anywhere else. The
data is JSON inside `<script type="application/json">` blocks with every `<` escaped, so no text in
it (a task, a file name, a finding with `</script>` in it) can end the block; the page script puts
text into the DOM with textContent only. Each task's transcript is its own JSON block, parsed when
the reader opens it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from squad import __version__
from squad.orchestration.report_page import page_data

#: The default file name, beside report.json in the run folder.
PAGE = "report.html"
_PLACEHOLDER = re.compile(r"\{\{([A-Z]+)\}\}")


def _asset(name: str) -> str:
    return resources.files("squad.orchestration").joinpath("report_assets", name).read_text(encoding="utf-8")


def script_json(data: Any) -> str:
    """JSON that is safe inside a `<script>` element: `<`, `>` and `&` escaped, no NaN (JSON.parse rejects it)."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    # U+2028/2029 are fine in JSON but not in older JS string parsing; escaping them costs nothing.
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def render_html(page: dict[str, Any], *, run_folder_href: str | None = None) -> str:
    """The report page for a page model.

    Args:
        page: what `page_data` returned (not modified).
        run_folder_href: URL of the run folder relative to where the page is written, for the links to the
            raw transcript files (None: no such links).
    """
    body = {k: v for k, v in page.items() if k != "transcripts"}
    transcripts = page.get("transcripts") or {}
    blocks = []
    names: dict[str, str] = {}
    for i, (task, entries) in enumerate(transcripts.items()):
        names[task] = f"transcript-{i}"  # ids from a counter: task ids never reach an attribute unescaped
        blocks.append(f'<script type="application/json" id="transcript-{i}">{script_json(entries)}</script>')
    body["transcript_blocks"] = names
    body["transcript_counts"] = {task: len(entries) for task, entries in transcripts.items()}
    body["links"] = {"run_folder": run_folder_href}
    css, js = _asset("report.css"), _asset("report.js")
    csp = "; ".join(
        [
            "default-src 'none'",
            f"script-src {_sha256(js)}",
            f"style-src {_sha256(css)}",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )
    values = {
        "CSP": csp,
        "VERSION": __version__,
        "TITLE": _escape(f"squad report · {page['run']['id']} · {page['run']['status']}"),
        "GENERATED": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "CSS": css,
        "JS": js,
        "DATA": script_json(body),
        "TRANSCRIPTS": "\n".join(blocks),
    }
    # One pass over the template: text put in is never searched for placeholders again.
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], _asset("report.html"))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def write_report_page(run_dir: Path, out: Path | None = None) -> Path:
    """Build and write the report of the run in `run_dir`; returns the file written.

    The default is `<run_dir>/report.html` (beside report.json). Written to a temp file and renamed, so a
    reader never sees half a page.
    """
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / PAGE
    page = page_data(run_dir)
    href = _relative_href(out.resolve().parent, run_dir.resolve())
    html = render_html(page, run_folder_href=href)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return out


def try_write_report_page(run_dir: Path, out: Path | None = None, *, warn: Callable[[str], None]) -> Path | None:
    """`write_report_page` for a run that has just ended: a failure is a warning (`warn`), and None.

    The page is a view of a finished run: a bug in the page or a full disk must not turn the run into a
    failed one. `squad report <run>` can write the page again later.
    """
    try:
        return write_report_page(run_dir, out)
    except Exception as exc:
        warn(f"warning: the report page was not written: {type(exc).__name__}: {exc}")
        warn(f"  (`squad report {Path(run_dir).name}` tries again)")
        return None


def _relative_href(start: Path, target: Path) -> str | None:
    """`target` as a relative URL (ending in /) from the folder `start`; None when there is none (another drive)."""
    try:
        rel = os.path.relpath(target, start)
    except ValueError:
        return None
    parts = [quote(p) for p in Path(rel).parts if p != "."]
    return "/".join(parts) + "/" if parts else ""
