# Two commands: `make run` (console on the embedded sandbox) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= config.example.toml
# nft, squid and ip live in sbin; make sure the tests find them whatever PATH CI has.
export PATH := $(PATH):/usr/sbin:/sbin

.PHONY: run test lint bench peers sandbox-stop clean

# Debian packages the tests drive directly, as command:package (the sqlite3 CLI tampers with
# the audit trail; nft blocks egress in network namespaces; squid is the forward proxy;
# pgbouncer is the transaction pooler the shared store must refuse). PostgreSQL's server
# binaries (Unleash's database and the shared store) are checked by their initdb.
SYSTEM_TOOLS := sqlite3:sqlite3 nft:nftables squid:squid tmux:tmux pgbouncer:pgbouncer

$(STAMP): pyproject.toml scripts/install-unleash.sh
	@for t in $(SYSTEM_TOOLS); do command -v $${t%%:*} >/dev/null || MISSING="$$MISSING $${t##*:}"; done; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || MISSING="$$MISSING postgresql"; \
	if [ -n "$$MISSING" ]; then apt-get update -qq && apt-get install -y -qq $$MISSING; fi
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,sandbox]'
	sh scripts/install-unleash.sh
	$(BIN)/python -m compileall -q console adapters  # start-up: bytecode even with PYTHONDONTWRITEBYTECODE
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/killswitch --config $(CONFIG) sandbox start
	$(BIN)/killswitch --config $(CONFIG) --exercise

# The engine, CLI and store suites run twice: on SQLite (the embedded default) and on a real
# PostgreSQL the tests start themselves (the shared store; see tests/conftest.py).
PG_SUITES := tests/engine tests/cli tests/store

test: $(STAMP)
	$(BIN)/ruff check console adapters tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest -q
	KILLSWITCH_TEST_STORE=postgresql $(BIN)/pytest -q $(PG_SUITES)

lint: $(STAMP)
	$(BIN)/ruff check console adapters tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/engine.py

# Cloud Custodian pins older boto3/botocore than ours: it gets a venv of its own.
CUSTODIAN ?= .venv-c7n/bin/custodian
$(CUSTODIAN):
	$(PY) -m venv .venv-c7n && .venv-c7n/bin/pip install -q 'c7n>=0.9'

peers: $(STAMP) $(CUSTODIAN)
	$(BIN)/python benchmarks/peers.py --custodian $(CUSTODIAN) --linear

sandbox-stop: $(STAMP)
	$(BIN)/killswitch --config $(CONFIG) sandbox stop

clean:
	rm -rf $(VENV) .venv-c7n .sandbox
