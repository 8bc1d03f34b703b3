"""The render command: reports/index.html links every executed notebook; slides and site fail clearly."""

import json

import nbformat

from utils.reporting.render import build_index, main, remote_references


def test_remote_references_finds_scripts_links_and_protocol_relative_urls():
    page = ('<script src="https://cdn.example/x.js"></script><link rel="stylesheet" href="//cdn.example/a.css">'
            '<script src="reveal.js/dist/reveal.js"></script><a href="https://example.org">a link is fine</a>')
    found = remote_references(page)
    assert len(found) == 2 and all("cdn.example" in tag for tag in found)


def executed_notebook(path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 00 · A title\n\nA question."),
                                               nbformat.v4.new_code_cell("1 + 1")])
    notebook.cells[1].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
    nbformat.write(notebook, path)
    return path


def test_index_lists_each_notebook_with_its_claims(tmp_path):
    executed_notebook(tmp_path / "01_example.ipynb")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "01_example.json").write_text(json.dumps(
        {"claims": {"a": {"holds": True}, "b": {"holds": False}}}))
    (tmp_path / "slides").mkdir()
    (tmp_path / "slides" / "deck.pdf").write_bytes(b"%PDF")
    page = build_index(tmp_path).read_text(encoding="utf-8")
    assert '<a href="01_example.ipynb">00 · A title</a> — 1/2 claims hold' in page
    assert '<a href="slides/deck.pdf">Slides as PDF</a>' in page


def test_slides_and_site_commands_name_the_missing_records(tmp_path, capsys):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "00_findings.json").write_text(json.dumps({"notebook": "00_findings", "claims": {}}))
    assert main(["slides", "--out", str(tmp_path), "--no-pdf"]) == 2
    assert main(["site", "--out", str(tmp_path)]) == 2
    errors = capsys.readouterr().err
    assert errors.count("00_findings.json has no key 'sentences'") == 2
