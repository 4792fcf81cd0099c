# Two commands: `make run` (console on the embedded sandbox) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= config.example.toml

.PHONY: run test lint bench sandbox-stop clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/killswitch --config $(CONFIG) sandbox start
	$(BIN)/killswitch --config $(CONFIG) demo

test: $(STAMP)
	$(BIN)/ruff check console adapters tests benchmarks
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check console adapters tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/engine.py

sandbox-stop: $(STAMP)
	$(BIN)/killswitch --config $(CONFIG) sandbox stop

clean:
	rm -rf $(VENV) .sandbox
