# Developer and CI entry points. `make test` is what CI runs (.ci/run).
PYTHON ?= python3
VENV := .venv
EMULATORS := .venv-emulators

.PHONY: venv test test-newest test-install demo bench services clean

venv: $(VENV)/.stamp $(EMULATORS)/.stamp

# Rebuilt when a requirements file or setup.cfg changes; updates the venv in
# place (`make clean venv` starts from scratch).
$(VENV)/.stamp: $(wildcard requirements/ci.txt setup.cfg pyproject.toml)
	[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q -r requirements/ci.txt
	$(VENV)/bin/python -m pip install -q -e . --no-deps
	touch $@

# The Cloud Storage and BigQuery emulators, in a venv of their own so that their
# dependencies (pyarrow, numpy, duckdb) stay out of the exporter's processes. Their one
# list is bq_etl/emulators.txt (shipped with the package for `flask export dev`;
# requirements/emulators.txt includes it). DuckDB's spatial extension is installed from
# its wheel each time the emulators start (bq_etl/local.py, ensure_duckdb_spatial).
$(EMULATORS)/.stamp: requirements/emulators.txt bq_etl/emulators.txt
	[ -x $(EMULATORS)/bin/python ] || $(PYTHON) -m venv $(EMULATORS)
	$(EMULATORS)/bin/python -m pip install -q -r requirements/emulators.txt
	touch $@

# test_install.py builds venvs of its own: `make test-install` runs it.
test: venv
	.venv/bin/python -m pytest api/tests -q --ignore=api/tests/test_install.py

# A host app's pins (requirements/host.txt, psycopg 3.1 among them) in a fresh venv, then bq-etl
# from a wheel of this checkout: fails if pip changed a pin; then the host app follows the guide,
# exports through `flask export dev`'s emulators, and exports from PostgreSQL through the fast
# path on the host's psycopg 3.1 (api/tests/test_install.py).
test-install: venv
	.venv/bin/python -m pytest api/tests/test_install.py -q

# The pipeline, CLI and lock tests again on the newest rq / redis-py the package admits.
NEWEST := .venv-newest
$(NEWEST)/.stamp: $(wildcard requirements/ci.txt requirements/newest.txt setup.cfg pyproject.toml)
	[ -x $(NEWEST)/bin/python ] || $(PYTHON) -m venv $(NEWEST)
	$(NEWEST)/bin/python -m pip install -q -r requirements/ci.txt
	$(NEWEST)/bin/python -m pip install -q -r requirements/newest.txt
	$(NEWEST)/bin/python -m pip install -q -e . --no-deps
	touch $@

test-newest: $(NEWEST)/.stamp $(EMULATORS)/.stamp
	$(NEWEST)/bin/python -m pytest api/tests/test_pipeline.py api/tests/test_cli.py api/tests/test_lock.py api/tests/test_sweeper.py api/tests/test_faults.py api/tests/test_worker.py -q

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
