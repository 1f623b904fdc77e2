# The two commands of the README: `make run` (set up, run the default job) and `make test`.
PYTHON := .venv/bin/python

.PHONY: setup run test
setup:
	bash jobs/setup.sh

run: setup
	bash jobs/run.sh configs/default.yaml --overwrite
	$(PYTHON) analysis/plot_field.py results/default.h5 -o results/default.png

test: setup
	$(PYTHON) -m pytest $(PYTEST_ARGS)
