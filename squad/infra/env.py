"""`scrubbed_env`: the environment every subprocess an agent can influence gets, with secrets removed.

Shared by the `run` tool, our own git calls, the coordinator's test runner and the GitHub Action: an
agent-run command (a test suite the agent just edited, say) must never see an API key or a token.
Matching is by name and deliberately broad: dropping a harmless variable costs little, leaking a key
costs a lot.

A scrubbed environment is not enough on its own: on Linux any process of the same user may read
`/proc/<pid>/environ` (the environment squad started with, API key included) and `/proc/<pid>/mem` of
another. `scrubbed_env` therefore first marks this process non-dumpable, which makes those files
readable only by root. It cannot protect the environment of the shell that started squad: an allowed
command runs as the user and can read what the user can; isolating that needs an OS sandbox.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
from collections.abc import Mapping

#: A variable whose upper-cased name contains one of these is dropped (`*_TOKEN`, `*_SECRET*`, `*_KEY`,
#: `*JWT*`, `*_WEBHOOK_URL`, `*_DSN`, ...).
SECRET_NAME_PARTS: tuple[str, ...] = (
    "TOKEN",
    "SECRET",
    "KEY",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "CREDENTIAL",
    "AUTH",
    "PRIVATE",
    "COOKIE",
    "SESSION",
    "JWT",
    "WEBHOOK",
    "SIGNATURE",
    "CONNECTION_STRING",
)
#: A variable whose upper-cased name ends with one of these is dropped (`SENTRY_DSN`, `DB_PASS`, `API_PW`).
SECRET_NAME_SUFFIXES: tuple[str, ...] = ("DSN", "_PASS", "_PW", "_PWD", "_SALT")
#: A variable whose upper-cased name starts with one of these is dropped (cloud and provider credentials).
SECRET_NAME_PREFIXES: tuple[str, ...] = (
    "ANTHROPIC_",
    "AWS_",
    "AZURE_",
    "ARM_",
    "GCP_",
    "GOOGLE_",
    "GCLOUD_",
    "CLOUDSDK_",
    "OPENAI_",
    "HF_",
    "HUGGING_FACE_",
    "DIGITALOCEAN_",
    "VAULT_",
)
#: Dropped by exact name. The GITHUB_* files are where a workflow step writes environment variables,
#: PATH entries, outputs and state for later steps: agent code that could write them could take over the
#: rest of the job.
SECRET_NAMES: frozenset[str] = frozenset(
    {
        *("SSH_AUTH_SOCK", "GH_TOKEN", "GITHUB_TOKEN", "MYSQL_PWD", "NETRC", "PGPASSFILE", "DATABASE_URL"),
        *("GITHUB_ENV", "GITHUB_PATH", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_STATE"),
    }
)
#: A variable whose name starts with one of these is dropped: the Actions runner's own (runtime token,
#: cache and results service URLs, OIDC token request URL).
RUNNER_PREFIXES: tuple[str, ...] = ("ACTIONS_",)
#: Git variables that would point git (run by us or by an agent's command) at another repository.
GIT_LOCATION_NAMES: frozenset[str] = frozenset(
    {
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_COMMON_DIR",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_NAMESPACE",
        "GIT_CONFIG",
        "GIT_CONFIG_PARAMETERS",
        "GIT_CONFIG_COUNT",
    }
)
#: Values that are secrets whatever the variable is called: a URL with credentials (`postgres://u:pw@h`,
#: `https://token@github.com`, a Sentry DSN), a URL with a token-like query parameter, and the shapes of
#: well-known tokens (GitHub, Anthropic/OpenAI-style `sk-`, Slack, AWS access keys, GitLab, npm, PyPI,
#: JWTs) and private keys.
SECRET_VALUE = re.compile(
    r"""
    [a-z][a-z0-9+.-]{0,30}://[^/\s@]+@                                # URL with user info (a bounded scheme:
    # `[a-z0-9+.-]*` made a search through a long word quadratic)
    | [?&](?:access_token|token|key|api_key|apikey|secret|sig|signature|password|pwd|auth)=[^&\s]+
    | \b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})    # GitHub
    | \bsk-[A-Za-z0-9_-]{20,}                                         # Anthropic, OpenAI, ...
    | \bxox[abposr]-[A-Za-z0-9-]{10,}                                 # Slack
    | \b(?:AKIA|ASIA)[0-9A-Z]{16}\b                                    # AWS access key id
    | \bglpat-[A-Za-z0-9_-]{20,} | \bnpm_[A-Za-z0-9]{30,} | \bpypi-[A-Za-z0-9_-]{50,}
    | \beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*      # JWT
    | -----BEGIN[A-Z ]*PRIVATE\ KEY-----
    """,
    re.IGNORECASE | re.VERBOSE,
)


def is_secret_name(name: str) -> bool:
    """True if a variable of this name is dropped from child environments."""
    upper = name.upper()
    return (
        upper in SECRET_NAMES
        or upper.startswith(SECRET_NAME_PREFIXES)
        or upper.startswith(RUNNER_PREFIXES)
        or upper.endswith(SECRET_NAME_SUFFIXES)
        or any(part in upper for part in SECRET_NAME_PARTS)
        or upper.startswith("GIT_CONFIG_KEY_")
        or upper.startswith("GIT_CONFIG_VALUE_")
        or (upper.startswith("OTEL_") and upper.endswith("_HEADERS"))  # an OTLP collector's credentials
    )


_PR_SET_DUMPABLE = 4


def protect_process() -> bool:
    """Make this process non-dumpable (Linux), so its children cannot read its environment or memory
    through /proc. Idempotent; True when the protection is in place."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):  # no prctl (unusual libc): nothing more we can do here
        return False


