import json

import pytest

from utils.harness.parameters import (
    Between,
    OneOf,
    Parameter,
    at_least,
    check_choice,
    check_range,
    check_type,
    coerce,
    load_parameters,
    read_parameters,
    validate_overrides,
)


def write_notebook(path, parameters_source, tagged=True):
    cell = {"cell_type": "code", "metadata": {"tags": ["parameters"] if tagged else []}, "source": parameters_source,
            "outputs": [], "execution_count": None}
    path.write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 4}))
    return path


@pytest.fixture
def notebook(tmp_path):
    return write_notebook(tmp_path / "07_example.ipynb", (
        'family: str = "t5"  # t5 or marian\n'
        "n_steps: int = 400  # training steps\n"
        "lr: float = 1e-3  # learning rate\n"
        "causal: bool = True  # decoder mask\n"
        'families: list[str] = ["t5", "marian"]  # several\n'
        "path: str | None = None  # optional\n"
    ))


def test_read_parameters_types_defaults_and_comments(notebook):
    declared = read_parameters(notebook)
    assert list(declared) == ["family", "n_steps", "lr", "causal", "families", "path"]
    assert declared["n_steps"] == Parameter("n_steps", "int", 400, "training steps")
    assert declared["families"].default == ["t5", "marian"]
    assert declared["path"].type == "str | None" and declared["path"].default is None


def test_untagged_first_cell_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not tagged 'parameters'"):
        read_parameters(write_notebook(tmp_path / "x.ipynb", "a: int = 1  # a", tagged=False))


def test_non_literal_line_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not `name: type = literal`"):
        read_parameters(write_notebook(tmp_path / "x.ipynb", "a = 1\n"))


def test_unsupported_type_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unsupported type"):
        read_parameters(write_notebook(tmp_path / "x.ipynb", "a: dict = {}  # no\n"))


def test_unknown_override_lists_allowed_names(notebook):
    with pytest.raises(KeyError, match="unknown parameter 'n_step'.*allowed: family, n_steps, lr"):
        validate_overrides(notebook, {"n_step": "3"})


def test_overrides_are_coerced_to_declared_types(notebook):
    checked = validate_overrides(notebook, {"n_steps": "20", "lr": "0.5", "causal": "false",
                                            "families": "t5,bart", "path": "None", "family": "bart"})
    assert checked == {"n_steps": 20, "lr": 0.5, "causal": False, "families": ["t5", "bart"], "path": None,
                       "family": "bart"}
    assert validate_overrides(notebook, {"families": '["a"]'}) == {"families": ["a"]}


@pytest.mark.parametrize("name,text", [("n_steps", "abc"), ("lr", "fast"), ("causal", "maybe"), ("n_steps", "2.5")])
def test_wrong_type_names_parameter_and_type(notebook, name, text):
    declared = read_parameters(notebook)[name]
    with pytest.raises(TypeError, match=f"parameter '{name}' must be of type {declared.type}"):
        coerce(declared, text)


def test_check_type_accepts_int_for_float_and_rejects_bool_for_int():
    assert check_type(Parameter("lr", "float", 1.0, ""), 2) == 2.0
    with pytest.raises(TypeError):
        check_type(Parameter("n", "int", 1, ""), True)
    with pytest.raises(TypeError):
        check_type(Parameter("xs", "list[int]", [], ""), [1, "2"])


def test_load_parameters_reads_globals_and_checks_types(notebook):
    namespace = {"family": "t5", "n_steps": 3, "lr": 1, "causal": True, "families": ["t5"], "path": None}
    assert load_parameters(str(notebook), namespace)["lr"] == 1.0
    namespace["n_steps"] = "3"  # what `papermill -p n_steps` with a quoted value would inject
    with pytest.raises(TypeError, match="parameter 'n_steps' must be of type int"):
        load_parameters(str(notebook), namespace)
    del namespace["n_steps"]
    with pytest.raises(NameError, match="n_steps"):
        load_parameters(str(notebook), namespace)


def test_load_parameters_applies_the_declared_rules_once(notebook):
    namespace = {"family": "t5", "n_steps": 3, "lr": 1e-3, "causal": True, "families": ["t5"], "path": None}
    rules = {"family": OneOf(("t5", "marian")), "n_steps": at_least(1), "lr": Between(1e-6, 1.0),
             "families": OneOf(("t5", "marian")), "path": OneOf(("a",))}  # None skips the rule
    assert load_parameters(str(notebook), namespace, rules)["n_steps"] == 3
    for name, bad, message in (("family", "gpt", "parameter 'family' got 'gpt'; allowed: t5, marian"),
                               ("n_steps", 0, r"parameter 'n_steps' must be in \[1, inf\], got 0"),
                               ("lr", 2.0, r"parameter 'lr' must be in \[1e-06, 1.0\], got 2.0"),
                               ("families", ["t5", "bart"], "parameter 'families' got 'bart'")):
        with pytest.raises(ValueError, match=message):
            load_parameters(str(notebook), {**namespace, name: bad}, rules)
    with pytest.raises(KeyError, match="'n_step', which is not a parameter"):
        load_parameters(str(notebook), namespace, {"n_step": at_least(1)})


def test_check_choice_and_range_messages():
    check_choice("family", "t5", ("t5", "marian"))
    with pytest.raises(ValueError, match="parameter 'family' got 'gpt'; allowed: t5, marian"):
        check_choice("family", "gpt", ("t5", "marian"))
    with pytest.raises(ValueError, match="parameter 'families' got 'x'"):
        check_choice("families", ["t5", "x"], ("t5",))
    with pytest.raises(ValueError, match="must not be empty"):
        check_choice("families", [], ("t5",))
    check_range("n", 3, 1, 3)
    with pytest.raises(ValueError, match=r"parameter 'n' must be in \[1, inf\], got 0"):
        check_range("n", 0, 1)
