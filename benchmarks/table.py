"""The benchmark's one table: each row a figure, its rate, the goal and whether it is met."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    """Whether a row meets its goal."""

    MET = "met"
    NOT_MET = "NOT MET"
    NO_GOAL = "-"  # a reference figure (bound, anchor, count): nothing to meet


@dataclass(frozen=True)
class Row:
    """One line of the table.

    Attributes:
        number: the row's number in issue 10's list (1-12).
        figure: what was measured.
        value: the measured figure, formatted ("13,900 rec/s", "87 MB").
        runs: how many runs the value is the median of ("median of 3", "1 run").
        compared: the ratio the goal is about ("0.37x anchor 3"), or "-".
        goal: the goal in words, or "-".
        verdict: met / not met / no goal.
    """

    number: int
    figure: str
    value: str
    runs: str
    compared: str = "-"
    goal: str = "-"
    verdict: Verdict = Verdict.NO_GOAL


def verdict(met: bool) -> Verdict:
    """MET or NOT_MET."""
    return Verdict.MET if met else Verdict.NOT_MET


def runs_label(count: int) -> str:
    """The runs column: 'median of 3' or '1 run'."""
    return "1 run" if count == 1 else f"median of {count}"


def rate(records: int, seconds: float) -> str:
    """Records per second, rounded to a readable figure."""
    return f"{records / seconds:,.0f} rec/s" if seconds > 0 else "n/a"


HEADERS = ("#", "figure", "measured", "runs", "ratio", "goal", "met?")


def render(rows: list[Row]) -> str:
    """A plain-text table (also valid Markdown), columns padded to their widest cell."""
    cells = [HEADERS] + [
        (str(r.number), r.figure, r.value, r.runs, r.compared, r.goal, r.verdict.value)
        for r in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADERS))]

    def line(values: tuple[str, ...]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), separator, *(line(c) for c in cells[1:])])
