"""Make Python in a squad worktree import the worktree's code, not the main checkout's editable install.

The problem: a project installed editable (`pip install -e .`) from the main checkout maps its packages to
that checkout, so tests run in a worktree would import the main checkout's code, not the agent's change.

The mechanism (see decisions/ and `command_env`): every command squad runs in a worktree gets the worktree's
import roots FIRST on `PYTHONPATH`. That wins over every editable flavour, because all of them load late:
- a path `.pth` (setuptools src layout, hatch, pdm, poetry, flit, `setup.py develop`) appends its directory
  to `sys.path` after site-packages, while PYTHONPATH entries come before the standard library;
- setuptools' and `editables`' import finders are *appended* to `sys.meta_path`, after the PathFinder that
  searches `sys.path`; they only answer for names the path search did not find.
The import roots come from two places, merged: what the installed editables in the interpreter's
site-packages map (their paths under the main checkout, moved to the worktree), and the project's own build
configuration or layout (`src/` or the root), so a regular (non-editable) install is overridden too.

`python -I` / `-E` ignore PYTHONPATH, and in isolated mode only files inside site-packages could redirect
imports (squad does not write into the user's environment). For `python -I -m pytest` squad passes the roots
through pytest's own `pythonpath` option in `PYTEST_ADDOPTS` (an environment variable pytest reads itself);
for any other isolated command it says why the worktree's code is not what runs.

Limits: a package mapped to a directory of another name (`package-dir = {"pkg" = "lib/impl"}`) cannot be
put on a path; `squad doctor` names it.
"""

from __future__ import annotations

import ast
import configparser
import contextlib
import os
import re
import shlex
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Files that make a directory a Python project.
PROJECT_FILES = ("pyproject.toml", "setup.cfg", "setup.py")
_PYTHON_NAME = re.compile(r"^(?:python|pypy)(?:\d+(?:\.\d+)?)?$")
_SCAN_CACHE: dict[tuple[str, int, str], tuple[EditablePath, ...]] = {}
_SMALL_FILE = 512 * 1024  # .pth files and finder modules are tiny; anything larger is not what we look for


@dataclass(frozen=True, slots=True)
class EditablePath:
    """A path under the main checkout that an installed `.pth` file or editable finder puts on the import path.

    Attributes:
        path: the absolute path it names (a directory on sys.path, a package directory, or a module file).
        source: the `.pth` or finder module it was found in.
        package: for finder mappings, the package name mapped to `path` (None for plain path entries).
    """

    path: Path
    source: Path
    package: str | None = None


@dataclass(frozen=True, slots=True)
class PythonCall:
    """How an argv starts the interpreter: isolated (`-I` / `-E`: PYTHONPATH ignored) and which `-m` module."""

    isolated: bool
    module: str | None


@dataclass(frozen=True, slots=True)
class PythonEnv:
    """Variables a command in a worktree gets (full values), the worktree import roots, and notes to show."""

    env: dict[str, str]
    roots: tuple[Path, ...]
    notes: tuple[str, ...]


# ---------------------------------------------------------------------------------------------------------
# The project's import roots, from its build configuration or its layout


def is_python_project(root: Path) -> bool:
    return any((root / name).is_file() for name in PROJECT_FILES)


