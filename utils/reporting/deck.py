"""The lab-meeting deck, generated from the findings records (not exported from a notebook).

    title and the three questions · the three answers (verdict line and deciding number) · one slide per verdict
    row · real data with its figure · pitfalls · HF's defaults · devices · audit · scope and limits · how to rerun —
    speaker notes on every slide, 1280x720, and deck.pdf printed by Chromium. No slide body holds more than
    `BODY_WORDS` words: what does not fit (the details of an answer, the rest of a sentence) is in the notes.

reveal.js 5.2.0 comes from its own package on the npm registry: the tarball is fetched once into build/vendor/
(its sha512 checked against the registry's pinned integrity) and the needed files are copied next to the deck, so
the deck loads nothing from any other host when it is viewed. Building it needs no npm client, only the registry.
"""

import base64
import hashlib
import html
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup

from utils.harness.paths import REPO_ROOT
from utils.harness.results import load_all_results
from utils.reporting.sentences import FINDINGS, by_section, findings_path, load_sentences

REVEAL_VERSION = "5.2.0"
REVEAL_TARBALL = f"reveal.js-{REVEAL_VERSION}.tgz"
# the registry's `dist.integrity` of reveal.js 5.2.0 (https://registry.npmjs.org/reveal.js/5.2.0)
REVEAL_INTEGRITY = "sha512-TWd9VVYZZW/MGlm5arVPbN5ne49GXrTpil8KFOBOOfHWS4GjSCpSaHfj3iB+Rh0rJTQGbkrQr66l6R3bnElXBw=="
NPM_REGISTRY = "https://registry.npmjs.org"
REVEAL_FILES = ("LICENSE", "dist/reveal.js", "dist/reveal.css", "dist/reset.css", "plugin/notes/notes.js")
VENDOR_DIR = REPO_ROOT / "build" / "vendor"
TEMPLATES_DIR = Path(__file__).parent / "templates" / "deck"
DECK_TITLE = "Is “tinfer” training what T5 and the original Transformer do?"
MAX_CLAIMS_SHOWN = 7
ITEMS_PER_SLIDE = 2
BODY_WORDS = 60  # the most words a slide shows; the rest goes to the speaker notes

__all__ = ["BODY_WORDS", "build_deck"]


def _reveal_tarball(vendor: Path) -> Path:
    """The pinned reveal.js tarball from the npm registry, in `vendor/` (downloaded once, sha512 checked)."""
    tarball = vendor / REVEAL_TARBALL
    if not tarball.exists():
        registry = os.environ.get("NPM_CONFIG_REGISTRY", NPM_REGISTRY).rstrip("/")
        url = f"{registry}/reveal.js/-/{REVEAL_TARBALL}"
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                payload = response.read()
        except OSError as error:
            raise RuntimeError(f"could not download reveal.js {REVEAL_VERSION} from the npm registry ({url}): "
                               f"{error}") from error
        vendor.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".part")
        partial.write_bytes(payload)
        partial.replace(tarball)
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    if integrity != REVEAL_INTEGRITY:
        raise RuntimeError(f"{tarball} has integrity {integrity}, the npm registry lists {REVEAL_INTEGRITY} "
                           f"for reveal.js {REVEAL_VERSION}: delete the file to download it again")
    return tarball


def _install_reveal(vendor: Path = VENDOR_DIR) -> Path:
    """reveal.js's files from the pinned npm tarball, in `vendor/reveal.js-<version>/` (downloaded once)."""
    target = vendor / f"reveal.js-{REVEAL_VERSION}"
    if all((target / name).exists() for name in REVEAL_FILES):
        return target
    with tarfile.open(_reveal_tarball(vendor), "r:gz") as archive:
        version = json.loads(archive.extractfile("package/package.json").read())["version"]
        if version != REVEAL_VERSION:
            raise RuntimeError(f"{REVEAL_TARBALL} holds reveal.js {version}, not {REVEAL_VERSION}")
        for name in REVEAL_FILES:
            destination = target / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(archive.extractfile(f"package/{name}").read())
    return target


_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")


def _inline_markdown(text: str) -> Markup:
    """`code` and **bold** of a findings sentence as HTML (everything else escaped)."""
    parts = _CODE.split(text or "")
    out = []
    for index, part in enumerate(parts):
        if index % 2:
            out.append(f"<code>{html.escape(part)}</code>")
        else:
            out.append(_BOLD.sub(r"<strong>\1</strong>", html.escape(part)))
    return Markup("".join(out))


_SENTENCE_END = re.compile(r"(?<=[.;:])\s+(?=[A-Z`(])")


