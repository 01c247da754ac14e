"""Tests in a squad worktree import the worktree's code, not the main checkout's editable install.

The acceptance tests install a real project editable (`pip install -e`, offline: `--no-deps
--no-build-isolation`, setuptools from this environment) into a fresh venv that is first on PATH, lease a
real worktree, change the code there, and run the project's test through squad's command runner: it passes
in the worktree and the same test fails in the main checkout.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import git
from tools_support import call, make_ctx

from squad.config import CommandSettings, Settings
from squad.infra.command_env import squad_worktree, worktree_env
from squad.infra.process import Outcome, run_command
from squad.infra.python_env import (
    EditablePath,
    editable_paths,
    import_roots,
    pytest_pythonpath,
    python_call,
    worktree_counterparts,
)
from squad.infra.workspace import Workspace

RUN = "20261122-063107-a1b2"
TEST = "from demo.mod import VALUE\n\n\ndef test_value_is_two():\n    assert VALUE == 2\n"


def _editable_backend_available() -> bool:
    """setuptools >= 70.1 builds editable wheels without the separate `wheel` package."""
    try:
        import setuptools
    except ImportError:
        return False
    major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
    if (major, minor) >= (70, 1):
        return True
    try:
        import wheel  # noqa: F401
    except ImportError:
        return False
    return True


needs_setuptools = pytest.mark.skipif(
    not _editable_backend_available(), reason="needs setuptools >= 70.1 (the [test] extra installs it)"
)


def run(argv: list[str], cwd: Path) -> Outcome:
    return asyncio.run(run_command(argv, cwd=cwd, timeout_s=120, max_output_bytes=64_000))


@pytest.fixture
def venv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh venv first on PATH; it sees this environment's packages (pip, setuptools, pytest) through a
    path file, so nothing is downloaded."""
    root = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    purelib = subprocess.run(
        [str(root / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "_host_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    monkeypatch.setenv("PATH", f"{root / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    return root


def site_packages(venv: Path) -> Path:
    return next(venv.glob("lib/python3*/site-packages"))


def make_project(repo: Path, *, layout: str) -> str:
    """A project with `demo.mod.VALUE = 1` and a test that wants 2; returns the path of mod.py."""
    pyproject = '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
    pyproject += '[project]\nname = "demo"\nversion = "0.1"\n'
    package = {"src": "src/demo", "flat": "demo", "lib": "lib/demo"}[layout]
    if layout == "flat":
        pyproject += '\n[tool.setuptools]\npackages = ["demo"]\n'
    if layout == "lib":
        pyproject += '\n[tool.setuptools.package-dir]\n"" = "lib"\n'
    (repo / "pyproject.toml").write_text(pyproject)
    (repo / package).mkdir(parents=True)
    (repo / package / "__init__.py").write_text("")
    (repo / package / "mod.py").write_text("VALUE = 1\n")
    (repo / "tests").mkdir()
    (repo / "tests" / "test_mod.py").write_text(TEST)
    (repo / ".gitignore").write_text("*.egg-info/\nbuild/\n__pycache__/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "demo project")
    return f"{package}/mod.py"


def pip_install_editable(venv: Path, project: Path, *extra: str) -> None:
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    proc = subprocess.run(
        [*pip, "--no-index", *extra, "-e", str(project)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def lease_with_change(repo: Path, mod: str) -> Path:
    lease = Workspace(repo).lease(RUN, "change-value")
    (lease.path / mod).write_text("VALUE = 2\n")
    return lease.path


PYTEST = ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]


@needs_setuptools
@pytest.mark.parametrize(
    ("layout", "pip_args"),
    [
        ("src", ()),  # setuptools writes a path .pth for src/ (as hatch, pdm, poetry, flit do)
        ("flat", ()),  # setuptools installs a meta-path finder mapping demo -> <main>/demo
        ("lib", ()),  # a custom package-dir root
        ("src", ("--config-settings", "editable_mode=strict")),  # a link tree under build/
    ],
)
def test_worktree_tests_import_the_worktree_code(
    repo: Path, venv: Path, layout: str, pip_args: tuple[str, ...]
) -> None:
    mod = make_project(repo, layout=layout)
    pip_install_editable(venv, repo, *pip_args)
    worktree = lease_with_change(repo, mod)

    in_worktree = run(PYTEST, worktree)
    in_main = run(PYTEST, repo)

    assert in_worktree.exit_code == 0, in_worktree.output.text(4000)
    assert in_main.exit_code == 1, in_main.output.text(4000)
    assert "assert 1 == 2" in in_main.output.text(4000)
    # The module really came from the worktree, also for a command started in a subfolder (where `python -m`
    # or `-c` cannot find a flat layout through the current directory).
    where = run(["python", "-c", "import demo.mod; print(demo.mod.__file__)"], worktree / "tests")
    assert where.output.text(4000).strip() == str(worktree / mod)


@needs_setuptools
def test_isolated_pytest_still_imports_the_worktree_code(repo: Path, venv: Path) -> None:
    """`python -I` ignores PYTHONPATH; pytest's own `pythonpath` option, passed in PYTEST_ADDOPTS, survives it."""
    mod = make_project(repo, layout="src")
    pip_install_editable(venv, repo)
    worktree = lease_with_change(repo, mod)

    isolated = ["python", "-Im", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
    assert run(isolated, worktree).exit_code == 0
    assert run(isolated, repo).exit_code == 1

    # Any other isolated command cannot be redirected: the runner says so instead of pretending.
    plain = run(["python", "-I", "-c", "import demo.mod; print(demo.mod.VALUE)"], worktree)
    assert plain.output.text(4000).strip() == "1"
    assert any("ignores PYTHONPATH" in note for note in plain.notes)
    # ...and the agent reads the same note under the output of its `run` call.
    ctx = make_ctx(worktree, settings=Settings(commands=CommandSettings(allowed=["python -I -c"])))
    result = call(ctx, "run", {"command": ["python", "-I", "-c", "import demo.mod; print(demo.mod.VALUE)"]})
    assert "\n1\n" in result.content and "[squad note: `python -I` runs Python isolated" in result.content


def test_plain_pth_file_and_existing_pythonpath_are_redirected(
    repo: Path, venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hand-written path file (what hatch/pdm/poetry write) and a PYTHONPATH entry into the main checkout."""
    mod = make_project(repo, layout="src")
    (site_packages(venv) / "_demo.pth").write_text(f"{repo / 'src'}\n")
    (repo / "helpers").mkdir()
    (repo / "helpers" / "extra.py").write_text("WHERE = 'main'\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "helpers")
    monkeypatch.setenv("PYTHONPATH", str(repo / "helpers"))
    worktree = lease_with_change(repo, mod)
    (worktree / "helpers" / "extra.py").write_text("WHERE = 'worktree'\n")

    assert run(PYTEST, worktree).exit_code == 0
    assert run(PYTEST, repo).exit_code == 1
    out = run(["python", "-c", "import extra; print(extra.WHERE)"], worktree)
    assert out.output.text(1000).strip() == "worktree"


def test_outside_a_squad_worktree_nothing_changes(repo: Path, venv: Path) -> None:
    make_project(repo, layout="src")
    assert squad_worktree(repo) is None
    out = run(["python", "-c", "import os; print(os.environ.get('PYTHONPATH', '-'))"], repo)
    assert out.output.text(1000).strip() == "-"
    assert out.notes == ()


def test_squad_worktree_knows_its_main_checkout(repo: Path) -> None:
    lease = Workspace(repo).lease(RUN, "t")
    found = squad_worktree(lease.path / "sub" if (lease.path / "sub").exists() else lease.path)
    assert found is not None
    assert found.path == lease.path.resolve()
    assert found.main_root == repo.resolve()
    # A linked worktree the user made outside squad is not squad's.
    git(repo, "worktree", "add", "-q", str(repo.parent / "mine"), "-b", "mine")
    assert squad_worktree(repo.parent / "mine") is None


# ---------------------------------------------------------------------------------------------------------
# The pieces, on real files


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"pyproject.toml": "[project]\nname='x'\n", "src/x/__init__.py": ""}, ["src"]),
        ({"pyproject.toml": "[project]\nname='x'\n", "x/__init__.py": ""}, ["."]),
        ({"setup.py": "", "src/x.py": ""}, ["src"]),
        ({"pyproject.toml": "[tool.setuptools.packages.find]\nwhere = ['lib']\n", "lib/x/__init__.py": ""}, ["lib"]),
        ({"pyproject.toml": "[tool.setuptools]\npackage-dir = {'' = 'code'}\n", "code/x.py": ""}, ["code"]),
        ({"setup.cfg": "[options]\npackage_dir =\n    =source\n", "source/x/__init__.py": ""}, ["source"]),
        ({"setup.cfg": "[options.packages.find]\nwhere = pkgs\n", "pkgs/x/__init__.py": ""}, ["pkgs"]),
        (
            {"pyproject.toml": "[tool.hatch.build.targets.wheel]\npackages = ['py/x']\n", "py/x/__init__.py": ""},
            ["py"],
        ),
        ({"pyproject.toml": "[tool.pdm.build]\npackage-dir = 'pysrc'\n", "pysrc/x/__init__.py": ""}, ["pysrc"]),
        (
            {"pyproject.toml": "[tool.poetry]\npackages = [{include = 'x', from = 'app'}]\n", "app/x/__init__.py": ""},
            ["app"],
        ),
        ({"pyproject.toml": "[tool.setuptools.packages.find]\nwhere = ['../out']\n"}, ["."]),  # escape: ignored
        ({"package.json": "{}", "src/x/__init__.py": ""}, []),  # not a Python project
    ],
)
def test_import_roots(tmp_path: Path, files: dict[str, str], expected: list[str]) -> None:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    roots = import_roots(tmp_path)
    assert roots == expected or (expected == ["."] and roots == [])


@pytest.mark.parametrize(
    ("argv", "isolated", "module"),
    [
        (["python", "-m", "pytest"], False, "pytest"),
        (["python3", "-Im", "pytest", "-q"], True, "pytest"),
        (["/v/bin/python3.12", "-I", "-mpytest"], True, "pytest"),
        (["python", "-E", "-W", "error", "-m", "unittest"], True, "unittest"),
        (["python", "-X", "dev", "-I", "script.py"], True, None),
        (["python", "-c", "print(1)", "-I"], False, None),
        (["python", "script.py", "-I"], False, None),
    ],
)
def test_python_call(argv: list[str], isolated: bool, module: str | None) -> None:
    call = python_call(argv)
    assert call is not None
    assert (call.isolated, call.module) == (isolated, module)


def test_python_call_ignores_other_programs() -> None:
    assert python_call(["pytest", "-I"]) is None
    assert python_call(["npm", "test"]) is None


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"pytest.ini": "[pytest]\npythonpath = src lib\n"}, ["src", "lib"]),
        ({"pytest.ini": "[pytest]\n", "pyproject.toml": "[tool.pytest.ini_options]\npythonpath=['x']\n"}, None),
        ({"pyproject.toml": "[tool.pytest.ini_options]\npythonpath = ['src']\n"}, ["src"]),
        ({"pyproject.toml": "[tool.pytest]\npythonpath = ['a', 'b']\n"}, ["a", "b"]),
        ({"tox.ini": "[pytest]\npythonpath = .\n"}, ["."]),
        ({"setup.cfg": "[tool:pytest]\npythonpath = src\n"}, ["src"]),
        ({"setup.cfg": "[metadata]\nname = x\n"}, None),
    ],
)
def test_pytest_pythonpath(tmp_path: Path, files: dict[str, str], expected: list[str] | None) -> None:
    for rel, text in files.items():
        (tmp_path / rel).write_text(text)
    assert pytest_pythonpath(tmp_path) == expected


def test_editable_paths_reads_path_files_and_finder_modules(tmp_path: Path) -> None:
    main, site = tmp_path / "main", tmp_path / "site"
    (main / "src" / "pkg").mkdir(parents=True)
    (main / "flat" / "mod").mkdir(parents=True)
    site.mkdir()
    (site / "__editable__.a-1.pth").write_text(f"{main / 'src'}\n")
    (site / "other.pth").write_text("/usr/share/elsewhere\n# comment\n")
    (site / "__editable__.b-1.pth").write_text("import __editable___b_1_finder; __editable___b_1_finder.install()\n")
    (site / "__editable___b_1_finder.py").write_text(
        f"MAPPING: dict[str, str] = {{'mod': {str(main / 'flat' / 'mod')!r}, 'renamed': {str(main / 'impl')!r}}}\n"
        "NAMESPACES: dict[str, list[str]] = {}\n"
    )
    found = editable_paths([site], main)
    assert EditablePath(main / "src", site / "__editable__.a-1.pth") in found
    assert EditablePath(main / "flat" / "mod", site / "__editable___b_1_finder.py", "mod") in found
    assert all(e.path.is_relative_to(main) for e in found)

    worktree = tmp_path / "wt"
    (worktree / "src" / "pkg").mkdir(parents=True)
    (worktree / "flat" / "mod").mkdir(parents=True)
    (worktree / "impl").mkdir()
    roots, notes = worktree_counterparts(found, worktree, main)
    assert roots == [worktree / "src", worktree / "flat"]
    assert len(notes) == 1 and "'renamed'" in notes[0] and "impl" in notes[0]


def test_worktree_env_for_a_non_python_repo_is_empty(tmp_path: Path) -> None:
    (tmp_path / "main").mkdir()
    (tmp_path / "wt").mkdir()
    (tmp_path / "wt" / "package.json").write_text("{}")
    env = worktree_env(tmp_path / "wt", tmp_path / "main", ["npm", "test"], {"PATH": os.defpath})
    assert env.env == {} and env.notes == ()
