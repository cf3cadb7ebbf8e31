# The README's two set-up commands are `make up` and `make test`; both install on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install up test test-fast lint contracts slither demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml package.json package-lock.json
	@command -v node >/dev/null || { echo "node (>= 18) is required for the Solidity compiler (solc-js)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	npm ci --no-audit --no-fund --loglevel=error
	touch $(STAMP)

# make up API_PORT=8080 RPC_PORT=9545 P2P_PORT=31303 DATA_DIR=data2 (validator i uses RPC_PORT+i-1, P2P_PORT+i-1)
API_PORT ?= 8000
RPC_PORT ?= 8545
P2P_PORT ?= 30303
DATA_DIR ?= data

up: install
	@$(VENV)/bin/traceledger network up --api-port $(API_PORT) --rpc-port $(RPC_PORT) --p2p-port $(P2P_PORT) \
		--data-dir $(DATA_DIR)

# The whole suite in two passes: the tests without validator processes over TEST_WORKERS pytest-xdist processes
# (one module per worker at a time), then the integration tests (validator networks) over INTEGRATION_WORKERS
# (default 2; tests/conftest.py's xdist_group keeps a module, or all modules on the shared network, on one
# worker; INTEGRATION_WORKERS=1 runs them in plain pytest, one at a time).
TEST_WORKERS ?= 2
INTEGRATION_WORKERS ?= 2
INTEGRATION_XDIST = $(if $(filter-out 1,$(INTEGRATION_WORKERS)),-n $(INTEGRATION_WORKERS) --dist loadgroup,)

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadscope -m "not integration"
	$(VENV)/bin/pytest -q $(INTEGRATION_XDIST) -m integration

test-fast: install
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadscope -m "not integration"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

contracts: install
	$(VENV)/bin/traceledger contracts compile

# Slither (own venv) on the contracts via the solc-js CLI wrapper scripts/solc; triage in contracts/AUDIT.md
slither: install
	scripts/slither.sh

demo: install
	$(VENV)/bin/traceledger demo

# Throughput report: throwaway network + API, locust suites, micro-benchmarks -> bench/report.md, bench/report.json
bench: install
	$(VENV)/bin/traceledger bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) node_modules data .pytest_cache .ruff_cache
