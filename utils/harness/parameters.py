"""The `parameters` cell of a notebook: read it, coerce values to its types, validate them.

A parameters cell holds literals only, one per line, each with a type annotation and a comment:

    n_steps: int = 400  # training steps; smoke uses 20

The runner uses `read_parameters` to refuse unknown names and wrong types before any heavy work;
the notebook's setup cell calls `load_parameters` so that a plain `papermill -p` run is checked too.
"""

import ast
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.harness.paths import NOTEBOOKS_DIR

__all__ = [
    "Between", "OneOf", "Parameter", "at_least", "check_choice", "check_range", "check_type", "coerce",
    "load_parameters", "read_parameters", "resolve_notebook", "validate_overrides",
]

SUPPORTED_TYPES = ("int", "float", "str", "bool", "list[str]", "list[int]", "list[float]", "str | None")


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str  # one of SUPPORTED_TYPES
    default: Any
    comment: str


def resolve_notebook(notebook: str | Path) -> Path:
    """A path, a stem (`01_shift_right`) or a number prefix (`01`) -> the source notebook path.

    A prefix that several notebooks share resolves to the one it names up to an underscore (`04` is
    `04_tinfer_training`, not `04b_tinfer_sweep`); otherwise it is ambiguous.
    """
    path = Path(notebook)
    if path.suffix == ".ipynb" and path.exists():
        return path
    matches = sorted(NOTEBOOKS_DIR.glob(f"{path.stem}*.ipynb"))
    exact = [m for m in matches if m.stem == path.stem]
    if exact:
        return exact[0]
    if len(matches) == 1:
        return matches[0]
    numbered = [m for m in matches if m.stem.startswith(f"{path.stem}_")]  # "04" -> 04_*, not 04b_*
    if len(numbered) == 1:
        return numbered[0]
    available = ", ".join(p.stem for p in sorted(NOTEBOOKS_DIR.glob("*.ipynb")))
    if not matches:
        raise FileNotFoundError(f"no notebook matches {str(notebook)!r}; available: {available}")
    raise ValueError(f"{str(notebook)!r} matches several notebooks: {', '.join(m.stem for m in matches)}")


def _parameters_cell_source(notebook: str | Path) -> str:
    nb = json.loads(resolve_notebook(notebook).read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            if "parameters" not in cell.get("metadata", {}).get("tags", []):
                raise ValueError(f"{notebook}: the first code cell is not tagged 'parameters'")
            source = cell["source"]
            return "".join(source) if isinstance(source, list) else source
    raise ValueError(f"{notebook}: has no code cell")


def read_parameters(notebook: str | Path) -> dict[str, Parameter]:
    """Parse the parameters cell: `name: type = literal  # comment` per line."""
    source = _parameters_cell_source(notebook)
    lines = source.splitlines()
    parameters = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name) or node.value is None:
            raise ValueError(f"{notebook}: parameters cell line {node.lineno} is not `name: type = literal`")
        type_name = ast.unparse(node.annotation)
        if type_name not in SUPPORTED_TYPES:
            raise ValueError(f"{notebook}: parameter {node.target.id!r} has unsupported type {type_name!r}")
        line = lines[node.lineno - 1]
        comment = line.split("#", 1)[1].strip() if "#" in line else ""
        default = ast.literal_eval(node.value)
        parameters[node.target.id] = Parameter(node.target.id, type_name, default, comment)
    return parameters


def _type_error(name: str, type_name: str, value: Any) -> TypeError:
    return TypeError(f"parameter {name!r} must be of type {type_name}, got {value!r} ({type(value).__name__})")


def check_type(parameter: Parameter, value: Any) -> Any:
    """Return `value` if it fits the declared type (an int is accepted for a float); raise otherwise."""
    name, type_name = parameter.name, parameter.type
    if type_name == "bool":
        if not isinstance(value, bool):
            raise _type_error(name, type_name, value)
        return value
    if type_name == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(name, type_name, value)
        return value
    if type_name == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _type_error(name, type_name, value)
        return float(value)
    if type_name == "str":
        if not isinstance(value, str):
            raise _type_error(name, type_name, value)
        return value
    if type_name == "str | None":
        if value is not None and not isinstance(value, str):
            raise _type_error(name, type_name, value)
        return value
    item_type = {"list[str]": str, "list[int]": int, "list[float]": int | float}[type_name]
    if not isinstance(value, list | tuple) or any(isinstance(v, bool) or not isinstance(v, item_type) for v in value):
        raise _type_error(name, type_name, value)
    return [float(v) for v in value] if type_name == "list[float]" else list(value)


