"""What a Python file defines and what it uses, read with `ast`: the raw material of the repo map.

`analyze(path, source)` returns a `FileSymbols`: the lines the map shows (top-level classes with their
public methods and fields, top-level functions, each with its signature), the names the file defines
(for matching references), the modules it imports (resolved to absolute dotted names, relative imports
included) and how often its code reads each name. Pure: no I/O, the same source always gives the same
result, so the analysis can be cached by blob. A file that does not parse gives an empty analysis (the
map still lists it by name).
"""

from __future__ import annotations

import ast
import builtins
import keyword
from collections import Counter
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

#: Longest signature line shown; longer ones are cut with an ellipsis (defaults can be whole data structures).
MAX_SIGNATURE_CHARS = 160
#: Members (methods, fields) shown under one class before "… (+n more)".
MAX_MEMBERS = 12
#: Identifiers that say nothing about which file a name comes from.
_IGNORED = frozenset(dir(builtins)) | frozenset(keyword.kwlist) | {"self", "cls", "__init__", "__name__", "__all__"}
#: Statement fields that hold nested statements (where an import inside a function or `if` lives).
_BODIES = ("body", "orelse", "finalbody", "handlers", "cases")
#: Dunder methods worth showing: how a class is built and called.
_SHOWN_DUNDERS = frozenset({"__init__", "__call__"})


@dataclass(frozen=True)
class FileSymbols:
    """One Python file's definitions (`lines`, `detail` of them under classes), names, imports and uses."""

    lines: tuple[
        tuple[int, str], ...
    ] = ()  # (indent level, text): "class Shelf:", (1, "def add(self, book: Book) -> None")
    names: tuple[str, ...] = ()  # top-level classes and functions, and method names, sorted
    imports: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (absolute module, names imported from it), sorted
    uses: tuple[tuple[str, int], ...] = ()  # (identifier, count) of names it reads, sorted
    error: str = ""  # why the file was not analysed (syntax error, too deep); empty when it was

    def to_json(self) -> dict[str, Any]:
        return {
            "lines": [list(x) for x in self.lines],
            "names": list(self.names),
            "imports": [[m, list(n)] for m, n in self.imports],
            "uses": [list(x) for x in self.uses],
            "error": self.error,
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> FileSymbols:
        return FileSymbols(
            lines=tuple((int(i), str(t)) for i, t in data["lines"]),
            names=tuple(str(n) for n in data["names"]),
            imports=tuple((str(m), tuple(str(x) for x in n)) for m, n in data["imports"]),
            uses=tuple((str(n), int(c)) for n, c in data["uses"]),
            error=str(data.get("error", "")),
        )


def module_name(path: str) -> str:
    """The dotted module a `.py` path is imported as from the repository root (`a/b/__init__.py` -> `a.b`)."""
    parts = list(PurePosixPath(path).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_SIGNATURE_CHARS else text[: MAX_SIGNATURE_CHARS - 1] + "…"


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    returns = f" -> {ast.unparse(node.returns)}" if node.returns is not None else ""
    return _cut(f"{prefix} {node.name}({ast.unparse(node.args)}){returns}")


def _class_line(node: ast.ClassDef) -> str:
    bases = [ast.unparse(b) for b in node.bases] + [ast.unparse(k) for k in node.keywords]
    return _cut(f"class {node.name}({', '.join(bases)})" if bases else f"class {node.name}")


def _public(name: str) -> bool:
    return not name.startswith("_") or name in _SHOWN_DUNDERS


def _class_members(node: ast.ClassDef) -> tuple[list[str], list[str]]:
    """(lines shown under the class, method names)."""
    shown: list[str] = []
    methods: list[str] = []
    for item in node.body:
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
            methods.append(item.name)
            if _public(item.name):
                shown.append(_signature(item))
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and _public(item.target.id):
            shown.append(_cut(f"{item.target.id}: {ast.unparse(item.annotation)}"))
    if len(shown) > MAX_MEMBERS:
        shown = [*shown[:MAX_MEMBERS], f"… (+{len(shown) - MAX_MEMBERS} more)"]
    return shown, methods


def _package(path: str) -> list[str]:
    """The package a file's relative imports start from: its folder."""
    return list(PurePosixPath(path).parts[:-1])


def _relative(path: str, level: int, module: str | None) -> str:
    """The absolute module of `from <dots><module> import ...` in the file at `path`."""
    base = _package(path)
    base = base[: len(base) - (level - 1)] if level - 1 <= len(base) else []
    return ".".join([*base, *(module.split(".") if module else [])])


def _imports(tree: ast.Module, path: str) -> list[tuple[str, tuple[str, ...]]]:
    """Modules imported anywhere in the file (also inside functions), with the names taken from each.

    Imports are statements, so only statement bodies are walked, never expressions: a fraction of the nodes.
    """
    found: dict[str, set[str]] = {}
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.setdefault(alias.name, set())
        elif isinstance(node, ast.ImportFrom):
            module = _relative(path, node.level, node.module) if node.level else (node.module or "")
            if module:
                found.setdefault(module, set()).update(a.name for a in node.names if a.name != "*")
        else:
            for name in _BODIES:
                stack.extend(getattr(node, name, ()))
    return sorted((m, tuple(sorted(n))) for m, n in found.items())


def _uses(tree: ast.Module) -> list[tuple[str, int]]:
    """How often the code reads each name or attribute (strings and comments do not count: measured, counting
    every word of the text ranks worse). A hand-rolled walk: `ast.walk` takes two to four times as long."""
    counts: Counter[str] = Counter()
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is ast.Name:
            if type(node.ctx) is ast.Load:  # type: ignore[attr-defined]
                counts[node.id] += 1  # type: ignore[attr-defined]
            continue
        if kind is ast.Attribute:
            counts[node.attr] += 1  # type: ignore[attr-defined]
        for field in node._fields:
            value = getattr(node, field, None)
            if type(value) is list:
                stack.extend(item for item in value if isinstance(item, ast.AST))
            elif isinstance(value, ast.AST) and value._fields:  # not a Load/Store marker
                stack.append(value)
    return sorted((n, c) for n, c in counts.items() if n not in _IGNORED and len(n) > 1)


def analyze(path: str, source: bytes) -> FileSymbols:
    """What the Python file at `path` (repo-relative) with contents `source` defines, imports and uses."""
    try:
        tree = ast.parse(source, filename=path)
    except (SyntaxError, ValueError) as exc:  # ValueError: NUL bytes
        return FileSymbols(error=f"does not parse: {type(exc).__name__}")
    except (RecursionError, MemoryError):
        return FileSymbols(error="too deeply nested to parse")
    lines: list[tuple[int, str]] = []
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
            shown, methods = _class_members(node)
            names.update(methods)
            if _public(node.name):
                lines.append((0, _class_line(node)))
                lines.extend((1, line) for line in shown)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
            if _public(node.name):
                lines.append((0, _signature(node)))
    return FileSymbols(
        lines=tuple(lines),
        names=tuple(sorted(names)),
        imports=tuple(_imports(tree, path)),
        uses=tuple(_uses(tree)),
    )
