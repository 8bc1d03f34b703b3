"""Markdown for the rendered reports."""

import re

__all__ = ["markdown_table"]


def markdown_table(rows: list[dict[str, str]]) -> str:
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(re.sub(r"\s*\|\s*", " / ", row[column]) for column in header) + " |"
              for row in rows]
    return "\n".join(lines)
