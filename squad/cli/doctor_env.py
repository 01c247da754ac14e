"""`squad doctor`'s checks of the project environment: can worktrees build and test the project?

A worktree is a second checkout with only tracked files, run by the interpreter and tools on PATH. These
checks start the test command's program in a dry mode where one exists, say how Python imports are
redirected to a worktree, and name what the checkout holds that worktrees will not (untracked files,
submodules), each with a one-line fix.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from squad.config import Settings

Level = Literal["ok", "warn", "error"]
DRY_RUN_TIMEOUT_S = 30.0
# Run inside the interpreter a command would use: what it is, whether it can import a module, where its
# site-packages are (editable installs live there).
_PROBE = """
import importlib.util, json, site, sys
module = sys.argv[1]
dirs = list(getattr(site, "getsitepackages", lambda: [])())
if site.ENABLE_USER_SITE:
    dirs.append(site.getusersitepackages())
found = None
if module:
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
print(json.dumps({"executable": sys.executable, "version": sys.version.split()[0], "module": found, "site": dirs}))
"""


@dataclass(frozen=True)
class Check:
    """The result of one check; `fix` is empty when there is nothing to do."""

    name: str
    status: Level
    message: str
    fix: str = ""


def environment_checks(root: Path, settings: Settings) -> list[Check]:
    """The project-environment checks, in order; those that do not apply (no submodules) are left out."""
    test_check, interpreter = check_test_command(root, settings)
    checks = [test_check]
    for extra in (
        check_python_imports(root, settings, interpreter),
        check_workspace_paths(root, settings),
        check_untracked(root, settings),
        check_submodules(root, settings),
    ):
        if extra is not None:
            checks.append(extra)
    return checks


def check_commits(root: Path) -> Check:
    """Every worktree branches from HEAD: a repository without a commit has nothing to branch from."""
    from squad.infra.git import run_git

    proc = run_git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    if proc.returncode != 0:
        return Check(
            "commits",
            "error",
            "the repository has no commits; squad branches every task's worktree from HEAD",
            "make a first commit: git add -A && git commit -m 'Initial commit'",
        )
    return Check("commits", "ok", f"HEAD is {proc.stdout.strip()[:12]}")


# ---------------------------------------------------------------------------------------------------------
# The test command, started for real where a dry mode exists


def _env() -> dict[str, str]:
    from squad.infra.env import scrubbed_env

    return scrubbed_env()


def _probe_python(exe: Path, root: Path, *, isolated: bool = False, module: str = "") -> dict[str, Any] | str:
    """Ask the interpreter `exe` about itself (see _PROBE); a string says why it could not be asked."""
    argv = [str(exe), *(["-I"] if isolated else []), "-c", _PROBE, module]
    try:
        proc = subprocess.run(
            argv, cwd=root, env=_env(), capture_output=True, text=True, timeout=DRY_RUN_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"could not start {exe}: {exc}"
    try:
        data = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return f"{exe} did not answer (exit code {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-300:]}"
    return data if isinstance(data, dict) else f"{exe} gave an unexpected answer"


def _which(exe: str, root: Path) -> Path | None:
    if "/" in exe:
        path = Path(exe) if os.path.isabs(exe) else root / exe
        return path if os.access(path, os.X_OK) and path.is_file() else None
    found = shutil.which(exe, path=_env().get("PATH", os.defpath))
    return Path(found) if found else None


def check_test_command(root: Path, settings: Settings) -> tuple[Check, Path | None]:
    """Start the test command's program in a dry mode; returns the check and the Python interpreter it uses."""
    from squad.infra.python_env import python_call, shebang_interpreter

    command = settings.commands.test
    try:
        words = shlex.split(command)
    except ValueError as exc:
        return Check("test command", "error", f"[commands] test = {command!r} cannot be parsed: {exc}"), None
    if not words:
        return Check("test command", "warn", "[commands] test is empty; merged results will not be tested"), None
    found = _which(words[0], root)
    if found is None:
        return Check(
            "test command",
            "warn",
            f"{words[0]!r} from [commands] test = {command!r} is not on PATH",
            "install it, activate the project's environment, or change [commands] test",
        ), None
    call = python_call(words)
    if call is not None and call.module:
        probe = _probe_python(found, root, isolated=call.isolated, module=call.module)
        if isinstance(probe, str):
            return Check("test command", "warn", probe, "check that interpreter, or change [commands] test"), found
        who = f"{probe['executable']} (Python {probe['version']})"
        if not probe["module"]:
            return Check(
                "test command",
                "warn",
                f"`{command}` runs {who}, which cannot import {call.module}: every test run would fail with "
                f"'No module named {call.module}'",
                f"install it there (`{probe['executable']} -m pip install {call.module}`), or run squad with the "
                "project's environment activated",
            ), found
        return Check("test command", "ok", f"`{command}`: {who} can import {call.module}"), found
    if found.name in ("pytest", "py.test"):
        return _dry_run("test command", [str(found), "--version"], root, command), shebang_interpreter(found)
    if found.name in ("npm", "pnpm", "yarn", "bun"):
        return _check_package_script(root, words, found, command), None
    return Check("test command", "ok", f"`{command}` ({words[0]} -> {found}; no dry run known, found on PATH)"), None


