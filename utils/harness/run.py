"""Run the notebooks with papermill: check every parameter first, execute into a staging folder,
publish the outputs only when the notebook succeeds.

    python -m utils.run [NOTEBOOK ...] [--smoke] [-p NAME VALUE ...] [--out DIR] [--kernel NAME]
                        [--no-html] [--keep-going] [--list]

NOTEBOOK is a path, a stem (`01_shift_right`) or a number prefix (`01`); none means every
`notebooks/[0-9]*.ipynb`, with `00_*` (the findings notebook, which reads the others' results) last.
`--smoke` applies the notebook's entry in `notebooks/smoke.json`; `-p` values override it.

Outputs in DIR (default `reports/`), published together, all or nothing, when a notebook succeeds:
    DIR/<stem>.ipynb                 executed notebook (metadata `tinfer`: source_sha256, parameters, smoke)
    DIR/html/<stem>.html             rendered notebook (with --no-html an older one is removed: it shows another run)
    DIR/results/<stem>.json          what the notebook saved with `utils.harness.results.Results`
    DIR/figures/<stem>/*.png         its figures (the folder is replaced whole)
    DIR/failed/<stem>.ipynb          the executed notebook of a failed run, for inspection
    DIR/timings.json                 {stem: seconds}, merged with the previous file

Only this runner publishes: a notebook run any other way (plain papermill, Jupyter) writes under
`build/scratch/` (see `utils.harness.paths`). Each run stages in its own `DIR/.staging-<stem>-<random>/`;
TINFER_RESULTS_DIR and TINFER_FIGURES_DIR point there, and its results folder starts with copies of the other
notebooks' published results: `load_all_results()` in `00_findings` sees them, and only `<stem>.json` is
published. The kernel runs in the repository root, offline (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE,
HF_DATASETS_OFFLINE), with PYTHONHASHSEED=0, over an encrypted (CurveZMQ) connection.

Staging, the locks, the signals and the all-or-nothing swap are `utils.harness.publishing`: a second run of the
same notebook into the same DIR is refused at once (exit code 2), naming the run that holds it; other notebooks
into the same DIR run side by side. An interrupted run (SIGINT, SIGTERM) or a dead kernel publishes nothing: DIR
keeps the previous report, and the staging folder is removed.

Refused before anything runs (exit code 2): an unknown notebook, parameter, type or kernel; an output folder
that cannot be written; a notebook already running into DIR; with a `00_*` notebook selected, a results JSON in
`DIR/results/` (of a notebook not run now) that is not valid JSON or lacks the keys `00_findings` reads.

Exit codes: 0 all ran, 1 a notebook failed, 2 refused before executing anything, 130 interrupted (SIGINT),
143 terminated (SIGTERM).
"""

import argparse
import hashlib
import json
import os
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.harness import parameters as parameter_cells
from utils.harness.kernel import EncryptedKernelManager, check_kernel, default_kernel
from utils.harness.parameters import read_parameters, resolve_notebook, validate_overrides
from utils.harness.paths import REPO_ROOT, reports_dir
from utils.harness.publishing import (
    FolderBusyError,
    Interrupted,
    OutputFolderError,
    check_output_folder,
    keep_failed,
    prepare_staging,
    publish,
    run_lock,
    termination_as_interrupt,
    write_timings,
)
from utils.harness.results import ResultsFileError, read_results_file

__all__ = [
    "ParameterError", "build_overrides", "main", "select_notebooks",
    "source_hash",
]

_SMOKE_FILE = "smoke.json"
_KERNEL_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "PYTHONHASHSEED": "0",
}


class ParameterError(ValueError):
    """A parameter name or value that a notebook does not accept; nothing is executed (exit code 2)."""


@dataclass
class _RunOutcome:
    stem: str
    ok: bool
    seconds: float
    error: str | None = None


# ---------------------------------------------------------------- selecting notebooks


def _notebooks_dir() -> Path:
    """The source notebooks folder, read at call time so that tests can point it elsewhere."""
    return Path(parameter_cells.NOTEBOOKS_DIR)


def _runs_last(path: Path) -> bool:
    """Sort key: `00_*` notebooks read the others' results, so they run after them."""
    return path.stem.startswith("00")


