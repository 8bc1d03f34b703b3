"""Show the code under discussion in the rendered report: a hand-written function beside the installed HF lines.

Both are read at run time with `inspect`, so the page shows the code that ran: this repository's function and
the lines of the *installed* transformers (file inside the package, line numbers, version), never a copy.

    show_code(shift_right, installed(T5PreTrainedModel._shift_right))
    show_code(installed(T5ForConditionalGeneration.forward, start="if labels is not None", stop="loss = "))
"""

import inspect
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from IPython.display import Markdown

from utils.harness.paths import REPO_ROOT

__all__ = ["code_excerpt", "installed", "show_code"]


@dataclass(frozen=True)
class _CodeExcerpt:
    where: str  # "utils/handwritten/teacher_forcing.py" or "transformers 5.24.0: transformers/models/t5/modeling_t5.py"
    first_line: int
    lines: list[str]

    @property
    def last_line(self) -> int:
        return self.first_line + len(self.lines) - 1

    def markdown(self) -> str:
        body = "".join(self.lines).rstrip("\n")
        return f"`{self.where}`, lines {self.first_line}-{self.last_line}:\n\n```python\n{body}\n```"


def _package_of(obj, path: Path) -> tuple[str, str] | None:
    """(package name with version, path inside the package's parent folder) for code of an imported package other
    than this repository's, wherever it is installed: site-packages, an editable install from a git checkout,
    `pip install --target`, or PYTHONPATH. None for this repository's code."""
    module = inspect.getmodule(obj)
    top = (module.__name__ if module is not None else "").split(".")[0]
    package = sys.modules.get(top)
    package_file = getattr(package, "__file__", None)
    if not top or top == "utils" or package_file is None:
        return None
    root = Path(package_file).resolve().parent  # the folder of the top-level package, e.g. .../transformers
    if not path.is_relative_to(root):
        return None
    return f"{top} {_version_of(top, package)}", path.relative_to(root.parent).as_posix()


def _version_of(top: str, package) -> str:
    """The installed distribution's version of an import name, else the package's __version__, else "?"."""
    for distribution in metadata.packages_distributions().get(top, []):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return str(getattr(package, "__version__", "?"))


def _select(lines: list[str], first_line: int, start: str | None, stop: str | None) -> tuple[int, list[str]]:
    """The lines from the first containing `start` to the next containing `stop` (both kept)."""
    begin = 0
    if start is not None:
        begin = next((i for i, line in enumerate(lines) if start in line), None)
        if begin is None:
            raise ValueError(f"no line contains {start!r}: the installed source changed; update the excerpt")
    end = len(lines)
    if stop is not None:
        end = next((i + 1 for i, line in enumerate(lines[begin:], begin) if stop in line), None)
        if end is None:
            raise ValueError(f"no line after {start!r} contains {stop!r}: the installed source changed")
    return first_line + begin, lines[begin:end]


def code_excerpt(obj, start: str | None = None, stop: str | None = None) -> _CodeExcerpt:
    """The source of a function, method or class, optionally cut to the lines from `start` to `stop`."""
    target = inspect.unwrap(obj)
    path = Path(inspect.getsourcefile(target)).resolve()
    lines, first_line = inspect.getsourcelines(target)
    first_line, lines = _select(lines, first_line, start, stop)
    package = _package_of(target, path)
    if package is not None:
        where = f"{package[0]}: {package[1]}"
    elif path.is_relative_to(REPO_ROOT):
        where = path.relative_to(REPO_ROOT).as_posix()
    else:
        where = str(path)
    return _CodeExcerpt(where, first_line, lines)


def installed(obj, start: str | None = None, stop: str | None = None) -> _CodeExcerpt:
    """An excerpt that must come from an installed package (the HF side of a comparison)."""
    excerpt = code_excerpt(obj, start, stop)
    if ":" not in excerpt.where:
        raise ValueError(f"{excerpt.where} is this repository's code, not an installed package's")
    return excerpt


def show_code(*parts) -> Markdown:
    """Markdown showing each part one after the other: functions (whole) or `_CodeExcerpt`s."""
    excerpts = [part if isinstance(part, _CodeExcerpt) else code_excerpt(part) for part in parts]
    return Markdown("\n\n".join(excerpt.markdown() for excerpt in excerpts))
