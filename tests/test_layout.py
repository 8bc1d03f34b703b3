"""The rooms of utils/ and the direction of imports between them, read from the source with ast.

    handwritten   the code under study: imports no other room
    harness       running notebooks: parameters, results, figures, the runner and publishing; imports no other room
    reporting     findings sentences, Markdown, the deck and the site: may import harness
    workbench     builds experiments: may import handwritten and harness
    experiments   per-notebook helpers: may import every room
Modules at the top of utils/ are commands only (`python -m utils.run`); nothing imports them.
"""

import ast
import json
import re
from pathlib import Path

import pytest

UTILS = Path(__file__).resolve().parents[1] / "utils"
ROOMS = ("handwritten", "workbench", "experiments", "harness", "reporting")
ALLOWED = {"handwritten": set(), "harness": set(), "reporting": {"harness"}, "workbench": {"handwritten", "harness"},
           "experiments": {"handwritten", "harness", "workbench", "reporting"}}


def utils_imports(source: str) -> set[str]:
    """Every `utils.<...>` module a source imports (absolute imports only: the package uses no relative ones)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names if alias.name.split(".")[0] == "utils"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise AssertionError("relative import: use utils.<room>.<module>")
            if node.module and node.module.split(".")[0] == "utils":
                names.add(node.module)
                names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def room_violations(modules: dict[str, str]) -> list[str]:
    """`modules`: module name (utils.room.name) -> source. What breaks the rules above."""
    problems = []
    for module, source in modules.items():
        parts = module.split(".")
        room = parts[1] if len(parts) > 2 else None
        for target in utils_imports(source):
            target_parts = target.split(".")
            if len(target_parts) < 2 or target_parts[1] not in ROOMS:
                if len(target_parts) >= 2 and f"utils.{target_parts[1]}" in modules:
                    problems.append(f"{module} imports the command module {target}")
                continue
            if room is not None and target_parts[1] != room and target_parts[1] not in ALLOWED[room]:
                problems.append(f"{module} ({room}) imports {target} ({target_parts[1]})")
    return problems


def module_cycles(modules: dict[str, str]) -> list[list[str]]:
    graph = {m: {t for t in utils_imports(s) if t in modules and t != m} for m, s in modules.items()}
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def package_modules() -> dict[str, str]:
    modules = {}
    for path in UTILS.rglob("*.py"):
        parts = path.relative_to(UTILS.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path.read_text(encoding="utf-8")
    return modules


def test_utils_has_exactly_the_rooms_one_level_deep():
    folders = sorted(p.name for p in UTILS.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert folders == sorted(ROOMS)
    for room in ROOMS:
        nested = [p for p in (UTILS / room).rglob("*.py") if p.parent != UTILS / room]
        assert not nested, f"deeper nesting in {room}: {nested}"


def test_imports_follow_the_room_rules_and_make_no_cycle():
    modules = package_modules()
    assert room_violations(modules) == []
    assert module_cycles(modules) == []


def test_top_level_modules_only_start_commands():
    for path in UTILS.glob("*.py"):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assert utils_imports(path.read_text(encoding="utf-8")) == set(), path
        assert "run_module" in path.read_text(encoding="utf-8"), f"{path.name} is not a command launcher"
        assert not [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)], path


@pytest.mark.parametrize("module, source, expected", [
    ("utils.handwritten.decoding", "from utils.workbench.models import build_model", "imports utils.workbench"),
    ("utils.harness.run", "import utils.reporting.findings", "imports utils.reporting"),
    ("utils.reporting.findings", "from utils.workbench.metrics import chrf", "imports utils.workbench"),
    ("utils.reporting.render", "from utils.experiments import findings", "imports utils.experiments"),
    ("utils.workbench.data", "from utils.run import main", "command module utils.run"),
])
def test_a_planted_bad_import_is_caught(module, source, expected):
    modules = package_modules()
    modules[module] = source
    assert any(expected in problem for problem in room_violations(modules))


def test_a_planted_cycle_is_caught():
    modules = {"utils.workbench.a": "from utils.workbench.b import x", "utils.workbench.b": "import utils.workbench.a"}
    assert module_cycles(modules) == [["utils.workbench.a", "utils.workbench.b", "utils.workbench.a"]]


def test_the_code_under_study_has_a_small_public_surface():
    for path in sorted((UTILS / "handwritten").glob("*.py")):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        declared = [n for n in tree.body if isinstance(n, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)]
        assert declared, f"{path.name} has no __all__"
        public = set(ast.literal_eval(declared[0].value))
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
        defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                    if isinstance(t, ast.Name) and t.id != "__all__"}
        assert public <= defined, f"{path.name}: __all__ names what it does not define: {public - defined}"
        undeclared = {name for name in defined - public if not name.startswith("_")}
        assert not undeclared, f"{path.name}: public names outside __all__ (prefix them with _): {sorted(undeclared)}"


MAX_PUBLIC_NAMES_UNDER_STUDY = 65  # issue 22: the code under study reads in one sitting


def handwritten_public_names() -> dict[str, list[str]]:
    """Module file name -> its __all__, for every module of utils/handwritten/."""
    names = {}
    for path in sorted((UTILS / "handwritten").glob("*.py")):
        if path.name != "__init__.py":
            declared = [n for n in ast.parse(path.read_text(encoding="utf-8")).body if isinstance(n, ast.Assign)
                        and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)]
            names[path.name] = list(ast.literal_eval(declared[0].value)) if declared else []
    return names


def test_the_code_under_study_has_at_most_65_public_names():
    names = handwritten_public_names()
    count = sum(len(v) for v in names.values())
    assert count <= MAX_PUBLIC_NAMES_UNDER_STUDY, f"{count} public names in handwritten/: {names}"
    assert all(len(set(v)) == len(v) for v in names.values()), "a name listed twice in one __all__"


RESHAPES = re.compile(r"\.(reshape|view|transpose|permute|unsqueeze|squeeze|flatten|expand)\(|(\[|, )None(,|\])")


def test_every_reshape_under_study_has_a_shape_comment():
    missing = [f"{path.name}:{number}" for path in sorted((UTILS / "handwritten").glob("*.py"))
               for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
               if RESHAPES.search(line.split("#")[0]) and "# (" not in line]
    assert missing == [], f"reshape lines without a shape comment such as `# (B, T, V)`: {missing}"


def test_the_module_map_lists_every_module_once():
    import utils

    listed = {}
    room = None
    for line in utils.__doc__.splitlines():
        if line.endswith("/") or (line and not line.startswith(" ") and "/" in line.split()[0]):
            room = line.split("/")[0].strip()
        elif line.startswith("    ") and room in ROOMS:
            listed.setdefault(room, []).append(line.split()[0])
    present = {r: sorted(p.stem for p in (UTILS / r).glob("*.py") if p.stem != "__init__") for r in ROOMS}
    assert {r: sorted(names) for r, names in listed.items()} == present


# ---------------------------------------------------------------- the public surface of utils/ (issue 22)

MAX_PUBLIC_NAMES_IN_UTILS = 450
# every module others import has __all__ (the exemptions of the restructuring are gone)
WITHOUT_ALL_YET: set[str] = set()


def public_names(source: str) -> set[str]:
    """Top-level functions, classes and variables of a module whose names do not start with `_`. ALL_CAPS
    constants (settings and tables: `SPLITS`, `REPO_ROOT`) are data, not surface, and are not counted."""
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name) and not t.id.isupper()}
    return {name for name in names if not name.startswith("_") and name != "__all__"}


def declared_all(source: str) -> list[str] | None:
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    return None


def notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))


def imported_modules(modules: dict[str, str], importers: dict[str, str]) -> set[str]:
    """The modules of `modules` that a source of `importers` (name -> source) other than the module itself
    imports (`from utils.room.module import x`, `import utils.room.module`, `from utils.room import module`)."""
    return {target for name, source in importers.items() for target in utils_imports(source)
            if target in modules and target != name and target.count(".") == 2}


def modules_without_all(modules: dict[str, str], imported: set[str]) -> list[str]:
    """Imported modules with no `__all__`, or whose `__all__` names something the module does not define."""
    problems = []
    for module in sorted(imported):
        listed = declared_all(modules[module])
        if listed is None:
            problems.append(f"{module} has no __all__")
            continue
        tree = ast.parse(modules[module])
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}
        targets = [t for n in tree.body if isinstance(n, ast.Assign) for t in n.targets]
        targets += [e for t in targets if isinstance(t, ast.Tuple) for e in t.elts]  # `A, B = ...`
        defined |= {t.id for t in targets if isinstance(t, ast.Name)}
        defined |= {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
        defined |= {(a.asname or a.name).split(".")[0] for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)
                    for a in n.names}
        if unknown := sorted(set(listed) - defined):
            problems.append(f"{module}: __all__ names what it does not define: {unknown}")
    return problems


def all_importers(modules: dict[str, str]) -> dict[str, str]:
    root = UTILS.parent
    importers = dict(modules)
    for folder in ("tests", "examples"):
        importers |= {str(p.relative_to(root)): p.read_text(encoding="utf-8") for p in (root / folder).rglob("*.py")}
    importers |= {str(p.relative_to(root)): notebook_code(p) for p in (root / "notebooks").glob("*.ipynb")}
    return importers


def test_utils_has_at_most_450_public_names():
    counts = {module: len(public_names(source)) for module, source in package_modules().items()}
    total = sum(counts.values())
    largest = sorted(counts.items(), key=lambda item: -item[1])[:8]
    assert total <= MAX_PUBLIC_NAMES_IN_UTILS, f"{total} public top-level names in utils/; the most: {largest}"


def test_every_module_others_import_has_all():
    modules = package_modules()
    imported = imported_modules(modules, all_importers(modules))
    assert "utils.harness.publishing" in imported and "utils.reporting.markdown" in imported
    assert modules_without_all(modules, imported - WITHOUT_ALL_YET) == []
    assert WITHOUT_ALL_YET <= set(modules), f"gone, drop from WITHOUT_ALL_YET: {WITHOUT_ALL_YET - set(modules)}"
    done = sorted(m for m in WITHOUT_ALL_YET if declared_all(modules[m]) is not None)
    assert done == [], f"these have __all__ now: drop them from WITHOUT_ALL_YET: {done}"


def test_a_module_without_all_and_a_wrong_all_are_caught():
    modules = {"utils.workbench.a": "def f(): pass\n", "utils.workbench.b": "__all__ = ['g']\ndef f(): pass\n",
               "utils.workbench.c": "from x import y\nA, B = 1, 2\n__all__ = ['A', 'B', 'f', 'y']\ndef f(): pass\n",
               "utils.experiments.d": "from utils.workbench import a, b\nfrom utils.workbench.c import f\n"}
    imported = imported_modules(modules, modules | {"tests/test_x.py": "import utils.experiments.d"})
    assert imported == {"utils.workbench.a", "utils.workbench.b", "utils.workbench.c", "utils.experiments.d"}
    assert modules_without_all(modules, imported) == [
        "utils.experiments.d has no __all__", "utils.workbench.a has no __all__",
        "utils.workbench.b: __all__ names what it does not define: ['g']"]
    assert public_names("X = 1\nx = 2\n_y = 3\ndef f(): pass\nclass _C: pass\n__all__ = ['f']\n") == {"x", "f"}
