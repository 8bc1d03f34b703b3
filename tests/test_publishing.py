"""Runs never clobber or mix the published reports: plain papermill, concurrent runs, interrupted runs,
killed kernels, bad result files, unwritable folders (issue 15).

The notebooks here are written by the tests (nbformat) into a temporary folder and given to the runner by
path; each writes a results JSON and a "figure" first, then optionally writes its kernel's pid to a file and
sleeps, so that a test can act while the run is in progress. Seven kernel executions in all.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from utils.harness import publishing, run
from utils.harness.paths import PUBLISHED_REPORTS_DIR, REPO_ROOT, SCRATCH_REPORTS_DIR

KERNEL = "python3"
STEM = "05_slow"
PARAMETERS = '''seconds: float = 0.0  # how long the last cell sleeps
pid_file: str = ""  # where the kernel writes its pid before sleeping
label: str = "a"  # recorded in the results and as the figure's name
die: bool = False  # the kernel kills itself in the last cell'''
WRITE_OUTPUTS = '''import os
import signal
import time
from pathlib import Path

from utils.harness.paths import figures_dir
from utils.harness.results import Results

results = Results(NOTEBOOK, {"seconds": seconds, "label": label})
results.claim("label_given", bool(label), "a label was given", label)
(figures_dir() / NOTEBOOK).mkdir(parents=True, exist_ok=True)
(figures_dir() / NOTEBOOK / f"{label}.png").write_bytes(label.encode())
results.save()'''
WAIT = '''if pid_file:
    Path(pid_file).write_text(str(os.getpid()))
if die:
    os.kill(os.getpid(), signal.SIGKILL)
time.sleep(seconds)'''


def write_notebook(folder: Path, stem: str = STEM) -> Path:
    nb = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell(PARAMETERS)
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, nbformat.v4.new_code_cell(f"NOTEBOOK = {stem!r}\n" + WRITE_OUTPUTS),
                nbformat.v4.new_code_cell(WAIT)]
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3", "language": "python"}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture
def notebook(tmp_path) -> Path:
    return write_notebook(tmp_path / "notebooks")


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes, the runner's lock files aside (they stay, empty, in `.staging-locks/`)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and publishing.LOCKS_DIR not in p.relative_to(folder).parts}


def previous_report(out: Path) -> dict[str, bytes]:
    """A published report of STEM that a later run must leave alone unless it succeeds."""
    (out / "results").mkdir(parents=True)
    (out / "figures" / STEM).mkdir(parents=True)
    (out / f"{STEM}.ipynb").write_text('{"previous": "notebook"}')
    (out / "results" / f"{STEM}.json").write_text('{"previous": "results"}')
    (out / "figures" / STEM / "old.png").write_bytes(b"previous figure")
    (out / "timings.json").write_text('{"05_slow": 1.0}\n')
    return snapshot(out)


def runner_command(notebook: Path, out: Path, *parameters: str) -> list[str]:
    command = [sys.executable, "-m", "utils.run", str(notebook), "--out", str(out), "--kernel", KERNEL, "--no-html"]
    for name, value in zip(parameters[::2], parameters[1::2], strict=True):
        command += ["-p", name, value]
    return command


def child_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TINFER_")}
    return env | {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=REPO_ROOT, env=child_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_file(path: Path, process: subprocess.Popen, seconds: float = 120) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        if process.poll() is not None:
            raise AssertionError(f"the run ended before writing {path}: {process.communicate()}")
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"{path} never appeared")


def process_gone(pid: int, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def leftover_staging(out: Path) -> list[str]:
    return sorted(p.name for p in out.glob(".staging-*") if p.name != publishing.LOCKS_DIR)


# ---------------------------------------------------------------- only the runner publishes


def git_status(folder: Path) -> str:
    return subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all", "--", str(folder)],
                          cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout


def file_stats(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


def test_plain_papermill_run_writes_to_scratch_and_leaves_reports_alone(tmp_path):
    stem = "91_plain_papermill_probe"  # a name no real notebook has, so cleaning up cannot remove real files
    source = write_notebook(tmp_path / "notebooks", stem)
    written = [PUBLISHED_REPORTS_DIR / "results" / f"{stem}.json", PUBLISHED_REPORTS_DIR / "figures" / stem,
               SCRATCH_REPORTS_DIR / "results" / f"{stem}.json", SCRATCH_REPORTS_DIR / "figures" / stem]
    status, stats = git_status(PUBLISHED_REPORTS_DIR), file_stats(PUBLISHED_REPORTS_DIR)
    papermill = Path(sys.executable).with_name("papermill")
    try:
        completed = subprocess.run([str(papermill), str(source), str(tmp_path / "out.ipynb"), "-p", "label", "plain",
                                    "-k", KERNEL], cwd=tmp_path, env=child_env(), capture_output=True, text=True)
        assert completed.returncode == 0, completed.stderr
        assert git_status(PUBLISHED_REPORTS_DIR) == status
        assert file_stats(PUBLISHED_REPORTS_DIR) == stats
        results = json.loads((SCRATCH_REPORTS_DIR / "results" / f"{stem}.json").read_text())
        assert results["parameters"] == {"seconds": 0.0, "label": "plain"}
        assert (SCRATCH_REPORTS_DIR / "figures" / stem / "plain.png").read_bytes() == b"plain"
        executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
        printed = "".join(output.get("text", "") for cell in executed.cells for output in cell.get("outputs", []))
        assert f"go to {SCRATCH_REPORTS_DIR}/" in printed and "published by the runner only" in printed
    finally:
        for path in written:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def test_scripts_and_the_runner_still_mean_reports(monkeypatch):
    from utils.harness import paths

    monkeypatch.delenv("TINFER_REPORTS_DIR", raising=False)
    assert paths.reports_dir() == PUBLISHED_REPORTS_DIR  # utils.render, utils.bench: not a notebook kernel
    monkeypatch.setattr(paths, "in_notebook_kernel", lambda: True)
    assert paths.reports_dir() == SCRATCH_REPORTS_DIR
    monkeypatch.setenv("TINFER_REPORTS_DIR", "/somewhere")
    assert paths.reports_dir() == Path("/somewhere")


# ---------------------------------------------------------------- concurrent runs


def test_second_run_of_the_same_notebook_is_refused_naming_the_first(notebook, tmp_path):
    out = tmp_path / "D"
    pid_file = tmp_path / "first.pid"
    first = start(runner_command(notebook, out, "label", "first", "seconds", "10", "pid_file", str(pid_file)))
    wait_for_file(pid_file, first)  # the first run is executing, and holds the lock
    second = subprocess.run(runner_command(notebook, out, "label", "second"), cwd=REPO_ROOT, env=child_env(),
                            capture_output=True, text=True, timeout=120)
    first_out, first_err = first.communicate(timeout=120)
    assert first.returncode == 0, first_err
    assert second.returncode == 2
    assert f"{out} is in use by another run of {STEM} (pid {first.pid}: python -m utils.run" in second.stderr
    assert "-p label first" in second.stderr and "05_slow: start" not in second.stdout
    # the published pair comes from one run, the first
    notebook_parameters = json.loads((out / f"{STEM}.ipynb").read_text())["metadata"]["tinfer"]["parameters"]
    results = json.loads((out / "results" / f"{STEM}.json").read_text())
    assert notebook_parameters["label"] == results["parameters"]["label"] == "first"
    assert [p.name for p in (out / "figures" / STEM).iterdir()] == ["first.png"]
    assert leftover_staging(out) == []
    # no warning the user cannot act on (ipykernel's "running over TCP without encryption" among them)
    assert "WARNING" not in first_err and "Warning" not in first_err and "without encryption" not in first_err


def test_each_run_stages_in_its_own_folder_and_dead_runs_are_cleaned(tmp_path):
    out = tmp_path / "D"
    (out / f".staging-{STEM}").mkdir(parents=True)  # left by an older runner
    (out / f".staging-{STEM}-deadrun1").mkdir()  # left by a run that was killed with SIGKILL
    (out / ".staging-05_slower-live0001").mkdir()  # another notebook's: not ours to remove
    first = publishing.prepare_staging(out, STEM)
    assert sorted(p.name for p in out.iterdir()) == [first.name, ".staging-05_slower-live0001"]
    second = publishing.prepare_staging(out, "05_slower")
    assert first != second and first.is_dir() and second.is_dir()


def fail_when_the_notebook_moves(monkeypatch, staging: Path, out: Path) -> None:
    """Make publishing fail with a full disk at its last move, the executed notebook's."""
    real_replace = os.replace

    def fail_on_the_notebook(source, target):
        if Path(target) == out / f"{STEM}.ipynb" and Path(source).parent == staging:
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(publishing.os, "replace", fail_on_the_notebook)


