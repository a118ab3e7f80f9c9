"""Was a score's comparison asserted? Only comparisons that reached an ``assert`` are judged.

A score remembers the threshold it was compared with, so ``assert r.accuracy >= 0.9`` needs no
extra code to be gated. But ``if r.accuracy >= 0.999: ...`` or a forgotten ``assert`` compare
too, and recording those as thresholds reports a failed threshold in a spec that passed. The
comparison's site decides: the statement of the spec's source that holds the code position
where the comparison ran. It is *asserted* when that statement is an ``assert`` (also inside a
comprehension or a lambda in it), or a ``return`` of a helper whose caller's statement is.

Why the source and not pytest's ``pytest_assertion_pass`` hook: that hook runs only with the
``enable_assertion_pass_hook`` ini flag (and rewritten modules compiled with it), only for
asserts that pass, and says which expression passed, not which score objects it compared; a
failed assert arrives as an exception without it. Reading the statement at the comparison's
code position works whatever the ini file says, for passing and failing asserts, with and
without assertion rewriting (pytest's rewritten code keeps the assert's source position).
"""

from __future__ import annotations

import ast
import linecache
from dataclasses import dataclass
from functools import lru_cache
from types import FrameType

__all__ = ["ComparisonSite", "comparison_site"]

# Helpers that return a comparison are followed up to this many calls (`return a >= b` in a
# helper used in `assert helper(...)`).
_MAX_RETURN_HOPS = 4


@dataclass(frozen=True)
class ComparisonSite:
    """Where a comparison ran: its file and line, and the kind of statement that holds it.

    ``statement`` is the statement's node name in lower case (``assert``, ``if``, ``assign``,
    ``expr``, ``while``, ...), or None when the source could not be read (an interactive session,
    generated code): then whether it was asserted is unknown.
    """

    filename: str
    lineno: int
    statement: str | None

    @property
    def asserted(self) -> bool | None:
        return None if self.statement is None else self.statement == "assert"

    def describe(self) -> str:
        what = f"an {self.statement} statement" if self.statement else "unreadable source"
        return f"{self.filename}:{self.lineno} ({what})"


@lru_cache(maxsize=128)
def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError):
        return None


def _position(frame: FrameType) -> tuple[int, int, int, int] | None:
    """``(line, end_line, column, end_column)`` of the instruction the frame is executing."""
    try:
        positions = list(frame.f_code.co_positions())
        line, end_line, column, end_column = positions[frame.f_lasti // 2]
    except (AttributeError, IndexError):
        line, end_line, column, end_column = frame.f_lineno, None, None, None
    if line is None:
        return None
    return line, end_line or line, column or 0, end_column if end_column is not None else column or 0


def _innermost_statement(tree: ast.AST, position: tuple[int, int, int, int]) -> ast.stmt | None:
    line, end_line, column, end_column = position
    start, end = (line, column), (end_line, end_column)
    found: ast.stmt | None = None
    nodes: list[ast.AST] = [tree]
    while nodes:
        node = nodes.pop()
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, ast.stmt) or child.end_lineno is None:
                if not isinstance(child, ast.stmt):
                    nodes.append(child)  # statements nest inside handlers, match cases, ...
                continue
            child_start = (child.lineno, child.col_offset)
            child_end = (child.end_lineno, child.end_col_offset or 0)
            if child_start <= start and end <= child_end:
                found = child  # deeper statements are visited later and replace it
                nodes.append(child)
    return found


def _statement_at(frame: FrameType) -> tuple[str, int, ast.stmt | None, bool]:
    """(file, line, innermost statement or None, whether the source was readable)."""
    filename = frame.f_code.co_filename
    position = _position(frame)
    line = position[0] if position else frame.f_lineno
    source = "".join(linecache.getlines(filename, frame.f_globals))
    tree = _parse(source) if source else None
    if tree is None or position is None:
        return filename, line, None, False
    return filename, line, _innermost_statement(tree, position), True


def comparison_site(frame: FrameType) -> ComparisonSite:
    """The site of the comparison running in ``frame`` (the code that compared the score).

    A ``return`` statement (or a lambda) is followed to the caller's statement, so a helper that
    returns a comparison counts as asserted when its caller asserts its result.
    """
    current: FrameType | None = frame
    filename, line, statement, readable = _statement_at(frame)
    for _ in range(_MAX_RETURN_HOPS):
        is_helper = isinstance(statement, ast.Return) or (
            current is not None and current.f_code.co_name == "<lambda>"
        )
        if not is_helper or current is None or current.f_back is None:
            break
        current = current.f_back
        filename, line, statement, readable = _statement_at(current)
    if not readable:
        return ComparisonSite(filename, line, None)
    name = type(statement).__name__.lower() if statement is not None else "module"
    return ComparisonSite(filename, line, name)
