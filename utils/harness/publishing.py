"""Publishing a run into a report folder DIR: its own staging folder, the locks, the signals, the all-or-nothing
swap, and where a failed run's notebook is kept. The runner (`utils.harness.run`) executes; this module moves.

    DIR/.staging-<stem>-<random>/    one run's outputs while it executes (TINFER_RESULTS_DIR etc. point there)
    DIR/.staging-locks/<stem>.lock   held for the whole run of that notebook into DIR (names the run holding it)
    DIR/.staging-locks/publish.lock  held while outputs move into DIR and `timings.json` is merged
    DIR/failed/<stem>.ipynb          the executed notebook of a failed run, for inspection

Locks are `filelock` locks (flock underneath: released by the system when a run dies). A second run of the same
notebook into the same DIR is refused at once (FolderBusyError, naming the run that holds it); other notebooks
into the same DIR run side by side; the publish lock is a short wait, never a refusal. Publishing defers SIGINT and
SIGTERM until it is done; an interrupted run (SIGINT, SIGTERM) or a dead kernel publishes nothing.
"""

import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from utils.harness.paths import write_text_atomically

LOCKS_DIR = ".staging-locks"
STAGING_PREFIX = ".staging-"

__all__ = [
    "LOCKS_DIR", "STAGING_PREFIX", "FolderBusyError", "Interrupted", "OutputFolderError", "check_output_folder",
    "keep_failed", "prepare_staging", "publish", "run_lock", "termination_as_interrupt", "write_timings",
]


class OutputFolderError(OSError):
    """An output folder that cannot be created or written; nothing is executed (exit code 2)."""


class FolderBusyError(RuntimeError):
    """Another run of the same notebook holds the output folder; nothing is executed (exit code 2)."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised like SIGINT's KeyboardInterrupt so that the same cleanup runs; `signum` says which."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# ---------------------------------------------------------------- the output folder and its locks


def check_output_folder(out_dir: Path) -> None:
    """Create `out_dir` if needed and prove it writable (a real file, since root ignores permission bits)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in ("results", "figures", "html", "failed", LOCKS_DIR):
            if (out_dir / name).exists() and not (out_dir / name).is_dir():
                raise NotADirectoryError(f"{out_dir / name} is a file, not a folder")
        with tempfile.TemporaryFile(dir=out_dir) as probe:
            probe.write(b"x")
    except OSError as error:
        reason = error.args[0] if isinstance(error, NotADirectoryError) and len(error.args) == 1 else (
            f"{error.strerror or error}" + (f": {error.filename}" if error.filename else ""))
        raise OutputFolderError(f"output folder {out_dir} cannot be written ({reason})") from None


def _lock_file(out_dir: Path, name: str) -> Path:
    folder = out_dir / LOCKS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


@contextmanager
def run_lock(out_dir: Path, stem: str, holder: str) -> Iterator[None]:
    """Hold `DIR/.staging-locks/<stem>.lock` for a whole run; FolderBusyError at once, naming the holder (whose
    description the lock file holds while it runs), when another run of this notebook into DIR has it."""
    path = _lock_file(out_dir, f"{stem}.lock")
    held: list[int] = []

    def describe_holder(descriptor: int) -> None:
        held.append(descriptor)
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{holder}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)

    lock = FileLock(path, blocking=False, preserve_lock_file=True, on_acquired=describe_holder)
    try:
        lock.acquire()
    except Timeout:
        other = path.read_text(encoding="utf-8", errors="replace").strip() or "a run that is starting"
        raise FolderBusyError(f"{out_dir} is in use by another run of {stem} ({other}); wait for it to finish "
                              "or choose another --out") from None
    try:
        yield
    finally:
        try:
            os.ftruncate(held[0], 0)  # the file stays, empty: nobody holds it
        finally:
            lock.release()


def _publish_lock(out_dir: Path) -> FileLock:
    """`DIR/.staging-locks/publish.lock`, waited for (`with _publish_lock(out_dir):`) while outputs move into DIR."""
    return FileLock(_lock_file(out_dir, "publish.lock"), preserve_lock_file=True)


# ---------------------------------------------------------------- signals


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM during the block and deliver them after it: publishing is never cut in half."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: received.append(signum))
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if received:
            signal.raise_signal(received[0])


@contextmanager
def termination_as_interrupt() -> Iterator[None]:
    """SIGTERM raises `Interrupted` (a KeyboardInterrupt) instead of ending the process on the spot, so that
    the kernel is shut down and the staging folder removed, as after Ctrl-C; SIGINT raises KeyboardInterrupt
    even where it was ignored at start (a background job of a shell script)."""
    def interrupt(signum, frame):
        raise Interrupted(signum)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, interrupt),
                signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def _publishing(out_dir: Path) -> Iterator[None]:
    """Signals deferred, then the folder's publish lock: what every move into DIR runs under."""
    with _signals_deferred(), _publish_lock(out_dir):
        yield


