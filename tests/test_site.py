"""The report site's pages: FINDINGS as home with linked evidence, every claim linked to its cell, nothing remote."""

import html
import json
import re

import pytest
from test_deck import REPORTS, fixture_records, fixture_reports

from utils.harness.results import load_all_results
from utils.reporting.site import _cell_links, _write_docs, remote_references
from utils.reporting.site_hooks import _strip_remote_scripts


@pytest.fixture(scope="module")
def site(rendered_reports):
    return rendered_reports / "site"


def test_remote_references_finds_tags_imports_and_css_urls():
    page = ('<script src="https://cdn.example/x.js"></script><link rel="stylesheet" href="//cdn.example/a.css">'
            '<script type="module">await import("https://cdn.example/m.mjs")</script>'
            '<style>@font-face{src:url("https://fonts.example/f.woff")}</style>'
            '<script src="assets/local.js"></script><a href="https://example.org">a link is fine</a>')
    assert len(remote_references(page)) == 4


def test_the_hook_removes_mathjax_and_mermaid():
    page = ('<p>x</p><!-- Load mathjax -->\n<script src="https://cdnjs/mathjax.js"> </script>\n'
            '<!-- End of mathjax configuration --><script type="module">\n const m = await import("https://cdnjs/'
            'mermaid.esm.min.mjs");\n</script><script src=""></script><p>y</p>')
    assert _strip_remote_scripts(page) == "<p>x</p><p>y</p>"


def test_cells_are_found_by_execution_count_and_by_printed_claim():
    by_count, by_claim = _cell_links(REPORTS / "02_causal_mask.ipynb")
    notebook = json.loads((REPORTS / "02_causal_mask.ipynb").read_text(encoding="utf-8"))
    cell = next(c for c in notebook["cells"] if c["id"] == by_claim["one_pass_equals_loop_t5"])
    assert "[HOLDS] one_pass_equals_loop_t5:" in "".join(cell["outputs"][0]["text"])
    assert by_count[cell["execution_count"]] == cell["id"]


def test_the_site_needs_the_deck_first(tmp_path):
    reports = fixture_reports(tmp_path / "reports")
    with pytest.raises(FileNotFoundError, match="make slides"):
        _write_docs(reports, tmp_path / "docs", fixture_records()["sentences"], reports / "slides")


def test_home_page_links_the_verdict_table_to_cells(site):
    home = (site / "index.html").read_text(encoding="utf-8")
    assert re.search(r'<a href="02_causal_mask\.html#cell-id=[\w-]+">02:one_pass_equals_loop_t5</a> ✓', home)
    assert re.search(r'<a href="04_tinfer_training\.html#cell-id=[\w-]+">04:causal_ranks_above_no_mask</a> ✓', home)


def test_every_claim_links_to_an_existing_cell_with_its_run_details(site):
    claims = (site / "claims.html").read_text(encoding="utf-8")
    results = load_all_results(site.parent / "results")
    rows = re.findall(r'<tr id="([\w.-]+)--([\w.-]+)">.*?<a href="([^"]+)">', claims)
    assert len(rows) == sum(len(r["claims"]) for r in results.values())
    pages = {}
    for stem, claim_id, href in rows:
        page, _, anchor = href.partition("#")
        assert page == f"{stem}.html" and anchor.startswith("cell-id="), (stem, claim_id, href)
        pages.setdefault(page, (site / page).read_text(encoding="utf-8"))
        assert f'id="{anchor}"' in pages[page], (stem, claim_id, href)
    assert "torch 2.13.0+cpu" in claims and "git commit" in claims and "write_markdown" in claims


def test_evidence_deck_and_pages_are_there_and_offline(site):
    evidence = (site / "evidence.html").read_text(encoding="utf-8")
    records = json.loads((site.parent / "results" / "00_findings.json").read_text(encoding="utf-8"))["sentences"]
    for record in records:
        assert html.escape(record["title"], quote=False) in evidence, record["id"]
        assert not record.get("figure") or f'src="{record["figure"]}"' in evidence, record["id"]
    deck = (site / "deck.html").read_text(encoding="utf-8")
    assert 'href="slides/index.html"' in deck and (site / "slides" / "index.html").exists()
    for page in site.rglob("*.html"):
        assert remote_references(page.read_text(encoding="utf-8")) == [], page
    assert (site / "search" / "search_index.js").exists()  # the offline plugin: search from file://


@pytest.fixture(scope="module")
def fresh_site(tmp_path_factory):
    """The site built over a FINDINGS.md generated now from the committed results (answers first)."""
    from utils.harness.results import load_all_results
    from utils.reporting.deck import build_deck
    from utils.reporting.findings import (
        failing_claims,
        findings_markdown,
        missing_claims,
        sanity_claims,
        sentence_records,
    )
    from utils.reporting.site import build_site

    root = tmp_path_factory.mktemp("fresh-site")
    reports = fixture_reports(root / "reports")
    results = {k: v for k, v in load_all_results(REPORTS / "results").items() if k != "00_findings"}
    records = sentence_records(results)
    (reports / "FINDINGS.md").unlink()
    (reports / "FINDINGS.md").write_text(findings_markdown(records, results, [], {
        "claims": 0, "sanity": sanity_claims(results), "failing": failing_claims(results),
        "missing": missing_claims(results), "audited": {}}), encoding="utf-8")
    build_deck(reports, reports / "slides", pdf=False)
    return build_site(reports, reports / "site", docs=root / "docs").parent


def test_home_page_opens_with_the_answers_then_the_verdict_table(fresh_site):
    home = (fresh_site / "index.html").read_text(encoding="utf-8")
    headings = re.findall(r"<h2[^>]*>(.*?)<", home)
    assert headings[:2] == ["Answers", "Verdict table"], headings
    assert home.index("Is this what T5 does?") < home.index("<table")
    assert "| claims |" not in home and "<th>claims</th>" not in home  # the claims go under the table
    assert re.search(r'<a href="02_causal_mask\.html#cell-id=[\w-]+">02:one_pass_equals_loop_t5</a> ✓', home)


def test_the_verdict_table_reads_at_1280_px_without_scrolling_sideways(fresh_site):
    from utils.reporting.browser import chromium_missing, open_browser

    if chromium_missing():
        pytest.skip(chromium_missing())
    with open_browser((1280, 800)) as context:
        page = context.new_page()
        page.goto((fresh_site / "index.html").resolve().as_uri())
        sizes = page.evaluate("""() => [...document.querySelectorAll('article table')].map(table => {
            const box = table.closest('.md-typeset__scrollwrap') || table.parentElement;
            return {scroll: box.scrollWidth, client: box.clientWidth, table: table.scrollWidth,
                    page: document.documentElement.scrollWidth};
        })""")
    assert sizes, "no table on the home page"
    verdict = sizes[0]
    assert verdict["scroll"] <= verdict["client"] + 1 and verdict["page"] <= 1280, sizes
