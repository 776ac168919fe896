# The two commands of the README. Each creates (or reuses) its environments
# on its own: .venv (torch 2.13), and for the tests also .venv-torch21
# (torch 2.1.2, the core tests).
PYTHON := .venv/bin/python
PYTHON_TORCH21 := .venv-torch21/bin/python

.PHONY: main test env env-torch21 bench twins

# The main job: train an RLA detector on the bundled dataset, score it.
main: env
	PYTHON=$(PYTHON) bash scripts/main.sh

# The test suite (what .ci/run calls): all of it on the main stack, the
# core tests (pytest -m core) on the torch 2.1 stack.
test: env env-torch21
	$(PYTHON) -m pytest -q tests
	$(PYTHON_TORCH21) -m pytest -q -m core tests

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
