"""The action's `squad` step, run the way the runner runs a `shell: bash` step, leaves no shell holding the keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SECRET = "sk-ant-action-step-secret-0123456789"

# Stands in for the installed `squad`: reports its pid, its arguments, and whether its parent's environment
# (what any process of the same user can read from /proc) holds the key.
FAKE_SQUAD = f"""#!{sys.executable}
import json, os, sys
try:
    with open(f"/proc/{{os.getppid()}}/environ", "rb") as f:
        parent = f.read()
except OSError:
    parent = b""
print(json.dumps({{"pid": os.getpid(), "argv": sys.argv[1:], "parent_has_key": {SECRET.encode()!r} in parent}}))
"""


def test_the_squad_step_execs_so_no_shell_keeps_the_keys(tmp_path: Path) -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    [step] = [s for s in action["runs"]["steps"] if s.get("id") == "squad"]
    assert step["shell"] == "bash"
    assert set(step["env"]) >= {"ANTHROPIC_API_KEY", "GITHUB_TOKEN"}
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "squad").write_text(FAKE_SQUAD)
    (bin_dir / "squad").chmod(0o755)
    script = tmp_path / "step.sh"
    script.write_text(step["run"])
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "ANTHROPIC_API_KEY": SECRET,
        "GITHUB_TOKEN": SECRET,
    }
    # What the runner does for `shell: bash` (a script file, so bash does not exec the last command by itself).
    proc = subprocess.Popen(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    report = json.loads(out)
    assert report["argv"] == ["github"]
    assert report["pid"] == proc.pid, "squad runs under a shell that keeps the keys in its environment"
    assert report["parent_has_key"] is False
