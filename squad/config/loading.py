"""Loading `.squad/squad.toml` and `.squad/agents/*.md`, with errors that name file:line, the key and a fix.

Line numbers come from a light scan of the TOML text (tomllib keeps none) and from PyYAML's node marks
for charter front matter.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from squad.config.models import AGENTS_DIR, RUNS_DIR, SETTINGS_FILE, SQUAD_DIR, Charter, Settings, Team, _suggest
from squad.errors import ConfigError

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
        raise ConfigError(
            f"invalid TOML: {exc}",
            path=path,
            line=line,
            hint="check quoting and brackets near that line",
        ) from None
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