def _word_count(text: str) -> int:
    """Words a reader sees in `text` (HTML tags and markup left out)."""
    return len(re.sub(r"<[^>]+>", " ", str(text or "")).replace("`", "").split())


def _fit_words(text: str, limit: int) -> tuple[str, str]:
    """(shown, rest): the leading sentences of `text` that fit in `limit` words (a first sentence longer than that is
    cut, with an ellipsis), and what is left for the notes."""
    sentences = [part for part in _SENTENCE_END.split(text or "") if part]
    shown: list[str] = []
    for sentence in sentences:
        if _word_count(" ".join([*shown, sentence])) > limit:
            break
        shown.append(sentence)
    if not shown and sentences:
        words = sentences[0].split()
        cut = " ".join(words[:max(limit - 1, 1)])
        if cut.count("`") % 2:  # never leave a code span open
            cut = cut.rsplit("`", 1)[0].rstrip()
        return cut + " …", text
    return " ".join(shown), " ".join(sentences[len(shown):])


def _label(claim: dict[str, Any]) -> str:
    return f"{claim['notebook'].split('_')[0]}:{claim['id']}"


def _status(claim: dict[str, Any]) -> str:
    return claim.get("status") or ("holds" if claim.get("holds") else "does not hold")


def _claims_view(claims: list[dict[str, Any]], budget: int = MAX_CLAIMS_SHOWN) -> dict[str, Any]:
    """At most `budget` claim labels (failing ones first), the count of the rest, and how many do not hold."""
    ordered = sorted(claims, key=lambda c: bool(c.get("holds")))
    shown = [{"label": _label(c), "holds": bool(c.get("holds")), "status": _status(c)}
             for c in ordered[:max(0, min(budget, MAX_CLAIMS_SHOWN))]]
    return {"shown": shown, "more": len(claims) - len(shown), "total": len(claims),
            "failing": sum(not c.get("holds") for c in claims)}


def _claims_words(view: dict[str, Any]) -> int:
    """Words the claim list shows: its heading, one per label (and a status), the "+ n more (notes)" line."""
    return 2 + sum(1 + (0 if c["holds"] else _word_count(c["status"])) for c in view["shown"]) + 4


_NUMBER = re.compile(r"^\s*([-+−]?[\d.,]+\s*[%x×]?)\s*(.*)$")
_VERDICT_WORD = re.compile(r"^([A-Z]{3,}(?: [A-Z]{3,})*)(?=[\s:;,])")


def _metric_view(metric: dict[str, Any]) -> dict[str, Any] | None:
    """The number (big) and the rest of the metric's text (its interval, its spread), and what it measures."""
    text = metric.get("text")
    if text is None and metric.get("value") is None:
        return None
    text = text if text is not None else str(metric["value"])
    interval = metric.get("interval")
    if interval and not any(str(bound) in text for bound in interval):
        text += f" [{interval[0]}, {interval[1]}]"
    match = _NUMBER.match(text)
    number, rest = (match.group(1).strip(), match.group(2)) if match else (text, "")
    name = metric["name"].replace("_", " ")
    return {"number": number, "rest": rest, "label": f"{name} · {metric['notebook'].split('_')[0]}"}


def _headline(text: str) -> Markup:
    """The verdict sentence with its leading verdict word (SAME, DIFFERS, ...) marked for colour."""
    match = _VERDICT_WORD.match(text)
    if not match:
        return _inline_markdown(text)
    word = match.group(1)
    tone = {"SAME": "same", "DIFFERS": "differs"}.get(word.split()[0], "other")
    return Markup(f'<span class="verdict-word {tone}">{html.escape(word)}</span>') + _inline_markdown(text[len(word):])


def _aspect(png: Path) -> float:
    """Width / height of a PNG, read from its header (1.0 when it is not a PNG)."""
    header = png.read_bytes()[:24]
    if header[:8] != b"\x89PNG\r\n\x1a\n":
        return 1.0
    width, height = struct.unpack(">II", header[16:24])
    return width / height


def _notes(*parts: str) -> str:
    return "\n\n".join(part.strip() for part in parts if part and part.strip())


def _claim_notes(claims: list[dict[str, Any]]) -> str:
    return "\n".join(f"{'✓' if c.get('holds') else '✗'} {_label(c)}: {c.get('statement') or _status(c)}"
                     for c in claims)