def test_a_failed_publish_puts_everything_back(tmp_path, monkeypatch):
    out = tmp_path / "D"
    before = previous_report(out)
    staging = publishing.prepare_staging(out, STEM)
    (staging / "figures" / STEM).mkdir(parents=True)
    (staging / "figures" / STEM / "new.png").write_bytes(b"new")
    (staging / "results" / f"{STEM}.json").write_text("{}")
    (staging / f"{STEM}.ipynb").write_text("{}")
    fail_when_the_notebook_moves(monkeypatch, staging, out)
    with pytest.raises(OSError, match="No space left"):
        publishing.publish(staging, out, STEM)
    assert (staging / "figures" / STEM / "new.png").exists()  # the new outputs went back to staging
    shutil.rmtree(staging)  # as the runner does after a failure
    assert snapshot(out) == before


def test_documents_are_published_with_the_notebook_and_put_back_on_failure(tmp_path, monkeypatch):
    out = tmp_path / "D"
    before = previous_report(out)
    (out / "FINDINGS.md").write_text("old findings")
    staging = publishing.prepare_staging(out, STEM)
    (staging / "documents").mkdir()
    (staging / "documents" / "FINDINGS.md").write_text("new findings")
    (staging / "results" / f"{STEM}.json").write_text("{}")
    (staging / f"{STEM}.ipynb").write_text("{}")
    fail_when_the_notebook_moves(monkeypatch, staging, out)
    with pytest.raises(OSError):
        publishing.publish(staging, out, STEM)
    assert (out / "FINDINGS.md").read_text() == "old findings"  # a failed publish keeps the old document
    monkeypatch.undo()
    publishing.publish(staging, out, STEM)
    assert (out / "FINDINGS.md").read_text() == "new findings" and (out / f"{STEM}.ipynb").read_text() == "{}"
    assert before is not None


