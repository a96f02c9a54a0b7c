# Developer and CI entry points. `make test` is what CI runs (.ci/run).
PYTHON ?= python3
VENV := .venv

.PHONY: venv test test-newest demo bench services clean

venv: $(VENV)/.stamp

# Rebuilt when a requirements file or setup.cfg changes; updates the venv in
# place (`make clean venv` starts from scratch). The last step installs DuckDB's
# spatial extension from its wheel: bqemulator would otherwise download it.
$(VENV)/.stamp: $(wildcard requirements/*.txt setup.cfg pyproject.toml)
	[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q -r requirements/ci.txt -r requirements/emulators.txt
	if [ -f setup.cfg ]; then $(VENV)/bin/python -m pip install -q -e . --no-deps; fi
	$(VENV)/bin/python -c "from api.demo.services import ensure_duckdb_spatial; ensure_duckdb_spatial()"
	touch $@

test: venv
	.venv/bin/python -m pytest api/tests -q

# The pipeline, CLI and lock tests again on the newest rq / redis-py the package admits.
NEWEST := .venv-newest
$(NEWEST)/.stamp: $(wildcard requirements/*.txt setup.cfg pyproject.toml)
	[ -x $(NEWEST)/bin/python ] || $(PYTHON) -m venv $(NEWEST)
	$(NEWEST)/bin/python -m pip install -q -r requirements/ci.txt -r requirements/emulators.txt
	$(NEWEST)/bin/python -m pip install -q -r requirements/newest.txt
	$(NEWEST)/bin/python -m pip install -q -e . --no-deps
	$(NEWEST)/bin/python -c "from api.demo.services import ensure_duckdb_spatial; ensure_duckdb_spatial()"
	touch $@

test-newest: $(NEWEST)/.stamp
	$(NEWEST)/bin/python -m pytest api/tests/test_pipeline.py api/tests/test_cli.py api/tests/test_lock.py -q

demo: venv
	.venv/bin/python -m api.demo

bench: venv
	.venv/bin/python -m bench

# PostgreSQL, MariaDB and Redis, if down.
services:
	bash .ci/services.sh

clean:
	rm -rf $(VENV) $(NEWEST) .demo .bench .pytest_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
