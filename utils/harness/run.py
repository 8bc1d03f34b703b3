"""Run the notebooks with papermill: check every parameter first, execute into a staging folder,
publish the outputs only when the notebook succeeds.

    python -m utils.run [NOTEBOOK ...] [--smoke] [-p NAME VALUE ...] [--out DIR] [--kernel NAME]
                        [--no-html] [--keep-going] [--list]

NOTEBOOK is a path, a stem (`01_shift_right`) or a number prefix (`01`); none means every
`notebooks/[0-9]*.ipynb`, with `00_*` (the findings notebook, which reads the others' results) last.
`--smoke` applies the notebook's entry in `notebooks/smoke.json`; `-p` values override it.

Outputs in DIR (default `reports/`):
    DIR/<stem>.ipynb                 executed notebook (metadata `tinfer`: source_sha256, parameters, smoke)
    DIR/html/<stem>.html             rendered notebook (skipped with --no-html)
    DIR/results/<stem>.json          what the notebook saved with `utils.harness.results.Results`
    DIR/figures/<stem>/*.png         its figures (the folder is replaced whole)
    DIR/failed/<stem>.ipynb          the executed notebook of a failed run, for inspection
    DIR/timings.json                 {stem: seconds}, merged with the previous file

While a notebook runs, TINFER_RESULTS_DIR and TINFER_FIGURES_DIR point into `DIR/.staging-<stem>/`, whose
results folder starts with copies of the other notebooks' published results: `load_all_results()` in
`00_findings` sees them, and only `<stem>.json` is published. The kernel runs in the repository root,
offline (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE, HF_DATASETS_OFFLINE), with PYTHONHASHSEED=0.

Exit codes: 0 all ran, 1 a notebook failed, 2 refused before executing anything (bad name, parameter,
type or kernel), 130 interrupted.
"""

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.harness import parameters as parameter_cells
from utils.harness.kernel import check_kernel, default_kernel
from utils.harness.parameters import read_parameters, resolve_notebook, validate_overrides
from utils.harness.paths import REPO_ROOT, reports_dir

SMOKE_FILE = "smoke.json"
KERNEL_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "PYTHONHASHSEED": "0",
}


class ParameterError(ValueError):
    """A parameter name or value that a notebook does not accept; nothing is executed (exit code 2)."""


@dataclass
class RunOutcome:
    stem: str
    ok: bool
    seconds: float
    error: str | None = None


# ---------------------------------------------------------------- selecting notebooks


def notebooks_dir() -> Path:
    """The source notebooks folder, read at call time so that tests can point it elsewhere."""
    return Path(parameter_cells.NOTEBOOKS_DIR)


def runs_last(path: Path) -> bool:
    """Sort key: `00_*` notebooks read the others' results, so they run after them."""
    return path.stem.startswith("00")


def select_notebooks(names: Sequence[str | Path] = ()) -> list[Path]:
    """Resolve names (paths, stems or number prefixes); none means all numbered notebooks, sorted."""
    if names:
        paths = list(dict.fromkeys(resolve_notebook(name).resolve() for name in names))
    else:
        paths = sorted(notebooks_dir().glob("[0-9]*.ipynb"))
    return sorted(paths, key=runs_last)


def source_hash(path: str | Path) -> str:
    """sha256 of the notebook file's bytes, recorded in the executed copy to detect stale reports."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------- parameters


def smoke_file() -> Path:
    return notebooks_dir() / SMOKE_FILE


def read_smoke_entries() -> dict[str, dict[str, Any]]:
    """`notebooks/smoke.json` as {stem: {name: value}}; a missing file means no smoke overrides."""
    path = smoke_file()
    if not path.exists():
        return {}
    entries = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(entries, dict) or not all(isinstance(e, dict) for e in entries.values()):
        raise ParameterError(f"{path}: must be a JSON object {{notebook stem: {{parameter: value}}}}")
    return entries


def smoke_entry(notebook: Path) -> dict[str, Any]:
    return read_smoke_entries().get(notebook.stem, {})


def checked_overrides(notebook: Path, overrides: dict[str, Any], origin: str) -> dict[str, Any]:
    """`validate_overrides`, with its KeyError/TypeError turned into a ParameterError naming `origin`."""
    try:
        return validate_overrides(notebook, overrides)
    except (KeyError, TypeError) as error:
        raise ParameterError(f"{origin}: {error.args[0]}") from None


def build_overrides(notebook: str | Path, smoke: bool, cli_params: dict[str, str]) -> dict[str, Any]:
    """The notebook's smoke entry (if `smoke`) updated with `cli_params` (strings, coerced), all checked."""
    notebook = resolve_notebook(notebook)
    overrides = {}
    if smoke:
        origin = f"{smoke_file()} entry {notebook.stem!r}"
        overrides.update(checked_overrides(notebook, smoke_entry(notebook), origin))
    overrides.update(checked_overrides(notebook, cli_params, "-p"))
    return overrides


