"""The slide deck opens with no network, and the index links every executed notebook."""

import json

import nbformat
import pytest

from utils.harness.render import build_index, build_slides, install_reveal, remote_references


def test_remote_references_finds_scripts_links_and_protocol_relative_urls():
    page = ('<script src="https://cdn.example/x.js"></script><link rel="stylesheet" href="//cdn.example/a.css">'
            '<script src="reveal.js/dist/reveal.js"></script><a href="https://example.org">a link is fine</a>')
    found = remote_references(page)
    assert len(found) == 2 and all("cdn.example" in tag for tag in found)


def executed_notebook(path):
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 00 · A title\n\nA question.", metadata={"slideshow": {"slide_type": "slide"}}),
        nbformat.v4.new_code_cell("1 + 1", metadata={"slideshow": {"slide_type": "slide"}}),
    ])
    notebook.cells[1].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
    nbformat.write(notebook, path)
    return path


def test_slides_reference_no_remote_script(tmp_path):
    reveal_package = install_reveal()  # from the npm registry into build/npm, once
    deck = build_slides(executed_notebook(tmp_path / "00_findings.ipynb"), tmp_path / "slides", reveal_package)
    page = deck.read_text(encoding="utf-8")
    assert remote_references(page) == []
    assert 'src="reveal.js/dist/reveal.js"' in page
    assert (tmp_path / "slides" / "reveal.js" / "dist" / "reveal.js").exists()
    assert "A question." in page


def test_slides_need_the_executed_findings_notebook(tmp_path):
    with pytest.raises(FileNotFoundError, match="utils.run 00_findings"):
        build_slides(tmp_path / "00_findings.ipynb", tmp_path / "slides")


def test_index_lists_each_notebook_with_its_claims(tmp_path):
    executed_notebook(tmp_path / "01_example.ipynb")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "01_example.json").write_text(json.dumps(
        {"claims": {"a": {"holds": True}, "b": {"holds": False}}}))
    page = build_index(tmp_path).read_text(encoding="utf-8")
    assert '<a href="01_example.ipynb">00 · A title</a> — 1/2 claims hold' in page
