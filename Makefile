# ferrotrace: `make demo` and `make test` are all a fresh machine needs (see README).
.DEFAULT_GOAL := help
SHELL := /bin/bash

PY311 ?= python3.11
VENV := .venv
VENV313 := .venv313
CACHE ?= $(HOME)/.cache/ferrotrace
export FERROTRACE_CACHE := $(CACHE)
# Build and unit-test the crate against 3.11 unless told otherwise.
export PYO3_PYTHON ?= $(shell command -v $(PY311))

.PHONY: help demo test lint rust-test py-test py-test-311 py-test-313 conformance \
        build build-311 build-313 bench bench-quick clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "} {printf "  make %-14s %s\n", $$1, $$2}'

# A venv is up to date when its stamp file is newer than its requirements. (Not bin/python:
# that is a symlink, so `touch` would stamp the interpreter it points to, shared by every venv.)
$(VENV)/.installed: requirements-dev.txt
	[ -x $(VENV)/bin/python ] || $(PY311) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	touch $@

$(VENV313)/.installed: requirements-test.txt scripts/provide-python313.sh
	py=$$(scripts/provide-python313.sh | tail -n 1) && "$$py" -m venv --clear $(VENV313)
	$(VENV313)/bin/pip install -q -r requirements-test.txt
	touch $@

build-311: $(VENV)/.installed ## Build the extension for 3.11 and install it into .venv
	CARGO_TARGET_DIR=target/py311 $(VENV)/bin/maturin build --release -q \
	  -i $(VENV)/bin/python --out target/wheels/py311
	$(VENV)/bin/pip install -q --force-reinstall --no-deps target/wheels/py311/ferrotrace-*-cp311-*.whl

build-313: $(VENV)/.installed $(VENV313)/.installed ## Build CPython 3.13 if needed, then the extension into .venv313
	CARGO_TARGET_DIR=target/py313 PYO3_PYTHON=$(abspath $(VENV313))/bin/python \
	  $(VENV)/bin/maturin build --release -q -i $(VENV313)/bin/python --out target/wheels/py313
	$(VENV313)/bin/pip install -q --force-reinstall --no-deps target/wheels/py313/ferrotrace-*-cp313-*.whl

build: build-311 build-313 ## Build and install for both interpreters

demo: build-311 ## Trace the bundled examples and show their events
	$(VENV)/bin/python examples/demo.py
	@echo; echo '== ferrotrace trace --function "Cart.*" examples/checkout.py 3 =='
	$(VENV)/bin/ferrotrace trace --color never --function 'Cart.*' examples/checkout.py 3

lint: $(VENV)/.installed $(VENV313)/.installed ## cargo fmt --check, clippy -D warnings (3.11 and 3.13 code), ruff
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	CARGO_TARGET_DIR=target/py313 PYO3_PYTHON=$(abspath $(VENV313))/bin/python \
	  cargo clippy --all-targets -- -D warnings
	$(VENV)/bin/ruff check python tests benchmarks examples
	$(VENV)/bin/ruff format --check python tests benchmarks examples

rust-test: ## Rust unit tests
	cargo test --quiet

py-test-311: build-311 ## pytest on 3.11
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

py-test-313: build-313 ## pytest on 3.13
	$(VENV313)/bin/python -m pytest $(PYTEST_ARGS)

py-test: py-test-311 py-test-313

conformance: build ## Only CPython's own suites (stock vs ferrotrace) on 3.11 and 3.13
	$(VENV)/bin/python -m pytest tests/test_conformance.py
	$(VENV313)/bin/python -m pytest tests/test_conformance.py

test: lint rust-test py-test ## Everything CI runs

# The tools the benchmarks compare with (hunter, viztracer, trace0), in both venvs. hunter's
# .pth imports hunter in every interpreter of the venv (only to honour PYTHONHUNTER), which
# would slow down the plain-python baselines and the tests' children: it is removed.
BENCH_TOOLS := $(VENV)/.bench-tools $(VENV313)/.bench-tools
$(VENV)/.bench-tools $(VENV313)/.bench-tools: %/.bench-tools: %/.installed benchmarks/requirements.txt
	$*/bin/pip install -q -r benchmarks/requirements.txt
	rm -f $*/lib/python*/site-packages/hunter.pth
	touch $@

BENCH_PYTHONS := --python $(VENV)/bin/python --python $(VENV313)/bin/python
BENCH_QUICK := --workload richards --workload calls --rounds 5

bench: build $(BENCH_TOOLS) ## Every benchmark table on both interpreters (not a test; about 20 minutes)
	$(VENV)/bin/python benchmarks/run.py $(BENCH_PYTHONS)
	$(VENV)/bin/python benchmarks/whole_process.py $(BENCH_PYTHONS)
	$(VENV)/bin/python benchmarks/check_hot_events.py
	$(VENV313)/bin/python benchmarks/check_hot_events.py

bench-quick: build $(BENCH_TOOLS) ## The same on two workloads (richards, calls), 5 rounds
	$(VENV)/bin/python benchmarks/run.py $(BENCH_PYTHONS) $(BENCH_QUICK)
	$(VENV)/bin/python benchmarks/whole_process.py $(BENCH_PYTHONS) $(BENCH_QUICK)
	$(VENV)/bin/python benchmarks/check_hot_events.py --workload richards --workload calls
	$(VENV313)/bin/python benchmarks/check_hot_events.py --workload richards --workload calls

clean: ## Remove build output and venvs (keeps the CPython 3.13 cache)
	rm -rf target $(VENV) $(VENV313) dist
