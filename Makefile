# The two commands of the README. Each creates (or reuses) its environments
# on its own: .venv (torch 2.13), and for the tests also .venv-torch21
# (torch 2.1.2, the core tests).
PYTHON := .venv/bin/python
PYTHON_TORCH21 := .venv-torch21/bin/python

.PHONY: main test env env-torch21 bench

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

env:
	bash scripts/bootstrap.sh main

env-torch21:
	bash scripts/bootstrap.sh torch21
