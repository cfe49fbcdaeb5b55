"""Markdown reports: an answer table first, then sections of text, tables and figures."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

SUMMARY_HEADING = "Does it still work once real circuits get in the way?"
SUMMARY_HEADER = ("block", "system", "SPICE vs surrogate error", "metric: ideal → with realistic circuits", "verdict")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-style Markdown table; floats in 4 significant digits; a `|` inside a cell is escaped."""
    def cell(x: object) -> str:
        return (f"{x:.4g}" if isinstance(x, float) else str(x)).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def percent(fraction: float, digits: int = 3) -> str:
    """A fraction as a percentage number (no sign), `digits` significant; below 1e-9 % it is float
    round-off and says so ("<1e-09"); NaN is an empty cell."""
    if not math.isfinite(fraction):
        return "" if math.isnan(fraction) else f"{100 * fraction:g}"
    value = 100 * fraction
    if value != 0 and abs(value) < 1e-9:
        return "<1e-09"
    return f"{value:.{digits}g}"


@dataclass(frozen=True)
class SummaryRow:
    """One line of the report's opening table: how one block does on one system.

    All fields are short display strings with their units: `spice_vs_surrogate` e.g. "0.0008 %
    NRMSE of i_out (held-out, calibrated)"; `metric` the block's or network's figure of merit
    ideal → with realistic circuits; `verdict` in words, computed from the numbers by the section.
    """

    block: str
    system: str
    spice_vs_surrogate: str
    metric: str
    verdict: str

    def cells(self) -> tuple[str, str, str, str, str]:
        return self.block, self.system, self.spice_vs_surrogate, self.metric, self.verdict


@dataclass
class Report:
    """A report under construction: headings, text, tables and figure links, then `write`.

    `to_markdown` puts the title, the `intro` paragraph and, when a section called `summary`,
    the answer table (one row per call, in call order) before every section.
    """

    title: str
    intro: str = ""
    parts: list[str] = field(default_factory=list)
    summary_rows: list[SummaryRow] = field(default_factory=list)

    def summary(self, *, block: str, system: str, spice_vs_surrogate: str, metric: str, verdict: str) -> SummaryRow:
        """Add a row to the opening table "Does it still work once real circuits get in the way?".

        A block's demo section calls it once per system it reports, with strings it formats from
        its own numbers, e.g. `rep.summary(block="crossbar", system="16×16 read, calibrated",
        spice_vs_surrogate="0.0008 % NRMSE (held-out)", metric="0 → 3.2 % NRMSE vs ideal V·G",
        verdict="works at ~3 effective bits: ...")`. Returns the row.
        """
        row = SummaryRow(block=block, system=system, spice_vs_surrogate=spice_vs_surrogate, metric=metric,
                         verdict=verdict)
        self.summary_rows.append(row)
        return row

    def section(self, heading: str, text: str = "") -> None:
        self.parts.append(f"## {heading}\n\n{text}".rstrip() + "\n")

    def text(self, text: str) -> None:
        self.parts.append(text.rstrip() + "\n")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        self.parts.append(markdown_table(header, rows) + "\n")

    def figure(self, path: str, caption: str) -> None:
        """A figure and its one-line caption (say what to see; the axes carry the units)."""
        self.parts.append(f"![{caption}]({path})\n\n*{caption}*\n")

    def summary_markdown(self) -> str:
        """The answer table under its heading ("" when no section reported a row)."""
        if not self.summary_rows:
            return ""
        rows = [r.cells() for r in self.summary_rows]
        return f"## {SUMMARY_HEADING}\n\n" + markdown_table(SUMMARY_HEADER, rows) + "\n"

    def to_markdown(self) -> str:
        head = [f"# {self.title}\n"] + ([self.intro.rstrip() + "\n"] if self.intro else [])
        summary = self.summary_markdown()
        return "\n".join(head + ([summary] if summary else []) + self.parts)

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_markdown())
        return path
