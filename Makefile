# flinksched: `make demo` runs the scheduler with the example job on a local stack,
# `make test` runs every test. Both set themselves up (virtualenv, Flink, ZooKeeper).
# `make check` is the quick one between edits: no servers, under a minute.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# Test processes: most tests wait on servers, so twice as many as cores keep both busy
# (three left a third of the machine idle; bench/README.md has the figures).
TEST_WORKERS ?= 4
LINTED := common scheduler worker tests bench

.PHONY: demo demo-alerts down status test check chaos bench lint typecheck lock clean listener

$(BIN)/flinksched: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q --upgrade pip
	$(BIN)/pip install --disable-pip-version-check -q -e '.[dev]'
	$(BIN)/python -m scheduler.devstack.htmx  # the portal's, from the npm registry
	touch $@

demo: $(BIN)/flinksched
	$(BIN)/flinksched dev up

demo-alerts: $(BIN)/flinksched  # the demo plus Prometheus with the alert rules on :9090
	$(BIN)/flinksched dev up --prometheus

down: $(BIN)/flinksched
	$(BIN)/flinksched dev down

status: $(BIN)/flinksched
	$(BIN)/flinksched status

listener: $(BIN)/flinksched  # build/flinksched-listener.jar, for a Flink image's lib/ (docs/push.md)
	$(BIN)/flinksched dev build-listener

test: $(BIN)/flinksched
	$(BIN)/ruff check $(LINTED)
	$(BIN)/lint-imports
	@# mypy checks while the test stacks are prepared (Flink, PyFlink, jars: downloads and
	@# builds on a new machine, outside any test's timeout) and the tests start their servers
	$(BIN)/mypy & typing=$$!; \
	$(BIN)/python -m tests.prepare && \
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS); tests=$$?; \
	wait $$typing && exit $$tests

check: $(BIN)/flinksched  # ruff, the import contracts, mypy, unit and model tests
	$(BIN)/ruff check $(LINTED)
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -n 2 tests/unit tests/model $(PYTEST_ARGS)

chaos: $(BIN)/flinksched  # the long chaos run; prints the table, writes build/chaos-report.md
	FLINKSCHED_CHAOS_FAULTS=$${FLINKSCHED_CHAOS_FAULTS:-200} $(BIN)/python -m pytest -m chaos \
	  -p no:cacheprovider -s --timeout 0 tests/chaos

bench: $(BIN)/flinksched  # every benchmark: bench/results/<date>.json and .md, bench/README.md
	$(BIN)/python -m bench.run_all

lint: $(BIN)/flinksched
	$(BIN)/ruff check $(LINTED)
	$(BIN)/lint-imports

typecheck: $(BIN)/flinksched
	$(BIN)/mypy

lock:  # requirements.lock: the image's pinned runtime dependencies, from pyproject.toml
	rm -rf build/lock-venv && $(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/pip install --disable-pip-version-check -q .
	{ sed -n '1,2p' requirements.lock; build/lock-venv/bin/pip freeze --exclude flinksched; } \
	  > requirements.lock.new && mv requirements.lock.new requirements.lock

clean: down
	rm -rf $(VENV) build .flinksched-dev
