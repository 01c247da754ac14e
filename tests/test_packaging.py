"""squad as a newcomer gets it: a wheel built from this checkout, installed into a fresh venv, runs the demo.

The wheel is built offline from a copy of the checkout's files (setuptools writes `build/` and egg-info
next to the sources, and tests never write outside a temp dir). The fresh venv gets squad only from the
wheel; its dependencies come from this environment through a .pth file that lists their site-packages
folders. Python processes .pth files only in site-packages itself, not in folders a .pth adds, so the
checkout's editable install cannot leak in; the test checks where `squad` is imported from anyway.
"""

from __future__ import annotations

import email
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from conftest import git

ROOT = Path(__file__).resolve().parents[1]
DIST = "squad-agents"


def _pip_env() -> dict[str, str]:
    """pip without this machine's config (indexes, find-links, constraints): nothing but what we pass."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env |= {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    return env


def _pip(*args: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=120, env=_pip_env()
    )
    assert out.returncode == 0, f"pip {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, set[str]]]:
    """The wheel built from the checkout's files (tracked and new, not ignored), and those files' paths."""
    try:  # both come with `pip install -e '.[test]'`; say so rather than fail deep inside pip
        metadata.version(DIST)
        setuptools = int(metadata.version("setuptools").split(".")[0])
    except metadata.PackageNotFoundError as exc:
        pytest.fail(f"{exc.name} is not installed here: pip install -e '.[test]'")
    assert setuptools >= 77, "setuptools >= 77 builds this project: pip install -e '.[test]'"
    src = tmp_path_factory.mktemp("src")
    listed = git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    files = {name for name in listed if name and (ROOT / name).is_file()}  # a deleted tracked file is not there
    for name in files:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    _pip("wheel", str(src), "--no-deps", "--no-index", "--no-build-isolation", "--no-cache-dir", "-q", "-w", str(out))
    (built,) = out.glob("*.whl")
    yield built, files


def test_wheel_ships_every_package_file_with_the_distribution_name(wheel: tuple[Path, set[str]]) -> None:
    built, files = wheel
    with zipfile.ZipFile(built) as zf:
        names = set(zf.namelist())
        meta = email.message_from_bytes(zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))))
        entry_points = zf.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    # Everything under squad/ is in the wheel: code, templates, and the demo (including its dot-folder .squad/).
    assert {n for n in names if n.startswith("squad/")} == {f for f in files if f.startswith("squad/")}
    assert {
        "squad/templates/squad.toml",
        "squad/data/demo/script.yaml",
        "squad/data/demo/bookshelf/.squad/squad.toml",
        "squad/data/demo/bookshelf/.squad/agents/docs.md",
        "squad/data/demo/bookshelf/tests/test_core.py",
    } <= names
    assert meta["Name"] == DIST
    assert re.search(r"^squad = squad\.cli:main$", entry_points, re.MULTILINE)
    assert not any(n.startswith(("tests/", "examples/", "benchmarks/")) for n in names)


def _dependency_dirs() -> list[str]:
    """The site-packages folders holding squad's runtime dependencies (transitively) in this environment."""
    seen: set[str] = set()
    dirs: set[str] = set()
    todo = [r for r in metadata.requires(DIST) or [] if "extra ==" not in r]
    while todo:
        name = re.match(r"[A-Za-z0-9._-]+", todo.pop()).group(0).lower()  # type: ignore[union-attr]
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # only under a marker that does not apply here
        dirs.add(str(Path(str(dist.locate_file(""))).resolve()))
        todo += [r for r in dist.requires or [] if "extra ==" not in r]
    assert str(ROOT) not in dirs
    return sorted(dirs)


def test_installed_wheel_runs_the_demo_outside_the_checkout(wheel: tuple[Path, set[str]], tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "squad_test_deps.pth").write_text("".join(f"{d}\n" for d in _dependency_dirs()))
    _pip("--python", str(python), "install", "--no-deps", "--no-index", "--no-cache-dir", "-q", str(wheel[0]))

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env |= {"PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", "PYTHONNOUSERSITE": "1"}
    where = subprocess.run(
        [python, "-c", f"import squad, importlib.metadata as m; print(squad.__file__); print(m.version({DIST!r}))"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert where.returncode == 0, where.stderr
    location, version = where.stdout.split()
    assert Path(location).is_relative_to(venv), location  # the wheel's squad, not the checkout's
    assert version == metadata.version(DIST)

    target = tmp_path / "demo"
    out = subprocess.run(
        [venv / "bin" / "squad", "demo", "--keep", str(target), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["status"] == "done"
    assert git(target, "rev-parse", "--verify", "--quiet", f"refs/heads/{report['branch']}").strip()
    assert report["branch"] == f"squad/{report['run']}"
    assert "def overdue" in git(target, "show", f"{report['branch']}:bookshelf/core.py")
    # The example's own charters and settings (a dot-folder, easy to lose in packaging) came along.
    assert (target / ".squad" / "agents" / "docs.md").is_file()
