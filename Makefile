# The two commands of the README. Each creates (or reuses) .venv on its own.
PYTHON := .venv/bin/python

.PHONY: main test env bench twins

# The main job: train an RLA detector on the bundled dataset, score it.
main: env
	PYTHON=$(PYTHON) bash scripts/main.sh

# The test suite (what .ci/run calls).
test: env
	$(PYTHON) -m pytest -q tests

# The RLA vs ResNet benchmark (tools/analysis/benchmark.py).
bench: env
	$(PYTHON) tools/analysis/benchmark.py

# The main job and its plain ResNet-18 twin, 3 seeds each (about 1.5 h on 2
# cores): mean and spread of bbox/segm AP and time per iteration.
twins: env
	$(PYTHON) tools/analysis/shapes_twins.py

env:
	bash scripts/bootstrap.sh