# ---------------------------------------------------------------- staging


def _is_staging_of(path: Path, stem: str) -> bool:
    """`.staging-<stem>` (older runners) or `.staging-<stem>-<mkdtemp suffix, which has no '-'>`."""
    prefix = f"{STAGING_PREFIX}{stem}"
    rest = path.name[len(prefix):]
    return path.name.startswith(prefix) and (rest == "" or (rest.startswith("-") and "-" not in rest[1:]))


def prepare_staging(out_dir: Path, stem: str) -> Path:
    """A fresh `DIR/.staging-<stem>-<random>/` of this run only, its results folder seeded with the other
    notebooks' results (copies, so that `00_findings` can read them from `results_dir()`). Staging folders of
    this notebook left by runs that died are removed first (the caller holds the notebook's run lock)."""
    for path in out_dir.glob(f"{STAGING_PREFIX}{stem}*"):
        if path.is_dir() and _is_staging_of(path, stem):
            shutil.rmtree(path, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{stem}-", dir=out_dir))
    (staging / "results").mkdir()
    for path in sorted((out_dir / "results").glob("*.json")):
        if path.stem != stem:
            shutil.copy2(path, staging / "results" / path.name)
    return staging


# ---------------------------------------------------------------- the all-or-nothing swap


def _move_into_place(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)


def _failed_notebook_path(out_dir: Path, stem: str) -> Path:
    return out_dir / "failed" / f"{stem}.ipynb"


def _publication(staging: Path, out_dir: Path, stem: str) -> list[tuple[Path, Path]]:
    """(new, published) pairs of one run; a `new` that does not exist removes the published file, so that
    nothing of an older run stays beside the new notebook. The executed notebook goes last."""
    documents = sorted((staging / "documents").glob("*")) if (staging / "documents").is_dir() else []
    return [
        *[(document, out_dir / document.name) for document in documents],  # e.g. FINDINGS.md of 00_findings
        (staging / "figures" / stem, out_dir / "figures" / stem),
        (staging / "results" / f"{stem}.json", out_dir / "results" / f"{stem}.json"),
        (staging / f"{stem}.html", out_dir / "html" / f"{stem}.html"),
        (staging / "no-failed-notebook", _failed_notebook_path(out_dir, stem)),  # a success makes it stale
        (staging / f"{stem}.ipynb", out_dir / f"{stem}.ipynb"),
    ]


def _swap_in(pairs: Sequence[tuple[Path, Path]], previous: Path) -> None:
    """Move each published path aside into `previous/` and each new one into place; on any error, put
    everything back as it was and re-raise (all or nothing)."""
    done: list[tuple[Path, Path, Path]] = []
    try:
        for index, (new, target) in enumerate(pairs):
            aside = previous / str(index)
            if target.exists():
                _move_into_place(target, aside)
            done.append((new, target, aside))
            if new.exists():
                _move_into_place(new, target)
    except BaseException:
        for new, target, aside in reversed(done):
            if target.exists() and not new.exists():
                _move_into_place(target, new)
            if aside.exists():
                _move_into_place(aside, target)
        raise


def publish(staging: Path, out_dir: Path, stem: str) -> None:
    """Move a successful run's outputs from staging into DIR in one all-or-nothing step, under the folder's
    publish lock and with SIGINT/SIGTERM deferred; the old outputs are dropped with the staging folder."""
    with _publishing(out_dir):
        _swap_in(_publication(staging, out_dir, stem), staging / "previous")
        failed = out_dir / "failed"
        if failed.is_dir() and not any(failed.iterdir()):
            failed.rmdir()


def keep_failed(executed: Path, out_dir: Path) -> Path:
    """Move a failed run's executed notebook to `DIR/failed/<stem>.ipynb`; returns where."""
    target = _failed_notebook_path(out_dir, executed.stem)
    with _publishing(out_dir):
        _move_into_place(executed, target)
    return target


# ---------------------------------------------------------------- timings


def _read_timings(path: Path) -> dict[str, float]:
    """The previous `timings.json`; an unreadable one is started afresh, saying so (it holds only seconds)."""
    if not path.exists():
        return {}
    try:
        timings = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as error:
        print(f"warning: {path} is not valid JSON ({error}); writing it afresh", file=sys.stderr)
        return {}
    return timings if isinstance(timings, dict) else {}


def write_timings(out_dir: Path, seconds: dict[str, Any]) -> Path:
    """Merge {stem: seconds} of the successful runs into `DIR/timings.json` (other notebooks' times are kept;
    with nothing to merge the file is left as it is)."""
    path = out_dir / "timings.json"
    if seconds:
        with _publishing(out_dir):
            write_text_atomically(path, json.dumps(_read_timings(path) | seconds, indent=2, sort_keys=True) + "\n")
    return path
