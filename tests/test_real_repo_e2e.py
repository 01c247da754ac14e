"""A run on a project laid out like real ones, through the CLI: a src-layout package installed editable into a
`.venv` (linked into each worktree), an untracked `.env` (copied), a setup command, and a submodule.

The scripted backend adds a function and its test. The test passes in the task's worktree only because the
worktree's code is what gets imported (the editable install points at the main checkout, where the function
does not exist); the same test fails when run in the main checkout.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import git

PY = sys.executable
TESTS = """from pathlib import Path
import sys

from calc.ops import add

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vendor" / "helpers"))
import helper  # noqa: E402  (from the submodule)


def test_add():
    assert add(2, 2) == 4


def test_env_was_copied():
    assert Path(".env").read_text() == "MODE=test\\n"


def test_setup_ran():
    assert Path("generated.txt").read_text() == "ok"


def test_submodule():
    assert helper.VALUE == 42
"""


def _project(repo: Path) -> None:
    (repo / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "calc"\nversion = "0.1"\n'
    )
    (repo / "src" / "calc").mkdir(parents=True)
    (repo / "src" / "calc" / "__init__.py").write_text("")
    (repo / "src" / "calc" / "ops.py").write_text("def add(a, b):\n    return a + b\n")
    (repo / "tests").mkdir()
    (repo / "tests" / "test_ops.py").write_text(TESTS)
    (repo / ".gitignore").write_text(".squad/runs/\n__pycache__/\n*.egg-info/\nbuild/\n.venv/\n.env\ngenerated.txt\n")
    # a submodule, from a local repository (its objects are all a worktree may use: no network)
    helpers = repo.parent / "helpers"
    helpers.mkdir()
    git(helpers, "init", "-q", "-b", "main")
    (helpers / "helper.py").write_text("VALUE = 42\n")
    git(helpers, "add", "-A")
    git(helpers, "commit", "-qm", "helper")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(helpers), "vendor/helpers")
    # the team
    agents = repo / ".squad" / "agents"
    agents.mkdir(parents=True)
    (agents / "backend.md").write_text("---\nname: backend\nrole: backend\ntools: [read, write, run, team]\n---\n")
    (agents / "reviewer.md").write_text("---\nname: reviewer\nrole: reviewer\ntools: [read]\nreviewer: true\n---\n")
    (repo / "tools").mkdir()
    (repo / "tools" / "generate.py").write_text("open('generated.txt', 'w').write('ok')\n")
    setup = ".venv/bin/python tools/generate.py"
    (repo / ".squad" / "squad.toml").write_text(
        '[commands]\ntest = ".venv/bin/python -m pytest -q -p no:cacheprovider tests"\n'
        "[review]\nmax_rounds = 0\n"
        f'[workspace]\nlink = [".venv"]\ncopy = [".env"]\nsetup = ["{setup}"]\n'
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "calc, with a submodule and squad's config")
    # untracked and ignored, as in a real checkout: the env file and the virtualenv with an editable install
    (repo / ".env").write_text("MODE=test\n")
    venv = repo / ".venv"
    subprocess.run([PY, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "_host.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # pytest, setuptools: no download
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    done = subprocess.run([*pip, "--no-index", "-e", str(repo)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def _script(tmp_path: Path) -> str:
    change = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
    new_test = "from calc.ops import sub\n\n\ndef test_sub():\n    assert sub(5, 3) == 2\n"
    write = "write_file"
    script: dict[str, Any] = {
        "version": 1,
        "scripts": [
            {
                "agent": "backend",
                "turns": [
                    {"tool_calls": [{"name": write, "input": {"path": "src/calc/ops.py", "content": change}}]},
                    {"tool_calls": [{"name": write, "input": {"path": "tests/test_sub.py", "content": new_test}}]},
                    {"tool_calls": [{"name": "finish", "input": {"summary": "sub()"}}]},
                ],
            },
            {
                "agent": "reviewer",
                "turns": [
                    {
                        "tool_calls": [
                            {
                                "name": "submit_verdict",
                                "input": {"verdict": "approve", "summary": "ok", "findings": []},
                            }
                        ]
                    }
                ],
            },
        ],
    }
    path = tmp_path / "script.yaml"
    path.write_text(yaml.safe_dump(script))
    return f"scripted:{path}"


@pytest.mark.timeout(180)
def test_a_real_layout_runs_and_tests_the_worktrees_code(repo: Path, tmp_path: Path) -> None:
    _project(repo)
    out = subprocess.run(
        [PY, "-m", "squad", "run", "add sub()", "--agent", "backend", "--json", "--model", _script(tmp_path)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    report = json.loads(out.stdout)
    run = report["run"]
    assert report["status"] == "done" and report["tasks"][0]["status"] == "approved"
    events = [json.loads(line) for line in (repo / ".squad" / "runs" / run / "events.jsonl").read_text().splitlines()]
    tests = [e for e in events if e["type"] == "tests"]
    assert [(t["where"], t["passed"]) for t in tests] == [("baseline", True), ("add-sub", True), ("integration", True)]
    prepared = [e for e in events if e["type"] == "workspace_prepared"]
    steps = {(s["action"], s["path"]) for e in prepared for s in e["steps"]}
    assert {("linked", ".venv"), ("copied", ".env"), ("submodule", "vendor/helpers")} <= steps
    setups = [e for e in events if e["type"] == "setup"]
    assert setups and all(s["exit_code"] == 0 for s in setups)
    assert {e["lease"] for e in events if e["type"] == "setup_done" and e["ok"]} == {"_integration", "add-sub"}
    log = subprocess.run([PY, "-m", "squad", "log", run], cwd=repo, capture_output=True, text=True).stdout
    assert "setup add-sub `.venv/bin/python tools/generate.py` -> exit 0 in" in log
    # The linked .venv, the copied .env and the setup's output never reached the run branch.
    tree = git(repo, "ls-tree", "-r", "--name-only", f"squad/{run}").split()
    assert "tests/test_sub.py" in tree and not {".env", "generated.txt"} & set(tree)
    assert not any(p.startswith(".venv") for p in tree)
    # The same test, run in the main checkout, imports the main checkout's code (no sub() there): it fails.
    (repo / "tests" / "test_sub.py").write_text(git(repo, "show", f"squad/{run}:tests/test_sub.py"))
    main = subprocess.run(
        [str(repo / ".venv" / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_sub.py"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    assert main.returncode != 0 and "cannot import name 'sub'" in main.stdout