def check_cli_names(notebooks: Sequence[Path], cli_params: dict[str, str]) -> None:
    """Every `-p` name must be declared by at least one of the selected notebooks."""
    declared = {name: None for notebook in notebooks for name in read_parameters(notebook)}
    for name in cli_params:
        if name not in declared:
            stems = ", ".join(notebook.stem for notebook in notebooks)
            allowed = ", ".join(declared)
            raise ParameterError(f"-p: unknown parameter {name!r} for {stems}; allowed: {allowed}")


def cli_params_for(notebook: Path, cli_params: dict[str, str]) -> dict[str, str]:
    """The `-p` values that this notebook declares (with several notebooks, each takes its own)."""
    declared = read_parameters(notebook)
    return {name: value for name, value in cli_params.items() if name in declared}


def prepare_runs(
    notebooks: Sequence[Path], smoke: bool, cli_params: dict[str, str]
) -> list[tuple[Path, dict[str, Any]]]:
    """Validate every notebook's overrides before anything runs; raises ParameterError."""
    check_cli_names(notebooks, cli_params)
    return [(notebook, build_overrides(notebook, smoke, cli_params_for(notebook, cli_params)))
            for notebook in notebooks]


# ---------------------------------------------------------------- executing one notebook


@contextmanager
def kernel_environment(out_dir: Path, staging: Path) -> Iterator[None]:
    """Environment inherited by the kernel: offline, fixed hash seed, outputs pointed at staging."""
    saved = os.environ.copy()
    os.environ.update(KERNEL_ENV)
    os.environ["TINFER_REPORTS_DIR"] = str(out_dir)
    os.environ["TINFER_RESULTS_DIR"] = str(staging / "results")
    os.environ["TINFER_FIGURES_DIR"] = str(staging / "figures")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), saved.get("PYTHONPATH")]))
    os.environ.pop("MPLBACKEND", None)  # ipykernel then uses its inline backend
    # tiny models run fastest, and bit-for-bit the same everywhere, on one CPU thread; set it to override
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def prepare_staging(out_dir: Path, stem: str) -> Path:
    """A fresh `DIR/.staging-<stem>/`, its results folder seeded with the other notebooks' results
    (read-only copies, so that `00_findings` can read them from `results_dir()`)."""
    staging = out_dir / f".staging-{stem}"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "results").mkdir(parents=True)
    for path in sorted((out_dir / "results").glob("*.json")):
        if path.stem != stem:
            shutil.copy2(path, staging / "results" / path.name)
    return staging


def execute(source: Path, output: Path, overrides: dict[str, Any], kernel: str) -> None:
    import papermill

    papermill.execute_notebook(
        str(source),
        str(output),
        parameters=overrides,
        kernel_name=kernel,
        cwd=str(REPO_ROOT),
        log_output=False,
        progress_bar=True,
    )


def add_run_metadata(executed: Path, digest: str, overrides: dict[str, Any], smoke: bool):
    """Record in the executed notebook what produced it; returns the notebook node."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    nb.metadata["tinfer"] = {"source_sha256": digest, "parameters": overrides, "smoke": smoke}
    nbformat.write(nb, executed)
    return nb


def export_html(nb, target: Path) -> None:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    target.write_text(body, encoding="utf-8")


def move_into_place(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)


def replace_folder(new: Path, target: Path) -> None:
    """Put `new` at `target`, removing the old folder whole (and `target` stays absent if `new` is)."""
    old = target.with_name(f".old-{target.name}")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    if new.exists():
        move_into_place(new, target)
    shutil.rmtree(old, ignore_errors=True)


def failed_notebook_path(out_dir: Path, stem: str) -> Path:
    return out_dir / "failed" / f"{stem}.ipynb"


def publish(staging: Path, out_dir: Path, stem: str, html: bool) -> None:
    """Move a successful run's outputs from staging into DIR; the executed notebook goes last."""
    replace_folder(staging / "figures" / stem, out_dir / "figures" / stem)
    results = staging / "results" / f"{stem}.json"
    if results.exists():
        move_into_place(results, out_dir / "results" / f"{stem}.json")
    if html:
        move_into_place(staging / f"{stem}.html", out_dir / "html" / f"{stem}.html")
    move_into_place(staging / f"{stem}.ipynb", out_dir / f"{stem}.ipynb")
    remove_failed_notebook(out_dir, stem)


