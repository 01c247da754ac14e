"""Make docs/report.png: the report of a fresh `squad demo` run, as headless Chromium draws it.

    python docs/make_screenshot.py [--full] [--task TASK]

Needs the `chromium` package and the test extras (websockets). The demo repo is built in a temp dir and removed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from browser import Browser  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the whole page, not just the top")
    parser.add_argument("--task", help="open this task's card and transcript first")
    parser.add_argument("--out", type=Path, default=HERE / "report.png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="squad-shot-") as tmp:
        repo = Path(tmp) / "bookshelf"
        squad = [sys.executable, "-m", "squad"]
        subprocess.run([*squad, "demo", "--keep", str(repo), "--json"], check=True, capture_output=True, timeout=300)
        out = json.loads(subprocess.run([*squad, "report", "--json"], cwd=repo, check=True, capture_output=True).stdout)
        with Browser(width=1400, height=1180) as browser:
            browser.open(Path(out["path"]).as_uri(), ready="window.squadReport && window.squadReport.ready")
            if args.task:
                browser.evaluate(f"document.querySelector('[data-open-transcript={json.dumps(args.task)}]').click()")
                browser.evaluate(f"document.getElementById({json.dumps('task-' + args.task)}).open = true")
            if browser.errors():
                print("page errors:", browser.errors(), file=sys.stderr)
                return 1
            browser.screenshot(args.out, full_page=args.full)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
