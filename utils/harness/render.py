"""Render what `make run` publishes beyond the executed notebooks: the slide deck and reports/index.html.

    python -m utils.render slides [--out DIR]   # reveal.js deck of the executed findings notebook
    python -m utils.render index [--out DIR]    # one line per notebook, linking its HTML

The deck must open with no network: reveal.js comes from the npm registry at build time (never
committed) and is copied next to the deck; the template loads nothing else.
"""

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbconvert import SlidesExporter

from utils.harness.paths import REPO_ROOT, reports_dir

REVEAL_VERSION = "4.6.0"
NPM_PREFIX = REPO_ROOT / "build" / "npm"
TEMPLATES_DIR = Path(__file__).parent / "templates"
FINDINGS = "00_findings"
REMOTE = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//[^"'\s>]*""",
                    re.I)


def remote_references(page: str) -> list[str]:
    """Every tag of `page` that would load a script, style, image or frame from the network (up to its URL)."""
    return [match.group(0) for match in REMOTE.finditer(page)]


def install_reveal(prefix: Path = NPM_PREFIX) -> Path:
    """`npm install reveal.js@REVEAL_VERSION` into build/npm (once); returns the package folder."""
    package = prefix / "node_modules" / "reveal.js"
    if (package / "dist" / "reveal.js").exists():
        return package
    if shutil.which("npm") is None:
        raise RuntimeError("building the slides needs npm (Node.js) to install reveal.js from the npm registry")
    prefix.mkdir(parents=True, exist_ok=True)
    subprocess.run(["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--silent",
                    f"reveal.js@{REVEAL_VERSION}"], check=True)
    return package


def build_slides(executed_notebook: Path, out_dir: Path, reveal_package: Path | None = None) -> Path:
    """Write `out_dir/index.html` and `out_dir/reveal.js/` (dist and notes plugin only)."""
    if not executed_notebook.exists():
        raise FileNotFoundError(f"{executed_notebook} does not exist: run `python -m utils.run {FINDINGS}` first")
    reveal_package = reveal_package or install_reveal()
    out_dir.mkdir(parents=True, exist_ok=True)
    reveal_copy = out_dir / "reveal.js"
    shutil.rmtree(reveal_copy, ignore_errors=True)
    shutil.copytree(reveal_package / "dist", reveal_copy / "dist")
    shutil.copytree(reveal_package / "plugin" / "notes", reveal_copy / "plugin" / "notes")
    exporter = SlidesExporter(template_name="tinfer_reveal", extra_template_basedirs=[str(TEMPLATES_DIR)],
                              reveal_url_prefix="reveal.js", exclude_input=True, exclude_input_prompt=True,
                              exclude_output_prompt=True, embed_images=True)
    page, _ = exporter.from_notebook_node(nbformat.read(executed_notebook, as_version=4))
    remote = remote_references(page)
    if remote:
        raise RuntimeError(f"the deck would load from the network: {remote[:3]}")
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def notebook_title(notebook_path: Path) -> str:
    """The first markdown heading of a notebook, without the leading #'s."""
    notebook = json.loads(notebook_path.read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "markdown" and source.lstrip().startswith("#"):
            return source.strip().splitlines()[0].lstrip("# ").strip()
    return notebook_path.stem


def claims_summary(results_path: Path) -> str:
    if not results_path.exists():
        return "no results"
    claims = json.loads(results_path.read_text(encoding="utf-8"))["claims"]
    return f"{sum(c['holds'] for c in claims.values())}/{len(claims)} claims hold"


def build_index(out_dir: Path) -> Path:
    """reports/index.html: one line per executed notebook, plus the findings, slides and timings."""
    lines = []
    for executed in sorted(out_dir.glob("[0-9]*.ipynb")):
        stem = executed.stem
        link = f"html/{stem}.html" if (out_dir / "html" / f"{stem}.html").exists() else f"{stem}.ipynb"
        summary = claims_summary(out_dir / "results" / f"{stem}.json")
        lines.append(f'<li><a href="{link}">{html.escape(notebook_title(executed))}</a> — {summary}</li>')
    extras = [(name, target) for name, target in (("Findings (Markdown)", "FINDINGS.md"),
                                                   ("Lab-meeting slides", "slides/index.html"),
                                                   ("Wall time per notebook", "timings.json"),
                                                   ("Benchmarks", "bench.json"))
              if (out_dir / target).exists()]
    lines += [f'<li><a href="{target}">{name}</a></li>' for name, target in extras]
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>tinfer notebooks</title>"
            "</head>\n<body>\n<h1>Teacher forcing, causal masks and decoding: the notebooks</h1>\n<ul>\n"
            + "\n".join(lines) + "\n</ul>\n</body></html>\n")
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.render", description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("slides", "index"))
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: reports/)")
    args = parser.parse_args(argv)
    out_dir = args.out or reports_dir()
    if args.what == "slides":
        path = build_slides(out_dir / f"{FINDINGS}.ipynb", out_dir / "slides")
    else:
        path = build_index(out_dir)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
