# The README's commands: `make run` (set up, run the default job) and `make test` (tests/suite.sh); and `make mutate`,
# mutation testing of the core modules against their fast tests (.ci/mutate.py; MODULES="grid halo" for some).
PYTHON := .venv/bin/python

.PHONY: setup run test mutate
setup:
	bash jobs/setup.sh

run: setup
	bash jobs/run.sh configs/default.yaml --overwrite
	$(PYTHON) analysis/plot_field.py results/default.h5 -o results/default.png

test: setup
	PYTHON=$(PYTHON) bash tests/suite.sh $(PYTEST_ARGS)

mutate: setup
	nice -n 19 $(PYTHON) .ci/mutate.py $(MODULES)
