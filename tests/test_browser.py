"""The site and the deck in a real browser: Debian's /usr/bin/chromium driven by Playwright (no browser download).

Built once per module from the committed reports (plus the findings-records fixture while the committed
00_findings.json has no "sentences"), then opened from file:// and from a local http.server on 127.0.0.1: no
request to another host, no console error, every image decoded, search works, every slide fits 1280x720, the PDF
has one page per slide. Screenshots of the home page and the verdict slides go to build/screenshots/.
"""

import contextlib
import functools
import http.server
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

from utils.harness.paths import REPO_ROOT
from utils.reporting.browser import chromium_missing, open_browser

MISSING = chromium_missing()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"browser tests skipped: {MISSING}")
SCREENSHOTS = REPO_ROOT / "build" / "screenshots"
LOCAL_SCHEMES = {"file", "data", "blob", "about"}
READY = "() => window.Reveal && Reveal.isReady() && document.body.dataset.fitted === 'yes'"
IMAGES_DECODED = """async () => {
  const images = [...document.images];
  await Promise.all(images.map(image => image.decode().catch(() => null)));
  return images.filter(image => !(image.naturalWidth > 0)).map(image => image.src.slice(0, 120));
}"""
OVERFLOW = """() => {
  const slide = document.querySelector('.reveal .slides > section.present');
  const frame = slide.querySelector('.frame').getBoundingClientRect();
  const problems = [];
  if (frame.left < -1 || frame.top < -1 || frame.right > 1281 || frame.bottom > 721)
    problems.push(`frame ${JSON.stringify(frame)}`);
  for (const el of slide.querySelectorAll('.frame *')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    const name = `${el.tagName.toLowerCase()}.${el.className}`;
    if (r.left < frame.left - 1 || r.top < frame.top - 1 || r.right > frame.right + 1 || r.bottom > frame.bottom + 1)
      problems.push(`${name} extends past the slide: ${Math.round(r.right)}x${Math.round(r.bottom)}`);
    const style = getComputedStyle(el);
    const clipped = el.scrollHeight > el.clientHeight + 1 || el.scrollWidth > el.clientWidth + 1;
    if (style.overflow !== 'visible' && clipped)
      problems.push(`${name} clips its content: ${el.scrollWidth}x${el.scrollHeight}`
                    + ` in ${el.clientWidth}x${el.clientHeight}`);
  }
  const notes = slide.querySelector('aside.notes');
  if (!notes || !notes.textContent.trim()) problems.push('no speaker notes');
  return problems;
}"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def built(rendered_reports):
    """A report folder (committed reports + fixture records) with slides/ (and deck.pdf) and site/ built."""
    return rendered_reports


@pytest.fixture(scope="module")
def server(built):
    handler = functools.partial(_QuietHandler, directory=str(built))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    with open_browser((1280, 800)) as context:
        yield context


@pytest.fixture(params=["file", "http"])
def base(request, built):
    """The report folder's URL: file:///... or http://127.0.0.1:PORT."""
    return built.resolve().as_uri() if request.param == "file" else request.getfixturevalue("server")


class Visitor:
    """One browser page that records every request to another host and every console error."""

    def __init__(self, context):
        self.page = context.new_page()
        self.foreign, self.errors = [], []
        self.page.on("request", self._request)
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _request(self, request):
        url = urlparse(request.url)
        if url.scheme not in LOCAL_SCHEMES and url.hostname != "127.0.0.1":
            self.foreign.append(request.url)

    def goto(self, url: str):
        self.page.goto(url, wait_until="load")
        return self.page

    def close(self):
        self.page.close()


@contextlib.contextmanager
def visitor(context):
    visit = Visitor(context)
    try:
        yield visit
    finally:
        visit.close()


def site_pages(site: Path) -> list[str]:
    # 404.html is what a server would send for a missing page; the site never links to it
    return sorted(str(p.relative_to(site)) for p in site.glob("*.html") if p.name != "404.html")