def select_notebooks(names: Sequence[str | Path] = ()) -> list[Path]:
    """Resolve names (paths, stems or number prefixes); none means all numbered notebooks, sorted."""
    if names:
        paths = list(dict.fromkeys(resolve_notebook(name).resolve() for name in names))
    else:
        paths = sorted(_notebooks_dir().glob("[0-9]*.ipynb"))
    return sorted(paths, key=_runs_last)


def source_hash(path: str | Path) -> str:
    """sha256 of the notebook file's bytes, recorded in the executed copy to detect stale reports."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------- parameters


def _smoke_file() -> Path:
    return _notebooks_dir() / _SMOKE_FILE


def _read_smoke_entries() -> dict[str, dict[str, Any]]:
    """`notebooks/smoke.json` as {stem: {name: value}}; a missing file means no smoke overrides."""
    path = _smoke_file()
    if not path.exists():
        return {}
    entries = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(entries, dict) or not all(isinstance(e, dict) for e in entries.values()):
        raise ParameterError(f"{path}: must be a JSON object {{notebook stem: {{parameter: value}}}}")
    return entries


def _checked_overrides(notebook: Path, overrides: dict[str, Any], origin: str) -> dict[str, Any]:
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
        origin = f"{_smoke_file()} entry {notebook.stem!r}"
        overrides.update(_checked_overrides(notebook, _read_smoke_entries().get(notebook.stem, {}), origin))
    overrides.update(_checked_overrides(notebook, cli_params, "-p"))
    return overrides


def _check_cli_names(notebooks: Sequence[Path], cli_params: dict[str, str]) -> None:
    """Every `-p` name must be declared by at least one of the selected notebooks."""
    declared = {name: None for notebook in notebooks for name in read_parameters(notebook)}
    for name in cli_params:
        if name not in declared:
            stems = ", ".join(notebook.stem for notebook in notebooks)
            allowed = ", ".join(declared)
            raise ParameterError(f"-p: unknown parameter {name!r} for {stems}; allowed: {allowed}")


def _cli_params_for(notebook: Path, cli_params: dict[str, str]) -> dict[str, str]:
    """The `-p` values that this notebook declares (with several notebooks, each takes its own)."""
    declared = read_parameters(notebook)
    return {name: value for name, value in cli_params.items() if name in declared}


def _prepare_runs(
    notebooks: Sequence[Path], smoke: bool, cli_params: dict[str, str]
) -> list[tuple[Path, dict[str, Any]]]:
    """Validate every notebook's overrides before anything runs; raises ParameterError."""
    _check_cli_names(notebooks, cli_params)
    return [(notebook, build_overrides(notebook, smoke, _cli_params_for(notebook, cli_params)))
            for notebook in notebooks]


# ---------------------------------------------------------------- checks before executing


def _check_published_results(out_dir: Path, notebooks: Sequence[Path]) -> None:
    """With a `00_*` notebook selected, every results JSON it will read must be valid (ResultsFileError naming
    the file otherwise); the files of the notebooks run now are skipped, since they are about to be replaced."""
    if not any(_runs_last(notebook) for notebook in notebooks):
        return
    selected = {notebook.stem for notebook in notebooks}
    for path in sorted((out_dir / "results").glob("*.json")):
        if path.stem not in selected:
            read_results_file(path)


def _describe_invocation(argv: Sequence[str] | None) -> str:
    arguments = list(sys.argv[1:] if argv is None else argv)
    return f"pid {os.getpid()}: python -m utils.run {shlex.join(arguments)}".rstrip()


# ---------------------------------------------------------------- executing one notebook