def remove_failed_notebook(out_dir: Path, stem: str) -> None:
    """A success makes an earlier failure's notebook stale; drop it (and `DIR/failed/` once empty)."""
    failed = failed_notebook_path(out_dir, stem)
    failed.unlink(missing_ok=True)
    if failed.parent.is_dir() and not any(failed.parent.iterdir()):
        failed.parent.rmdir()


def keep_failed(executed: Path, out_dir: Path, digest: str, overrides: dict[str, Any], smoke: bool) -> str:
    """Move a failed run's executed notebook to `DIR/failed/`; returns a line saying where (or why not)."""
    if not executed.exists():
        return "no executed notebook was written"
    try:
        add_run_metadata(executed, digest, overrides, smoke)
        target = failed_notebook_path(out_dir, executed.stem)
        move_into_place(executed, target)
    except Exception as error:  # never hide the notebook's own error behind this one
        return f"could not keep the executed notebook: {type(error).__name__}: {error}"
    return f"executed notebook kept at {target}"


def source_cell_index(source: Path, cell_source: str) -> int | None:
    """Index of the source notebook's cell with exactly this source (papermill counts injected cells)."""
    cells = json.loads(source.read_text(encoding="utf-8"))["cells"]
    for index, cell in enumerate(cells):
        text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if text == cell_source:
            return index
    return None


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def describe_failure(source: Path, error: BaseException) -> str:
    """`<stem>: cell <i> (<first line>) raised <ename>: <evalue>`, or the exception for other failures."""
    from papermill.exceptions import PapermillExecutionError

    if not isinstance(error, PapermillExecutionError):
        return f"{source.stem}: {type(error).__name__}: {error}"
    index = source_cell_index(source, error.source)
    where = f"cell {index}" if index is not None else f"executed cell {error.cell_index}"
    return f"{source.stem}: {where} ({first_line(error.source)!r}) raised {error.ename}: {error.evalue}"


