# Quickstart: `make demo` (set up + run CLIPCAM on the embedded ShapesWorld default) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test test-fast lint format lab train-shapes table-extended clean
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg --nbval-cell-timeout 600

# A local virtual environment with the package (editable) and its dev tools, rebuilt when pyproject changes.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(PY) -m clipcam_utils demo --out out/demo

# Unit tests and the tutorial notebooks (nbval re-runs each notebook and compares it with its saved outputs).
test: setup
	$(PY) -m pytest -q tests notebooks $(NBVAL)

test-fast: setup
	$(PY) -m pytest -q tests -m "not smoke"

lint: setup
	$(VENV)/bin/ruff check clipcam_utils tests notebooks conftest.py
	$(VENV)/bin/ruff format --check clipcam_utils tests notebooks conftest.py

format: setup
	$(VENV)/bin/ruff format clipcam_utils tests notebooks conftest.py
	$(VENV)/bin/ruff check --fix clipcam_utils tests notebooks conftest.py

lab: setup
	$(VENV)/bin/jupyter lab notebooks

train-shapes: setup
	$(PY) -m clipcam_utils train-shapes --out data/models

# Table 2 extended (docs/results.md): every saliency method x both ShapesWorld CLIPs, with randomised copies,
# on object grids, action grids and single images. Rerun after retraining the ShapesWorld models.
EXT_GRIDS ?= 32
EXT_SINGLE ?= 128
EXT_OUT ?= out/bench/extended
table-extended: setup
	for kind in objects actions single; do \
	  n=$(EXT_GRIDS); [ $$kind = single ] && n=$(EXT_SINGLE); \
	  OMP_NUM_THREADS=1 $(PY) -m clipcam_utils bench $$kind --model shapes-rn shapes-vit --cam extended \
	    $$([ $$kind = single ] && echo --exclude scorecam) --randomized --grids $$n --seed 0 --out $(EXT_OUT) --no-progress || exit 1; \
	done

clean:
	rm -rf out .pytest_cache