def test_every_site_page_loads_offline(built, base, browser):
    pages = site_pages(built / "site")
    assert {"index.html", "evidence.html", "claims.html", "deck.html", "02_causal_mask.html"} <= set(pages)
    problems = {}
    with visitor(browser) as visit:
        for name in pages:
            page = visit.goto(f"{base}/site/{name}")
            undecoded = page.evaluate(IMAGES_DECODED)
            if visit.foreign or visit.errors or undecoded:
                problems[name] = {"foreign": visit.foreign[:3], "errors": visit.errors[:3], "images": undecoded}
            visit.foreign.clear(), visit.errors.clear()
    assert problems == {}


def test_notebook_pages_show_their_figures(built, base, browser):
    with visitor(browser) as visit:
        page = visit.goto(f"{base}/site/04_tinfer_training.html")
        sizes = page.evaluate("() => [...document.querySelectorAll('.jp-OutputArea img')].map(i => i.naturalWidth)")
    assert len(sizes) >= 4 and min(sizes) > 0


def search(page, query: str) -> list[str]:
    """Type `query` into the site's search box as a person would; every result link (scrolled to the end)."""
    page.click("label.md-search__icon, .md-search__input")
    page.wait_for_function("() => !/Initializing/.test(document.querySelector('.md-search-result__meta').textContent)",
                           timeout=30_000)
    page.locator("input.md-search__input").press_sequentially(query, delay=20)
    page.wait_for_selector(".md-search-result__item", timeout=30_000)
    counts = [-1]  # material lists results in batches as the list scrolls: scroll until three looks agree
    while len(counts) < 3 or len(set(counts[-3:])) > 1:
        page.eval_on_selector(".md-search__scrollwrap", "wrap => wrap.scrollTo(0, wrap.scrollHeight)")
        page.wait_for_timeout(500)
        counts.append(page.locator(".md-search-result__item").count())
    return page.eval_on_selector_all(".md-search-result__item a", "links => links.map(a => a.href)")


def test_search_for_a_question_finds_the_findings_page(built, base, browser):
    """Search works offline and reaches the answers on the home page (a question's words are its headings there;
    "causal mask" alone now ranks notebook 02's page, whose title it is, so far above that material lists no other)."""
    with visitor(browser) as visit:
        links = search(visit.goto(f"{base}/site/claims.html"), "what T5 does")
        assert visit.foreign == [] and visit.errors == []
    assert any(urlparse(link).path.endswith("/site/index.html") for link in links), links


def test_a_verdict_claim_opens_the_cell_that_recorded_it(built, base, browser):
    with visitor(browser) as visit:
        page = visit.goto(f"{base}/site/evidence.html")
        link = page.locator("a[href*='02_causal_mask.html#cell-id=']").first
        target = link.get_attribute("href").split("#", 1)[1]
        link.click()
        page.wait_for_url(f"**/02_causal_mask.html#{target}")
        text = page.evaluate("id => document.getElementById(id).textContent", target)
    assert "HOLDS" in text, f"#{target} is not the cell that printed the claim"


def test_every_slide_fits_1280x720_with_notes(built, base, browser):
    with visitor(browser) as visit:
        page = visit.page
        page.set_viewport_size({"width": 1280, "height": 720})
        visit.goto(f"{base}/slides/index.html")
        page.wait_for_function(READY)
        count = page.evaluate("() => Reveal.getTotalSlides()")
        problems = {}
        for index in range(count):
            page.evaluate(f"() => Reveal.slide({index})")
            found = page.evaluate(OVERFLOW) + [f"image not decoded: {src}" for src in page.evaluate(IMAGES_DECODED)]
            if found:
                problems[index + 1] = found
        assert visit.foreign == [] and visit.errors == []
    assert count >= 12 and problems == {}


def test_pdf_has_one_page_per_slide(built):
    from pypdf import PdfReader

    reader = PdfReader(built / "slides" / "deck.pdf")
    slides = (built / "slides" / "index.html").read_text(encoding="utf-8").count("<section ")
    assert len(reader.pages) == slides
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (960, 540)  # 1280x720 px at 96 dpi


def test_screenshots_for_a_person(built, browser):
    from utils.reporting.render import _take_screenshots

    paths = _take_screenshots(built / "site", built / "slides", SCREENSHOTS, context=browser)
    names = [path.name for path in paths]
    assert names[0] == "site_home.png" and sum(name.startswith("slide_") for name in names) >= 6
    assert all(path.stat().st_size > 10_000 for path in paths)
