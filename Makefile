# pnc-pki — two-command quick start: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck check pg-test docs oracle clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

## Serve on 127.0.0.1:8080 with SQLite under ./var; creates a development PKI and var/admin-token on first start.
run: $(STAMP)
	$(BIN)/pnc serve

ORACLE := .oracle-venv/.ready

# The independent peers: the EXIficient oracle and Josev as the EV (Java + the iso15118 wheel, own venvs). Best effort: without Java the oracle
# tests skip loudly instead of failing the run.
$(ORACLE): tests/oracle/setup_oracle.sh tests/interop/setup_josev.sh
	-bash tests/oracle/setup_oracle.sh && touch $(ORACLE)
	-bash tests/interop/setup_josev.sh

oracle: $(ORACLE)

## The whole suite (tests needing optional peers — Java oracle, SoftHSM — skip loudly when absent).
test: $(STAMP) $(ORACLE)
	$(BIN)/python -m pytest -q -p no:cacheprovider

## Storage tests again on PostgreSQL (CI does this after `make test`).
pg-test: $(STAMP)
	PNC_DATABASE_URL=$${PNC_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test} \
	  $(BIN)/python -m pytest -q -p no:cacheprovider -m storage

lint: $(STAMP)
	$(BIN)/ruff check pki api tests

typecheck: $(STAMP)
	$(BIN)/mypy --strict pki

check: lint typecheck test

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

## Regenerate the generated parts of docs/ (CLI reference, profile table).
docs: $(STAMP)
	$(BIN)/typer api.cli.main utils docs --name pnc --output docs/cli.md
	$(BIN)/python -c "import re,pathlib; from pki.profiles.table import markdown_table as t; p=pathlib.Path('docs/profiles.md'); s=p.read_text(); p.write_text(re.sub(r'(<!-- profiles-table:begin -->\n).*(<!-- profiles-table:end -->)', lambda m: m.group(1)+t()+m.group(2), s, flags=re.S))"
