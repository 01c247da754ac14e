"""Settings (`.squad/squad.toml`) and charters (`.squad/agents/*.md`): pydantic models, loading, validation.

Every setting has a default, so an empty squad.toml is valid. Every error names `file:line` and the
key, and a misspelt key gets a suggestion. Line numbers come from a light scan of the TOML text
(tomllib keeps none) and from PyYAML's node marks for charter front matter.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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
    task_timeout_s: float = Field(1800.0, ge=0)


class ConcurrencySettings(_Section):
    """How many specialists run at once."""

    max_agents: int = Field(4, ge=1, le=64)


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


class CommandSettings(_Section):
    """Commands agents may run, and the project's test command."""

    test: str = "python -m pytest -q"
    allowed: list[str] = Field(default_factory=lambda: ["python -m pytest", "pytest", "ruff check", "git status"])
    shell: list[str] = Field(default_factory=list)
    timeout_s: float = Field(300.0, gt=0)
    max_output_bytes: int = Field(200_000, ge=1024)


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
        return self.model or (settings.models.reviewer if self.reviewer else "") or settings.models.default


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


# ---------------------------------------------------------------------------------------------------------
# Locating things


def settings_path(root: Path) -> Path:
    return root / SQUAD_DIR / SETTINGS_FILE


def agents_dir(root: Path) -> Path:
    return root / SQUAD_DIR / AGENTS_DIR


def runs_dir(root: Path) -> Path:
    return root / SQUAD_DIR / RUNS_DIR


# ---------------------------------------------------------------------------------------------------------
# Settings


def load_settings(root: Path, *, required: bool = False) -> Settings:
    """Load `.squad/squad.toml` under `root`; defaults when the file is absent (unless `required`)."""
    path = settings_path(root)
    if not path.exists():
        if required:
            raise ConfigError(f"{path} not found", hint="run `squad init` first")
        return Settings()
    return parse_settings(_read_text(path), path)


