"""A definition's code, found in its source file by name with ``ast``: what the pages show."""

import ast
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

from docs.concerns import Concern, Ref

Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Assign | ast.AnnAssign


class NotDefined(LookupError):
    """The file has no definition of that name (the problem ``problems()`` reports)."""


@dataclass(frozen=True)
class Snippet:
    ref: Ref
    first: int  # 1-based line numbers in the file, leading comments and decorators included
    last: int
    code: str  # dedented, so a method reads like a function

    @property
    def location(self) -> str:
        lines = str(self.first) if self.first == self.last else f"{self.first}-{self.last}"
        return f"{self.ref.path}:{lines}"

    @property
    def lines(self) -> int:
        """Non-blank lines: blank ones say nothing about how much code a framework needs."""
        return sum(1 for line in self.code.splitlines() if line.strip())


@dataclass(frozen=True)
class Side:
    snippets: tuple[Snippet, ...]

    @property
    def lines(self) -> int:
        return sum(snippet.lines for snippet in self.snippets)

    @property
    def paths(self) -> list[str]:
        return list(dict.fromkeys(snippet.ref.path for snippet in self.snippets))


@dataclass(frozen=True)
class ConcernCode:
    """A concern with the code of each of its sides found."""

    concern: Concern
    fastapi: Side
    flask: Side
    shared: Side

    @property
    def line_counts(self) -> tuple[int, int, int]:
        return (self.fastapi.lines, self.flask.lines, self.shared.lines)


def concern_code(concern: Concern, root: Path) -> ConcernCode:
    def side(refs: Sequence[Ref]) -> Side:
        return Side(tuple(snippet(ref, root) for ref in refs))

    return ConcernCode(
        concern=concern,
        fastapi=side(concern.fastapi),
        flask=side(concern.flask),
        shared=side(concern.shared),
    )


def snippet(ref: Ref, root: Path) -> Snippet:
    source = (root / ref.path).read_text(encoding="utf-8")
    node = definition(ast.parse(source), ref.name)
    if node is None:
        raise NotDefined(f"{ref.path} defines no {ref.name}")
    lines = source.splitlines()
    first = _with_leading_comments(lines, _first_line(node))
    last = node.end_lineno or node.lineno
    code = textwrap.dedent("\n".join(lines[first - 1 : last]))
    return Snippet(ref=ref, first=first, last=last, code=code)


def definition(module: ast.Module, name: str) -> Definition | None:
    """``name``'s definition: ``function``, ``Class``, ``ASSIGNED`` or ``Class.method``.

    The last one wins when a name is bound twice, as it does when Python runs the module.
    """
    *classes, wanted = name.split(".")
    body: list[ast.stmt] = module.body
    for class_name in classes:
        named = [
            node for node in body if isinstance(node, ast.ClassDef) and node.name == class_name
        ]
        if not named:
            return None
        body = named[-1].body
    defined = [node for node in body if _binds(node, wanted)]
    return defined[-1] if defined else None


def _binds(node: ast.stmt, name: str) -> TypeGuard[Definition]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return node.name == name
    if isinstance(node, ast.Assign):
        return any(isinstance(target, ast.Name) and target.id == name for target in node.targets)
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and node.target.id == name
    return False


def _first_line(node: Definition) -> int:
    """Where the definition starts: at its first decorator, if it has any."""
    if isinstance(node, ast.Assign | ast.AnnAssign):
        return node.lineno
    return min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])


def _with_leading_comments(lines: list[str], first: int) -> int:
    """Back up over the comment lines directly above: they say why the definition is so."""
    while first > 1 and lines[first - 2].lstrip().startswith("#"):
        first -= 1
    return first
