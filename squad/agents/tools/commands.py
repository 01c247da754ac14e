"""Which commands the `run` tool may execute, and the confinement of their arguments.

A rule of `[commands] allowed` names an argv prefix the user trusts. The arguments a model adds after
it are not trusted: `ruff check --output-file /abs/path`, `pytest --basetemp=..` (pytest deletes its
basetemp), `pytest @args.txt` (arguments read from a file) would read, write or delete outside the
worktree with no agent code at all. So every argument after the prefix is confined:

- every path-like piece must resolve inside the worktree through the jail: a positional argument, an
  option's value (`--opt value`, `--opt=value`, `-ovalue`), and each piece of a value split at `=`, `:`
  and `,` (`-o cache_dir=/tmp`, `--cov-report=html:/tmp`). Absolute paths, `..` escapes, `~`, symlinks
  leading out, `.git`, `.squad/` and ledger files are refused (the jail's one `protected` comparison);
- `@file` (a file of more arguments, read by pytest and others) is refused;
- options that write files, load configuration or plugins, or run other programs (`--fix`,
  `--output-file`, `--config`, `-p`, `--basetemp`, `git -c`, ...) are refused unless the rule allows
  them by name: `{ run = "ruff check", allow = ["--fix"] }`. Their values stay confined.

A rule is a string (this prefix, confined arguments) or a table `{ run = "...", allow = [...] }`.
`[commands] shell` entries run a string through `sh -c` and cannot be confined: they are the user's
explicit opt-out. None of this makes a test runner safe: it executes the code an agent wrote.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from squad.agents.tools.base import ToolError
from squad.agents.tools.jail import JailError, protected, resolve
from squad.config import CommandRule, CommandSettings
from squad.infra.process import CommandError, split_command


@dataclass(frozen=True)
class Profile:
    """What squad knows about one program's options.

    Attributes:
        risky: options that write files, load config or plugins, or run programs: refused unless allowed.
        short_values: short options that take a value, so `-kEXPR` is `-k` + value, not a cluster.
        abbreviations: the program accepts unique prefixes of long options (`--outp` for `--output`).
        global_risky: (git) risky options before the subcommand, instead of `risky`.
        subcommand_risky: (git) more risky options after a given subcommand.
    """

    risky: frozenset[str]
    short_values: frozenset[str] = frozenset()
    abbreviations: bool = False
    global_risky: frozenset[str] | None = None
    subcommand_risky: dict[str, frozenset[str]] = field(default_factory=dict)


PYTEST = Profile(
    risky=frozenset(
        {
            # plugins, configuration, where the root and conftest search are
            *("-p", "-c", "--config-file", "--inifile", "-o", "--override-ini", "--rootdir", "--confcutdir"),
            *("--pdbcls", "--debug", "--trace-config"),
            # files written (or deleted: pytest empties --basetemp)
            *("--basetemp", "--junitxml", "--junit-xml", "--resultlog", "--result-log", "--report-log"),
            *("--log-file", "--html", "--json-report-file", "--cov-config"),
            # other hosts or interpreters (pytest-xdist, pastebin)
            *("--pastebin", "--tx", "--rsyncdir"),
        }
    ),
    short_values=frozenset("kmpcoWrn"),
)
RUFF = Profile(
    risky=frozenset(
        {
            *("--fix", "--unsafe-fixes", "--fix-only", "--add-noqa"),
            *("--output-file", "-o", "--cache-dir", "--config"),
        }
    ),
    short_values=frozenset("o"),
)
GIT = Profile(
    risky=frozenset(
        {
            *("--output", "--output-directory", "--open-files-in-pager", "--ext-diff", "--textconv"),
            *("--upload-pack", "--receive-pack", "--exec", "--template", "--config-env", "--exec-path"),
            *("--git-dir", "--work-tree"),
        }
    ),
    short_values=frozenset("cCOouUnSG"),
    abbreviations=True,
    # `git -c core.pager=<program> status` runs a program; so do --exec-path and --config-env.
    global_risky=frozenset({"-c", "--config-env", "--exec-path", "--git-dir", "--work-tree", "--namespace"}),
    subcommand_risky={
        "archive": frozenset({"-o", "--remote"}),
        "format-patch": frozenset({"-o"}),
        "grep": frozenset({"-O"}),
        "clone": frozenset({"-u", "-c", "--config"}),
        "fetch": frozenset({"--upload-pack"}),
        "submodule": frozenset({"foreach"}),
    },
)
PROFILES: dict[str, Profile] = {"pytest": PYTEST, "py.test": PYTEST, "ruff": RUFF, "git": GIT}
#: git's global options that take the next argument as their value.
_GIT_GLOBAL_VALUES = frozenset({"-c", "-C", "--config-env", "--exec-path", "--git-dir", "--work-tree", "--namespace"})

_PYTHON = re.compile(r"python[0-9.]*")


@dataclass(frozen=True)
class Rule:
    """One allowed command: the argv prefix the user wrote, and the risky options it allows."""

    prefix: tuple[str, ...]
    allow: frozenset[str] = field(default_factory=frozenset)

    @property
    def text(self) -> str:
        return shlex.join(self.prefix)

    def describe(self) -> str:
        return repr(self.text) + (f" (allows {', '.join(sorted(self.allow))})" if self.allow else "")


def rules(settings: CommandSettings) -> list[Rule]:
    """The rules of `[commands]`: `allowed`, the test command (agents are asked to make it pass), and
    `shell` entries (exec'd confined when the command is given as a list)."""
    entries: list[str | CommandRule] = [*settings.allowed, *settings.shell]
    if settings.test.strip():
        entries.append(settings.test)
    return _parse(entries)


def _parse(entries: Iterable[str | CommandRule]) -> list[Rule]:
    out: list[Rule] = []
    for entry in entries:
        text, allow = (entry, ()) if isinstance(entry, str) else (entry.run, tuple(entry.allow))
        try:
            argv = shlex.split(text)
        except ValueError:  # the settings validator refuses these; a rule we cannot read allows nothing
            continue
        if argv:
            out.append(Rule(tuple(argv), frozenset(allow)))
    return out


def program(argv: Sequence[str]) -> str:
    """The name a profile is looked up by: `pytest` for `/usr/bin/pytest`, `python3 -m pytest`, `py.test`."""
    name = os.path.basename(argv[0]) if argv else ""
    if _PYTHON.fullmatch(name) and "-m" in argv[:-1]:
        return os.path.basename(argv[argv.index("-m") + 1])
    return name


def _profiles(argv: Sequence[str]) -> list[tuple[int, Profile]]:
    """(index of the program in argv, its profile) for every known program named in `argv`: `uv run
    pytest ...` gets pytest's, `python3 -m pytest` too."""
    found = []
    for i, arg in enumerate(argv):
        name = program(argv[i:]) if i == 0 else os.path.basename(arg)
        if name in PROFILES:
            found.append((i, PROFILES[name]))
    return found


def _git_subcommand(argv: Sequence[str], start: int) -> int | None:
    """Index of the subcommand of the `git` at `argv[start]` (skipping global options and their values)."""
    i = start + 1
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-"):
            return i
        if arg in _GIT_GLOBAL_VALUES:
            i += 1
        i += 1
    return None


class _Options:
    """The risky options and value-taking short options at each position of one argv."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.found = _profiles(argv)
        self.argv = argv
        self.short_values = frozenset().union(*(p.short_values for _, p in self.found))
        self.abbreviations = any(p.abbreviations for _, p in self.found)
        self._subs = {start: _git_subcommand(argv, start) for start, p in self.found if p.global_risky is not None}

    def risky(self, index: int) -> frozenset[str]:
        out: set[str] = set()
        for start, prof in self.found:
            if prof.global_risky is None:
                out |= prof.risky
                continue
            sub = self._subs[start]
            if start < index and (sub is None or index < sub):
                out |= prof.global_risky
            else:
                out |= prof.risky
                if sub is not None:
                    out |= prof.subcommand_risky.get(self.argv[sub], frozenset())
        return frozenset(out)


def match(argv: Sequence[str], candidates: Iterable[Rule]) -> list[Rule]:
    """Rules whose prefix `argv` starts with, longest first."""
    hits = [r for r in candidates if tuple(argv[: len(r.prefix)]) == r.prefix]
    return sorted(hits, key=lambda r: -len(r.prefix))


def confine(argv: Sequence[str], rule: Rule, root: Path) -> None:
    """ToolError unless every argument after `rule.prefix` stays in the worktree and every risky option
    is allowed by `rule` (see the module docstring)."""
    opts = _Options(argv)
    options_end = False
    for index in range(len(rule.prefix), len(argv)):
        arg = argv[index]
        if options_end or not arg.startswith("-") or arg == "-":
            if arg.startswith("@") and not options_end:
                raise ToolError(
                    f"argument {arg!r} refused: '@file' makes the program read more arguments from a file",
                    hint="pass the arguments themselves",
                )
            _check_option(arg, arg, rule, opts, index)  # git subcommands such as `submodule foreach`
            _confine_value(arg, arg, root)
            continue
        if arg == "--":
            options_end = True
            continue
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            _check_option(name, arg, rule, opts, index)
            if eq:
                _confine_value(value, arg, root)
            continue
        # -x, -xVALUE, or a cluster of flags -xyz
        flag, rest = arg[:2], arg[2:]
        _check_option(flag, arg, rule, opts, index)
        if not rest:
            continue
        if flag[1] in opts.short_values or not rest.isalnum():
            _confine_value(rest, arg, root)
        else:
            for letter in rest:
                _check_option("-" + letter, arg, rule, opts, index)


def _check_option(name: str, arg: str, rule: Rule, opts: _Options, index: int) -> None:
    risky = _risky_name(name, opts.risky(index), opts.abbreviations)
    if risky is None or risky in rule.allow or name in rule.allow:
        return
    what = f"option {risky}" + (f" (in {arg!r})" if arg != risky else "")
    raise ToolError(
        f"{what} refused: it writes files, loads configuration or plugins, or runs another program, and the "
        f"rule {rule.text!r} does not allow it",
        hint=f"run without it; the user can allow it in .squad/squad.toml: "
        f'{{ run = "{rule.text}", allow = ["{risky}"] }}',
    )


def _risky_name(name: str, risky: frozenset[str], abbreviations: bool) -> str | None:
    if name in risky:
        return name
    if abbreviations and name.startswith("--") and len(name) > 3:
        return next((r for r in sorted(risky) if r.startswith(name)), None)
    return None


def _confine_value(value: str, arg: str, root: Path) -> None:
    """ToolError unless every path-like piece of `value` resolves inside the worktree, outside protected
    paths."""
    for piece in re.split(r"[=:,]", value):
        piece = piece.strip().strip("'\"").strip()
        if not piece:
            continue
        if piece.startswith("~"):
            raise ToolError(f"argument {arg!r} refused: {piece!r} is a path in a home directory")
        try:
            jp = resolve(root, piece)
        except JailError as exc:
            raise ToolError(f"argument {arg!r} refused: {exc.message}", hint=exc.hint) from None
        kind = protected(jp.rel) or protected(piece)
        if kind is not None:
            where = {"git": ".git", "squad": ".squad/", "ledger": "the decisions ledger"}[kind]
            raise ToolError(f"argument {arg!r} refused: commands may not name {where} ({piece!r})")


def plan_command(command: list[str] | str, settings: CommandSettings, root: Path) -> list[str]:
    """The argv to exec for `command`, or ToolError if `[commands]` does not allow it.

    A string command that starts with a `shell` entry runs as `sh -c <command>` (unconfined: the user's
    explicit choice); everything else is exec'd directly, when its argv starts with a rule's prefix and
    its further arguments pass `confine` for that rule (or, with several matching rules, for any).
    """
    argv = parse_command(command)
    if isinstance(command, str) and match(argv, _parse(settings.shell)):
        return ["sh", "-c", command]
    candidates = match(argv, rules(settings))
    if not candidates:
        listing = "; ".join(r.describe() for r in rules(settings)) or "(none)"
        raise ToolError(
            f"command {shlex.join(argv)!r} is not allowed. Allowed commands (and their arguments, confined to "
            f"the repository): {listing}",
            hint="use one of these, or the read/search tools; the user can allow more in .squad/squad.toml "
            "[commands] allowed",
        )
    first: ToolError | None = None
    for rule in candidates:
        try:
            confine(argv, rule, root)
            return argv
        except ToolError as exc:
            first = first or exc
    assert first is not None
    raise first


def parse_command(command: list[str] | str) -> list[str]:
    """argv from a list or a shell-like string (`squad.infra.process.split_command`, the one parsing every command
    gets); ToolError if it is empty or cannot be split."""
    try:
        return split_command(command)
    except CommandError as exc:
        raise ToolError(exc.message, hint=exc.hint) from None
