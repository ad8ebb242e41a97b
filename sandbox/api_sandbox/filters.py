"""Row filters shared by the REST ``$filter`` and SOAP ``FilterPart`` front ends.

Both front ends build the same small tree (comparisons joined by AND/OR) which is
compiled to a parameterised sqlite WHERE clause. Literals are converted to the column's
stored type first, so dates compare as dates and numbers as numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from api_sandbox.fields import Field

# REST spellings observed or claimed in the wild (sfmc-api.md §2.5).
REST_OPERATORS = {
    "eq": "=",
    "ne": "!=",
    "neq": "!=",
    "gt": ">",
    "gte": ">=",
    "ge": ">=",
    "lt": "<",
    "lte": "<=",
    "le": "<=",
}


class FilterError(ValueError):
    """A filter the server cannot parse or apply (REST 400 / SOAP error status)."""


@dataclass
class Comparison:
    """``column <op> values`` with values already in stored form."""

    column: Field
    op: str  # one of = != > >= < <= isnull notnull between in
    values: list[Any] = field(default_factory=list)


@dataclass
class Logical:
    """AND/OR of sub-filters."""

    op: str  # "AND" | "OR"
    parts: list[Comparison | Logical]


Filter = Comparison | Logical


def compile_sql(  # noqa: PLR0911 - one return per operator family
    node: Filter, column_sql: Callable[[Field], str]
) -> tuple[str, list[Any]]:
    """Compile a filter tree into ``(where_sql, params)``."""
    if isinstance(node, Logical):
        pieces, params = [], []
        for part in node.parts:
            sql, part_params = compile_sql(part, column_sql)
            pieces.append(f"({sql})")
            params.extend(part_params)
        return f" {node.op} ".join(pieces), params
    col = column_sql(node.column)
    if node.op == "isnull":
        return f"{col} IS NULL", []
    if node.op == "notnull":
        return f"{col} IS NOT NULL", []
    if node.op == "between":
        return f"{col} BETWEEN ? AND ?", list(node.values[:2])
    if node.op == "in":
        marks = ",".join("?" for _ in node.values)
        return f"{col} IN ({marks})", list(node.values)
    value = node.values[0]
    if value is None:
        # ``Col eq ''`` means "is empty"; the platform stores empty as NULL.
        return (f"{col} IS NULL", []) if node.op == "=" else (f"{col} IS NOT NULL", [])
    return f"{col} {node.op} ?", [value]


def coerce(column: Field, text: str) -> Any:
    """Convert a literal to the column's stored form.

    Raises:
        FilterError: when the literal does not fit the column type.
    """
    try:
        return column.to_stored(text)
    except ValueError as exc:
        raise FilterError(f"invalid value for {column.name}: {text!r}") from exc


_TOKEN_RE = re.compile(r"\s*(?:'((?:[^']|'')*)'|\"((?:[^\"]|\"\")*)\"|([^\s']+))")


def _tokens(text: str) -> list[tuple[str, bool]]:
    """Split into (token, was_quoted) pairs."""
    out: list[tuple[str, bool]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m or m.end() == pos:
            raise FilterError(f"cannot parse $filter near {text[pos:]!r}")
        if m[1] is not None:
            out.append((m[1].replace("''", "'"), True))
        elif m[2] is not None:
            out.append((m[2].replace('""', '"'), True))
        else:
            out.append((m[3], False))
        pos = m.end()
    return out


def parse_rest_filter(text: str, columns: dict[str, Field]) -> Filter:
    """Parse ``Col op 'value' and Col2 op 'value'`` (column names case-insensitive).

    ``columns`` maps lowercased names to fields. Values are single-quoted; bare numbers
    are tolerated. Only ``and`` is supported, which is all the tap needs.

    Raises:
        FilterError: on any syntax error, unknown column/operator or bad literal.
    """
    tokens = _tokens(text)
    if not tokens:
        raise FilterError("empty $filter")
    parts: list[Filter] = []
    i = 0
    while True:
        if i + 3 > len(tokens):
            raise FilterError("incomplete $filter expression")
        (name, _), (op, _), (literal, _quoted) = tokens[i : i + 3]
        column = columns.get(name.lower())
        if column is None:
            raise FilterError(f"unknown column {name!r} in $filter")
        sql_op = REST_OPERATORS.get(op.lower())
        if sql_op is None:
            raise FilterError(f"unsupported operator {op!r} in $filter")
        parts.append(Comparison(column, sql_op, [coerce(column, literal)]))
        i += 3
        if i == len(tokens):
            break
        joiner = tokens[i][0].lower()
        if joiner != "and" or tokens[i][1]:
            raise FilterError(f"expected 'and' in $filter, got {tokens[i][0]!r}")
        i += 1
    return parts[0] if len(parts) == 1 else Logical("AND", parts)


def parse_rest_order(text: str, columns: dict[str, Field]) -> list[tuple[Field, bool]]:
    """Parse ``Col [asc|desc], Col2 [asc|desc]`` into (field, descending) pairs.

    Raises:
        FilterError: on unknown columns or directions.
    """
    out: list[tuple[Field, bool]] = []
    for raw in text.split(","):
        words = raw.split()
        if not words:
            continue
        if len(words) > 2:  # noqa: PLR2004 - "Col dir"
            raise FilterError(f"cannot parse $orderBy term {raw!r}")
        column = columns.get(words[0].lower())
        if column is None:
            raise FilterError(f"unknown column {words[0]!r} in $orderBy")
        direction = words[1].lower() if len(words) == 2 else "asc"  # noqa: PLR2004
        if direction not in {"asc", "desc"}:
            raise FilterError(f"bad direction {words[1]!r} in $orderBy")
        out.append((column, direction == "desc"))
    if not out:
        raise FilterError("empty $orderBy")
    return out