@contextmanager
def _kernel_environment(out_dir: Path, staging: Path) -> Iterator[None]:
    """Environment inherited by the kernel: offline, fixed hash seed, outputs pointed at staging."""
    saved = os.environ.copy()
    os.environ.update(_KERNEL_ENV)
    os.environ["TINFER_REPORTS_DIR"] = str(out_dir)
    os.environ["TINFER_RESULTS_DIR"] = str(staging / "results")
    os.environ["TINFER_FIGURES_DIR"] = str(staging / "figures")
    os.environ["TINFER_DOCUMENTS_DIR"] = str(staging / "documents")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), saved.get("PYTHONPATH")]))
    os.environ.pop("MPLBACKEND", None)  # ipykernel then uses its inline backend
    # tiny models run fastest, and bit-for-bit the same everywhere, on one CPU thread; set it to override
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _execute(source: Path, output: Path, overrides: dict[str, Any], kernel: str) -> None:
    import papermill

    papermill.execute_notebook(
        str(source),
        str(output),
        parameters=overrides,
        kernel_name=kernel,
        cwd=str(REPO_ROOT),
        log_output=False,
        progress_bar=True,
        kernel_manager_class=EncryptedKernelManager,
    )


def _add_run_metadata(executed: Path, digest: str, overrides: dict[str, Any], smoke: bool):
    """Record in the executed notebook what produced it; returns the notebook node."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    nb.metadata["tinfer"] = {"source_sha256": digest, "parameters": overrides, "smoke": smoke}
    nbformat.write(nb, executed)
    return nb


def _export_html(nb, target: Path) -> None:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    target.write_text(body, encoding="utf-8")


def _keep_failed(executed: Path, out_dir: Path, digest: str, overrides: dict[str, Any], smoke: bool) -> str:
    """Record what produced a failed run's executed notebook and keep it in `DIR/failed/`; returns a line saying
    where (or why not)."""
    if not executed.exists():
        return "no executed notebook was written"
    try:
        _add_run_metadata(executed, digest, overrides, smoke)
        target = keep_failed(executed, out_dir)
    except Exception as error:  # never hide the notebook's own error behind this one
        return f"could not keep the executed notebook: {type(error).__name__}: {error}"
    return f"executed notebook kept at {target}"


def _source_cell_index(source: Path, cell_source: str) -> int | None:
    """Index of the source notebook's cell with exactly this source (papermill counts injected cells)."""
    cells = json.loads(source.read_text(encoding="utf-8"))["cells"]
    for index, cell in enumerate(cells):
        text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if text == cell_source:
            return index
    return None


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _describe_failure(source: Path, error: BaseException) -> str:
    """`<stem>: cell <i> (<first line>) raised <ename>: <evalue>`, or the exception for other failures."""
    from papermill.exceptions import PapermillExecutionError

    if not isinstance(error, PapermillExecutionError):
        return f"{source.stem}: {type(error).__name__}: {error}"
    index = _source_cell_index(source, error.source)
    where = f"cell {index}" if index is not None else f"executed cell {error.cell_index}"
    return f"{source.stem}: {where} ({_first_line(error.source)!r}) raised {error.ename}: {error.evalue}"


