"""squad: run a team of AI specialists on a git repository.

Kept import-light on purpose: `squad --help` must not pay for anthropic, git or pydantic.
"""

__version__ = "0.1.0"
