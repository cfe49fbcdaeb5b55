"""Markdown reports: sections of text, tables and figures written next to each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-style Markdown table; floats in 4 significant digits."""
    def cell(x: object) -> str:
        return f"{x:.4g}" if isinstance(x, float) else str(x)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class Report:
    """A report under construction: add headings, text, tables and figure links, then `write`."""

    title: str
    parts: list[str] = field(default_factory=list)

    def section(self, heading: str, text: str = "") -> None:
        self.parts.append(f"## {heading}\n\n{text}".rstrip() + "\n")

    def text(self, text: str) -> None:
        self.parts.append(text.rstrip() + "\n")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        self.parts.append(markdown_table(header, rows) + "\n")

    def figure(self, path: str, caption: str) -> None:
        self.parts.append(f"![{caption}]({path})\n\n*{caption}*\n")

    def to_markdown(self) -> str:
        return f"# {self.title}\n\n" + "\n".join(self.parts)

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_markdown())
        return path
