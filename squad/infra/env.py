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

#: A variable whose upper-cased name contains one of these is dropped.
SECRET_NAME_PARTS: tuple[str, ...] = (
    "TOKEN",
    "SECRET",
    "KEY",
    "PASSWORD",
    "PASSWD",
    "CREDENTIAL",
    "AUTH",
    "PRIVATE",
    "COOKIE",
    "SESSION",
)
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
#: Dropped by exact name.
SECRET_NAMES: frozenset[str] = frozenset({"SSH_AUTH_SOCK", "GH_TOKEN", "GITHUB_TOKEN", "MYSQL_PWD", "NETRC"})
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
# A URL with a password in it (postgres://user:pw@host, https://x:token@github.com) is a secret by value.
_URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """True if a variable of this name is dropped from child environments."""
    upper = name.upper()
    return (
        upper in SECRET_NAMES
        or upper.startswith(SECRET_NAME_PREFIXES)
        or any(part in upper for part in SECRET_NAME_PARTS)
        or upper.startswith("GIT_CONFIG_KEY_")
        or upper.startswith("GIT_CONFIG_VALUE_")
        or (upper.startswith("OTEL_") and upper.endswith("_HEADERS"))  # a trace collector's credentials
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


def scrubbed_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of `env` (default `os.environ`) without secrets or git location overrides.

    Keeps everything else (PATH, HOME, LANG, TERM, VIRTUAL_ENV, ...), so tools behave as in the user's
    shell. Drops: names containing TOKEN, SECRET, KEY, PASSWORD, PASSWD, CREDENTIAL, AUTH, PRIVATE,
    COOKIE or SESSION; names starting with ANTHROPIC_, AWS_, AZURE_, GCP_, GOOGLE_, CLOUDSDK_, OPENAI_
    and other provider prefixes; SSH_AUTH_SOCK; OTEL_*_HEADERS (an OTLP collector's credentials, e.g.
    Langfuse's); values that are URLs with an embedded password; and
    GIT_DIR-style variables that would redirect git away from the worktree.

    Also calls `protect_process()`: every spawn of agent-influenced code asks for this environment
    first, and scrubbing it means little while the child can read ours from /proc.
    """
    protect_process()
    source = os.environ if env is None else env
    out: dict[str, str] = {}
    for name, value in source.items():
        if is_secret_name(name) or name.upper() in GIT_LOCATION_NAMES:
            continue
        if _URL_WITH_PASSWORD.search(value):
            continue
        out[name] = value
    return out