# ---------------------------------------------------------------- interrupted runs, killed kernels


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_publishes_nothing(notebook, tmp_path, signum):
    out = tmp_path / "D"
    before = previous_report(out)
    pid_file = tmp_path / "kernel.pid"
    runner = start(runner_command(notebook, out, "label", "interrupted", "seconds", "60", "pid_file", str(pid_file)))
    kernel_pid = int(wait_for_file(pid_file, runner))  # results and figure are written in staging by now
    runner.send_signal(signum)
    _, err = runner.communicate(timeout=60)
    assert runner.returncode == 128 + signum, err
    assert f"interrupted ({signal.Signals(signum).name})" in err
    assert snapshot(out) == before
    assert leftover_staging(out) == []
    assert process_gone(kernel_pid), "the kernel outlived the runner"


def test_killed_kernel_publishes_nothing(notebook, tmp_path, capsys):
    out = tmp_path / "D"
    before = previous_report(out)
    code = run.main([str(notebook), "-p", "die", "true", "--out", str(out), "--kernel", KERNEL, "--no-html"])
    assert code == 1
    assert "DeadKernelError" in capsys.readouterr().err
    after = snapshot(out)
    after.pop(f"failed/{STEM}.ipynb", None)  # the executed notebook, kept for inspection
    assert after == before
    assert leftover_staging(out) == []


