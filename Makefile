# broker-hub — developer entry points. `make` (or `make help`) lists them.
# Thin on purpose: every target is one or two commands you could type yourself.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stamp

.DEFAULT_GOAL := help
.PHONY: help venv run test test-unit rabbitmq tools mirror-tools lint bench bench-bridge bench-scale bench-isolation clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

venv: $(STAMP) ## create .venv and install the hub with its dev extras (only when pyproject.toml changed)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: '$(PYTHON)' not found on PATH; broker-hub needs Python 3.11 or newer" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
		echo "error: broker-hub needs Python 3.11 or newer; '$(PYTHON)' is $$($(PYTHON) -V 2>&1). Try: make PYTHON=python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: venv ## run web + fetcher + deliverer in one process (memory broker, SQLite in var/, private addresses allowed)
	@mkdir -p var
	@echo "make run: HUB_ALLOW_PRIVATE_ADDRESSES=true (loopback/private topics and callbacks allowed, for trying the hub on one machine)"
	HUB_ALLOW_PRIVATE_ADDRESSES=true $(BIN)/broker-hub run

test: venv rabbitmq tools mirror-tools lint ## lint, the fast in-process layer, then the rest (needs RabbitMQ and PostgreSQL)
	$(BIN)/pytest -q tests/unit tests/inproc
	$(BIN)/pytest -q --ignore=tests/unit --ignore=tests/inproc

test-unit: venv ## only the fast layer: pure logic and in-process tests (no RabbitMQ, no subprocess)
	$(BIN)/pytest -q tests/unit tests/inproc

rabbitmq: ## make sure RabbitMQ answers on 127.0.0.1:5672 (installs/starts it if needed; also pokes PostgreSQL)
	bash scripts/ensure-rabbitmq.sh

tools: ## install what tests/ops needs if missing: promtool + prometheus, chromium (Debian packages)
	bash scripts/ensure-tools.sh

mirror-tools: ## devpi-server, proxpi, bandersnatch in .tools-venv/ (for tests/mirror and the bench)
	bash scripts/install-mirror-tools.sh

lint: venv ## ruff, mypy, and the import contracts (web and workers never import each other)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: venv mirror-tools ## run the benchmarks (bench, bench.bridge, bench.mirror, the isolation scenarios)
	$(BIN)/python -m bench
	$(BIN)/python -m bench.bridge
	$(BIN)/python -m bench.mirror
	$(BIN)/python -m bench.isolation_diff
	$(BIN)/python -m bench.isolation_stalls

bench-isolation: venv ## only the isolation scenarios: diff of duplicate entries, honest delays
	$(BIN)/python -m bench.isolation_diff
	$(BIN)/python -m bench.isolation_stalls

bench-bridge: venv ## only the PyPI bridge benchmark (python -m bench.bridge; --quick: a smoke run)
	$(BIN)/python -m bench.bridge

# SCALE_ARGS: e.g. SCALE_ARGS=--quick (smoke, ~4 min), SCALE_ARGS=--million, SCALE_ARGS="--only web"
bench-scale: venv rabbitmq ## scale-out under per-process CPU caps (python -m bench.scale; cgroups need root)
	$(BIN)/python -m bench.scale $(SCALE_ARGS)

clean: ## remove caches, build artefacts and var/ (keeps .venv)
	rm -rf .pytest_cache .ruff_cache .hypothesis build dist var
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
