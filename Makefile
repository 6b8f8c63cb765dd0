# tagwatch: `make demo` sets up and runs the demo; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ASSETS := src/tagwatch/web/static/vendor/.stamp

.PHONY: setup assets test test-sqlite test-postgres demo lint bench clean

setup: $(STAMP) $(ASSETS)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

$(ASSETS): node_modules/.stamp src/tagwatch/web/assets.py
	$(BIN)/python -m tagwatch.web.assets node_modules
	touch $@

assets: $(ASSETS)

# The whole suite on SQLite, then again on PostgreSQL when TAGWATCH_TEST_POSTGRES_URL is set.
test: setup
	$(BIN)/pytest
	@if [ -n "$$TAGWATCH_TEST_POSTGRES_URL" ]; then \
		echo "== the suite again on PostgreSQL =="; \
		TAGWATCH_TEST_DATABASE_URL="$$TAGWATCH_TEST_POSTGRES_URL" $(BIN)/pytest -m "not backend_independent"; \
	else \
		echo "TAGWATCH_TEST_POSTGRES_URL is not set: the PostgreSQL run of the suite is skipped"; \
	fi

demo: setup
	$(BIN)/tagwatch demo

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: setup
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) node_modules src/tagwatch/web/static/vendor var
