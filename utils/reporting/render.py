"""Render what `make run` publishes beyond the executed notebooks: the deck, the report site and reports/index.html.

    python -m utils.render slides [--out DIR] [--no-pdf]   # reports/slides/: the deck (index.html) and deck.pdf
    python -m utils.render site [--out DIR]                 # reports/site/: the offline report site (needs the deck)
    python -m utils.render index [--out DIR]                # reports/index.html: a link to the site
    python -m utils.render screenshots                      # build/screenshots/: the site's home page, verdict slides

`--findings FILE` reads the findings records from FILE instead of results/00_findings.json (for example the test
fixture tests/fixtures/00_findings_sentences.json). Everything is read from the report folder; nothing is executed.
The deck and the site load nothing from another host when viewed (see utils/reporting/deck.py and site.py).
"""

import argparse
import contextlib
import sys
from pathlib import Path

from utils.harness.paths import REPO_ROOT, reports_dir

SCREENSHOTS_DIR = REPO_ROOT / "build" / "screenshots"

__all__ = ["build_index", "main"]


def build_index(out_dir: Path) -> Path:
    """reports/index.html: a link to the report site, whose home page lists the findings, the claims and every
    notebook (one source for that page: the site). Raises FileNotFoundError when the site is not built yet."""
    site = out_dir / "site" / "index.html"
    if not site.exists():
        raise FileNotFoundError(f"{site} does not exist: build the site first (`make site`)")
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>tinfer notebooks</title>\n"
            "<meta http-equiv=\"refresh\" content=\"0; url=site/index.html\"></head>\n"
            "<body><p>The report: <a href=\"site/index.html\">site/index.html</a> (findings, evidence, every claim, "
            "every notebook, the deck).</p></body></html>\n")
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def _take_screenshots(site: Path, deck: Path, out_dir: Path = SCREENSHOTS_DIR, context=None) -> list[Path]:
    """PNGs for a person to look at: the site's home page (1280x800) and every verdict slide (1280x720).
    `context`: a browser context to use (default: start Chromium for this)."""
    from utils.reporting.browser import open_browser, screenshot

    paths = []
    with contextlib.nullcontext(context) if context else open_browser((1280, 800)) as context:
        page = context.new_page()
        page.set_viewport_size({"width": 1280, "height": 800})
        page.goto((site / "index.html").resolve().as_uri())
        page.wait_for_load_state("load")
        paths.append(screenshot(page, out_dir / "site_home.png"))
        page.set_viewport_size({"width": 1280, "height": 720})
        page.goto((deck / "index.html").resolve().as_uri())
        page.wait_for_function("() => window.Reveal && Reveal.isReady() && document.body.dataset.fitted === 'yes'")
        ids = page.evaluate("() => [...document.querySelectorAll('.reveal .slides > section')]"
                            ".map(s => s.dataset.slide)")
        for index, slide_id in enumerate(ids):
            if slide_id.startswith("verdict."):
                page.evaluate(f"() => Reveal.slide({index})")
                paths.append(screenshot(page, out_dir / f"slide_{index + 1:02d}_{slide_id.replace('.', '_')}.png"))
        page.close()
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.render", description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("slides", "site", "index", "screenshots"))
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: reports/)")
    parser.add_argument("--findings", type=Path, default=None,
                        help="findings JSON with 'sentences' (default: <report folder>/results/00_findings.json)")
    parser.add_argument("--no-pdf", action="store_true", help="slides: do not print deck.pdf")
    args = parser.parse_args(argv)
    reports = args.out or reports_dir()
    try:
        if args.what == "slides":
            from utils.reporting.browser import chromium_missing
            from utils.reporting.deck import build_deck

            missing = None if args.no_pdf else chromium_missing()
            if missing:
                print(f"deck.pdf is not printed: {missing}", file=sys.stderr)
            path = build_deck(reports, reports / "slides", findings=args.findings, pdf=not (args.no_pdf or missing))
            if (reports / "slides" / "deck.pdf").exists():
                print(f"wrote {reports / 'slides' / 'deck.pdf'}")
        elif args.what == "site":
            from utils.reporting.site import build_site

            path = build_site(reports, reports / "site", findings=args.findings)
        elif args.what == "screenshots":
            paths = _take_screenshots(reports / "site", reports / "slides")
            path = paths[0].parent
        else:
            path = build_index(reports)
    except (FileNotFoundError, LookupError, ValueError, RuntimeError) as error:
        print(f"python -m utils.render {args.what}: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