def _run_notebook(
    path: str | Path,
    overrides: dict[str, Any],
    out_dir: str | Path,
    kernel: str | None = None,
    html: bool = True,
    smoke: bool = False,
) -> _RunOutcome:
    """Execute one notebook into its own `DIR/.staging-<stem>-<random>/`; publish its outputs only if it succeeds.

    `overrides` must already be checked (see `build_overrides`); the caller holds the notebook's `run_lock`.
    On failure the previous report in `out_dir` is untouched and the executed notebook is kept at
    `DIR/failed/<stem>.ipynb`; on an interrupt (KeyboardInterrupt, `Interrupted`) nothing is kept.
    """
    source = Path(path).resolve()
    stem = source.stem
    out_dir = Path(out_dir).resolve()
    digest = source_hash(source)
    staging = prepare_staging(out_dir, stem)
    executed = staging / f"{stem}.ipynb"
    start = time.perf_counter()
    try:
        with _kernel_environment(out_dir, staging):
            _execute(source, executed, overrides, kernel or default_kernel())
        nb = _add_run_metadata(executed, digest, overrides, smoke)
        if html:
            _export_html(nb, staging / f"{stem}.html")
        publish(staging, out_dir, stem)
        return _RunOutcome(stem, True, time.perf_counter() - start)
    except Exception as error:
        seconds = time.perf_counter() - start
        kept = _keep_failed(executed, out_dir, digest, overrides, smoke)
        return _RunOutcome(stem, False, seconds, f"{_describe_failure(source, error)}\n  {kept}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------- several notebooks, summary


def _describe_overrides(overrides: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in overrides.items()) or "defaults"


def _run_all(
    runs: Sequence[tuple[Path, dict[str, Any]]],
    out_dir: Path,
    kernel: str,
    html: bool,
    smoke: bool,
    keep_going: bool,
) -> list[_RunOutcome]:
    """Run in order, one start and one finish line each; stop at the first failure unless `keep_going`."""
    outcomes = []
    for number, (notebook, overrides) in enumerate(runs, start=1):
        label = f"[{number}/{len(runs)}] {notebook.stem}"
        mode = "smoke, " if smoke else ""
        print(f"{label}: start (kernel {kernel}, {mode}{_describe_overrides(overrides)})", flush=True)
        outcome = _run_notebook(notebook, overrides, out_dir, kernel=kernel, html=html, smoke=smoke)
        outcomes.append(outcome)
        status = "ok" if outcome.ok else "FAILED"
        print(f"{label}: {status} in {outcome.seconds:.1f} s", flush=True)
        if not outcome.ok:
            print(f"error in {outcome.error}", file=sys.stderr, flush=True)
            if not keep_going:
                break
    return outcomes


def _claims_summary(out_dir: Path, stem: str) -> str:
    """`held/total` from `DIR/results/<stem>.json`, or `-` when there is none (or it cannot be read)."""
    path = out_dir / "results" / f"{stem}.json"
    try:
        claims = read_results_file(path)["claims"]
    except (OSError, ResultsFileError):
        return "-"
    held = sum(1 for claim in claims.values() if claim["holds"])
    return f"{held}/{len(claims)}"


def _print_summary(runs: Sequence[tuple[Path, dict]], outcomes: Sequence[_RunOutcome], out_dir: Path) -> None:
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
        claims = _claims_summary(out_dir, notebook.stem) if outcome.ok else "-"
        print(f"{notebook.stem:<{width}}  {outcome.seconds:>8.1f}  {status:<7}  {claims}")
    print(f"reports in {out_dir}")


def _print_parameters(notebooks: Sequence[Path]) -> None:
    """Each notebook's parameters, like `papermill --help-notebook`, with its smoke value if any."""
    entries = _read_smoke_entries()
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


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m utils.run",
        description="Execute notebooks with papermill, validating parameters first; outputs go to DIR.",
    )
    parser.add_argument("notebooks", nargs="*", metavar="NOTEBOOK",
                        help="path, stem or number prefix (default: all numbered notebooks, 00_* last)")
    parser.add_argument("--smoke", action="store_true",
                        help=f"apply the notebook's entry in notebooks/{_SMOKE_FILE}")
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
    args = _parse_args(argv)
    try:
        notebooks = select_notebooks(args.notebooks)
        if not notebooks:
            raise FileNotFoundError(f"no notebooks in {_notebooks_dir()}")
        if args.list:
            _print_parameters(notebooks)
            return 0
        runs = _prepare_runs(notebooks, args.smoke, dict(args.parameters))
        kernel = check_kernel(args.kernel) if args.kernel else default_kernel()
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out_dir = Path(args.out).resolve() if args.out else reports_dir().resolve()
    with ExitStack() as locks:
        try:
            check_output_folder(out_dir)
            _check_published_results(out_dir, [notebook for notebook, _ in runs])
            for notebook, _ in runs:
                locks.enter_context(run_lock(out_dir, notebook.stem, _describe_invocation(argv)))
        except (OutputFolderError, ResultsFileError, FolderBusyError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        try:
            with termination_as_interrupt():
                outcomes = _run_all(runs, out_dir, kernel, html=not args.no_html, smoke=args.smoke,
                                    keep_going=args.keep_going)
        except KeyboardInterrupt as error:
            signum = error.signum if isinstance(error, Interrupted) else signal.SIGINT
            print(f"interrupted ({signal.Signals(signum).name}): a notebook that had not finished was not "
                  f"published; {out_dir} keeps its previous report", file=sys.stderr)
            return 128 + signum
        write_timings(out_dir, {outcome.stem: round(outcome.seconds, 1) for outcome in outcomes if outcome.ok})
    _print_summary(runs, outcomes, out_dir)
    return 0 if len(outcomes) == len(runs) and all(outcome.ok for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
