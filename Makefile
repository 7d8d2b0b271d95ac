# Defendable — `make help` lists the targets.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.DEFAULT_GOAL := help
.PHONY: help install browser demo up down status test lint typecheck check bench clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed (set PY=python3.11)")'
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q -e '.[stack,dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP) browser ## Create .venv and install the project with its servers and test tools

browser: ## Install Debian's Chromium for the receipt page's browser tests, unless it is there
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

demo: install ## Start the local stack and push one real Agent Work run through it
	@$(BIN)/python -m defendable_stack demo

up: install ## Start the local stack (servers + the services and the witness) and leave it running
	@$(BIN)/python -m defendable_stack up --wait

down: ## Stop the local stack (data is kept in .stack/)
	@test -x $(BIN)/python && $(BIN)/python -m defendable_stack down || true

status: ## Show which parts of the local stack are running
	@$(BIN)/python -m defendable_stack status

test: install ## Run the whole suite against real servers it starts itself
	@$(BIN)/python -m pytest

lint: install ## ruff lint and format check
	@$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: install ## mypy --strict over every package and the tests
	@$(BIN)/mypy libs services deploy tests bench examples

check: lint typecheck test ## Everything CI cares about

bench: install ## Run the benchmark; writes bench/results/latest.json
	@$(BIN)/python -m bench

clean: down ## Remove the venv and local stack data
	rm -rf $(VENV) .stack .pytest_cache .mypy_cache .ruff_cache
