"""Startup budget: `squad --help` and `squad --version` import none of the heavy dependencies.

Checked in a fresh interpreter (the test process has them all loaded already). Timing lives in
benchmarks/bench_startup.py; here we assert the cause of slowness, which cannot flake.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("anthropic", "git", "pydantic", "yaml", "rich", "httpx")

PROBE = """
import json, sys
from squad.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(HEAVY)))
print("\\nPROBE " + json.dumps({"code": code, "heavy": heavy}))
"""


def _probe(*args: str, cwd: Path | None = None) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.replace("json.loads(HEAVY)", repr(HEAVY)), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("PROBE "), proc.stdout + proc.stderr
    return json.loads(line.removeprefix("PROBE "))


@pytest.mark.parametrize(
    ("args", "codes"),
    [(["--help"], (0, None)), (["-h"], (0, None)), (["--version"], (0, None)), (["-V"], (0, None)), ([], (2,))],
)
def test_help_and_version_import_nothing_heavy(args: list[str], codes: tuple[int | None, ...]) -> None:
    result = _probe(*args)
    assert result["code"] in codes  # bare `squad` prints the help as a usage error (click >= 8.2)
    assert result["heavy"] == []


def test_probe_detects_heavy_imports(tmp_path: Path) -> None:
    """The probe can fail: actually running a command loads pydantic (via squad.config)."""
    result = _probe("doctor", "--json", cwd=tmp_path)
    assert "pydantic" in result["heavy"]


def test_version_output() -> None:
    from squad import __version__

    proc = subprocess.run([sys.executable, "-m", "squad", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"squad, version {__version__}"


@pytest.mark.parametrize("command", ["init", "team", "doctor"])
def test_subcommand_help_imports_nothing_heavy(command: str) -> None:
    result = _probe(command, "--help")
    assert result["code"] in (0, None)
    assert result["heavy"] == []
