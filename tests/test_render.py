"""The render command: reports/index.html sends the reader to the site (one home page); slides and site fail
clearly."""

import json

import pytest

from utils.reporting.render import build_index, main
from utils.reporting.site import remote_references


def test_remote_references_finds_scripts_links_and_protocol_relative_urls():
    page = ('<script src="https://cdn.example/x.js"></script><link rel="stylesheet" href="//cdn.example/a.css">'
            '<script src="reveal.js/dist/reveal.js"></script><a href="https://example.org">a link is fine</a>')
    found = remote_references(page)
    assert len(found) == 2 and all("cdn.example" in tag for tag in found)


def test_index_is_a_link_to_the_site_home_page(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="make site"):
        build_index(tmp_path)
    assert main(["index", "--out", str(tmp_path)]) == 2 and "build the site first" in capsys.readouterr().err
    assert not (tmp_path / "index.html").exists()
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<html>the findings</html>")
    page = build_index(tmp_path).read_text(encoding="utf-8")
    assert '<meta http-equiv="refresh" content="0; url=site/index.html">' in page
    assert '<a href="site/index.html">site/index.html</a>' in page
    assert remote_references(page) == [] and "claims hold" not in page  # the list of notebooks is the site's


def test_slides_and_site_commands_name_the_missing_records(tmp_path, capsys):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "00_findings.json").write_text(json.dumps({"notebook": "00_findings", "claims": {}}))
    assert main(["slides", "--out", str(tmp_path), "--no-pdf"]) == 2
    assert main(["site", "--out", str(tmp_path)]) == 2
    errors = capsys.readouterr().err
    assert errors.count("00_findings.json has no key 'sentences'") == 2
