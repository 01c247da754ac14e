"""Run every benchmark (`benchmarks/bench_*.py`) in turn: `python benchmarks/run.py [NAME ...]`.

Each bench module has a `main() -> None` that prints its own ratios, measured side by side in one run
(absolute times drift on a shared machine; ratios are what we compare).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    sys.path.insert(0, str(here))  # bench modules import their shared helpers from _common
    wanted = set(argv)
    for path in sorted(here.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if wanted and name not in wanted:
            continue
        print(f"== {name} ==", flush=True)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.main()
        print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