def import_roots(root: Path) -> list[str]:
    """Repo-relative directories the project's packages are imported from (`src`, `.`, ...), existing ones only.

    Read from the build configuration (setuptools `package-dir`/`packages.find.where`, setup.cfg, hatch
    `packages`/`sources`, pdm `package-dir`, poetry `packages.from`, maturin `python-source`); without one, `src`
    when it holds a package or module, else the root of a Python project. Empty for a non-Python repo.
    """
    if not is_python_project(root):
        return []
    found = [*_pyproject_roots(_load_toml(root / "pyproject.toml")), *_setup_cfg_roots(root / "setup.cfg")]
    if not found:
        src = root / "src"
        found = ["src"] if src.is_dir() and _holds_python(src) else ["."]
    out: list[str] = []
    for rel in found:
        clean = _clean_rel(rel)
        if clean is not None and clean not in out and (root / clean).is_dir():
            out.append(clean)
    return out


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _pyproject_roots(data: dict[str, Any]) -> list[str]:
    tool = data.get("tool") if isinstance(data.get("tool"), dict) else {}
    roots: list[str] = []
    package_dir = _get(tool, "setuptools", "package-dir")
    if isinstance(package_dir, dict) and isinstance(package_dir.get(""), str):
        roots.append(package_dir[""])
    roots += _strings(_get(tool, "setuptools", "packages", "find", "where"))
    for target in (_get(tool, "hatch", "build"), _get(tool, "hatch", "build", "targets", "wheel")):
        # packages = ["src/pkg"] -> src; sources = ["src"] or {"src" = ""} -> src
        roots += [str(Path(p).parent) for p in _strings(_get(target, "packages"))]
        sources = _get(target, "sources")
        roots += _strings(sources) if isinstance(sources, list) else []
        if isinstance(sources, dict):
            roots += [k for k, v in sources.items() if v == ""]
    roots += _strings(_get(tool, "pdm", "build", "package-dir"))
    for entry in _get(tool, "poetry", "packages") or []:
        if isinstance(entry, dict) and isinstance(entry.get("include"), str):
            source = entry.get("from")
            roots.append(source if isinstance(source, str) else ".")
    roots += _strings(_get(tool, "maturin", "python-source"))
    return roots


def _setup_cfg_roots(path: Path) -> list[str]:
    if not path.is_file():
        return []
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError, OSError):
        return []
    roots: list[str] = []
    # package_dir =\n    =src   or   package_dir = = src
    for line in parser.get("options", "package_dir", fallback="").splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.strip() and value.strip():
            roots.append(value.strip())
    roots += parser.get("options.packages.find", "where", fallback="").split()
    return roots


def _holds_python(folder: Path) -> bool:
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            if entry.suffix == ".py" or (entry.is_dir() and (entry / "__init__.py").is_file()):
                return True
            if entry.is_dir() and any(p.suffix == ".py" for p in entry.iterdir()):
                return True  # a namespace package
    return False


def _clean_rel(rel: str) -> str | None:
    """A repo-relative directory as `a/b` or `.`; None for anything leaving the repo."""
    parts = [p for p in rel.replace("\\", "/").split("/") if p not in ("", ".")]
    if rel.startswith("/") or ".." in parts:
        return None
    return "/".join(parts) or "."


# ---------------------------------------------------------------------------------------------------------
# What installed editables map into the main checkout


def site_dirs_near(executable: Path) -> list[Path]:
    """The site-packages folders of the interpreter at `executable`, found without running it.

    `<prefix>/lib/python3*/site-packages` (venvs, pyenv, python.org builds), Debian's `dist-packages` and the
    user site. A cheap guess for every command; `squad doctor` asks the interpreter itself.
    """
    prefix = executable.parent.parent
    dirs = [*prefix.glob("lib/python3*/site-packages"), *prefix.glob("lib/python3*/dist-packages")]
    dirs += [*prefix.glob("lib/python3/dist-packages"), *prefix.glob("local/lib/python3*/dist-packages")]
    if not (prefix / "pyvenv.cfg").is_file():  # a venv without system site packages ignores the user site
        dirs += Path.home().glob(".local/lib/python3*/site-packages")
    return [d for d in dirs if d.is_dir()]


def editable_paths(site_dirs: Iterable[Path], main_root: Path) -> list[EditablePath]:
    """Paths under `main_root` that `.pth` files (path lines, and modules their `import` lines load) map.

    Finder modules (setuptools' `__editable___*_finder.py`, `editables`' `_editable_impl_*.py`) are read as
    source, never imported: every string literal that is a path under `main_root` counts, and a dict entry
    `{"pkg": "/main/src/pkg"}` records which package maps to it. Cached per folder until it changes.
    """
    main = str(main_root.resolve())
    out: list[EditablePath] = []
    for folder in site_dirs:
        try:
            key = (str(folder), folder.stat().st_mtime_ns, main)
        except OSError:
            continue
        if key not in _SCAN_CACHE:
            if len(_SCAN_CACHE) > 64:
                _SCAN_CACHE.clear()
            _SCAN_CACHE[key] = tuple(_scan_site_dir(folder, Path(main)))
        out.extend(_SCAN_CACHE[key])
    return out


