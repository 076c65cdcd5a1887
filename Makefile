# Coinswarm: two commands on a fresh machine.
#   make demo   the whole pipeline on embedded stores over the bundled real data (no network, no key)
#   make test   the test suite, installing what it needs
# Python packages come from uv.lock; Debian packages the tests need are installed below.

PYTHON ?= python3
UV := $(PYTHON) -m uv
VENV := .venv
BIN := $(VENV)/bin
export COINSWARM_HOME ?= $(CURDIR)/.coinswarm
export DAGSTER_HOME ?= $(COINSWARM_HOME)/dagster
# Debian packages the integration tests run: real servers (InfluxDB 1.6.7 for the tick store,
# NATS, Prometheus) and docker-compose, which validates docker-compose.yml without an engine.
TEST_DEBS := influxdb nats-server prometheus docker-compose

.PHONY: setup demo ui test test-fast system-deps lint stop clean

setup: $(VENV)/.synced

$(VENV)/.synced: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check \
	  --user --break-system-packages "uv>=0.5"
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

demo: setup
	$(BIN)/coinswarm demo

ui: setup
	$(BIN)/coinswarm dagster-home >/dev/null
	$(BIN)/dagster dev -w workspace.yaml

system-deps:
	@missing=""; for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; if [ "$$(id -u)" != 0 ]; then \
	    command -v sudo >/dev/null || { echo "need root or sudo to install:$$missing" >&2; exit 1; }; \
	    SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

test: setup system-deps
	$(BIN)/pytest

test-fast: setup
	$(BIN)/pytest -m "not integration and not e2e"

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

stop: setup
	$(BIN)/coinswarm stop

clean: stop
	rm -rf $(COINSWARM_HOME) transforms/target
