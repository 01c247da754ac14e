"""The SquadError hierarchy: every failure a user can meet, with a message that says what and how to fix.

Exit codes follow the CLI contract: 1 = the work failed, 2 = usage or configuration error.
"""

from __future__ import annotations

from pathlib import Path


class SquadError(Exception):
    """Base of all user-facing errors.

    Args:
        message: what went wrong, in one sentence.
        hint: what the user can do about it (optional).
        path: the file the error is about (optional).
        line: 1-based line in `path` (optional).
    """

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        path: str | Path | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.path = Path(path) if path is not None else None
        self.line = line

    @property
    def location(self) -> str:
        """`file:line`, `file`, or empty when the error is not about a file."""
        if self.path is None:
            return ""
        return f"{self.path}:{self.line}" if self.line else str(self.path)

    def render(self) -> str:
        """The text shown to the user: `error: file:line: message` plus an optional hint line."""
        loc = f"{self.location}: " if self.location else ""
        text = f"error: {loc}{self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def __str__(self) -> str:
        loc = f"{self.location}: " if self.location else ""
        return f"{loc}{self.message}"


class UsageError(SquadError):
    """The command was called wrongly (bad argument, not in a git repo, ...)."""

    exit_code = 2


class ConfigError(SquadError):
    """squad.toml or a charter is malformed or invalid."""

    exit_code = 2


class NotARepoError(UsageError):
    """The command needs a git repository and was run outside one."""


class LedgerError(SquadError):
    """A decisions ledger file cannot be read or written."""


class ModelError(SquadError):
    """A model call failed in a way retries did not fix."""


class ModelConfigError(ModelError):
    """A model cannot be called as configured (no API key, the key rejected, an unknown model name): the
    configuration is wrong, not the work, so the CLI exits 2."""

    exit_code = 2


class BudgetExceededError(SquadError):
    """A budget (tokens, dollars, turns, time) would be exceeded; raised before the call."""


class WorkspaceError(SquadError):
    """A git worktree operation failed."""


class RunError(SquadError):
    """A run failed (invalid plan, rejected work, merge conflict, failing tests)."""