def _dry_run(name: str, argv: list[str], root: Path, command: str) -> Check:
    try:
        proc = subprocess.run(
            argv, cwd=root, env=_env(), capture_output=True, text=True, timeout=DRY_RUN_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check(name, "warn", f"`{shlex.join(argv)}` could not run: {exc}", "check the test command's program")
    out = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        return Check(
            name,
            "warn",
            f"`{shlex.join(argv)}` (a dry run of `{command}`) failed with exit code {proc.returncode}: {out[-300:]}",
            "fix the environment that program runs in, or change [commands] test",
        )
    return Check(name, "ok", f"`{command}`: {argv[0]} starts ({out.splitlines()[0] if out else 'no output'})")


def _check_package_script(root: Path, words: list[str], found: Path, command: str) -> Check:
    script = words[1] if len(words) > 1 and words[1] not in ("run", "run-script") else (words[2:3] or [""])[0]
    try:
        scripts = json.loads((root / "package.json").read_text(encoding="utf-8")).get("scripts", {})
    except (OSError, ValueError, AttributeError):
        scripts = None
    if script and isinstance(scripts, dict) and script not in scripts and script != "install":
        return Check(
            "test command",
            "warn",
            f"`{command}`: package.json has no {script!r} script",
            f'add "{script}" to "scripts" in package.json, or change [commands] test',
        )
    return _dry_run("test command", [str(found), "--version"], root, command)


# ---------------------------------------------------------------------------------------------------------
# Python imports in worktrees


def check_python_imports(root: Path, settings: Settings, interpreter: Path | None) -> Check | None:
    """Say whether an editable install maps this checkout, and how squad sends worktree imports to the worktree."""
    from squad.infra.python_env import editable_paths, import_roots, python_call, worktree_counterparts

    exe = interpreter or _which("python", root) or _which("python3", root)
    static = import_roots(root)
    if exe is None:
        return Check("python imports", "ok", "no Python on PATH") if static else None
    probe = _probe_python(exe, root)
    if isinstance(probe, str):
        return Check("python imports", "warn", probe, "check the Python on PATH") if static else None
    entries = editable_paths([Path(d) for d in probe["site"]], root.resolve())
    if not entries and not static:
        return None
    roots, notes = worktree_counterparts(entries, root.resolve(), root.resolve())
    shown = sorted({_rel(r, root) for r in roots} | set(static))
    how = (
        f"in squad worktrees every command gets the worktree's {', '.join(shown)} first on PYTHONPATH "
        "(pytest's pythonpath for `python -I -m pytest`), so tests import the agent's change"
    )
    if entries:
        sources = ", ".join(sorted({e.source.name for e in entries}))
        message = f"{probe['executable']} has this checkout installed editable ({sources}); {how}"
    else:
        message = f"no editable install of this checkout in {probe['executable']}; {how}"
    if notes:
        fix = "use a src/ or flat layout (each package in a folder of its own name)"
        return Check("python imports", "warn", f"{message}; but: {'; '.join(notes)}", fix)
    isolated = []
    rules = [r if isinstance(r, str) else r.run for r in settings.commands.allowed]
    for command in [settings.commands.test, *rules]:
        with contextlib.suppress(ValueError):
            call = python_call(shlex.split(command))
            if call is not None and call.isolated and call.module not in ("pytest", "py.test"):
                isolated.append(command)
    if isolated:
        listed = ", ".join(f"`{c}`" for c in isolated)
        return Check(
            "python imports",
            "warn",
            f"{listed} run Python isolated (-I/-E), which ignores PYTHONPATH: in worktrees they import the main "
            "checkout's code, not the agent's change",
            "drop -I/-E from those commands in .squad/squad.toml [commands] (`python -I -m pytest` is handled)",
        )
    return Check("python imports", "ok", message)


def _rel(path: Path, root: Path) -> str:
    rel = path.resolve().relative_to(root.resolve()).as_posix()
    return rel if rel != "." else ". (the repository root)"


# ---------------------------------------------------------------------------------------------------------
# What worktrees will lack


def check_workspace_paths(root: Path, settings: Settings) -> Check | None:
    """Configured copy/link paths must exist here, be untracked, and be ignored by git (or commits take them)."""
    from squad.infra.git import run_git

    ws = settings.workspace
    entries = [("copy", p) for p in ws.copy_] + [("link", p) for p in ws.link]
    if not entries:
        return None
    problems: list[str] = []
    for key, rel in entries:
        if not os.path.lexists(root / rel):
            problems.append(f"[workspace] {key}: {rel!r} does not exist here")
        elif run_git(root, "ls-files", "--", rel).stdout.strip():
            problems.append(f"[workspace] {key}: {rel!r} is tracked by git (every worktree has it already)")
        elif run_git(root, "check-ignore", "-q", "--", rel).returncode != 0:
            problems.append(f"[workspace] {key}: {rel!r} is not ignored by git, so an agent's commit would include it")
    if problems:
        return Check(
            "workspace", "error", "; ".join(problems), "create, untrack or .gitignore those paths, or remove them"
        )
    parts = [f"{key} {', '.join(paths)}" for key, paths in (("copy", ws.copy_), ("link", ws.link)) if paths]
    return Check("workspace", "ok", "each worktree gets " + "; ".join(parts))


def check_untracked(root: Path, settings: Settings) -> Check | None:
    """Untracked .env / .venv / venv / node_modules here that `[workspace]` does not bring into worktrees."""
    from squad.infra.layout import detect

    ws = settings.workspace
    listed = set(ws.copy_) | set(ws.link)
    missing = {p: key for p, key in detect(root).untracked.items() if p not in listed}
    if not missing:
        return None
    names = ", ".join(p + ("/" if key == "link" else "") for p, key in missing.items())
    message = f"{names} {'is' if len(missing) == 1 else 'are'} untracked here, so worktrees will not have them"
    if "node_modules" in missing:
        message += (
            "; Node still finds this checkout's node_modules from a worktree, by accident: worktrees live "
            "inside .git/ here and Node looks in every parent folder"
        )
    links = [p for p, k in missing.items() if k == "link"]
    copies = [p for p, k in missing.items() if k == "copy"]
    wanted = [f"link = {json.dumps(sorted({*ws.link, *links}))}" if links else ""]
    wanted.append(f"copy = {json.dumps(sorted({*ws.copy_, *copies}))}" if copies else "")
    fix = "set in .squad/squad.toml [workspace]: " + ", ".join(w for w in wanted if w)
    return Check("untracked", "warn", message, fix)


def check_submodules(root: Path, settings: Settings) -> Check | None:
    """Submodules need `[workspace] submodules` and a checkout here to copy from (there is no network)."""
    from squad.infra.layout import detect
    from squad.infra.worktree_env import main_submodule_gitdir

    paths = detect(root).submodules
    if not paths:
        return None
    if not settings.workspace.submodules:
        return Check(
            "submodules",
            "warn",
            f"{', '.join(paths)}: [workspace] submodules = false, so worktrees get empty folders there",
            "set [workspace] submodules = true in .squad/squad.toml",
        )
    missing = [p for p in paths if main_submodule_gitdir(root, p) is None]
    if missing:
        return Check(
            "submodules",
            "warn",
            f"{', '.join(missing)} not checked out here, so worktrees cannot get them (squad does not fetch)",
            f"git submodule update --init -- {' '.join(shlex.quote(p) for p in missing)}",
        )
    return Check("submodules", "ok", f"{', '.join(paths)}: checked out in each worktree from this checkout's objects")
