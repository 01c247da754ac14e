"""Installs the test suite's network guard in every Python child process a test starts.

`tests/conftest.py` puts this directory first on PYTHONPATH, and Python imports `sitecustomize` at
startup, so a squad CLI subprocess, pip, or any other Python program started by a test refuses
non-loopback connections exactly like the pytest process does. Interpreters started with `-I`, `-S` or
`-E`, or with an environment that drops PYTHONPATH, skip this file. The interpreter's own sitecustomize
(which this one shadows) still runs afterwards.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import squad_test_netguard

squad_test_netguard.install()


def _chain() -> None:
    """Run the next `sitecustomize` on sys.path (Debian's installs one); ours must not silently replace it."""
    here = Path(__file__).resolve().parent
    for entry in sys.path:
        try:
            if not entry or Path(entry).resolve() == here:
                continue
        except OSError:
            continue
        candidate = Path(entry) / "sitecustomize.py"
        if candidate.is_file():
            spec = importlib.util.spec_from_file_location("_squad_next_sitecustomize", candidate)
            if spec is not None and spec.loader is not None:
                spec.loader.exec_module(importlib.util.module_from_spec(spec))
            return


_chain()
