# Developer and CI entry points. `make test` is what CI runs (.ci/run).
PYTHON ?= python3
VENV := .venv
EMULATORS := .venv-emulators

.PHONY: venv test test-newest demo bench services clean

venv: $(VENV)/.stamp $(EMULATORS)/.stamp

# Rebuilt when a requirements file or setup.cfg changes; updates the venv in
# place (`make clean venv` starts from scratch).
$(VENV)/.stamp: $(wildcard requirements/ci.txt setup.cfg pyproject.toml)
	[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q -r requirements/ci.txt
	$(VENV)/bin/python -m pip install -q -e . --no-deps
	touch $@

# The Cloud Storage and BigQuery emulators, in a venv of their own so that their
# dependencies (pyarrow, numpy, duckdb) stay out of the exporter's processes. The
# last step installs DuckDB's spatial extension from its wheel: bqemulator would
# otherwise download it.
$(EMULATORS)/.stamp: requirements/emulators.txt
	[ -x $(EMULATORS)/bin/python ] || $(PYTHON) -m venv $(EMULATORS)
	$(EMULATORS)/bin/python -m pip install -q -r requirements/emulators.txt
	$(EMULATORS)/bin/python -c "import duckdb; from duckdb_extensions import import_extension; import_extension('spatial', con=duckdb.connect())"
	touch $@

test: venv
	.venv/bin/python -m pytest api/tests -q

# The pipeline, CLI and lock tests again on the newest rq / redis-py the package admits.
NEWEST := .venv-newest
$(NEWEST)/.stamp: $(wildcard requirements/ci.txt requirements/newest.txt setup.cfg pyproject.toml)
	[ -x $(NEWEST)/bin/python ] || $(PYTHON) -m venv $(NEWEST)
	$(NEWEST)/bin/python -m pip install -q -r requirements/ci.txt
	$(NEWEST)/bin/python -m pip install -q -r requirements/newest.txt
	$(NEWEST)/bin/python -m pip install -q -e . --no-deps
	touch $@

test-newest: $(NEWEST)/.stamp $(EMULATORS)/.stamp
	$(NEWEST)/bin/python -m pytest api/tests/test_pipeline.py api/tests/test_cli.py api/tests/test_lock.py api/tests/test_sweeper.py api/tests/test_faults.py -q

demo: venv
	.venv/bin/python -m api.demo

bench: venv
	.venv/bin/python -m bench

# PostgreSQL, MariaDB and Redis, if down.
services:
	bash .ci/services.sh

clean:
	rm -rf $(VENV) $(NEWEST) $(EMULATORS) .demo .bench .pytest_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
