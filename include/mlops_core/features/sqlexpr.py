"""A small Spark SQL expression scanner: which identifiers an expression references, and renaming them.

Used to validate `expr` of attribute and derived features when the config loads (no Spark needed) and to
rewrite a derived feature's base names into windowed column names (`total_orders` -> `total_orders_30d`).
It is deliberately not a parser: it skips string literals, back-quoted names and numbers, treats a name
followed by `(` as a function and known SQL words as keywords; every other name is a column reference."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

KEYWORDS = frozenset(
    """
    AND OR NOT NULL IS IN CASE WHEN THEN ELSE END TRUE FALSE BETWEEN LIKE ILIKE RLIKE DISTINCT AS CAST
    DATE TIMESTAMP INTERVAL DAY DAYS HOUR HOURS MINUTE MINUTES SECOND SECONDS MONTH MONTHS YEAR YEARS WEEK WEEKS
    INT INTEGER BIGINT SMALLINT TINYINT LONG DOUBLE FLOAT REAL DECIMAL NUMERIC STRING VARCHAR CHAR BOOLEAN DIV
    """.split()
)

_TOKEN = re.compile(
    r"""
    (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*")
  | (?P<quoted>`(?:[^`]|``)+`)
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?[A-Za-z]*|\.\d+(?:[eE][+-]?\d+)?[A-Za-z]*)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<other>\s+|.)
    """,
    re.VERBOSE | re.DOTALL,
)


class ExpressionError(ValueError):
    """The expression cannot be scanned (for example an unterminated string)."""


@dataclass(frozen=True)
class Reference:
    name: str
    start: int
    end: int


def references(expr: str) -> Iterator[Reference]:
    """Column references in `expr`, in order (functions, keywords and literals are skipped)."""
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:  # pragma: no cover - `other` matches any single character
            raise ExpressionError(f"cannot read {expr!r} at position {pos}")
        pos = m.end()
        if m.lastgroup == "other" and m.group() in "'\"`":
            raise ExpressionError(f"unterminated quote {m.group()} at position {m.start()} in {expr!r}")
        if m.lastgroup == "quoted":
            yield Reference(m.group()[1:-1].replace("``", "`"), m.start(), m.end())
        elif m.lastgroup == "name":
            word = m.group()
            if word.upper() in KEYWORDS:
                continue
            rest = expr[m.end() :].lstrip()
            if rest.startswith("("):  # a function call
                continue
            yield Reference(word, m.start(), m.end())


def referenced_names(expr: str) -> list[str]:
    """Distinct column names `expr` references, in order of first use."""
    seen: dict[str, None] = {}
    for ref in references(expr):
        seen.setdefault(ref.name, None)
    return list(seen)


def rename(expr: str, mapping: Callable[[str], str | None]) -> str:
    """Rewrite each column reference `name` to back-quoted `mapping(name)`; None keeps it unchanged."""
    out, last = [], 0
    for ref in references(expr):
        new = mapping(ref.name)
        if new is None:
            continue
        out.append(expr[last : ref.start])
        out.append(f"`{new}`")
        last = ref.end
    out.append(expr[last:])
    return "".join(out)
