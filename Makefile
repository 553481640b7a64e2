# Two commands set up everything on a fresh machine:
#   make run   - create .venv, install flowcap, start the collector (UDP 23456, ./flows)
#   make test  - create .venv, install flowcap with its test extra, lint, run every test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: test run lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check .

run: $(STAMP)
	exec $(BIN)/flowcapd

bench: $(STAMP)
	$(BIN)/python -m bench decode

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
