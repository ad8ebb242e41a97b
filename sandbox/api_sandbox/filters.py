"""Row filters shared by the REST ``$filter`` and SOAP ``FilterPart`` front ends.

Both front ends build the same small tree (comparisons joined by AND/OR/NOT) which is
compiled to a parameterised sqlite WHERE clause. Literals are converted to the column's
stored type first, so dates compare as dates and numbers as numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from api_sandbox import sfmc_time
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
    """AND/OR of sub-filters, or NOT of exactly one."""

    op: str  # "AND" | "OR" | "NOT"
    parts: list[Comparison | Logical]


Filter = Comparison | Logical


def compile_sql(  # noqa: PLR0911 - one return per operator family
    node: Filter, column_sql: Callable[[Field], str]
) -> tuple[str, list[Any]]:
    """Compile a filter tree into ``(where_sql, params)``."""
    if isinstance(node, Logical) and node.op == "NOT":
        sql, params = compile_sql(node.parts[0], column_sql)
        # SQL's NOT of a NULL comparison is NULL (row dropped); SFMC's is unknown too.
        return f"NOT ({sql})", params
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


_TOKEN_RE = re.compile(r"\s*(?:'((?:[^']|'')*)'|\"((?:[^\"]|\"\")*)\"|([()])|([^\s'()]+))")


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
            out.append((m[3] or m[4], False))
        pos = m.end()
    return out


class Grammar(StrEnum):
    """Which ``$filter`` syntax the REST front end accepts (switch ``filter_grammar``)."""

    FULL = "full"  # and / or / not / parentheses: FuelSDK-Java's generic Fuel REST grammar
    AND_ONLY = "and-only"  # comparisons joined by ``and``: the subset the sandbox began with


class DateLiteral(StrEnum):
    """How a ``$filter`` date literal is read (switch ``filter_date_literal``)."""

    UTC_MINUS_6 = "utc-6"  # naive literals are SFMC system time (UTC-6, no DST)
    UTC = "utc"  # naive literals are UTC
    ISO_ONLY = "iso-only"  # US ``M/d/yyyy h:mm:ss AM`` literals are a 400; naive ISO is UTC-6


_US_DATE_RE = re.compile(r"^\s*\d{1,2}/\d{1,2}/\d{4}")


def coerce_rest(column: Field, text: str, date_literal: DateLiteral) -> Any:
    """Convert a ``$filter`` literal, reading dates as ``date_literal`` says.

    Raises:
        FilterError: when the literal does not fit the column or the date reading.
    """
    if column.field_type != "Date" or not text:
        return coerce(column, text)
    if date_literal == DateLiteral.ISO_ONLY and _US_DATE_RE.match(text):
        raise FilterError(f"invalid date literal for {column.name}: {text!r} (use ISO 8601)")
    try:
        stored, had_offset = sfmc_time.parse_datetime_with_offset(text)
    except ValueError as exc:
        raise FilterError(f"invalid value for {column.name}: {text!r}") from exc
    if date_literal == DateLiteral.UTC and not had_offset:
        stored += sfmc_time.SYSTEM_OFFSET_SECONDS  # naive UTC -> UTC-6 wall clock
    return stored


class _Parser:
    """Recursive descent over ``$filter`` tokens.

    Precedence: ``not`` binds tighter than ``and``, which binds tighter than ``or``.
    """

    def __init__(
        self,
        tokens: list[tuple[str, bool]],
        columns: dict[str, Field],
        grammar: Grammar,
        date_literal: DateLiteral,
    ) -> None:
        self.tokens = tokens
        self.pos = 0
        self.columns = columns
        self.grammar = grammar
        self.date_literal = date_literal

    def _peek_word(self) -> str | None:
        """The next token lowercased when it is an unquoted word, else None."""
        if self.pos >= len(self.tokens):
            return None
        text, quoted = self.tokens[self.pos]
        return None if quoted else text.lower()

    def _unsupported(self, word: str) -> FilterError:
        return FilterError(f"{word!r} is not supported in $filter")

    def parse(self) -> Filter:
        node = self._or()
        if self.pos != len(self.tokens):
            word = self.tokens[self.pos][0]
            if self.grammar == Grammar.AND_ONLY:
                raise FilterError(f"expected 'and' in $filter, got {word!r}")
            raise FilterError(f"unexpected {word!r} in $filter")
        return node

    def _or(self) -> Filter:
        parts = [self._and()]
        while self._peek_word() == "or":
            if self.grammar == Grammar.AND_ONLY:
                raise FilterError("expected 'and' in $filter, got 'or'")
            self.pos += 1
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else Logical("OR", parts)

    def _and(self) -> Filter:
        parts = [self._not()]
        while self._peek_word() == "and":
            self.pos += 1
            parts.append(self._not())
        return parts[0] if len(parts) == 1 else Logical("AND", parts)

    def _not(self) -> Filter:
        word = self._peek_word()
        if word == "not":
            if self.grammar == Grammar.AND_ONLY:
                raise self._unsupported("not")
            self.pos += 1
            return Logical("NOT", [self._not()])
        if word == "(":
            if self.grammar == Grammar.AND_ONLY:
                raise self._unsupported("(")
            self.pos += 1
            node = self._or()
            if self._peek_word() != ")":
                raise FilterError("missing ')' in $filter")
            self.pos += 1
            return node
        return self._comparison()

    def _comparison(self) -> Comparison:
        if self.pos + 3 > len(self.tokens):
            raise FilterError("incomplete $filter expression")
        (name, name_quoted), (op, op_quoted), (literal, _) = self.tokens[self.pos : self.pos + 3]
        if name in {"(", ")"} or op in {"(", ")"} or literal in {"(", ")"}:
            raise FilterError("incomplete $filter expression")
        column = self.columns.get(name.lower())
        if column is None:
            raise FilterError(f"unknown column {name!r} in $filter")
        sql_op = None if op_quoted else REST_OPERATORS.get(op.lower())
        if sql_op is None:
            raise FilterError(f"unsupported operator {op!r} in $filter")
        self.pos += 3
        del name_quoted  # "Field" and Field are both accepted as the column
        return Comparison(column, sql_op, [coerce_rest(column, literal, self.date_literal)])


def parse_rest_filter(
    text: str,
    columns: dict[str, Field],
    *,
    grammar: Grammar = Grammar.FULL,
    date_literal: DateLiteral = DateLiteral.UTC_MINUS_6,
) -> Filter:
    """Parse a rowset ``$filter`` (column names case-insensitive).

    ``columns`` maps lowercased names to fields. Values are single-quoted; bare numbers
    are tolerated. With ``Grammar.FULL``: ``Col op 'v'`` comparisons joined by ``and``,
    ``or``, ``not`` and parentheses; ``Grammar.AND_ONLY`` accepts only ``and``.
    ``like``, ``in``, ``between`` and ``is null`` are rejected like any unknown syntax.

    Raises:
        FilterError: on any syntax error, unknown column/operator or bad literal.
    """
    tokens = _tokens(text)
    if not tokens:
        raise FilterError("empty $filter")
    return _Parser(tokens, columns, Grammar(grammar), DateLiteral(date_literal)).parse()


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
