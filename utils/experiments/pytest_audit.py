"""The audit and the batch linter inside a lab's own test run: a pytest plugin (entry point `pytest11`, registered by
`pip install -e .` of this project).

    pytest --audit-model path/to/model.py:build                 # every audit check is a test item with its verdict
    pytest --audit-model pkg.module:build --audit-rtol 1e-4     # several --audit-model may be given
    pytest --lint-batch batch.pt --lint-pad-id 0 --lint-start-id 0 --lint-eos-id 1
    pytest --audit-model ... --audit-only                       # deselect every other collected test

A check that passes (or only measures: "info") passes, "fail" fails with the check's detail, "skipped" skips, and
"error" (the check could not run, or the model could not be loaded) fails. A batch with findings fails with them.
A fixture, `seq2seq_audit`, runs the audit on a model object or spec from a test: `seq2seq_audit(model).exit_code`.

Without these options the plugin adds nothing: it imports only pytest at start-up (torch and the audit are imported
when an option asks for them) and collects no item.
"""

import pytest

__all__ = ["pytest_addoption", "pytest_collection_modifyitems", "seq2seq_audit"]

_AUDITS = pytest.StashKey[dict]()


def pytest_addoption(parser) -> None:
    group = parser.getgroup("seq2seq-audit", "seq2seq model audit and batch linter (tinfer notebooks, notebook 09)")
    group.addoption("--audit-model", action="append", default=[], metavar="SPEC",
                    help="audit this model factory (path/to/file.py:function or package.module:function); "
                         "one test item per check")
    group.addoption("--audit-rtol", type=float, default=None, help="override the relative tolerance of the audit")
    group.addoption("--audit-checks", default=None, help="comma-separated subset of the audit's checks")
    group.addoption("--audit-only", action="store_true", help="run only the audit and lint items")
    group.addoption("--lint-batch", action="append", default=[], metavar="FILE",
                    help="lint this torch.save'd batch (input_ids, labels, ...); one test item per file")
    group.addoption("--lint-pad-id", type=int, default=None, help="pad id for --lint-batch (required with it)")
    group.addoption("--lint-start-id", type=int, default=None, help="decoder start id for --lint-batch (required)")
    group.addoption("--lint-eos-id", type=int, default=None, help="</s> id for --lint-batch (optional)")


class _AuditCheckItem(pytest.Item):
    """One check of the audit of one model; the audit runs once per model, on the first of its items."""

    def __init__(self, *, spec: str, check: str, **kwargs):
        super().__init__(**kwargs)
        self.spec, self.check = spec, check

    def _audit(self):
        from utils.experiments.audit_your_model import load_model, run_audit
        from utils.experiments.auditable_models import AuditInputError

        audits = self.config.stash.setdefault(_AUDITS, {})
        if self.spec not in audits:
            option = self.config.getoption
            checks = option("audit_checks")
            try:
                audits[self.spec] = run_audit(load_model(self.spec), self.spec, rtol=option("audit_rtol"),
                                              checks=tuple(c.strip() for c in checks.split(",")) if checks else None)
            except (AuditInputError, ValueError) as error:
                audits[self.spec] = error
        return audits[self.spec]

    def runtest(self) -> None:
        audit = self._audit()
        if isinstance(audit, Exception):
            raise _AuditFailure(f"cannot audit {self.spec}: {audit}")
        check = audit.checks.get(self.check)
        if check is None:
            pytest.skip(f"{self.check} was not selected (--audit-checks)")
        self.user_properties.append(("audit", {"status": check.status, "number": check.number,
                                               "detail": check.detail}))
        if check.status == "skipped":
            pytest.skip(check.detail)
        if check.status in ("fail", "error"):
            raise _AuditFailure(f"{check.status.upper()} {check.title}: {check.detail}")

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, _AuditFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.spec, None, f"audit[{self.spec}]::{self.check}"


class _LintBatchItem(pytest.Item):
    """The batch linter on one file: fails with its findings, or when the file cannot be read."""

    def __init__(self, *, path_text: str, **kwargs):
        super().__init__(**kwargs)
        self.path_text = path_text

    def runtest(self) -> None:
        from utils.experiments.batch_lint import BatchLintError, format_findings, lint_batch, load_batch

        option = self.config.getoption
        try:
            findings = lint_batch(load_batch(self.path_text), option("lint_pad_id"), option("lint_start_id"),
                                  option("lint_eos_id"))
        except BatchLintError as error:
            raise _AuditFailure(f"cannot lint {self.path_text}: {error}") from error
        self.user_properties.append(("findings", [finding.to_dict() for finding in findings]))
        if findings:
            raise _AuditFailure(format_findings(self.path_text, findings))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, _AuditFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path_text, None, f"lint_batch[{self.path_text}]"


class _AuditFailure(AssertionError):
    """A failed check or a batch with findings: reported by its message alone, without a traceback."""


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items) -> None:
    specs, batches = config.getoption("audit_model"), config.getoption("lint_batch")
    if not specs and not batches:
        return
    if batches and (config.getoption("lint_pad_id") is None or config.getoption("lint_start_id") is None):
        raise pytest.UsageError("--lint-batch needs --lint-pad-id and --lint-start-id (and optionally --lint-eos-id)")
    added = []
    if specs:
        from utils.experiments.audit_your_model import CHECK_TITLES

        checks = config.getoption("audit_checks")
        names = [c.strip() for c in checks.split(",")] if checks else list(CHECK_TITLES)
        for spec in specs:
            added += [_AuditCheckItem.from_parent(session, name=f"audit[{spec}]::{name}", spec=spec, check=name)
                      for name in names]
    added += [_LintBatchItem.from_parent(session, name=f"lint_batch[{path}]", path_text=path) for path in batches]
    if config.getoption("audit_only"):
        config.hook.pytest_deselected(items=list(items))
        items[:] = added
    else:
        items.extend(added)


@pytest.fixture
def seq2seq_audit():
    """audit(model_or_spec, **run_audit_kwargs) -> ModelAudit (see utils.experiments.audit_your_model.run_audit)."""
    from utils.experiments.audit_your_model import load_model, run_audit
    from utils.experiments.auditable_models import as_auditable, set_eval

    def audit(model, label: str | None = None, **kwargs):
        if isinstance(model, str):
            label, model = label or model, load_model(model)
        else:
            model = as_auditable(model)
            set_eval(model)
        return run_audit(model, label or type(model).__name__, **kwargs)

    return audit
