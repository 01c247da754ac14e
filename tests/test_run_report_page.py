"""`squad run` writes the run's report page (`squad report`) when the run returns, and says where.

Writing the page never fails a run: a page that cannot be written is a warning, and `squad report` can
write it later. (The `--json` form carries the path as `report_html`: tests/test_telemetry_e2e.py.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git

from squad.cli.run import write_page

SCRIPT = Path(__file__).parent / "fixtures" / "run_traced.yaml"
CHARTERS = {
    "lead": "name: lead\nrole: tech lead\ntools: [read, team]\n",
    "backend": "name: backend\nrole: backend engineer\ntools: [read, write, team]\nowns: ['*.py']\n",
    "tester": "name: tester\nrole: test engineer\ntools: [read, write, team]\nowns: ['*.md']\n",
    "reviewer": "name: reviewer\nrole: code reviewer\ntools: [read]\nreviewer: true\n",
}


@pytest.mark.timeout(120)
def test_squad_run_ends_by_printing_where_the_report_page_is(repo: Path) -> None:
    agents = repo / ".squad" / "agents"
    agents.mkdir(parents=True)
    for name, charter in CHARTERS.items():
        (agents / f"{name}.md").write_text(f"---\n{charter}---\nYou are the {name}.\n")
    (repo / ".squad" / "squad.toml").write_text('[commands]\ntest = ""\n')
    (repo / ".gitignore").write_text(".squad/runs/\n")
    (repo / "config.env").write_text("NOTE=x\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "setup")
    out = subprocess.run(
        [sys.executable, "-m", "squad", "run", "add a health check", "--model", f"scripted:{SCRIPT}"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("report: ")
    page = Path(last.removeprefix("report: "))
    run = page.parent.name
    assert page == repo / ".squad" / "runs" / run / "report.html"
    html = page.read_text(encoding="utf-8")
    assert html.lower().startswith("<!doctype html>") and run in html


def test_a_page_that_cannot_be_written_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert write_page(tmp_path, "20261129-120000-gone") is None  # no journal to build it from
    err = capsys.readouterr().err
    assert err.startswith("warning: the report page was not written: ")
    assert "`squad report 20261129-120000-gone` tries again" in err
