# make help lists the verbs. Everything runs offline inside .venv, created from requirements.txt.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
KERNEL := tinfer
OFFLINE := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
# tiny models: one CPU thread is fastest and keeps numbers identical across machines (override from outside)
export OMP_NUM_THREADS ?= 1

.PHONY: help venv run smoke test lint bench slides site sweep g2p-long verify drift clean

help: ## list the verbs
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (tinfer)"
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install the pinned requirements (when missing or stale)

# two lanes on the 2 cores (the runner lets different notebooks publish into one folder at once): the long real-data
# notebooks in one, the rest in the other (04 before 05, which reads 04's checkpoints); the findings last
LANE_A := 10_tinfer_real_data 14_tinfer_real_translation 06_language_modeling 03_loss_masking
LANE_B = $(filter-out 00_findings $(LANE_A),$(basename $(notdir $(wildcard notebooks/[0-9]*.ipynb))))
# $(call all_notebooks,EXTRA RUNNER ARGUMENTS): both lanes, then the findings
all_notebooks = $(OFFLINE) $(PY) -m utils.run --kernel $(KERNEL) $(LANE_A) $(1) & lane_a=$$!; \
	$(OFFLINE) $(PY) -m utils.run --kernel $(KERNEL) $(LANE_B) $(1); lane_b=$$?; \
	wait $$lane_a && test $$lane_b -eq 0 && $(OFFLINE) $(PY) -m utils.run --kernel $(KERNEL) 00_findings $(1)
run: $(STAMP) ## execute every notebook with default parameters, render reports/ (HTML, slides, site, index)
	$(call all_notebooks,)
	$(MAKE) --no-print-directory slides site
	$(PY) -m utils.render index

# reveal.js 5.2.0 comes from its npm-registry tarball (downloaded into build/vendor/, sha512 checked against the
# registry's integrity); deck.pdf is printed by Debian's chromium (apt-get install -y chromium), skipped with a
# message without it
slides: $(STAMP) ## the lab-meeting deck reports/slides/ (index.html + deck.pdf) from the findings records
	$(PY) -m utils.render slides

site: $(STAMP) slides ## the offline report site reports/site/ (mkdocs-material): FINDINGS, claims, notebooks, deck
	$(PY) -m utils.render site

SWEEP_SEEDS := 0 1 2
SWEEP_SIZES := 1000 4000
sweep: $(STAMP) ## notebook 04 over seeds x training-set sizes into reports/sweep/, then 04b aggregates
	for n in $(SWEEP_SIZES); do for s in $(SWEEP_SEEDS); do \
	  $(OFFLINE) $(PY) -m utils.run 04 -p seeds $$s -p n_train $$n -p save_checkpoints false \
	    --kernel $(KERNEL) --out reports/sweep/seed$${s}_n$${n} --no-html || exit 1; \
	done; done
	$(OFFLINE) $(PY) -m utils.run 04b --kernel $(KERNEL)

# the long CMUdict run on record: 3000 steps (5x the default) for every variant, seed 0, every test word; on a GPU
# raise the budget: make g2p-long G2P_DEVICE=cuda G2P_STEPS=20000 G2P_SEEDS=0,1,2
G2P_DEVICE ?= cpu
G2P_STEPS ?= 3000
G2P_SEEDS ?= 0
g2p-long: $(STAMP) ## notebook 10 (CMUdict) with a long budget (3000 steps, every test word) into reports/g2p-long/
	$(OFFLINE) $(PY) -m utils.run 10 -p seeds $(G2P_SEEDS) -p n_steps $(G2P_STEPS) -p n_test 5893 -p n_beam 500 \
	    -p n_workers 2 -p device $(G2P_DEVICE) --kernel $(KERNEL) --out reports/g2p-long --no-html

# make drift: transformers 4.x beside the main .venv (5.24), each in its own venv from requirements/drift-<v>.txt with
# the same torch 2.13.0 CPU wheel (installed first; pinned again in the file so pip never pulls another torch).
# A release that cannot be installed is named and skipped (the driver reports it; the others run). .venv is only read.
DRIFT_VERSIONS := 4.46 4.57
DRIFT_STAMPS := $(foreach v,$(DRIFT_VERSIONS),.venv-tf$(v)/.installed)

