"""The offline report site: mkdocs-material + mkdocs-jupyter, opened from file:// or any static server.

    index       FINDINGS.md, each `NN:claim ✓` of the verdict table linked to the cell that recorded it
    evidence    every findings sentence (verdicts, answers, pitfalls, ...) with its numbers, figure and claims
    claims      every recorded claim, linked to its cell, with the run's parameters, library versions, git commit
    deck        the lab-meeting slides and their PDF (copied from reports/slides/)
    NN_*        every executed notebook with its outputs and figures

The pages are generated into a docs folder (build/site-docs/), then mkdocs builds them with the root mkdocs.yml.
Offline by construction: no web fonts (`font: false`), material's offline plugin (search index as a script),
the iframe-worker shim vendored beside the pages (search from file://), MathJax and Mermaid removed by
`site_hooks.py` (the notebooks hold no math), and a check that no page references another host.
"""

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from utils.harness.paths import REPO_ROOT
from utils.harness.results import load_all_results
from utils.reporting.sentences import by_section, findings_path, load_sentences

MKDOCS_YML = REPO_ROOT / "mkdocs.yml"
DOCS_DIR = REPO_ROOT / "build" / "site-docs"
ASSETS_DIR = Path(__file__).parent / "templates" / "site"
SECTION_HEADINGS = {"verdict": "Verdicts", "answer": "Answers", "pitfall": "Pitfalls",
                    "hf_defaults": "HF's defaults, measured", "data_parallel": "More than one device",
                    "real_data": "Real data and a pretrained model", "audit": "Audit your model",
                    "scope": "Scope and limits", "rerun": "How to rerun"}
_CLAIM_LINE = re.compile(r"^\[(?:SANITY )?(?:HOLDS|DOES NOT HOLD)\] ([\w.\-]+): ", re.M)
_EVIDENCE_TOKEN = re.compile(r"\b(\d\d[a-z]?):([A-Za-z0-9_]+)(?= [✓✗]| = )")
REMOTE = re.compile(r"""<(?:script|link|img|iframe|source|video|audio)\b[^>]*\b(?:src|href)\s*=\s*["']?\s*"""
                    r"""(?:https?:)?//[^"'\s>]*|\bimport\s*\(\s*["'](?:https?:)?//[^"']*|url\(\s*["']?https?://[^)]*"""
                    r"""|["']https?://[^"'\s]+\.(?:m?js|css)(?:\?[^"'\s]*)?["']""", re.I)
WIDGET_MIME = "application/vnd.jupyter.widget"

__all__ = ["build_site", "remote_references"]


def remote_references(page: str) -> list[str]:
    """Every place in `page` that would load something from another host (tags, dynamic imports, CSS urls, and
    script or style URLs in quotes, as a script that adds a tag would hold them)."""
    return [match.group(0) for match in REMOTE.finditer(page)]


