# The two commands of the README. Each creates (or reuses) .venv on its own.
PYTHON := .venv/bin/python

.PHONY: main test env bench

# The main job: train an RLA detector on the bundled dataset, score it.
main: env
	PYTHON=$(PYTHON) bash scripts/main.sh

# The test suite (what .ci/run calls).
test: env
	$(PYTHON) -m pytest -q tests

# The RLA vs ResNet benchmark (tools/analysis/benchmark.py).
bench: env
	$(PYTHON) tools/analysis/benchmark.py

env:
	bash scripts/bootstrap.sh
