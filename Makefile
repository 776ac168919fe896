# The two commands of the README. Each creates (or reuses) its environments
# on its own (scripts/bootstrap.sh): .venv, the newest stack (torch 2.15, on
# the newest of Python 3.13, 3.12 and 3.11 that the machine has), and for
# the tests also .venv-torch21 (Python 3.11, torch 2.1.2, mmdet 3.3) and
# .venv-oldest (Python 3.8, torch 2.0.1, mmdet 3.0), which run the core
# tests (pytest -m core).
PYTHON := .venv/bin/python
PYTHON_TORCH21 := .venv-torch21/bin/python
PYTHON_OLDEST := .venv-oldest/bin/python

.PHONY: main test env env-torch21 env-oldest bench twins

# The main job: train an RLA detector on the bundled dataset, score it.
main: env
	PYTHON=$(PYTHON) bash scripts/main.sh

# The test suite (what .ci/run calls): all of it on the newest stack, the
# core tests on the two older corners.
# The three environments are built side by side: one downloads while another
# compiles mmcv.
test:
	$(MAKE) --no-print-directory -j3 --output-sync=target env env-torch21 env-oldest
	$(PYTHON) -m pytest -q tests
	$(PYTHON_TORCH21) -m pytest -q -m core tests
	$(PYTHON_OLDEST) -m pytest -q -m core tests

# The RLA vs ResNet benchmark (tools/analysis/benchmark.py).
bench: env
	$(PYTHON) tools/analysis/benchmark.py

# The main job and its plain ResNet-18 twin, 3 seeds each (about 1.5 h on 2
# cores): mean and spread of bbox/segm AP and time per iteration.
twins: env
	$(PYTHON) tools/analysis/shapes_twins.py

env:
	bash scripts/bootstrap.sh main

env-torch21:
	bash scripts/bootstrap.sh torch21

env-oldest:
	bash scripts/bootstrap.sh oldest