def coerce(parameter: Parameter, text: str) -> Any:
    """Turn a command-line string into the parameter's type (lists as JSON or comma-separated)."""
    type_name = parameter.type
    try:
        if type_name == "str":
            return text
        if type_name == "str | None":
            return None if text in ("None", "null", "") else text
        if type_name == "bool":
            lowered = text.lower()
            if lowered not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return lowered in ("true", "1")
        if type_name == "int":
            return int(text)
        if type_name == "float":
            return float(text)
        if text.startswith("["):
            value = json.loads(text)
        else:
            value = [item.strip() for item in text.split(",") if item.strip()]
            if type_name == "list[int]":
                value = [int(v) for v in value]
            elif type_name == "list[float]":
                value = [float(v) for v in value]
        return check_type(parameter, value)
    except (ValueError, TypeError, json.JSONDecodeError):
        raise TypeError(
            f"parameter {parameter.name!r} must be of type {type_name}, got {text!r}"
            + (" (a list: JSON like '[\"a\", \"b\"]' or comma-separated)" if type_name.startswith("list") else "")
        ) from None


def validate_overrides(notebook: str | Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """Refuse unknown names and wrong types; return the overrides with checked values."""
    declared = read_parameters(notebook)
    checked = {}
    for name, value in overrides.items():
        if name not in declared:
            raise KeyError(
                f"unknown parameter {name!r} for {resolve_notebook(notebook).stem}; "
                f"allowed: {', '.join(declared)}"
            )
        parameter = declared[name]
        checked[name] = coerce(parameter, value) if isinstance(value, str) and parameter.type != "str" else \
            check_type(parameter, value)
    return checked


@dataclass(frozen=True)
class OneOf:
    """The value (or every item of a list value) is one of `allowed`."""

    allowed: tuple

    def check(self, name: str, value: Any) -> None:
        check_choice(name, value, self.allowed)


@dataclass(frozen=True)
class Between:
    """`low <= value <= high` (either bound may be None); for a list value, every item."""

    low: float | None = None
    high: float | None = None

    def check(self, name: str, value: Any) -> None:
        for item in value if isinstance(value, list) else [value]:
            check_range(name, item, self.low, self.high)


def at_least(low: float) -> Between:
    return Between(low, None)


def load_parameters(notebook: str, namespace: dict[str, Any],
                    allowed: dict[str, OneOf | Between] | None = None) -> dict[str, Any]:
    """Collect the notebook's declared parameters from its globals, checking each value's type, then each rule
    of `allowed` (parameter name -> `OneOf(...)` or `Between(low, high)`), stated once in the setup cell.

    A wrong value raises ValueError naming the parameter and what is allowed, before any heavy work.
    """
    declared = read_parameters(notebook)
    values = {}
    for name, parameter in declared.items():
        if name not in namespace:
            raise NameError(f"parameter {name!r} is declared in the parameters cell but not defined")
        values[name] = check_type(parameter, namespace[name])
    for name, rule in (allowed or {}).items():
        if name not in values:
            raise KeyError(f"a rule names {name!r}, which is not a parameter of {notebook}; "
                           f"parameters: {', '.join(values)}")
        if values[name] is not None:
            rule.check(name, values[name])
    return values


def check_choice(name: str, value: Any, allowed: tuple | list | set) -> None:
    """`value` (or every item of a list value) must be one of `allowed`."""
    items = value if isinstance(value, list) else [value]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise ValueError(f"parameter {name!r} got {bad[0]!r}; allowed: {', '.join(map(str, allowed))}")
    if isinstance(value, list) and not value:
        raise ValueError(f"parameter {name!r} must not be empty; allowed items: {', '.join(map(str, allowed))}")


def check_range(name: str, value: float, low: float | None = None, high: float | None = None) -> None:
    """`low <= value <= high`, either bound optional."""
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise ValueError(f"parameter {name!r} must be in {bounds}, got {value!r}")