def _notebook_title(notebook_path: Path) -> str:
    """The first markdown heading of a notebook, without the leading #'s."""
    notebook = json.loads(notebook_path.read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "markdown" and source.lstrip().startswith("#"):
            return source.strip().splitlines()[0].lstrip("# ").strip()
    return notebook_path.stem


def _cell_links(notebook_path: Path) -> tuple[dict[int, str], dict[str, str]]:
    """For an executed notebook: execution count -> cell id, and claim id -> id of the cell that printed it."""
    notebook = json.loads(notebook_path.read_text(encoding="utf-8"))
    by_count, by_claim = {}, {}
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code" or "id" not in cell:
            continue
        if cell.get("execution_count") is not None:
            by_count[cell["execution_count"]] = cell["id"]
        for output in cell.get("outputs", []):
            text = output.get("text", "")
            for match in _CLAIM_LINE.finditer("".join(text) if isinstance(text, list) else text):
                by_claim.setdefault(match.group(1), cell["id"])
    return by_count, by_claim


class _Cells:
    """Where each claim was recorded: `href(stem, claim_id)` -> "02_causal_mask.html#cell-id=cell-08".

    The cell that printed the claim's line wins; the claim's recorded `cell` (execution count) is the fallback
    for a claim recorded without printing."""

    def __init__(self, reports: Path, results: dict[str, dict[str, Any]]):
        self.results = results
        self.maps = {stem: _cell_links(reports / f"{stem}.ipynb") for stem in results
                     if (reports / f"{stem}.ipynb").exists()}

    def cell(self, stem: str, claim_id: str) -> tuple[str | None, int | None]:
        if stem not in self.maps:
            return None, None
        by_count, by_claim = self.maps[stem]
        if claim_id in by_claim:  # the cell whose output printed "[HOLDS] <claim_id>: ..." is the ground truth
            cell_id = by_claim[claim_id]
            return cell_id, next((n for n, i in by_count.items() if i == cell_id), None)
        entry = self.results.get(stem, {}).get("claims", {}).get(claim_id, {})
        if entry.get("cell") in by_count:  # the execution count recorded with the claim
            return by_count[entry["cell"]], entry["cell"]
        return None, None

    def href(self, stem: str, claim_id: str) -> str:
        cell_id, _ = self.cell(stem, claim_id)
        if stem not in self.maps:
            return "claims.html"
        return f"{stem}.html" + (f"#cell-id={cell_id}" if cell_id else "")


def _link(href: str, text: str) -> str:
    return f'<a href="{html.escape(href)}">{html.escape(text)}</a>'


def _findings_page(reports: Path, cells: _Cells) -> str:
    """FINDINGS.md with every `NN:claim ✓` of the verdict table linked to its cell (metrics to their notebook)."""
    stems = {stem.split("_")[0]: stem for stem in cells.results}
    source = (reports / "FINDINGS.md").read_text(encoding="utf-8")

    def link(match: re.Match) -> str:
        stem = stems.get(match.group(1))
        if stem is None:
            return match.group(0)
        is_claim = match.group(2) in cells.results[stem].get("claims", {})
        href = cells.href(stem, match.group(2)) if is_claim else f"{stem}.html"
        return _link(href, match.group(0))

    return _EVIDENCE_TOKEN.sub(link, source)


def _inline(text: str) -> str:
    """A findings sentence for Markdown: HTML escaped, `code` kept."""
    parts = re.split(r"(`[^`]*`)", text or "")
    return "".join(part if part.startswith("`") else html.escape(part, quote=False) for part in parts)


def _claim_items(claims: list[dict[str, Any]], cells: _Cells) -> list[str]:
    items = []
    for claim in claims:
        mark = "✓" if claim.get("holds") else "✗"
        label = f"{claim['notebook'].split('_')[0]}:{claim['id']}"
        status = "" if claim.get("holds") else f" ({claim.get('status') or 'does not hold'})"
        statement = html.escape(claim.get("statement") or "", quote=False)
        items.append(f"- {mark} {_link(cells.href(claim['notebook'], claim['id']), label)}{status} — {statement}")
    return items


def _evidence_page(sentences: list[dict[str, Any]], cells: _Cells) -> str:
    lines = ["# Evidence: every findings sentence and what backs it", "",
             "Each sentence is generated by the findings notebook from `results/*.json`: numbers are interpolated "
             "from recorded metrics, and a sentence whose backing claim is missing or fails starts with "
             "*not established*. Each claim links to the notebook cell that recorded it.", ""]
    for section, heading in SECTION_HEADINGS.items():
        records = by_section(sentences, section)
        if not records:
            continue
        lines += [f"## {heading}", ""]
        for record in records:
            anchor = record["id"].replace(".", "-")
            lines += [f"### {html.escape(record['title'], quote=False)} {{ #{anchor} }}", "",
                      ("" if record["established"] else "**Not established.** ") + _inline(record["text"]), ""]
            for metric in record.get("metrics") or []:
                text = metric.get("text") or "missing"
                lines.append(f"- **{html.escape(text, quote=False)}** — `{metric['name']}` "
                             f"({_link(metric['notebook'] + '.html', metric['notebook'])})")
            lines += _claim_items(record["claims"], cells)
            if record.get("citations"):
                lines.append("- Cited (not evidence): " + html.escape("; ".join(record["citations"]), quote=False))
            lines.append("")
            if record.get("figure"):
                lines += [f"![{record['figure']}]({record['figure']})", ""]
    return "\n".join(lines)


def _git(reports: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(reports), *args], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


def _commit_of(path: Path) -> str:
    """The last commit of `path` (short hash and date), or a sentence saying it is not committed."""
    real = path.resolve()
    found = _git(real.parent, "log", "-1", "--format=%h (%cs)", "--", real.name)
    return found or "not committed"


def _claims_page(reports: Path, results: dict[str, dict[str, Any]], cells: _Cells) -> str:
    head = _git(REPO_ROOT, "rev-parse", "--short", "HEAD")
    total = sum(len(r.get("claims", {})) for r in results.values())
    lines = ["# Claims index", "",
             f"{total} claims recorded by {len(results)} notebooks. Each links to the cell that recorded it; each "
             "notebook's section gives the parameters it ran with, the library versions and the git commit of its "
             "results file." + (f" Site built at commit `{head}`." if head else ""), ""]
    for stem, result in results.items():
        notebook = reports / f"{stem}.ipynb"
        title = _notebook_title(notebook) if notebook.exists() else stem
        claims = result.get("claims", {})
        holding = sum(bool(c.get("holds")) for c in claims.values())
        papermill = json.loads(notebook.read_text(encoding="utf-8")).get("metadata", {}).get("papermill", {}) \
            if notebook.exists() else {}
        parameters = json.dumps(result.get("parameters", {}), ensure_ascii=False)
        versions = ", ".join(f"{name} {version}" for name, version in result.get("versions", {}).items())
        lines += [f"## {html.escape(title, quote=False)} {{ #{stem} }}", "",
                  f"- **claims**: {holding} of {len(claims)} hold — page: {_link(stem + '.html', stem)}",
                  f"- **parameters**: `{parameters}`",
                  f"- **library versions**: {versions or 'not recorded'}",
                  f"- **git commit** of `results/{stem}.json`: `{_commit_of(reports / 'results' / f'{stem}.json')}`",
                  f"- **executed**: {papermill.get('end_time', 'unknown')[:19].replace('T', ' ')}", "",
                  '<table class="claims-table"><thead><tr><th></th><th>claim</th><th>statement</th><th>cell</th>'
                  "</tr></thead><tbody>"]
        for claim_id, claim in claims.items():
            mark = "✓" if claim.get("holds") else "✗"
            sanity = ' <span class="sanity">sanity check</span>' if claim.get("sanity") else ""
            cell_id, count = cells.cell(stem, claim_id)
            where = _link(cells.href(stem, claim_id), f"cell {count}" if count else "the notebook")
            lines.append(f'<tr id="{html.escape(stem)}--{html.escape(claim_id)}"><td>{mark}</td>'
                         f"<td><code>{html.escape(claim_id)}</code>{sanity}</td>"
                         f"<td>{html.escape(claim.get('statement', ''))}</td><td>{where}</td></tr>")
        lines += ["</tbody></table>", ""]
    return "\n".join(lines)


def _deck_page(has_pdf: bool) -> str:
    lines = ["# Lab-meeting deck", "",
             "The slides are generated from the findings records (`results/00_findings.json`), 16:9, with speaker "
             "notes on every slide.", "",
             '- <a href="slides/index.html">Open the slides</a> — arrow keys to move, <kbd>S</kbd> opens the '
             "speaker view with the notes, <kbd>F</kbd> full screen, <kbd>Esc</kbd> the overview."]
    if has_pdf:
        lines.append('- <a href="slides/deck.pdf">deck.pdf</a> — one page per slide, to send round or present from.')
    return "\n".join(lines) + "\n"


def _copy_without_widgets(source: Path, destination: Path) -> None:
    """Copy an executed notebook without its widget state (progress bars): rendering it would load the widget
    manager from a CDN; their text/plain form stays."""
    notebook = json.loads(source.read_text(encoding="utf-8"))
    notebook.get("metadata", {}).pop("widgets", None)
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            for mime in [m for m in output.get("data", {}) if m.startswith(WIDGET_MIME)]:
                del output["data"][mime]
    destination.write_text(json.dumps(notebook, ensure_ascii=False), encoding="utf-8")


def _nav(reports: Path, stems: list[str]) -> list[dict[str, Any]]:
    notebooks = [{_notebook_title(reports / f"{stem}.ipynb").replace("`", ""): f"{stem}.ipynb"} for stem in stems]
    return [{"Findings": "index.md"}, {"Evidence": "evidence.md"}, {"Claims index": "claims.md"},
            {"Deck": "deck.md"}, {"Notebooks": notebooks}]


def _write_docs(reports: Path, docs: Path, sentences: list[dict[str, Any]], deck: Path) -> list[dict[str, Any]]:
    """Generate the site's source pages into `docs` (emptied first); returns the nav."""
    if not (deck / "index.html").exists():
        raise FileNotFoundError(f"{deck / 'index.html'} does not exist: build the deck first (`make slides`)")
    results = load_all_results(reports / "results")
    cells = _Cells(reports, results)
    shutil.rmtree(docs, ignore_errors=True)
    docs.mkdir(parents=True)
    stems = [path.stem for path in sorted(reports.glob("[0-9]*.ipynb"))]
    for stem in stems:
        _copy_without_widgets(reports / f"{stem}.ipynb", docs / f"{stem}.ipynb")
    if (reports / "figures").exists():
        shutil.copytree(reports / "figures", docs / "figures")
    shutil.copytree(deck, docs / "slides")
    shutil.copytree(ASSETS_DIR, docs / "assets")
    # the home page (FINDINGS: the answers, then the verdict table) without the side bars: the table needs the
    # width; extra.css wraps its cells so that it reads at 1280 px without horizontal scrolling
    (docs / "index.md").write_text("---\nhide:\n  - navigation\n  - toc\n---\n\n" + _findings_page(reports, cells),
                                   encoding="utf-8")
    (docs / "evidence.md").write_text(_evidence_page(sentences, cells), encoding="utf-8")
    (docs / "claims.md").write_text(_claims_page(reports, results, cells), encoding="utf-8")
    (docs / "deck.md").write_text(_deck_page((deck / "deck.pdf").exists()), encoding="utf-8")
    return _nav(reports, stems)


def build_site(reports: Path, out_dir: Path, findings: Path | None = None, deck: Path | None = None,
               docs: Path = DOCS_DIR, config: Path = MKDOCS_YML) -> Path:
    """Write the site into `out_dir` (index.html there); raises if a page would load from another host."""
    sentences = load_sentences(findings or findings_path(reports))
    nav = _write_docs(reports, docs, sentences, deck or reports / "slides")
    os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    build(load_config(str(config), docs_dir=str(docs), site_dir=str(out_dir), nav=nav))
    remote = {str(page.relative_to(out_dir)): found for page in sorted(out_dir.rglob("*.html"))
              if (found := remote_references(page.read_text(encoding="utf-8")))}
    if remote:
        raise RuntimeError(f"site pages would load from other hosts: {dict(list(remote.items())[:3])}")
    return out_dir / "index.html"