def is_secret_value(value: str) -> bool:
    """True if `value` looks like a credential whatever its variable is called (see SECRET_VALUE)."""
    return SECRET_VALUE.search(value) is not None


#: What `redact` puts where a secret was.
REDACTED = "[redacted]"
#: Values of secret variables shorter than this are not searched for in text (`SESSION=1` would blank every 1).
MIN_REDACTED_VALUE = 8


def redact(text: str, env: Mapping[str, str] | None = None) -> str:
    """`text` with every secret replaced by REDACTED: the values of the variables `scrubbed_env` drops as
    secrets (from `env`, default `os.environ`; at least MIN_REDACTED_VALUE characters) and anything shaped
    like a credential (SECRET_VALUE). For what squad writes to disk and shows: tool results in transcripts."""
    source = os.environ if env is None else env
    values = {
        v for k, v in source.items() if len(v) >= MIN_REDACTED_VALUE and (is_secret_name(k) or is_secret_value(v))
    }
    for value in sorted(values, key=len, reverse=True):  # longest first: a secret containing another goes whole
        text = text.replace(value, REDACTED)
    return SECRET_VALUE.sub(REDACTED, text)


def scrubbed_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of `env` (default `os.environ`) without secrets or git location overrides.

    Keeps everything else (PATH, HOME, LANG, TERM, VIRTUAL_ENV, ...), so tools behave as in the user's
    shell. Drops, by name: names containing TOKEN, SECRET, KEY, PASSWORD, CREDENTIAL, AUTH, PRIVATE,
    COOKIE, SESSION, JWT, WEBHOOK, ...; names ending in _DSN, _PASS, ...; names starting with ANTHROPIC_,
    AWS_, AZURE_, GCP_, GOOGLE_, CLOUDSDK_, OPENAI_ and other provider prefixes, or ACTIONS_ (the runner's);
    SSH_AUTH_SOCK; OTEL_*_HEADERS (a trace collector's credentials, e.g. Langfuse's); GITHUB_ENV,
    GITHUB_PATH, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY and GITHUB_STATE (files
    that steer the rest of a workflow job); GIT_DIR-style variables that would redirect git away from the
    worktree. By value: URLs with credentials or token query parameters, and well-known token shapes.

    Also calls `protect_process()`: every spawn of agent-influenced code asks for this environment
    first, and scrubbing it means little while the child can read ours from /proc.
    """
    protect_process()
    source = os.environ if env is None else env
    out: dict[str, str] = {}
    for name, value in source.items():
        if is_secret_name(name) or name.upper() in GIT_LOCATION_NAMES:
            continue
        if is_secret_value(value):
            continue
        out[name] = value
    return out