# ---------------------------------------------------------------- refused before executing


def findings_notebook(folder: Path) -> Path:
    """A `00_*` notebook, so that the runner checks the results it will read."""
    return write_notebook(folder, "00_reads_results")


@pytest.mark.parametrize(("text", "problem"), [
    ('{"notebook": "03_bad", "claims": ', "not valid JSON (Expecting value at line 1 column 34)"),
    ('{"notebook": "03_bad", "parameters": {}, "metrics": {}}', "lacks the key 'claims'"),
    ('{"notebook": "03_bad", "parameters": {}, "metrics": {}, "claims": {"c": {"statement": "s"}}}',
     "claim 'c' lacks the key 'holds'"),
    ('{"notebook": "03_other", "parameters": {}, "metrics": {}, "claims": {}}',
     "'notebook' is '03_other' but the file is named 03_bad.json"),
])
def test_bad_results_file_is_refused_before_executing(tmp_path, capsys, text, problem):
    out = tmp_path / "D"
    (out / "results").mkdir(parents=True)
    bad = out / "results" / "03_bad.json"
    bad.write_text(text)
    code = run.main([str(findings_notebook(tmp_path / "notebooks")), "--out", str(out), "--kernel", KERNEL])
    captured = capsys.readouterr()
    assert code == 2
    assert f"error: {bad}: " in captured.err and problem in captured.err
    assert "start" not in captured.out
    assert leftover_staging(out) == []


def test_results_of_the_notebooks_being_run_are_not_checked(tmp_path):
    out = tmp_path / "D"
    (out / "results").mkdir(parents=True)
    (out / "results" / "00_reads_results.json").write_text("not json: about to be replaced")
    run._check_published_results(out, [findings_notebook(tmp_path / "notebooks")])
    (out / "results" / "03_bad.json").write_text("not json")
    run._check_published_results(out, [write_notebook(tmp_path / "notebooks", "04_not_findings")])  # no 00_*


@pytest.mark.parametrize("make_out", [
    lambda tmp: tmp / "a_file" / "D",  # a folder below a regular file: cannot be made, not even by root
    lambda tmp: tmp / "a_file",  # a regular file where the folder should be
])
def test_unwritable_output_folder_is_refused_before_executing(notebook, tmp_path, capsys, make_out):
    (tmp_path / "a_file").write_text("a file")
    out = make_out(tmp_path)
    code = run.main([str(notebook), "--out", str(out), "--kernel", KERNEL])
    captured = capsys.readouterr()
    assert code == 2
    assert f"error: output folder {out} cannot be written (" in captured.err
    assert "start" not in captured.out
    assert (tmp_path / "a_file").read_text() == "a file"


def test_output_folder_with_a_file_for_results_is_refused(tmp_path):
    out = tmp_path / "D"
    out.mkdir()
    (out / "results").write_text("not a folder")
    with pytest.raises(publishing.OutputFolderError, match=r"cannot be written \(.*results is a file, not a folder\)"):
        publishing.check_output_folder(out)


def test_unwritable_folder_is_detected_by_writing(tmp_path, monkeypatch):
    """Where permission bits are honoured (not for root), a read-only folder fails the write probe."""
    out = tmp_path / "D"
    out.mkdir()

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(out))

    monkeypatch.setattr(publishing.tempfile, "TemporaryFile", refuse)
    with pytest.raises(publishing.OutputFolderError, match=r"cannot be written \(Permission denied: .*D\)"):
        publishing.check_output_folder(out)


# ---------------------------------------------------------------- noise


def test_marian_tokenizer_loads_without_warnings(recwarn):
    from utils.workbench.tokenizers import load_tokenizer

    load_tokenizer("marian")
    assert [str(warning.message) for warning in recwarn] == []
