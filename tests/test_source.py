"""utils/harness/source.py: the rendered report shows this repository's function and the installed HF lines."""

import pytest
from transformers import __version__ as transformers_version
from transformers.models.t5.modeling_t5 import T5ForConditionalGeneration, T5PreTrainedModel

from utils.handwritten.teacher_forcing import shift_right
from utils.harness.source import code_excerpt, installed, show_code


def test_hand_written_excerpt_names_the_repository_file_and_lines():
    excerpt = code_excerpt(shift_right)
    assert excerpt.where == "utils/handwritten/teacher_forcing.py"
    assert excerpt.lines[0].startswith("def shift_right(")
    source = open("utils/handwritten/teacher_forcing.py").read().splitlines(keepends=True)
    assert source[excerpt.first_line - 1: excerpt.last_line] == excerpt.lines


def test_installed_excerpt_reads_the_pinned_transformers():
    excerpt = installed(T5PreTrainedModel._shift_right)
    assert excerpt.where == f"transformers {transformers_version}: transformers/models/t5/modeling_t5.py"
    assert "def _shift_right(self, input_ids)" in excerpt.lines[0]
    cut = installed(T5ForConditionalGeneration.forward, start="if labels is not None", stop="loss = loss_fct")
    assert "CrossEntropyLoss(ignore_index=-100)" in "".join(cut.lines) and cut.lines[-1].strip().startswith("loss =")
    with pytest.raises(ValueError, match="this repository's code"):
        installed(shift_right)
    with pytest.raises(ValueError, match="no line contains"):
        installed(T5PreTrainedModel._shift_right, start="this line is not there")


def test_show_code_puts_both_on_the_page():
    text = show_code(shift_right, installed(T5PreTrainedModel._shift_right)).data
    assert text.count("```python") == 2 and "teacher_forcing.py" in text and "modeling_t5.py" in text


def test_installed_reads_a_package_outside_site_packages(tmp_path, monkeypatch):
    """An editable install, `--target` or PYTHONPATH puts a package in a folder not named site-packages."""
    import importlib
    import sys

    package = tmp_path / "checkout" / "src" / "fakehf"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('__version__ = "9.9.0.dev0"\n')
    (package / "modeling.py").write_text("def _shift_right(input_ids):\n    return input_ids\n")
    monkeypatch.syspath_prepend(str(package.parent))
    monkeypatch.delitem(sys.modules, "fakehf", raising=False)
    modeling = importlib.import_module("fakehf.modeling")
    excerpt = installed(modeling._shift_right)
    assert excerpt.where == "fakehf 9.9.0.dev0: fakehf/modeling.py"
    assert excerpt.first_line == 1 and excerpt.lines[0].startswith("def _shift_right(")
    sys.modules.pop("fakehf.modeling", None)
    sys.modules.pop("fakehf", None)