def _scan_site_dir(folder: Path, main: Path) -> list[EditablePath]:
    found: list[EditablePath] = []
    for pth in sorted(folder.glob("*.pth")):
        text = _read_small(pth)
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith(("import ", "import\t")):
                for name in re.findall(r"\bimport\s+([A-Za-z_][\w.]*)", line):
                    module = folder / (name.split(".")[0] + ".py")
                    found += _literal_paths(module, main)
                continue
            path = Path(line) if os.path.isabs(line) else folder / line
            if _under(path, main):
                found.append(EditablePath(path, pth))
    return found


def _literal_paths(module: Path, main: Path) -> list[EditablePath]:
    try:
        tree = ast.parse(_read_small(module))
    except (SyntaxError, ValueError):
        return []
    found: list[EditablePath] = []
    mapped: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values, strict=True):
                name, value = _str_const(k), _str_const(v)
                if name is not None and value is not None and _is_path_under(value, main):
                    found.append(EditablePath(Path(value), module, name))
                    mapped.add(value)
    for node in ast.walk(tree):
        value = _str_const(node)
        if value is not None and value not in mapped and _is_path_under(value, main):
            found.append(EditablePath(Path(value), module))
    return found


def _str_const(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_path_under(value: str, main: Path) -> bool:
    return os.path.isabs(value) and "\n" not in value and _under(Path(value), main)


def _read_small(path: Path) -> str:
    try:
        if path.stat().st_size > _SMALL_FILE:
            return ""
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _under(path: Path, root: Path) -> bool:
    try:
        return Path(os.path.normpath(path)).is_relative_to(root)
    except ValueError:
        return False


def worktree_counterparts(
    entries: Iterable[EditablePath], worktree: Path, main_root: Path
) -> tuple[list[Path], list[str]]:
    """The worktree directories to put on the import path for `entries`, and notes on ones that cannot be.

    A package directory or module file maps to its parent; a plain directory to itself. Paths inside the git
    directory (squad's own worktrees) and paths the worktree lacks (untracked build trees such as setuptools'
    strict-mode link tree) are left out.
    """
    main = main_root.resolve()
    roots: list[Path] = []
    notes: list[str] = []
    for entry in entries:
        rel = Path(os.path.normpath(entry.path)).relative_to(main)
        if rel.parts[:1] == (".git",):
            continue
        target = worktree / rel
        if entry.package is not None and target.name != entry.package.split(".")[-1]:
            notes.append(
                f"package {entry.package!r} is installed from {rel.as_posix()}, a folder of another name; squad cannot "
                "put the worktree's copy first on the import path, so it imports the main checkout's"
            )
            continue
        if target.is_file() or (target.is_dir() and (target / "__init__.py").is_file()) or entry.package is not None:
            target = target.parent
        if target.is_dir() and target not in roots:
            roots.append(target)
    return roots, notes


# ---------------------------------------------------------------------------------------------------------
# How a command starts Python, and pytest's own pythonpath


def python_call(argv: list[str]) -> PythonCall | None:
    """If argv runs a Python interpreter, whether it is isolated (`-I`, `-E`) and which `-m` module it runs."""
    if not argv or not _PYTHON_NAME.match(Path(argv[0]).name):
        return None
    isolated = False
    args = iter(argv[1:])
    for arg in args:
        if arg == "--" or not arg.startswith("-") or arg == "-":
            break
        if arg.startswith("--"):
            if arg == "--check-hash-based-pycs":
                next(args, None)
            continue
        flags = arg[1:]
        for i, flag in enumerate(flags):
            if flag in "IE":
                isolated = True
            elif flag in "mc":
                value = flags[i + 1 :] or next(args, "")
                return PythonCall(isolated, value if flag == "m" else None)
            elif flag in "WX":
                if not flags[i + 1 :]:
                    next(args, None)
                break
    return PythonCall(isolated, None)


def pytest_pythonpath(root: Path) -> list[str] | None:
    """The `pythonpath` pytest's own config at `root` sets (as written), or None when it sets none.

    Follows pytest's order for one folder: pytest.ini, .pytest.ini, pyproject.toml ([tool.pytest.ini_options]
    or [tool.pytest]), tox.ini [pytest], setup.cfg [tool:pytest]; the first file that configures pytest wins.
    """
    for name, section in (("pytest.ini", "pytest"), (".pytest.ini", "pytest")):
        if (root / name).is_file():
            value = (_ini_section(root / name, section) or {}).get("pythonpath")
            return None if value is None else shlex.split(value)
    data = _load_toml(root / "pyproject.toml")
    for table in (_get(data, "tool", "pytest", "ini_options"), _get(data, "tool", "pytest")):
        if isinstance(table, dict):
            value = table.get("pythonpath")
            return None if value is None else shlex.split(value) if isinstance(value, str) else _strings(value)
    for name, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        options = _ini_section(root / name, section)
        if options is not None:
            value = options.get("pythonpath")
            return None if value is None else shlex.split(value)
    return None


def _ini_section(path: Path, section: str) -> dict[str, str] | None:
    """The options of `[section]` in an ini file; None when the file or the section is missing or unreadable."""
    if not path.is_file():
        return None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError, OSError):
        return None
    return dict(parser.items(section)) if parser.has_section(section) else None