def _verdict_slide(record: dict[str, Any], kicker: str, reports: Path, kind: str = "verdict") -> dict[str, Any]:
    """A sentence with its numbers, figure and claims, in at most BODY_WORDS words (the rest in the notes)."""
    cells = record.get("cells") or {}
    figure = record.get("figure")
    if figure and not (reports / figure).exists():
        print(f"warning: {record['id']}: figure {figure} not found under {reports}", file=sys.stderr)
        figure = None
    headline, rest = _fit_words(record["text"], BODY_WORDS // 2)
    used = _word_count(kicker) + _word_count(headline)
    metrics = []
    quoted = sorted(record.get("metrics") or [], key=lambda m: m.get("interval") is None)  # measured numbers first
    for view in (view for view in map(_metric_view, quoted) if view):
        words = _word_count(" ".join(view.values()))
        if len(metrics) == 2 or used + words > BODY_WORDS - 6:
            break
        metrics.append(view)
        used += words
    claims = _claims_view(record["claims"], budget=BODY_WORDS - used - 6)
    wide = bool(figure) and _aspect(reports / figure) >= 1.7
    return {"kind": kind, "id": record["id"], "kicker": kicker,
            "headline": _headline(headline), "verdict_cell": cells.get("verdict", ""),
            "established": record["established"], "metrics": metrics, "figure": figure, "wide": wide,
            "claims": claims, "citations": record.get("citations") or [],
            "words": used + _claims_words(claims),
            "notes": _notes(record.get("notes", ""), f"The sentence: {record['text']}" if rest else "",
                            "Backing claims:\n" + _claim_notes(record["claims"]),
                            "Cited, not evidence: " + "; ".join(record.get("citations") or []))}


def _chunks(records: list[dict[str, Any]], size: int = ITEMS_PER_SLIDE) -> list[list[dict[str, Any]]]:
    return [records[start:start + size] for start in range(0, len(records), size)]


def _list_slides(records: list[dict[str, Any]], heading: str, kind: str) -> list[dict[str, Any]]:
    """ITEMS_PER_SLIDE sentences a slide, each cut to its share of BODY_WORDS; the whole sentences in the notes."""
    chunks = _chunks(records)
    slides = []
    for number, chunk in enumerate(chunks, 1):
        title = heading if len(chunks) == 1 else f"{heading} ({number}/{len(chunks)})"
        share = (BODY_WORDS - _word_count(title)) // len(chunk)
        items = []
        for r in chunk:
            text, _ = _fit_words(r["text"], share - _word_count(r["title"]))
            items.append({"title": r["title"], "text": text, "established": r["established"],
                          "claims": _claims_view(r["claims"])})
        notes = _notes(*[f"{r['title']}: {r['text']}" + (f" ({r['notes']})" if r.get("notes") else "")
                         for r in chunk],
                       "Backing claims:\n" + _claim_notes([c for r in chunk for c in r["claims"]]))
        slides.append({"kind": kind, "id": f"{kind}.{number}", "title": title, "entries": items, "notes": notes,
                       "words": _word_count(title) + sum(_word_count(i["title"]) + _word_count(i["text"])
                                                        for i in items)})
    return slides


def _answer_slides(answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One slide per question: the verdict line with the number that decides it; the details in the notes."""
    questions = list(dict.fromkeys(a["title"] for a in answers))  # an answer is several sentences
    slides = []
    for index, question in enumerate(questions, 1):
        group = [a for a in answers if a["title"] == question]
        kicker = f"Answer {index} of {len(questions)}"
        verdict, rest = _fit_words(group[0]["text"], BODY_WORDS - _word_count(kicker) - _word_count(question) - 8)
        claims = list({(c["notebook"], c["id"]): c for a in group for c in a["claims"]}.values())
        view = _claims_view(claims, budget=0)
        details = " ".join([rest, *(a["text"] for a in group[1:])]).strip()
        slides.append({"kind": "answer", "id": group[0]["id"].rsplit(".", 1)[0], "kicker": kicker, "title": question,
                       "text": verdict, "established": all(a["established"] for a in group), "claims": view,
                       "words": _word_count(kicker) + _word_count(question) + _word_count(verdict) + 8,
                       "notes": _notes(verdict, "Details: " + details if details else "",
                                       *[a.get("notes", "") for a in group],
                                       "Backing claims:\n" + _claim_notes(claims))})
    return slides


def _claim_counts(results: dict[str, dict[str, Any]]) -> tuple[int, int]:
    claims = [c for stem, r in results.items() if stem != FINDINGS for c in r.get("claims", {}).values()]
    return len(claims), sum(bool(c.get("holds")) for c in claims)


def _plan_slides(sentences: list[dict[str, Any]], results: dict[str, dict[str, Any]], reports: Path,
                provenance: str = "") -> list[dict[str, Any]]:
    """The slides, in order, as plain dicts the template renders (every one with speaker notes)."""
    answers = by_section(sentences, "answer")
    verdicts = by_section(sentences, "verdict")
    real_data = by_section(sentences, "real_data")
    n_claims, n_hold = _claim_counts(results)
    questions = list(dict.fromkeys(a["title"] for a in answers))  # an answer is several sentences
    slides = [{"kind": "title", "id": "title", "title": DECK_TITLE, "questions": questions,
               "subtitle": f"Lab meeting · {len(results) - (FINDINGS in results)} executed notebooks · "
                           f"{n_hold} of {n_claims} recorded claims hold",
               "provenance": provenance,
               "words": _word_count(DECK_TITLE) + sum(map(_word_count, questions)) + _word_count(provenance) + 12,
               "notes": _notes("A researcher trained an encoder-decoder by feeding the whole right-shifted target "
                               "in one pass, with padding masks only, no loop and no per-step loss masking, and "
                               "decoded greedily. Three questions: " + " ".join(questions),
                               "Every sentence and number on these slides is generated from reports/results/*.json "
                               "by the findings notebook; a sentence whose backing claim fails says so.")}]
    slides += _answer_slides(answers)  # answers first, then the evidence
    slides += [_verdict_slide(record, f"Verdict {index} of {len(verdicts)} · {record['title']}", reports)
               for index, record in enumerate(verdicts, 1)]
    with_figure = [r for r in real_data if r.get("figure")]  # real data: CMUdict (10) and real translation (14)
    slides += [_verdict_slide(record, record["title"] or "Real data", reports, kind="real_data")
               for record in with_figure]
    slides += _list_slides(by_section(sentences, "pitfall"), "Pitfalls", "pitfall")
    slides += _list_slides(by_section(sentences, "hf_defaults"), "HF's defaults, measured", "hf_defaults")
    slides += _list_slides(by_section(sentences, "data_parallel"), "More than one device", "data_parallel")
    slides += _list_slides(by_section(sentences, "audit"), "Audit your own model", "audit")
    slides += _list_slides([r for r in real_data if r not in with_figure], "Real data and a pretrained model",
                           "real_data_more")
    slides += _list_slides(by_section(sentences, "scope"), "Scope and limits", "scope")
    slides += _list_slides(by_section(sentences, "rerun"), "How to rerun", "rerun")
    return slides


def _provenance(reports: Path) -> str:
    """`reports at <commit> · findings run <date>` from git and the executed findings notebook, when known."""
    parts = []
    commit = subprocess.run(["git", "-C", str(reports), "log", "-1", "--format=%h", "--", "results"],
                            capture_output=True, text=True)
    if commit.returncode == 0 and commit.stdout.strip():
        parts.append(f"reports at commit {commit.stdout.strip()}")
    notebook = reports / f"{FINDINGS}.ipynb"
    if notebook.exists():
        end = json.loads(notebook.read_text(encoding="utf-8")).get("metadata", {}).get("papermill", {})
        if end.get("end_time"):
            parts.append(f"findings run {end['end_time'][:10]}")
    return " · ".join(parts)


def build_deck(reports: Path, out_dir: Path, findings: Path | None = None, reveal: Path | None = None,
               pdf: bool = True) -> Path:
    """Write `out_dir/index.html` (+ reveal.js/, figures/, and deck.pdf when `pdf`) from the findings records."""
    sentences = load_sentences(findings or findings_path(reports))
    results = load_all_results(reports / "results")
    slides = _plan_slides(sentences, results, reports, _provenance(reports))
    reveal = reveal or _install_reveal()
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out_dir / "reveal.js", ignore_errors=True)
    shutil.copytree(reveal, out_dir / "reveal.js")
    for name in ("deck.css", "deck.js"):
        shutil.copy2(TEMPLATES_DIR / name, out_dir / name)
    shutil.rmtree(out_dir / "figures", ignore_errors=True)
    for figure in {s["figure"] for s in slides if s.get("figure")}:
        (out_dir / figure).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(reports / figure, out_dir / figure)
    environment = Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=True, trim_blocks=True,
                              lstrip_blocks=True)
    environment.filters["md"] = _inline_markdown
    page = environment.get_template("index.html.j2").render(slides=slides, title=DECK_TITLE)
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    (out_dir / "deck.pdf").unlink(missing_ok=True)
    if pdf:
        from utils.reporting.browser import print_pdf

        print_pdf(path, out_dir / "deck.pdf")
    return path