.venv-tf%/.installed: requirements/drift-%.txt
	@( set -e; test -x .venv-tf$*/bin/python || $(PYTHON) -m venv .venv-tf$*; \
	  .venv-tf$*/bin/python -m pip install --quiet --upgrade pip; \
	  .venv-tf$*/bin/python -m pip install --quiet torch==2.13.0; \
	  .venv-tf$*/bin/python -m pip install --quiet -r requirements/drift-$*.txt; \
	  touch $@ ) || echo "make drift: transformers $* could not be installed into .venv-tf$* from requirements/drift-$*.txt" >&2

.venv-tf%/.installed:  # a release without a requirements file: named, skipped, the driver reports it
	@echo "make drift: transformers $*: no requirements/drift-$*.txt to install .venv-tf$* from" >&2

drift: $(DRIFT_STAMPS) ## HF behaviours on transformers 4.46 / 4.57 / 5.24 (extra venvs) -> data/drift/<version>.json
	@test -x $(PY) || { echo "make drift: the main $(VENV) (transformers 5.24) is missing: run make venv first" >&2; exit 1; }
	$(OFFLINE) $(PY) -m utils.drift --out-dir data/drift $(foreach v,$(DRIFT_VERSIONS),--venv $(v)=.venv-tf$(v))

bench: $(STAMP) ## hand-written vs HF: greedy tokens/s and training step time -> reports/bench.json
	$(OFFLINE) $(PY) -m utils.bench

RERUN ?= build/rerun
verify: $(STAMP) ## rerun every notebook into build/rerun (or compare RERUN=DIR as is) and check it reproduces reports/
# (the long CMUdict run is not part of make run: the rerun's findings read the published one, copied)
	test -d $(RERUN)/results || { mkdir -p $(RERUN) && cp -r reports/g2p-long $(RERUN)/ && \
	  $(call all_notebooks,--out $(RERUN) --no-html); }
	$(PY) -m utils.verify $(RERUN)

smoke: $(STAMP) ## execute every notebook with smoke parameters into build/smoke/
	$(OFFLINE) $(PY) -m utils.run --smoke --kernel $(KERNEL) --out build/smoke

# Joey NMT for the audit's real-library example (examples/joeynmt_model.py, tests/test_audit_real_libraries.py): the
# wheels of joeynmt and subword-nmt without their dependencies (tensorboard, pylint, a protobuf pin), unpacked
JOEYNMT := build/vendor/joeynmt/site/joeynmt/__init__.py
$(JOEYNMT): | $(STAMP)
	$(PY) -m pip download --quiet --no-deps joeynmt==2.3.0 subword-nmt==0.3.8 -d build/vendor/joeynmt
	for wheel in build/vendor/joeynmt/*.whl; do $(PY) -m zipfile -e $$wheel build/vendor/joeynmt/site || exit 1; done
	touch $@

vendor-joeynmt: $(JOEYNMT) ## Joey NMT 2.3.0 for the audit's example, unpacked into build/vendor/joeynmt/site

# the pinned wheels data/real_pairs/ is extracted from (wagtail, django, apache-superset; about 120 MB, sha256 checked):
# tests/test_real_pairs.py rebuilds the committed pairs from them byte for byte (the rebuild goes to build/, not data/)
REAL_PAIRS_WHEELS := build/wheels/.pinned
$(REAL_PAIRS_WHEELS): data/make_real_pairs.py | $(STAMP)
	$(PY) data/make_real_pairs.py --download --out build/real_pairs_rebuilt > /dev/null
	touch $@

# two workers share the tests; each notebook's smoke run, the kernel-path runs and the rendered site are made once per
# run, by whichever worker needs them first, under a file lock in the folder the workers share (tests/conftest.py)
test: $(STAMP) $(JOEYNMT) $(REAL_PAIRS_WHEELS) ## unit tests and every notebook with smoke parameters
	$(OFFLINE) $(PY) -m pytest -q -n 2 --dist loadfile

lint: $(STAMP) ## ruff on utils, tests and notebooks
	$(PY) -m ruff check utils tests notebooks examples

clean: ## remove build outputs and caches (keeps .venv and committed reports)
	rm -rf build .pytest_cache .ruff_cache reports/html reports/slides reports/site reports/.staging-*
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
