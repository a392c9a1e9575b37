# Quickstart: `make demo` (set up + run CLIPCAM on the embedded ShapesWorld default) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test test-fast lint format lab train-shapes table-extended figures clean
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

# Every offline figure in docs/results.md, README.md and data/README.md, regenerated after retraining the
# ShapesWorld models: `make -j2 figures` (one thread per command, so -j sets how many cores are used). Each
# command's printed output lands in out/figures/<name>.txt, which make skips on a rerun; a failed command
# leaves out/figures/<name>.txt.part to read. The commands write the --out folders that the docs name, and a
# bench run refuses a folder of records from other checkpoints: move out/bench aside first. The tuned-β
# rows use the β that the validation sweep (out/figures/beta-sweep.txt) chose; pass the new ones, e.g.
# `make figures TUNED_RN=0.5 TUNED_VIT=0.6 TUNED_CNN=0.2 TUNED_VITB=0.5`.
FIG := out/figures
RUN := OMP_NUM_THREADS=1 $(PY) -m clipcam_utils
GRID := --grids 64 --seed 0 --no-progress
CLIPS := --model shapes-rn shapes-vit
TUNED_RN ?= 0.5
TUNED_VIT ?= 0.6
TUNED_CNN ?= 0.2
TUNED_VITB ?= 0.5
SWEEP := 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9
SWEEP_B := 0.2 0.3 0.5 0.7 0.8 0.9
# Longest first, so that -j2 finishes early.
FIGURES := extended-objects extended-single extended-actions eval-shapes beta-sweep table1 table3 single \
	chefer ceiling ceiling-real tuned-beta options-objects options-actions real demo failures
figures: $(FIGURES:%=$(FIG)/%.txt)
	@echo "every figure's output is in $(FIG)/; paste each into the section that names its command"

$(FIG)/%.txt: | $(STAMP)
	@mkdir -p $(FIG)
	$(MAKE) --no-print-directory fig-$* > $@.part 2>&1
	mv $@.part $@

.PHONY: $(FIGURES:%=fig-%)
fig-extended-objects:
	$(RUN) bench objects $(CLIPS) --cam extended --randomized $(GRID) --out out/bench/extended-objects
fig-extended-actions:
	$(RUN) bench actions $(CLIPS) --cam extended --randomized $(GRID) --out out/bench/extended
fig-extended-single:
	$(RUN) bench single $(CLIPS) --cam extended --exclude scorecam --randomized --grids 256 --seed 0 \
	  --no-progress --out out/bench/extended-single
fig-eval-shapes:
	$(RUN) eval-shapes --grids 64 --seed 0
fig-table1:
	$(RUN) bench objects $(CLIPS) --cam gradcam --baseline shapes-cnn-objects shapes-vit-objects --randomized \
	  $(GRID) --out out/bench/paper
# The failure taxonomy of Table 1's runs: reads the records that table1 wrote, so it waits for it.
$(FIG)/failures.txt: $(FIG)/table1.txt
fig-failures:
	$(RUN) failures out/bench/paper/objects-shapes-*-gradcam.csv
fig-table3:
	$(RUN) bench actions $(CLIPS) --cam gradcam --baseline shapes-cnn-relations shapes-vit-relations \
	  --randomized $(GRID) --out out/bench/paper-actions
fig-single:
	$(RUN) bench single $(CLIPS) --cam gradcam --whole-image --grids 256 --seed 0 --no-progress \
	  --out out/bench/paper-single
fig-chefer:
	$(RUN) bench objects --model shapes-vit --cam chefer $(GRID) --out out/bench/paper-chefer
fig-ceiling:
	$(RUN) bench objects $(CLIPS) --ceiling --whole-image $(GRID) --out out/bench/ceiling
fig-ceiling-real:
	$(RUN) bench objects --data openimages $(CLIPS) --ceiling --whole-image $(GRID) --out out/bench/ceiling-real
fig-beta-sweep:
	for b in $(SWEEP); do case " $(SWEEP_B) " in \
	  *" $$b "*) $(RUN) bench objects $(CLIPS) --baseline shapes-cnn-objects shapes-vit-objects --beta $$b \
	    --grids 64 --seed 1 --no-progress --out out/bench/beta-sweep-seed1-b/$$b || exit 1;; \
	  *) $(RUN) bench objects $(CLIPS) --beta $$b --grids 64 --seed 1 --no-progress \
	    --out out/bench/beta-sweep-seed1/$$b || exit 1;; esac; done
fig-tuned-beta:
	$(RUN) bench objects --model shapes-rn --beta $(TUNED_RN) $(GRID) --out out/bench/tuned-beta/shapes-rn
	$(RUN) bench objects --model shapes-vit --beta $(TUNED_VIT) $(GRID) --out out/bench/tuned-beta/shapes-vit
	$(RUN) bench objects --model shapes-rn --baseline shapes-cnn-objects --beta $(TUNED_CNN) $(GRID) \
	  --out out/bench/tuned-beta/shapes-cnn-objects
	$(RUN) bench objects --model shapes-vit --baseline shapes-vit-objects --beta $(TUNED_VITB) $(GRID) \
	  --out out/bench/tuned-beta/shapes-vit-objects
fig-options-objects:
	$(RUN) bench objects $(CLIPS) --downscale $(GRID) --out out/bench/downscale
	$(RUN) bench objects $(CLIPS) --centre-disc 30 $(GRID) --out out/bench/disc
	$(RUN) bench objects $(CLIPS) --pixel-union-iou $(GRID) --out out/bench/union
	$(RUN) bench objects $(CLIPS) --beta 0.2 $(GRID) --out out/bench/beta02
	$(RUN) bench objects $(CLIPS) --official $(GRID) --out out/bench/official
fig-options-actions:
	$(RUN) bench actions $(CLIPS) --object-gt $(GRID) --out out/bench/actions-objgt
	$(RUN) bench actions $(CLIPS) --raw-mask-iou $(GRID) --out out/bench/actions-rawmask
	$(RUN) bench actions $(CLIPS) --prompt "Someone is {} {object}" $(GRID) --out out/bench/actions-prompt
	$(RUN) bench actions $(CLIPS) --official $(GRID) --out out/bench/actions-official
fig-real:
	$(RUN) bench objects --data openimages $(CLIPS) --grids 16 --seed 0 --no-progress --out out/bench/real
	$(RUN) bench single --data openimages $(CLIPS) --grids 64 --seed 0 --no-progress --out out/bench/real
	$(RUN) bench single --data hicodet $(CLIPS) --grids 4 --seed 0 --no-progress --out out/bench/real
	$(RUN) bench actions --data hicodet --model shapes-rn --grids 4 --seed 0 --no-progress --out out/bench/real
fig-demo:
	$(RUN) demo --out out/demo

clean:
	rm -rf out .pytest_cache
