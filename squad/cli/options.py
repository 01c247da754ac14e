"""Options several commands share, defined once so their names, checks and help cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

#: Every model name `squad.models.registry.backend` accepts; the one `--model` help of every command.
MODEL_HELP = (
    "Use this model for every agent (`squad plan` without --out: for planning): claude-..., bedrock:<model id>, "
    "vertex:<model id>, scripted:<script.yaml>, or replay:<run> (a recorded run's model responses, offline)."
)


def model_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """`--model NAME`, as `squad run`, `plan`, `task` and `integrate` take it."""
    return click.option("--model", metavar="NAME", help=MODEL_HELP)(func)


def fragment_sources(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--from DIR...` (as `sources`) and the folders after it (`more`: `--from A B` reads both), as `squad task`,
    `integrate`, `log` and `cost` take them. Goes where the command's last argument would go."""
    dirs = click.Path(path_type=Path, file_okay=False)

    def apply(func: Callable[..., Any]) -> Callable[..., Any]:
        func = click.option("--from", "sources", multiple=True, metavar="DIR", type=dirs, help=help)(func)
        return click.argument("more", nargs=-1, type=dirs, metavar="")(func)

    return apply
