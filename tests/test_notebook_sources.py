"""Conventions every source notebook keeps: no outputs, a parseable `parameters` cell first, smoke entries, short
cells (CONTRIBUTING.md: median code cell at most 10 lines, setup cell under 25, no other cell over 30)."""

import json
import statistics

import pytest

from utils.harness.parameters import read_parameters
from utils.harness.paths import NOTEBOOKS_DIR

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))


def test_there_are_notebooks():
    assert any(p.stem.startswith("01_") for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_stored_outputs_and_parameters_cell_first(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    code_cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code_cells, f"{path.name} has no code cell"
    assert "parameters" in code_cells[0]["metadata"].get("tags", []), f"{path.name}: first code cell not tagged"
    for cell in code_cells:
        assert not cell.get("outputs") and cell.get("execution_count") is None, f"{path.name} stores outputs"
    assert "papermill" not in notebook["metadata"], f"{path.name} stores papermill metadata"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_are_documented_literals_with_a_seed(path):
    declared = read_parameters(path)
    undocumented = [name for name, parameter in declared.items() if not parameter.comment]
    assert not undocumented, f"{path.name}: parameters without a comment: {undocumented}"
    if not path.stem.startswith("00_"):
        assert "seed" in declared, f"{path.name}: no seed parameter"


def test_smoke_entries_name_declared_parameters():
    smoke = json.loads((NOTEBOOKS_DIR / "smoke.json").read_text(encoding="utf-8"))
    stems = {p.stem for p in NOTEBOOKS}
    for stem, overrides in smoke.items():
        assert stem in stems, f"smoke.json names a notebook that does not exist: {stem}"
        unknown = set(overrides) - set(read_parameters(NOTEBOOKS_DIR / f"{stem}.ipynb"))
        assert not unknown, f"smoke.json entry {stem} names undeclared parameters {unknown}"


MEDIAN_CELL_LINES = 10  # the median code cell of a notebook (every line counted, blank ones too)
SETUP_CELL_LINES = 24  # the setup cell (the first code cell after `parameters`): under 25 lines
LONGEST_CELL_LINES = 30  # any other code cell


def cell_lengths(path):
    """(lines of each code cell, whether it is the parameters cell), every line of the source counted."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    return [(len("".join(cell["source"]).rstrip("\n").split("\n")),
             "parameters" in cell["metadata"].get("tags", [])) for cell in cells]


def short_cell_problems(lengths):
    """What breaks the short-cells rule, as sentences (empty when it holds)."""
    problems = []
    median = statistics.median(n for n, _ in lengths)
    if median > MEDIAN_CELL_LINES:
        problems.append(f"median code cell {median} lines > {MEDIAN_CELL_LINES}")
    if len(lengths) > 1 and lengths[1][0] > SETUP_CELL_LINES:
        problems.append(f"setup cell {lengths[1][0]} lines > {SETUP_CELL_LINES}")
    long = [(i, n) for i, (n, is_parameters) in enumerate(lengths) if not is_parameters and n > LONGEST_CELL_LINES]
    problems += [f"code cell {i} has {n} lines > {LONGEST_CELL_LINES}" for i, n in long]
    return problems


def test_short_cell_rule_catches_long_cells():
    assert short_cell_problems([(24, True), (12, False), (5, False), (5, False)]) == []
    assert short_cell_problems([(3, True), (11, False), (12, False)])[0].startswith("median code cell 11")
    assert short_cell_problems([(3, True), (25, False), (4, False)]) == ["setup cell 25 lines > 24"]
    too_long = short_cell_problems([(40, True), (4, False), (4, False), (4, False), (31, False)])
    assert too_long == ["code cell 4 has 31 lines > 30"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_cells_are_short(path):
    assert short_cell_problems(cell_lengths(path)) == [], path.name
