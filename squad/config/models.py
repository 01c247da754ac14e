"""Settings (`.squad/squad.toml`) and charters (`.squad/agents/*.md`) as pydantic models.

Every setting has a default, so an empty squad.toml is valid. Loading and file:line errors: `loading`.
"""

from __future__ import annotations

import difflib
import shlex
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from squad.errors import ConfigError

SQUAD_DIR = ".squad"
SETTINGS_FILE = "squad.toml"
AGENTS_DIR = "agents"
RUNS_DIR = "runs"

#: Tool groups a charter may name; individual tool names are accepted too.
TOOL_GROUPS: dict[str, tuple[str, ...]] = {
    "read": ("list_files", "read_file", "search", "read_decisions", "diff"),
    "write": ("write_file", "edit_file"),
    "run": ("run",),
    "team": ("record_decision", "finish"),
}
ALL_TOOLS: tuple[str, ...] = tuple(t for group in TOOL_GROUPS.values() for t in group)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelsSettings(_Section):
    """Which Claude models to use."""

    default: str = "claude-sonnet-5-5"
    coordinator: str = ""
    reviewer: str = ""
    fallback: list[str] = Field(default_factory=list)
    max_tokens: int = Field(8192, ge=1, le=128_000)
    request_timeout_s: float = Field(600.0, gt=0)


class BudgetSettings(_Section):
    """Limits checked before every model call; 0 means unlimited."""

    run_usd: float = Field(5.0, ge=0)
    agent_usd: float = Field(2.0, ge=0)
    run_input_tokens: int = Field(3_000_000, ge=0)
    run_output_tokens: int = Field(300_000, ge=0)
    agent_input_tokens: int = Field(1_000_000, ge=0)
    agent_output_tokens: int = Field(100_000, ge=0)
    agent_turns: int = Field(40, ge=0)
    plan_turns: int = Field(8, ge=0)
    task_timeout_s: float = Field(1800.0, ge=0)


class ConcurrencySettings(_Section):
    """How many specialists run at once (in one process), and how many CI jobs at once (a run spread over jobs)."""

    max_agents: int = Field(4, ge=1, le=64)
    max_jobs: int = Field(4, ge=1, le=256)


class RateLimitSettings(_Section):
    """Per-process limits shared by all agents (RateGovernor); 0 means unlimited."""

    requests_per_minute: int = Field(50, ge=0)
    input_tokens_per_minute: int = Field(400_000, ge=0)
    output_tokens_per_minute: int = Field(80_000, ge=0)


class RetrySettings(_Section):
    """Retries of transient model failures."""

    max_attempts: int = Field(6, ge=1, le=50)
    base_delay_s: float = Field(0.5, ge=0)
    max_wait_s: float = Field(60.0, ge=0)


class CircuitBreakerSettings(_Section):
    """Stop calling a model that keeps failing, for a cool-down."""

    failure_threshold: int = Field(5, ge=1)
    cooldown_s: float = Field(30.0, ge=0)


def _checked_rule(rule: str) -> str:  # a rule must split into words like a shell splits them
    try:
        if shlex.split(rule):
            return rule
    except ValueError as exc:
        raise ValueError(f"cannot split {rule!r} into words: {exc}") from None
    raise ValueError("an allowed command cannot be empty")


def _checked_options(allow: list[str]) -> list[str]:
    bad = [o for o in allow if not o.startswith("-") or o in ("-", "--") or "=" in o]
    if bad:
        raise ValueError(f"{bad[0]!r} is not an option name; write it as '-x' or '--name' (no value)")
    return allow


class CommandRule(_Section):
    """An allowed command as a table, `{ run = "ruff check", allow = ["--fix"] }` (a string is `{ run = ... }`):
    the argv prefix, and options squad otherwise refuses (they write files, load config or plugins, run programs)."""

    run: Annotated[str, AfterValidator(_checked_rule)]
    allow: Annotated[list[str], AfterValidator(_checked_options)] = Field(default_factory=list)


