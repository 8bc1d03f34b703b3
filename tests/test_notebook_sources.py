"""Conventions every source notebook keeps: no outputs, a parseable `parameters` cell first, smoke entries."""

import json

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