# ---------------------------------------------------------------------------------------------------------
# The environment of one command in one worktree


def python_env(worktree: Path, main_root: Path, argv: list[str], env: Mapping[str, str]) -> PythonEnv:
    """What a command in `worktree` needs so Python imports the worktree's code: PYTHONPATH, maybe PYTEST_ADDOPTS.

    `env` is the command's environment (its PATH finds the interpreters whose site-packages are read).
    Returns no variables for a repository that is not a Python project and has no editable install in it.
    """
    entries = editable_paths(_site_dirs_for(argv, worktree, env), main_root)
    roots, notes = worktree_counterparts(entries, worktree, main_root)
    for rel in import_roots(worktree):
        path = worktree if rel == "." else worktree / rel
        if path not in roots:
            roots.append(path)
    if not roots:
        return PythonEnv({}, (), tuple(notes))
    main = main_root.resolve()
    entries_before = [e for e in env.get("PYTHONPATH", "").split(os.pathsep) if e]
    kept = [str(worktree / Path(e).relative_to(main)) if _under(Path(e), main) else e for e in entries_before]
    pythonpath = list(dict.fromkeys([*map(str, roots), *kept]))
    out = {"PYTHONPATH": os.pathsep.join(pythonpath)}
    call = python_call(argv)
    if call is not None and call.isolated:
        if call.module in ("pytest", "py.test"):
            own = pytest_pythonpath(worktree) or []
            own_abs = [str((worktree / p).resolve()) for p in own]
            if not all(str(r.resolve()) in own_abs for r in roots):
                value = " ".join(shlex.quote(p) for p in dict.fromkeys([*map(str, roots), *own_abs]))
                addopts = env.get("PYTEST_ADDOPTS", "")
                out["PYTEST_ADDOPTS"] = f"{addopts} -o {shlex.quote('pythonpath=' + value)}".strip()
        else:
            notes.append(
                f"`{shlex.join(argv[:2])}` runs Python isolated (-I/-E), which ignores PYTHONPATH: this command "
                "imports the installed copy of the project (for an editable install, the main checkout's code), "
                "not this worktree's. Run it without -I/-E to test the worktree's code."
            )
    return PythonEnv(out, tuple(roots), tuple(notes))


def _site_dirs_for(argv: list[str], cwd: Path, env: Mapping[str, str]) -> list[Path]:
    """Site-packages of the interpreters a command may use: `python`/`python3` on its PATH, argv[0] if it is
    an interpreter, and the interpreter in a script's `#!` line (e.g. a venv's `pytest`)."""
    import shutil

    path = env.get("PATH", os.defpath)
    exes: list[Path] = []
    for name in ("python", "python3"):
        found = shutil.which(name, path=path)
        if found:
            exes.append(Path(found))
    if argv:
        first = argv[0]
        exe = (cwd / first) if "/" in first and not os.path.isabs(first) else Path(first)
        located = exe if "/" in first else (Path(w) if (w := shutil.which(first, path=path)) else None)
        if located is not None and located.is_file():
            if _PYTHON_NAME.match(located.name):
                exes.append(located)
            else:
                shebang = shebang_interpreter(located)
                if shebang is not None:
                    exes.append(shebang)
    dirs: list[Path] = []
    for exe in dict.fromkeys(exes):
        dirs += [d for d in site_dirs_near(exe) if d not in dirs]
    return dirs


def shebang_interpreter(script: Path) -> Path | None:
    try:
        with script.open("rb") as fh:
            head = fh.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").split()
    if not words:
        return None
    exe = Path(words[0])
    return exe if _PYTHON_NAME.match(exe.name) else None
