# The README's two commands: `make demo` (train -> prune -> unlearn -> evaluate on digits) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= runs/demo
DEMO_TRIALS ?= 1
DEMO_METHODS ?= paper
FMNIST_DIR ?= runs/fashionmnist
AUDIT_DIR ?= runs/audit
FMNIST_DATA ?= /usr/share/datasets/fashion-mnist

.PHONY: demo fashionmnist tuned audit mask-memory test test-slurm gpu-check lint docs clean-venv

$(VENV)/installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

demo: $(VENV)/installed
	DEMO_METHODS=$(DEMO_METHODS) bash scripts/demo.sh $(PY) $(DEMO_DIR) $(DEMO_TRIALS)

# The paper's experiments on real Fashion-MNIST at CPU scale (hours on 2 cores: docs/fashionmnist.md has the measured times; resumable).
fashionmnist: $(VENV)/installed
	bash scripts/fashionmnist.sh $(PY) $(FMNIST_DIR)

# The tuned comparison on Fashion-MNIST (docs/tuning.md): every method tuned on trial 1 of `make fashionmnist`
# with the same budget (validation data only), then the selected and the published settings on trials 2-4.
TUNED_DIR ?= runs/tuned
tuned: $(VENV)/installed
	bash scripts/tuned.sh $(PY) $(TUNED_DIR) $(FMNIST_DIR)

# The per-example audit on digits and Fashion-MNIST (its masks come from `make fashionmnist`; resumable).
audit: $(VENV)/installed
	bash scripts/audit.sh $(PY) $(AUDIT_DIR)

# Does the mask remember the forget set? (docs/mask_memory.md): Table 1 of `make fashionmnist` (reused when
# there), then the clean masks, their Retrain, the reports and the per-example audit (resumable).
MASK_DIR ?= runs/mask_memory
mask-memory: $(VENV)/installed
	FMNIST_DATA=$(FMNIST_DATA) STAGES=1 bash scripts/fashionmnist.sh $(PY) $(FMNIST_DIR)
	FMNIST_DATA=$(FMNIST_DATA) bash scripts/mask_memory.sh $(PY) $(MASK_DIR) $(FMNIST_DIR)

# Two pytest-xdist workers, one per core of the 2-core CI machine (each test module on one worker, so its
# fixtures are built once): every test computes with one thread, so two cores run the suite in about half
# the time. TEST_WORKERS=auto takes one per core of a larger machine; TEST_WORKERS=1 runs one test at a time.
TEST_WORKERS ?= 2
test: $(VENV)/installed
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope tests

# A real single-node Slurm (started and stopped by the test; needs root and Debian's slurmctld, slurmd,
# slurm-client and munge packages) runs a small digits sweep through scripts/sweep.py --slurm.
test-slurm: $(VENV)/installed
	RUN_SLURM_TESTS=1 $(PY) -m pytest tests/test_slurm_sweep.py -v

# On a machine with a GPU: benchmarks, CPU/GPU agreement and the full-size Fashion-MNIST reproduction in
# one script (sized for about 10 minutes on an H200; DEVICE=cpu TINY=1 for a dry run on the CPU).
gpu-check: $(VENV)/installed
	bash benchmarks/gpu_check.sh $(PY) $(FMNIST_DATA)

lint: $(VENV)/installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Rewrite the method tables of README.md and docs/methods.md from the method registry (after adding a method).
docs: $(VENV)/installed
	$(PY) scripts/docs_tables.py

clean-venv:
	rm -rf $(VENV)
