"""The Actions environment squad runs in, what one invocation reports, and the config it runs with.

Settings and charters always come from the BASE commit, read with git into a temp dir (never the PR
head); the Action's inputs can only tighten them (a RunConfig; never writes into a shared Settings).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from squad.config import Team, load_settings, load_team
from squad.errors import ConfigError, UsageError
from squad.github import gitrepo
from squad.orchestration import RunConfig

MODES = ("auto", "review", "run")


@dataclass
class ActionEnv:
    """The parts of the Actions environment squad uses (validated)."""

    event_name: str
    event: dict[str, Any]
    repository: str
    api_url: str
    token: str
    workspace: Path
    step_summary: Path | None
    output: Path | None
    mode: str = "auto"
    model: str = ""
    max_cost: float | None = None
    remote: str = "origin"
    server_url: str = "https://github.com"
    workflow_run_id: str = ""  # GITHUB_RUN_ID: this workflow run, whose page lists its artifacts
    scratch: Path | None = None  # RUNNER_TEMP: the runner's temp dir (report pages, review journals)
    graphql_url: str = ""
    model_key: bool = False  # ANTHROPIC_API_KEY (or AUTH_TOKEN) is set: a fork's pull_request run has none
    run_url: str = ""  # this workflow run's page (its job summary and artifacts hold what a comment cannot)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ActionEnv:
        """Validate `env`; every problem is a UsageError (exit 2) naming the variable and the fix."""

        def need(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise UsageError(
                    f"{name} is not set", hint="`squad github` runs inside GitHub Actions (see action.yml)"
                )
            return value

        def inp(name: str) -> str:
            # Composite actions pass inputs as env; both spellings are accepted.
            return (
                env.get(f"SQUAD_{name.upper().replace('-', '_')}") or env.get(f"INPUT_{name.upper()}") or ""
            ).strip()

        event_path = Path(need("GITHUB_EVENT_PATH"))
        try:
            event = json.loads(event_path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"cannot read GITHUB_EVENT_PATH {event_path}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"GITHUB_EVENT_PATH is not JSON: {exc.msg}", path=event_path, line=exc.lineno) from None
        if not isinstance(event, dict):
            raise UsageError("the event payload is not a JSON object", path=event_path)
        repository = need("GITHUB_REPOSITORY")
        if repository.count("/") != 1:
            raise UsageError(f"GITHUB_REPOSITORY must be owner/name, got {repository!r}")
        api_url = env.get("GITHUB_API_URL", "").strip() or "https://api.github.com"
        if not api_url.startswith(("https://", "http://127.", "http://localhost")):
            raise UsageError(f"GITHUB_API_URL must be an https URL, got {api_url!r}")
        graphql_url = env.get("GITHUB_GRAPHQL_URL", "").strip()
        if graphql_url and not graphql_url.startswith(("https://", "http://127.", "http://localhost")):
            raise UsageError(f"GITHUB_GRAPHQL_URL must be an https URL, got {graphql_url!r}")
        server_url = env.get("GITHUB_SERVER_URL", "").strip() or "https://github.com"
        if not server_url.startswith(("https://", "http://127.", "http://localhost")):
            raise UsageError(f"GITHUB_SERVER_URL must be an https URL, got {server_url!r}")
        workflow_run_id = env.get("GITHUB_RUN_ID", "").strip()
        if workflow_run_id and not workflow_run_id.isdigit():
            raise UsageError(f"GITHUB_RUN_ID must be a number, got {workflow_run_id!r}")
        run_url = f"{server_url.rstrip('/')}/{repository}/actions/runs/{workflow_run_id}" if workflow_run_id else ""
        token = (env.get("GITHUB_TOKEN") or inp("github-token")).strip()
        if not token:
            raise UsageError("GITHUB_TOKEN is not set", hint="pass `github-token: ${{ secrets.GITHUB_TOKEN }}`")
        workspace = Path(env.get("GITHUB_WORKSPACE", "").strip() or os.getcwd())
        if not workspace.is_dir():
            raise UsageError(f"GITHUB_WORKSPACE {workspace} is not a directory")
        mode = inp("mode") or "auto"
        if mode not in MODES:
            raise UsageError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        max_cost: float | None = None
        if raw := inp("max-cost"):
            try:
                max_cost = float(raw)
            except ValueError:
                raise UsageError(f"max-cost must be a number of US dollars, got {raw!r}") from None
            if not max_cost > 0:  # it only ever lowers the base's cap: 0 cannot mean "unlimited" here
                raise UsageError(f"max-cost must be more than 0 US dollars, got {raw!r}")
        scratch = env.get("RUNNER_TEMP", "").strip()
        summary = env.get("GITHUB_STEP_SUMMARY", "").strip()
        output = env.get("GITHUB_OUTPUT", "").strip()
        return cls(
            event_name=need("GITHUB_EVENT_NAME"),
            event=event,
            repository=repository,
            api_url=api_url,
            token=token,
            workspace=workspace,
            step_summary=Path(summary) if summary else None,
            output=Path(output) if output else None,
            mode=mode,
            model=inp("model"),
            max_cost=max_cost,
            remote=env.get("SQUAD_GIT_REMOTE", "").strip() or "origin",
            server_url=server_url.rstrip("/"),
            workflow_run_id=workflow_run_id,
            scratch=Path(scratch) if scratch else None,
            graphql_url=graphql_url,
            run_url=run_url,
            model_key=bool(env.get("ANTHROPIC_API_KEY", "").strip() or env.get("ANTHROPIC_AUTH_TOKEN", "").strip()),
        )

    def workflow_run_url(self) -> str | None:
        """This workflow run's page on GitHub (it lists the run's artifacts); None outside Actions."""
        return self.run_url or None

    def __repr__(self) -> str:  # never show the token
        return f"ActionEnv(event={self.event_name!r}, repository={self.repository!r})"


@dataclass
class Report:
    """What one invocation did, for GITHUB_OUTPUT, the job summary and the exit status."""

    exit_code: int = 0
    verdict: str = ""
    comment_url: str = ""
    run_id: str = ""
    summary: str = ""
    notes: list[str] = field(default_factory=list)
    report_path: str = ""  # the run's report page, for action.yml's upload step
    report_artifact: str = ""  # the artifact name it is uploaded as


def load_base_config(root: Path, sha: str, env: ActionEnv | None = None) -> tuple[RunConfig, Team | None]:
    """The run config as of commit `sha` (the base), read with git into a temp dir — never the PR head — and the
    team (None when the base has no charters).

    The Action's `model` and `max-cost` inputs come from the workflow file, which a pull request can edit, so
    they may only TIGHTEN the base's settings (`RunConfig.tightened`): a lower dollar cap, a model the base
    config already names. A scripted model is no exception.

    Raises:
        ConfigError: the base's settings or charters are broken.
        UsageError: an input would loosen the base's settings.
    """
    with tempfile.TemporaryDirectory(prefix="squad-base-config-") as tmp:
        dest = gitrepo.materialize_squad_config(root, sha, Path(tmp))
        settings = load_settings(dest)
        try:
            team: Team | None = load_team(dest)
        except ConfigError:
            if (dest / ".squad" / "agents").is_dir():
                raise  # charters exist but are broken: say so
            team = None
    config = RunConfig.build(root, settings, team or Team(agents={}))
    if env is not None:
        config = config.tightened(model=env.model or None, max_cost=env.max_cost)
    return config, team


def write_outputs(env: ActionEnv, report: Report) -> None:
    """Append the report to the job summary and the step outputs (files the runner provides)."""
    if env.step_summary and report.summary:
        with env.step_summary.open("a", encoding="utf-8") as fh:
            fh.write(report.summary.rstrip() + "\n")
    if env.output:
        with env.output.open("a", encoding="utf-8") as fh:
            for key, value in (
                ("comment-url", report.comment_url),
                ("run-id", report.run_id),
                ("verdict", report.verdict),
                ("report-path", report.report_path),
                ("report-artifact", report.report_artifact),
            ):
                fh.write(f"{key}={' '.join(value.split())}\n")
