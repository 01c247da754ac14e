"""Redacting secrets from text that leaves the machine (trace attributes in `[telemetry] content` mode).

`Redactor` replaces, with `[redacted]`: the values of the environment's secret variables (by name,
`env.is_secret_name`, or by value, `env.is_secret_value`), every credential shape `env.SECRET_VALUE` knows
(tokens, keys, URLs with credentials), a private key's whole block, and `password=...`-style assignments.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from squad.infra.env import SECRET_VALUE, is_secret_name, is_secret_value

REDACTED = "[redacted]"
# Beyond `env.SECRET_VALUE` (token shapes, URLs with credentials): a private key's whole block (SECRET_VALUE
# matches its first line), and `password=...`-style assignments in text.
_MORE_SECRETS = re.compile(
    "|".join(
        [
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
            r"\b(?i:password|passwd|secret|token|api[_-]?key|authorization)\b[\"']?\s*[:=]\s*[\"']?[^\s\"',;]+",
        ]
    )
)


class Redactor:
    """Replaces secrets in text: the values of secret environment variables, and credential-shaped strings."""

    def __init__(self, env: Mapping[str, str]) -> None:
        secret = (v for k, v in env.items() if (is_secret_name(k) or is_secret_value(v)) and len(v.strip()) >= 8)
        self.values = sorted(set(secret), key=len, reverse=True)  # longest first: a key containing another

    def __call__(self, text: str) -> str:
        for value in self.values:
            text = text.replace(value, REDACTED)
        return SECRET_VALUE.sub(REDACTED, _MORE_SECRETS.sub(REDACTED, text))
