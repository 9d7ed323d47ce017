# MedFlow developer commands. Only python3 (>= 3.11) is needed on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: run test lint bench install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/medflow migrate --verbosity 0
	$(BIN)/medflow demo load
	@echo "MedFlow on http://127.0.0.1:$(PORT)/  (API docs: /api/docs, log in as demo / demo)"
	$(BIN)/medflow runserver 127.0.0.1:$(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .

# The whole suite on SQLite; again on PostgreSQL (storage, services, HTTP) when
# MEDFLOW_TEST_POSTGRES_URL names a server.
test: $(STAMP)
	$(BIN)/ruff check .
	DATABASE_URL= $(BIN)/pytest
	@if [ -n "$$MEDFLOW_TEST_POSTGRES_URL" ]; then \
		echo "== again on PostgreSQL: $$MEDFLOW_TEST_POSTGRES_URL"; \
		DATABASE_URL="$$MEDFLOW_TEST_POSTGRES_URL" $(BIN)/pytest tests/integration tests/e2e; \
	else \
		echo "== PostgreSQL tests skipped: MEDFLOW_TEST_POSTGRES_URL is not set"; \
	fi

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var