def parse_settings(text: str, path: Path) -> Settings:
    """Parse and validate squad.toml text; errors name file:line and the key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        line = int(m.group(1)) if m else (len(text.splitlines()) or 1) if "end of document" in str(exc) else None
        hint = "check quoting and brackets near that line"
        raise ConfigError(f"invalid TOML: {exc}", path=path, line=line, hint=hint) from None
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc, Settings, text, path, _toml_line) from None


def _read_text(path: Path) -> str:
    """A config file's text; unreadable or non-UTF-8 files are a ConfigError naming the file, not a traceback.

    `utf-8-sig` drops the byte-order mark some Windows editors write, which TOML and the `---` check reject.
    """
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text ({exc.reason} at byte {exc.start})", path=path, hint="save the file as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", path=path) from None


def _toml_line(text: str, loc: tuple[str | int, ...]) -> int | None:
    """Best-effort line of a dotted key in TOML text: finds the `[section]` header, then `key =`."""
    keys = [str(k) for k in loc]
    lines = text.splitlines()
    # Try the longest table prefix that appears as a header, then the remaining key inside it.
    for split in range(len(keys), -1, -1):
        table, rest = keys[:split], keys[split:]
        start, end = 0, len(lines)
        if table:
            keys_re = r"\s*\.\s*".join(_toml_key_re(k) for k in table)
            header = re.compile(r"^\s*\[\[?\s*" + keys_re + r"\s*\]\]?\s*(#.*)?$")  # [table] or [[array]]
            hit = next((i for i, ln in enumerate(lines) if header.match(ln)), None)
            if hit is None:
                continue
            if not rest:
                return hit + 1
            start = hit + 1
            nxt = next((i for i in range(start, len(lines)) if re.match(r"^\s*\[", lines[i])), len(lines))
            end = nxt
        else:
            end = next((i for i, ln in enumerate(lines) if re.match(r"^\s*\[", ln)), len(lines))
        key = re.compile(r"^\s*" + _toml_key_re(rest[0]) + r"\s*[=.]")
        for i in range(start, end):
            if key.match(lines[i]):
                return i + 1
        if table:
            return start  # the section header's line
    return None


def _toml_key_re(key: str) -> str:
    return r"(?:" + re.escape(key) + r"|\"" + re.escape(key) + r"\"|'" + re.escape(key) + r"')"


# ---------------------------------------------------------------------------------------------------------
# Charters


_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)?---[ \t]*(?:\n|\Z)", re.DOTALL)


def load_team(root: Path) -> Team:
    """Load every `.squad/agents/*.md` charter. Raises ConfigError for the first bad file."""
    directory = agents_dir(root)
    if not directory.is_dir():
        raise ConfigError(f"{directory} not found", hint="run `squad init` to create the default team")
    agents: dict[str, Charter] = {}
    for path in sorted(directory.glob("*.md")):
        charter = load_charter(path)
        if charter.name in agents:
            raise ConfigError(
                f"agent name {charter.name!r} is used twice",
                path=path,
                line=2,
                hint=f"also in {agents[charter.name].path}",
            )
        agents[charter.name] = charter
    if not agents:
        raise ConfigError(f"no charters in {directory}", hint="run `squad init` to create the default team")
    return Team(agents=agents)


def load_charter(path: Path) -> Charter:
    """Parse one charter file: YAML front matter between `---` lines, then the markdown body."""
    return parse_charter(_read_text(path), path)


def parse_charter(text: str, path: Path) -> Charter:
    m = _FRONT_MATTER.match(text)
    if not m:
        raise ConfigError(
            "charter has no YAML front matter",
            path=path,
            line=1,
            hint="start the file with a `---` line, the fields (name, role, ...), then another `---` line",
        )
    front = m.group(1) or ""
    body = text[m.end() :].strip()
    try:
        node = yaml.compose(front, Loader=yaml.SafeLoader)
        data = yaml.safe_load(front) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1  # +1 for 1-based, +1 for the opening `---`
        raise ConfigError(f"invalid YAML front matter: {getattr(exc, 'problem', exc)}", path=path, line=line) from None
    if not isinstance(data, dict):
        raise ConfigError("front matter must be a mapping of fields (name: ..., role: ...)", path=path, line=2)
    _reject_duplicate_keys(node, path)

    def yaml_line(_text: str, loc: tuple[str | int, ...]) -> int:
        return _yaml_line(node, loc) or 1  # e.g. a missing key: point at the front matter's opening `---`

    try:
        return Charter.model_validate({**data, "body": body, "path": path})
    except ValidationError as exc:
        raise _validation_error(exc, Charter, front, path, yaml_line) from None


def _reject_duplicate_keys(node: Any, path: Path) -> None:
    """PyYAML silently keeps the last of two equal keys; a charter that says two different names is a mistake."""
    if not isinstance(node, yaml.MappingNode):
        return
    seen: set[str] = set()
    for key, _value in node.value:
        if key.value in seen:
            raise ConfigError(f"front matter key {key.value!r} is set twice", path=path, line=key.start_mark.line + 2)
        seen.add(key.value)


def _yaml_line(node: Any, loc: tuple[str | int, ...]) -> int | None:
    """Line (1-based, counting the opening `---`) of a key path in a composed YAML node."""
    line = None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            hit = next(((k, v) for k, v in node.value if k.value == str(key)), None)
            if hit is None:
                break
            line, node = hit[0].start_mark.line + 2, hit[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 2
        else:
            break
    return line


# ---------------------------------------------------------------------------------------------------------
# Errors


def _suggest(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _fields_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """Field names valid at `loc` (the parent of the offending key), for suggestions."""
    current: Any = model
    for key in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = next((f for n, f in current.model_fields.items() if (f.alias or n) == str(key)), None)
        if field is None:
            return []
        current = field.annotation
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items() if n not in ("body", "path")]
    return []


def _validation_error(exc: ValidationError, model: type[BaseModel], text: str, path: Path, liner: Any) -> ConfigError:
    """Turn pydantic's error list into one ConfigError naming file:line, the key and a fix."""
    messages: list[str] = []
    first_line: int | None = None
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(k) for k in loc)
        line = liner(text, loc)
        if first_line is None:
            first_line = line
        where = f"line {line}: " if line and len(exc.errors()) > 1 else ""
        if err["type"] == "extra_forbidden":
            known = _fields_at(model, loc[:-1])
            msg = f"{where}unknown key {key!r}{_suggest(str(loc[-1]), known)}"
            if known:
                msg += f"; valid keys here: {', '.join(known)}"
        elif err["type"] == "missing":
            msg = f"{where}missing required key {key!r}"
        else:
            msg = f"{where}{key}: {err['msg']} (got {err.get('input')!r})"
        messages.append(msg)
    return ConfigError("; ".join(messages), path=path, line=first_line)
