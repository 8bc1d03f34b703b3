"""utils/harness/markdown.py."""

from utils.reporting.markdown import markdown_table


def test_markdown_table_escapes_pipes():
    text = markdown_table([{"a": "x | y", "b": "z"}])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| x / y | z |"]