def run_notebook(
    path: str | Path,
    overrides: dict[str, Any],
    out_dir: str | Path,
    kernel: str | None = None,
    html: bool = True,
    smoke: bool = False,
) -> RunOutcome:
    """Execute one notebook into `DIR/.staging-<stem>/`; publish its outputs only if it succeeds.

    `overrides` must already be checked (see `build_overrides`). On failure the previous report in
    `out_dir` is untouched and the executed notebook is kept at `DIR/failed/<stem>.ipynb`.
    """
    source = Path(path).resolve()
    stem = source.stem
    out_dir = Path(out_dir).resolve()
    digest = source_hash(source)
    staging = prepare_staging(out_dir, stem)
    executed = staging / f"{stem}.ipynb"
    start = time.perf_counter()
    try:
        with kernel_environment(out_dir, staging):
            execute(source, executed, overrides, kernel or default_kernel())
        nb = add_run_metadata(executed, digest, overrides, smoke)
        if html:
            export_html(nb, staging / f"{stem}.html")
        publish(staging, out_dir, stem, html)
        return RunOutcome(stem, True, time.perf_counter() - start)
    except Exception as error:
        seconds = time.perf_counter() - start
        kept = keep_failed(executed, out_dir, digest, overrides, smoke)
        return RunOutcome(stem, False, seconds, f"{describe_failure(source, error)}\n  {kept}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------- several notebooks, summary


def describe_overrides(overrides: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in overrides.items()) or "defaults"


def run_all(
    runs: Sequence[tuple[Path, dict[str, Any]]],
    out_dir: Path,
    kernel: str,
    html: bool,
    smoke: bool,
    keep_going: bool,
) -> list[RunOutcome]:
    """Run in order, one start and one finish line each; stop at the first failure unless `keep_going`."""
    outcomes = []
    for number, (notebook, overrides) in enumerate(runs, start=1):
        label = f"[{number}/{len(runs)}] {notebook.stem}"
        mode = "smoke, " if smoke else ""
        print(f"{label}: start (kernel {kernel}, {mode}{describe_overrides(overrides)})", flush=True)
        outcome = run_notebook(notebook, overrides, out_dir, kernel=kernel, html=html, smoke=smoke)
        outcomes.append(outcome)
        status = "ok" if outcome.ok else "FAILED"
        print(f"{label}: {status} in {outcome.seconds:.1f} s", flush=True)
        if not outcome.ok:
            print(f"error in {outcome.error}", file=sys.stderr, flush=True)
            if not keep_going:
                break
    return outcomes


def write_json_atomically(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        f.write(text)
    os.replace(f.name, path)


def write_timings(out_dir: Path, outcomes: Sequence[RunOutcome]) -> Path:
    """Merge the successful runs' seconds into `DIR/timings.json` (other notebooks' times are kept)."""
    path = out_dir / "timings.json"
    timings = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    timings.update({outcome.stem: round(outcome.seconds, 1) for outcome in outcomes if outcome.ok})
    write_json_atomically(path, timings)
    return path


def claims_summary(out_dir: Path, stem: str) -> str:
    """`held/total` from `DIR/results/<stem>.json`, or `-` when there is none."""
    path = out_dir / "results" / f"{stem}.json"
    if not path.exists():
        return "-"
    claims = json.loads(path.read_text(encoding="utf-8")).get("claims", {})
    held = sum(1 for claim in claims.values() if claim.get("holds"))
    return f"{held}/{len(claims)}"


def print_summary(runs: Sequence[tuple[Path, dict]], outcomes: Sequence[RunOutcome], out_dir: Path) -> None:
    """One row per selected notebook: seconds, status (ok / FAILED / skipped), claims held/total."""
    by_stem = {outcome.stem: outcome for outcome in outcomes}
    width = max([len("notebook")] + [len(notebook.stem) for notebook, _ in runs])
    print(f"\n{'notebook':<{width}}  {'seconds':>8}  {'status':<7}  claims")
    for notebook, _ in runs:
        outcome = by_stem.get(notebook.stem)
        if outcome is None:
            print(f"{notebook.stem:<{width}}  {'-':>8}  {'skipped':<7}  -")
            continue
        status = "ok" if outcome.ok else "FAILED"
        claims = claims_summary(out_dir, notebook.stem) if outcome.ok else "-"
        print(f"{notebook.stem:<{width}}  {outcome.seconds:>8.1f}  {status:<7}  {claims}")
    print(f"reports in {out_dir}")


def print_parameters(notebooks: Sequence[Path]) -> None:
    """Each notebook's parameters, like `papermill --help-notebook`, with its smoke value if any."""
    entries = read_smoke_entries()
    for notebook in notebooks:
        print(f"{notebook.stem} ({notebook}):")
        smoke = entries.get(notebook.stem, {})
        for parameter in read_parameters(notebook).values():
            line = f"  {parameter.name}: {parameter.type} (default {parameter.default!r})"
            if parameter.comment:
                line += f"  {parameter.comment}"
            if parameter.name in smoke:
                line += f"  [smoke: {smoke[parameter.name]!r}]"
            print(line)


# ---------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m utils.run",
        description="Execute notebooks with papermill, validating parameters first; outputs go to DIR.",
    )
    parser.add_argument("notebooks", nargs="*", metavar="NOTEBOOK",
                        help="path, stem or number prefix (default: all numbered notebooks, 00_* last)")
    parser.add_argument("--smoke", action="store_true",
                        help=f"apply the notebook's entry in notebooks/{SMOKE_FILE}")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        dest="parameters", help="override a parameter (for each notebook declaring NAME)")
    parser.add_argument("--out", metavar="DIR", help="report folder (default: reports/)")
    parser.add_argument("--kernel", metavar="NAME",
                        help="Jupyter kernel (default: tinfer if installed, else python3)")
    parser.add_argument("--no-html", action="store_true", help="do not render HTML")
    parser.add_argument("--keep-going", action="store_true",
                        help="run the remaining notebooks after a failure")
    parser.add_argument("--list", action="store_true", help="print each notebook's parameters and exit")
    return parser.parse_intermixed_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        notebooks = select_notebooks(args.notebooks)
        if not notebooks:
            raise FileNotFoundError(f"no notebooks in {notebooks_dir()}")
        if args.list:
            print_parameters(notebooks)
            return 0
        runs = prepare_runs(notebooks, args.smoke, dict(args.parameters))
        kernel = check_kernel(args.kernel) if args.kernel else default_kernel()
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out_dir = Path(args.out).resolve() if args.out else reports_dir().resolve()
    html = not args.no_html
    try:
        outcomes = run_all(runs, out_dir, kernel, html=html, smoke=args.smoke, keep_going=args.keep_going)
    except KeyboardInterrupt:
        print("interrupted: the notebook being run was not published", file=sys.stderr)
        return 130
    write_timings(out_dir, outcomes)
    print_summary(runs, outcomes, out_dir)
    return 0 if len(outcomes) == len(runs) and all(outcome.ok for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
