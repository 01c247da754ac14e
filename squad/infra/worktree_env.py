"""Make a new task worktree ready to work in: `[workspace]` copy, link, submodules, then setup commands.

A worktree holds only what git tracks. What a project needs besides (a `.env`, a virtualenv, node_modules,
submodule checkouts) is brought in from the main checkout, without the network:

- `copy`: untracked files or folders copied in (e.g. `.env`);
- `link`: untracked folders symlinked to the main checkout's (e.g. `.venv`, `node_modules`): O(1) per lease
  however big they are (benchmarks/bench_worktree_env.py). The agents' file tools refuse paths through a
  symlink leading out of the worktree (squad/agents/tools/jail.py), so agents cannot write into the main
  checkout through them; commands (`npm install`) can, which is what sharing means;
- `submodules`: each submodule is cloned from the main checkout's own submodule repository (a local clone,
  hard-linked objects) with every transport but `file` disabled for that one git call;
- `setup`: commands run in order through `squad.infra.process.run_command` (no shell, scrubbed environment,
  process-group kill, the worktree's Python import roots), within one time limit.

Copied and linked paths must be ignored by git, or an agent's commit (`git add -A`) would include them. A
symlink is not a directory to git, so a `node_modules/` pattern does not match a `node_modules` symlink:
when the main checkout's folder is ignored by such a pattern, `prepare` adds the anchored path (`/node_modules`)
to the repository's local excludes (`<git-common-dir>/info/exclude`), which changes nothing the user can see
(that folder is ignored there already). Anything else not ignored is a configuration error with the fix.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import filelock

from squad.config import Settings, WorkspaceSettings, check_workspace_path
from squad.domain.workspace import PrepareReport, PrepareStep, SetupReport, SetupStep
from squad.errors import ConfigError, WorkspaceError
from squad.infra.git import run_git
from squad.infra.process import CommandError, run_command, split_command

#: How much of a failed setup command's output is kept for the journal and the task's failure message.
SETUP_TAIL_CHARS = 4000
_EXCLUDE_HEADER = "# squad: [workspace] link paths (symlinks in squad worktrees; git matches `dir/` only on folders)"
#: Only local clones for submodules: every other transport (https, ssh, git) is off for that git call.
_LOCAL_ONLY = ("-c", "protocol.allow=never", "-c", "protocol.file.allow=always")


def _workspace(settings: Settings | WorkspaceSettings) -> WorkspaceSettings:
    return settings.workspace if isinstance(settings, Settings) else settings


def prepare(lease_path: Path, main_root: Path, settings: Settings | WorkspaceSettings) -> PrepareReport:
    """Copy, link and check out submodules into the worktree at `lease_path` from the main checkout `main_root`.

    Idempotent: a path already in place (a resumed lease) is kept, not copied again.

    Raises:
        ConfigError: a configured path is invalid, missing in the main checkout, tracked by git, or not ignored
            by git (so commits would include it); the message names the `[workspace]` key and the path.
        WorkspaceError: a submodule could not be checked out from the main checkout's objects.
    """
    started = time.monotonic()
    ws = _workspace(settings)
    worktree, main = Path(lease_path).resolve(), Path(main_root).resolve()
    entries = [("copy", p) for p in ws.copy_] + [("link", p) for p in ws.link]
    _check_entries(entries)
    steps: list[PrepareStep] = []
    placed: list[Path] = []
    try:
        for key, rel in entries:
            steps.append(_place(key, rel, worktree, main, placed))
        steps += _check_ignored([(k, r) for k, r in entries], worktree, main)
    except BaseException:
        for path in placed:  # leave no half-prepared paths behind for the next attempt to mistake as done
            _remove(path)
        raise
    if ws.submodules and (worktree / ".gitmodules").is_file():
        steps += _submodules(worktree, main, "")
    return PrepareReport(tuple(steps), time.monotonic() - started)


def _check_entries(entries: list[tuple[str, str]]) -> None:
    seen: dict[str, str] = {}
    for key, rel in entries:
        try:
            check_workspace_path(rel)
        except ValueError as exc:
            raise ConfigError(f"[workspace] {key}: {exc}", hint="fix the path in .squad/squad.toml") from None
        for other, other_key in seen.items():
            if rel == other or rel.startswith(other + "/") or other.startswith(rel + "/"):
                raise ConfigError(
                    f"[workspace] {key} {rel!r} overlaps {other_key} {other!r}",
                    hint="list each path once, in copy or in link",
                )
        seen[rel] = key


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _place(key: str, rel: str, worktree: Path, main: Path, placed: list[Path]) -> PrepareStep:
    source, target = main / rel, worktree / rel
    if not os.path.lexists(source):
        raise ConfigError(
            f"[workspace] {key}: {rel!r} does not exist in the main checkout ({source})",
            hint=f"create it there, or remove {rel!r} from [workspace] {key} in .squad/squad.toml",
        )
    # Parent folders must not lead out of either tree through a symlink (the entry itself may be one).
    if not _inside(Path(os.path.realpath(source.parent)), main):
        raise ConfigError(f"[workspace] {key}: {rel!r} leads outside the main checkout through a symlink")
    if not _inside(Path(os.path.realpath(target.parent)), worktree):
        raise ConfigError(f"[workspace] {key}: {rel!r} leads outside the worktree through a symlink")
    if os.path.lexists(target):
        # Only something checked out (tracked) or placed by an earlier prepare can be there already, so git
        # is asked only then: a fresh lease costs one git call in all (check-ignore), not one per path.
        if run_git(worktree, "ls-files", "-z", "--", rel).stdout:
            raise ConfigError(
                f"[workspace] {key}: {rel!r} is tracked by git, so every worktree has it already",
                hint=f"remove {rel!r} from [workspace] {key} in .squad/squad.toml",
            )
        if key == "link" and not (target.is_symlink() and os.readlink(target) == str(source)):
            raise WorkspaceError(f"[workspace] link: {target} exists and is not the link squad makes")
        return PrepareStep("kept", rel, "already in place")
    target.parent.mkdir(parents=True, exist_ok=True)
    placed.append(target)
    if key == "link":
        if not source.is_dir():
            raise ConfigError(
                f"[workspace] link: {rel!r} is not a folder in the main checkout",
                hint=f"list files under [workspace] copy instead of link: {rel!r}",
            )
        os.symlink(source, target, target_is_directory=True)
        return PrepareStep("linked", rel, f"-> {source}")
    if source.is_dir():
        shutil.copytree(source, target, symlinks=True)
    else:
        shutil.copy2(source, target)
    return PrepareStep("copied", rel)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


def _check_ignored(entries: list[tuple[str, str]], worktree: Path, main: Path) -> list[PrepareStep]:
    """Every copied/linked path must be ignored by git in the worktree; see the module docstring."""
    if not entries:
        return []
    not_ignored = _not_ignored(worktree, [rel for _, rel in entries])
    steps: list[PrepareStep] = []
    if not not_ignored:
        return steps
    fixable = [rel for key, rel in entries if rel in not_ignored and key == "link" and _ignored(main, rel)]
    if fixable:
        _add_excludes(worktree, fixable)
        steps += [PrepareStep("excluded", rel, f"/{rel} added to .git/info/exclude") for rel in fixable]
        not_ignored = _not_ignored(worktree, [rel for _, rel in entries])
    if not_ignored:
        key = next(k for k, r in entries if r == not_ignored[0])
        shown = ", ".join(not_ignored)
        raise ConfigError(
            f"[workspace] {key}: {shown} not ignored by git, so an agent's commit would include "
            f"{'them' if len(not_ignored) > 1 else 'it'}",
            hint="add " + ", ".join(f"/{r}" for r in not_ignored) + " to .gitignore (or to .git/info/exclude)",
        )
    return steps


def _not_ignored(root: Path, paths: list[str]) -> list[str]:
    proc = run_git(root, "check-ignore", "-z", "--stdin", input="".join(f"{p}\0" for p in paths))
    ignored = set(proc.stdout.split("\0")) if proc.returncode == 0 else set()
    return [p for p in paths if p not in ignored]


def _ignored(root: Path, rel: str) -> bool:
    return run_git(root, "check-ignore", "-q", "--", rel).returncode == 0


def _add_excludes(worktree: Path, paths: list[str]) -> None:
    """Append `/path` lines to `<git-common-dir>/info/exclude`, once each, under a lock (leases run in parallel)."""
    common = Path(run_git(worktree, "rev-parse", "--path-format=absolute", "--git-common-dir").stdout.strip())
    exclude = common / "info" / "exclude"
    locks = common / "squad" / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(locks / "exclude.lock", timeout=60):
        text = exclude.read_text(encoding="utf-8", errors="replace") if exclude.exists() else ""
        lines = set(text.splitlines())
        new = [f"/{p}" for p in paths if f"/{p}" not in lines]
        if not new:
            return
        block = ("" if not text or text.endswith("\n") else "\n") + ("" if _EXCLUDE_HEADER in lines else "\n")
        block += ("" if _EXCLUDE_HEADER in lines else _EXCLUDE_HEADER + "\n") + "".join(f"{n}\n" for n in new)
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with exclude.open("a", encoding="utf-8") as fh:
            fh.write(block)


# ---------------------------------------------------------------------------------------------------------
# Submodules, from the main checkout's objects


def submodule_paths(root: Path) -> list[tuple[str, str]]:
    """(name, path) of every submodule `.gitmodules` at `root` declares."""
    proc = run_git(root, "config", "-z", "-f", ".gitmodules", "--get-regexp", r"^submodule\..*\.path$")
    out = []
    for record in proc.stdout.split("\0"):
        key, _, path = record.partition("\n")
        if key.startswith("submodule.") and key.endswith(".path") and path:
            out.append((key[len("submodule.") : -len(".path")], path))
    return out


def main_submodule_gitdir(main: Path, path: str) -> Path | None:
    """The git directory of the submodule at `path` in the main checkout, or None when it is not checked out."""
    folder = main / path
    if not (folder / ".git").exists():
        return None
    proc = run_git(folder, "rev-parse", "--absolute-git-dir")
    return Path(proc.stdout.strip()) if proc.returncode == 0 else None


def _submodules(worktree: Path, main: Path, prefix: str) -> list[PrepareStep]:
    steps: list[PrepareStep] = []
    for name, path in submodule_paths(worktree):
        shown = prefix + path
        gitdir = main_submodule_gitdir(main, path)
        if gitdir is None:
            fix = f"run `git submodule update --init -- {shown}` in the main checkout"
            steps.append(PrepareStep("skipped", shown, f"not checked out in the main checkout, so no objects; {fix}"))
            continue
        if "=" in name:
            steps.append(PrepareStep("skipped", shown, f"submodule name {name!r} contains '='"))
            continue
        if not (worktree / path / ".git").exists():
            proc = run_git(
                worktree,
                *_LOCAL_ONLY,
                *("-c", f"submodule.{name}.url={gitdir}"),
                *("submodule", "update", "--init", "--", path),
            )
            if proc.returncode != 0:
                raise WorkspaceError(
                    f"could not check out submodule {shown} from the main checkout's {gitdir}: "
                    f"{(proc.stderr or proc.stdout).strip()}",
                    hint=f"the worktree's commit may need a submodule commit the main checkout lacks: "
                    f"`git -C {main / path} fetch`, or set [workspace] submodules = false",
                )
            steps.append(PrepareStep("submodule", shown, f"from {gitdir}"))
        else:
            steps.append(PrepareStep("kept", shown, "submodule already checked out"))
        if (worktree / path / ".gitmodules").is_file():
            steps += _submodules(worktree / path, main / path, shown + "/")
    return steps


# ---------------------------------------------------------------------------------------------------------
# Setup commands


async def run_setup(
    lease_path: Path,
    settings: Settings,
    *,
    on_step: Callable[[SetupStep], None] | None = None,
) -> SetupReport:
    """Run `[workspace] setup` in the worktree, in order, stopping at the first failure.

    Each command is split like the `run` tool splits commands (no shell; write `sh -c "..."` for one) and
    runs through `run_command`, with what is left of `setup_timeout_s` as its limit. `on_step` is called
    after each command (e.g. to journal it). Never raises for a failing command: the report says.
    """
    ws = settings.workspace
    deadline = time.monotonic() + ws.setup_timeout_s
    started = time.monotonic()
    steps: list[SetupStep] = []
    for i, command in enumerate(ws.setup):
        left = deadline - time.monotonic()
        if left <= 0:
            return SetupReport(tuple(steps), tuple(ws.setup[i:]), time.monotonic() - started)
        t0 = time.monotonic()
        try:
            out = await run_command(
                split_command(command),
                cwd=lease_path,
                timeout_s=left,
                max_output_bytes=settings.commands.max_output_bytes,
            )
        except CommandError as exc:
            step = SetupStep(command, None, time.monotonic() - t0, error=exc.message)
        else:
            tail = out.output.text(SETUP_TAIL_CHARS)
            if out.notes:
                tail += "".join(f"\n[squad note: {n}]" for n in out.notes)
            step = SetupStep(command, out.exit_code, out.duration_s, tail, out.timed_out)
        steps.append(step)
        if on_step is not None:
            on_step(step)
        if not step.ok:
            return SetupReport(tuple(steps), tuple(ws.setup[i + 1 :]), time.monotonic() - started)
    return SetupReport(tuple(steps), (), time.monotonic() - started)