#: A rule is a string or a table; the discriminator keeps a bad table's errors about the table alone.
AllowedCommand = Annotated[
    Annotated[str, AfterValidator(_checked_rule), Tag("str")] | Annotated[CommandRule, Tag("table")],
    Discriminator(lambda v: "str" if isinstance(v, str) else "table"),
]


#: The allowlist as shipped: safe because every argument after these prefixes is confined.
SHIPPED_RULES: tuple[str | CommandRule, ...] = ("python -m pytest", "pytest", "ruff check", "git status")


class CommandSettings(_Section):
    """Commands agents may run, and the project's test command."""

    test: str = "python -m pytest -q"
    allowed: list[AllowedCommand] = Field(default_factory=lambda: list(SHIPPED_RULES))
    shell: list[str] = Field(default_factory=list)
    timeout_s: float = Field(300.0, gt=0)
    max_output_bytes: int = Field(200_000, ge=1024)
    max_file_bytes: int = Field(1_000_000_000, ge=0)
    baseline: bool = True  # run the test command on the base commit before any specialist starts


class ToolSettings(_Section):
    """Limits of the agents' file tools; 0 means unlimited."""

    max_write_bytes: int = Field(8_000_000, ge=0)
    max_task_write_bytes: int = Field(256_000_000, ge=0)


def check_workspace_path(path: str) -> str:
    """A `[workspace] copy/link` entry as a clean relative POSIX path, or ValueError saying why (also used by
    `squad.infra.worktree_env`): no empty, absolute or `~` paths, backslashes, `.`/`..` parts, nor `.git`."""
    parts = [p for p in path.split("/") if p] if isinstance(path, str) else []
    if not parts or "\x00" in path or "\\" in path or path.startswith(("/", "~")):
        raise ValueError(f"{path!r}: give a path relative to the repository root, with '/' separators, e.g. '.env'")
    if any(p in (".", "..") for p in parts):
        raise ValueError(f"{path!r} has a '.' or '..' component; give a plain path inside the repository")
    if any(p.lower() == ".git" for p in parts):
        raise ValueError(f"{path!r} is inside .git; squad manages that folder itself")
    return "/".join(parts)


class WorkspaceSettings(_Section):
    """How each task's worktree is made ready before its agent starts (see `squad.infra.worktree_env`)."""

    setup: list[str] = Field(default_factory=list)
    copy_: list[str] = Field(default_factory=list, alias="copy")  # `copy` would shadow BaseModel.copy
    link: list[str] = Field(default_factory=list)
    submodules: bool = True
    setup_timeout_s: float = Field(600.0, gt=0)

    @field_validator("copy_", "link")
    @classmethod
    def _paths(cls, paths: list[str]) -> list[str]:
        clean = [check_workspace_path(p) for p in paths]
        if twice := [p for i, p in enumerate(clean) if p in clean[:i]]:
            raise ValueError(f"{twice[0]!r} is listed twice")
        return clean

    @field_validator("setup")
    @classmethod
    def _commands(cls, commands: list[str]) -> list[str]:
        import shlex

        for command in commands:
            try:
                if not shlex.split(command):
                    raise ValueError("empty command")
            except ValueError as exc:
                raise ValueError(f"cannot parse {command!r}: {exc}") from None
        return commands


class ReviewSettings(_Section):
    """The review gate."""

    max_rounds: int = Field(2, ge=0, le=10)
    require_tests: bool = True
    # "approved": merge every approved task whose dependencies were merged, even when others failed (the run is
    # then `partial`); "all": merge only when every task was approved (all-or-nothing).
    integrate: Literal["approved", "all"] = "approved"


class ContextSettings(_Section):
    """Size of the shared context pack every specialist receives."""

    repo_map_tokens: int = Field(4000, ge=0)
    decisions_tokens: int = Field(4000, ge=0)
    agents_md_tokens: int = Field(8000, ge=0)


