"""`squad doctor`: check that this repo and machine can run squad, and say how to fix what cannot.

Every check reports ok / warn / error with a reason and, when not ok, a fix. Checks are independent:
one broken charter does not hide another, and a broken squad.toml does not stop the git checks.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import click

from squad.cli.doctor_cloud import cloud_checks
from squad.cli.doctor_env import Check, Level, check_commits, environment_checks

if TYPE_CHECKING:
    from squad.config import Charter, Settings

__all__ = ["Check", "Level", "doctor", "run_checks"]
MIN_GIT = (2, 20)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor(as_json: bool) -> None:
    """Check settings, charters, models, git, the API key and the project environment; ok / warn / error each.

    The environment checks start the test command's program in a dry mode (for `python -m pytest`: can the
    interpreter on PATH import pytest), and say what worktrees will lack (untracked files, submodules).

    Exits 1 when any check is an error (warnings alone exit 0), so it can gate CI.
    """
    checks = run_checks(Path.cwd())
    if as_json:
        click.echo(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            click.echo(f"{c.status:<5}  {c.name:<{width}}  {c.message}")
            if c.fix:
                click.echo(f"{'':<5}  {'':<{width}}  fix: {c.fix}")
        errors = sum(c.status == "error" for c in checks)
        warns = sum(c.status == "warn" for c in checks)
        click.echo(f"squad doctor: {errors} error(s), {warns} warning(s)")
    if any(c.status == "error" for c in checks):
        raise SystemExit(1)


def run_checks(cwd: Path) -> list[Check]:
    """Run every check from `cwd`; checks that need a repo are skipped outside one (reported as an error)."""
    from squad.config import Settings
    from squad.errors import NotARepoError
    from squad.infra.git import find_repo_root

    checks = [_check_git_version()]
    try:
        root = find_repo_root(cwd)
    except NotARepoError as exc:
        checks.append(Check("repository", "error", exc.message, exc.hint or ""))
        checks.append(_check_api_key(["claude"]))
        return checks
    checks.append(_check_git_dir(root))
    checks.append(check_commits(root))
    settings_check, settings = _check_settings(root)
    checks.append(settings_check)
    charter_checks, charters = _check_charters(root)
    checks.extend(charter_checks)
    if charters:
        checks.append(_check_roles(charters))
    effective = settings or Settings()
    model_check, models = _check_models(root, effective, charters)
    checks.append(model_check)
    checks.append(_check_api_key(models))
    checks.extend(cloud_checks(models))  # Bedrock / Vertex credentials, when such a model is configured
    if settings is not None:
        checks.extend(environment_checks(root, settings))
    return checks


def _check_git_version() -> Check:
    try:
        out = subprocess.run(["git", "--version"], capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        return Check("git", "error", "git is not installed or not on PATH", "install git >= 2.20")
    found = _parse_git_version(out)
    if found is None:
        return Check("git", "error", f"cannot read the git version from {out.strip()!r}", "install git >= 2.20")
    shown = ".".join(map(str, found))
    if found < MIN_GIT:
        return Check("git", "error", f"git {shown} is too old (worktrees need >= 2.20)", "upgrade git to >= 2.20")
    return Check("git", "ok", f"git {shown}")


def _parse_git_version(text: str) -> tuple[int, int, int] | None:
    """`git version 2.39.5` / `git version 2.39.3 (Apple Git-146)` / `2.45.1.windows.1` -> (2, 39, 5)."""
    m = re.search(r"git version (\d+)\.(\d+)(?:\.(\d+))?", text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)) if m else None


def _check_git_dir(root: Path) -> Check:
    """Locks and worktrees live in the git common dir, so squad must be able to create files there."""
    from squad.infra.git import run_git

    out = run_git(root, "rev-parse", "--git-common-dir")
    if out.returncode != 0:
        return Check("git dir", "error", f"git rev-parse --git-common-dir failed: {out.stderr.strip()}")
    common = (root / out.stdout.strip()).resolve()
    try:
        # A real write, not os.access: access() says yes to root on read-only mounts.
        with tempfile.NamedTemporaryFile(dir=common, prefix="squad-doctor-"):
            pass
    except OSError as exc:
        return Check(
            "git dir",
            "error",
            f"{common} is not writable ({exc.strerror})",
            "squad keeps locks and worktrees there; fix its permissions or ownership",
        )
    return Check("git dir", "ok", f"{common} is writable")


def _check_settings(root: Path) -> tuple[Check, Settings | None]:
    from squad.config import load_settings, settings_path
    from squad.errors import ConfigError

    path = settings_path(root)
    rel = path.relative_to(root)
    if not path.exists():
        return Check("settings", "warn", f"{rel} not found; using defaults", "run `squad init`"), load_settings(root)
    try:
        settings = load_settings(root)
    except ConfigError as exc:
        return Check("settings", "error", str(exc), exc.hint or f"correct {rel} at that line"), None
    return Check("settings", "ok", f"{rel} is valid"), settings


def _check_charters(root: Path) -> tuple[list[Check], list[Charter]]:
    """Load every charter on its own so that all bad files are reported, not only the first."""
    from squad.config import agents_dir, load_charter
    from squad.errors import ConfigError

    directory = agents_dir(root)
    files = sorted(directory.glob("*.md")) if directory.is_dir() else []
    if not files:
        rel = directory.relative_to(root)
        return [Check("charters", "error", f"no charters in {rel}/", "run `squad init` for the default team")], []
    checks: list[Check] = []
    charters: list[Charter] = []
    seen: dict[str, Path] = {}
    for path in files:
        rel = path.relative_to(root)
        try:
            charter = load_charter(path)
        except ConfigError as exc:
            checks.append(Check(f"charter {path.stem}", "error", str(exc), exc.hint or f"correct {rel}"))
            continue
        if charter.name in seen:
            checks.append(
                Check(
                    f"charter {path.stem}",
                    "error",
                    f"{rel}:2: agent name {charter.name!r} is also used by {seen[charter.name].relative_to(root)}",
                    "give every agent a unique name",
                )
            )
            continue
        seen[charter.name] = path
        charters.append(charter)
        kind = "reviewer" if charter.reviewer else "worker"
        if charter.name != path.stem:
            # Everyone looks for an agent's charter at .squad/agents/<name>.md; a mismatch sends them elsewhere.
            checks.append(
                Check(
                    f"charter {path.stem}",
                    "warn",
                    f"{rel}: agent name {charter.name!r} differs from the file name ({kind})",
                    f"rename the file to {charter.name}.md or set `name: {path.stem}`",
                )
            )
            continue
        checks.append(Check(f"charter {path.stem}", "ok", f"{rel}: {charter.name} ({kind})"))
    return checks, charters


def _check_roles(charters: list[Charter]) -> Check:
    reviewers = [c.name for c in charters if c.reviewer]
    workers = [c.name for c in charters if not c.reviewer]
    if not reviewers:
        return Check("team", "error", "no reviewer: nothing can be approved", "set `reviewer: true` in one charter")
    if not workers:
        return Check("team", "error", "only reviewers: nobody can do the work", "add a charter with `reviewer: false`")
    return Check("team", "ok", f"{len(workers)} worker(s), {len(reviewers)} reviewer(s)")


def _check_models(root: Path, settings: Settings, charters: list[Charter]) -> tuple[Check, list[str]]:
    """Every model name in use must be `claude-*`, `bedrock:<id>`, `vertex:<id>`, `scripted:<path to an existing
    file>` or `replay:<recorded run>`."""
    named: dict[str, list[str]] = {}

    def use(model: str, where: str) -> None:
        if model:
            named.setdefault(model, []).append(where)

    use(settings.models.default, "[models] default")
    use(settings.models.coordinator, "[models] coordinator")
    use(settings.models.reviewer, "[models] reviewer")
    for model in settings.models.fallback:
        use(model, "[models] fallback")
    for charter in charters:
        use(charter.model_for(settings), f"agent {charter.name}")
    bad = []
    for model, where in named.items():
        problem = _model_problem(root, model)
        if problem:
            bad.append(f"{model!r} ({', '.join(where)}): {problem}")
    if bad:
        fix = (
            "use a Claude model id such as `claude-sonnet-5-5`, `bedrock:<model id>`, `vertex:<model id>`, "
            "`scripted:<path to a script file>`, or `replay:<run id or run folder>` (see `squad runs`)"
        )
        return Check("models", "error", "; ".join(bad), fix), list(named)
    return Check("models", "ok", ", ".join(sorted(named))), list(named)


def _model_problem(root: Path, model: str) -> str:
    if model.startswith("claude-") and len(model) > len("claude-"):
        return ""
    if model.startswith(("bedrock:", "vertex:")):
        return "" if model.partition(":")[2].strip() else "needs a model id after the colon"
    if model.startswith("scripted:"):
        script = Path(model.removeprefix("scripted:")).expanduser()
        path = script if script.is_absolute() else root / script
        return "" if path.is_file() else f"script file {path} not found"
    if model.startswith("replay:"):
        from squad.errors import ConfigError
        from squad.models.registry import replay_dir

        try:
            replay_dir(model.removeprefix("replay:"), root)
        except ConfigError as exc:
            return exc.message
        return ""
    return "not a known model name"


def _check_api_key(models: list[str]) -> Check:
    """Warn only: scripted runs and `--help` need no key. The key's value is never printed."""
    needs_key = any(m.startswith("claude") for m in models)
    if os.environ.get("ANTHROPIC_API_KEY"):
        return Check("api key", "ok", "ANTHROPIC_API_KEY is set")
    if not needs_key:
        return Check("api key", "ok", "ANTHROPIC_API_KEY is not set; not needed (no claude-* model)")
    return Check(
        "api key",
        "warn",
        "ANTHROPIC_API_KEY is not set; claude-* models cannot be called",
        "export ANTHROPIC_API_KEY=... (or use scripted models for offline runs)",
    )