class Price(_Section):
    """USD per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_write_5m: float = Field(ge=0)
    cache_write_1h: float = Field(ge=0)
    cache_read: float = Field(ge=0)


FailOn = Literal["blocking", "append_only", "error"]
FAIL_ON: tuple[FailOn, ...] = ("blocking", "append_only", "error")


class GitHubSettings(_Section):
    """The GitHub Action."""

    trusted_bots: list[str] = Field(default_factory=list)
    fail_on: list[FailOn] = Field(default_factory=lambda: list(FAIL_ON))
    max_diff_bytes: int = Field(400_000, ge=1000)
    #: Findings on changed lines become inline review comments, at most this many new ones per review.
    max_inline_comments: int = Field(25, ge=0, le=100)
    #: Severities that make the inline review REQUEST_CHANGES (else it is a COMMENT review).
    request_changes_on: list[Literal["blocking", "major", "minor"]] = Field(default_factory=list)
    #: Revisions squad makes on its own PR (after a trusted reviewer requests changes, or CI fails), per PR.
    max_followups: int = Field(3, ge=0, le=20)


class TelemetrySettings(_Section):
    """OpenTelemetry traces of each run (README "Traces"); OTEL_EXPORTER_OTLP_ENDPOINT also turns them on."""

    otlp_endpoint: str = Field("", pattern=r"^(https?://\S+)?$")  # the OTLP/HTTP base URL (/v1/traces is added)
    content: bool = False  # also export prompts, summaries and tool text (secrets are redacted all the same)


class Settings(_Section):
    """All of `.squad/squad.toml`."""

    models: ModelsSettings = Field(default_factory=ModelsSettings)
    budgets: BudgetSettings = Field(default_factory=BudgetSettings)
    concurrency: ConcurrencySettings = Field(default_factory=ConcurrencySettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    circuit_breaker: CircuitBreakerSettings = Field(default_factory=CircuitBreakerSettings)
    commands: CommandSettings = Field(default_factory=CommandSettings)
    tools: ToolSettings = Field(default_factory=ToolSettings)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    context: ContextSettings = Field(default_factory=ContextSettings)
    pricing: dict[str, Price] = Field(default_factory=dict)
    github: GitHubSettings = Field(default_factory=GitHubSettings)
    workspace: WorkspaceSettings = Field(default_factory=WorkspaceSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)


class Charter(BaseModel):
    """One specialist, from `.squad/agents/<name>.md` (YAML front matter + markdown body)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    role: str = Field(min_length=1)
    model: str = ""
    tools: list[str] = Field(default_factory=lambda: ["read", "team"])
    owns: list[str] = Field(default_factory=list)
    reviewer: bool = False
    description: str = ""
    body: str = ""
    path: Path | None = None

    @field_validator("tools")
    @classmethod
    def _known_tools(cls, tools: list[str]) -> list[str]:
        for tool in tools:
            if tool not in TOOL_GROUPS and tool not in ALL_TOOLS:
                known = [*TOOL_GROUPS, *ALL_TOOLS]
                raise ValueError(f"unknown tool {tool!r}{_suggest(tool, known)}; known: {', '.join(known)}")
        return tools

    def tool_names(self) -> list[str]:
        """Expand groups into individual tool names, sorted and unique (sorted keeps the prefix stable)."""
        names: set[str] = set()
        for tool in self.tools:
            names.update(TOOL_GROUPS.get(tool, (tool,)))
        names.add("finish")
        return sorted(names)

    def model_for(self, settings: Settings) -> str:
        """The model this agent uses: its charter's, else the reviewer default, else the global default."""
        if self.model:
            return self.model
        if self.reviewer and settings.models.reviewer:
            return settings.models.reviewer
        return settings.models.default


class Team(BaseModel):
    """All charters of a repo, keyed by name."""

    agents: dict[str, Charter]

    @property
    def reviewers(self) -> list[Charter]:
        return [c for c in self.agents.values() if c.reviewer]

    @property
    def workers(self) -> list[Charter]:
        return [c for c in self.agents.values() if not c.reviewer]

    def get(self, name: str) -> Charter:
        try:
            return self.agents[name]
        except KeyError:
            raise ConfigError(
                f"no agent named {name!r}{_suggest(name, list(self.agents))}",
                hint=f"agents: {', '.join(sorted(self.agents))}",
            ) from None


def _suggest(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
