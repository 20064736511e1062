# nodegate: `make demo`, `make test`, `make lint`. Run as root on Debian 12.
# Every target that needs Python depends on `setup`, which is idempotent and
# fast when there is nothing to do (see scripts/setup.sh).

SHELL := /bin/bash
.DEFAULT_GOAL := test

VENV := .venv
PY   := $(VENV)/bin/python

# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-k maglev -x"`.
PYTEST_ARGS ?=
# `make demo KEEP=1` leaves the demo's namespaces and processes up.
KEEP ?=

.PHONY: setup test lint demo conformance bench clean distclean

setup:
	@bash scripts/setup.sh

# pytest's exit status 5 (no tests collected) fails this target like any other
# non-zero status: an empty run is not a pass.
# NODEGATE_L7_NATIVE=required: the tests run l7 as `make setup` compiled it, and
# tests/l7/test_l7_native.py fails if any of its modules was imported uncompiled.
test: setup
	NODEGATE_L7_NATIVE=required $(PY) -m pytest $(PYTEST_ARGS)

PACKAGES := agent bpf l7 lab

# Every check runs; the target fails if any of them failed.
# import-linter does not see a folder without __init__.py (its modules are
# left out of every contract), hence the first check.
lint: setup
	@rc=0; \
	echo "+ every folder of Python in $(PACKAGES) has an __init__.py"; \
	for d in $$(find $(PACKAGES) -name '*.py' -printf '%h\n' 2>/dev/null | sort -u); do \
		[[ -f $$d/__init__.py ]] || { echo "$$d/ has no __init__.py"; rc=1; }; \
	done; \
	echo "+ ruff check";          $(VENV)/bin/ruff check . || rc=1; \
	echo "+ ruff format --check"; $(VENV)/bin/ruff format --check . || rc=1; \
	echo "+ mypy $(PACKAGES)";    $(VENV)/bin/mypy $(PACKAGES) || rc=1; \
	echo "+ lint-imports";        $(VENV)/bin/lint-imports || rc=1; \
	exit $$rc

demo: setup
	KEEP="$(KEEP)" $(PY) -m lab.demo

conformance: setup
	$(PY) -m lab.conformance

# Benchmarks against peers, side by side (not tests: numbers, printed and in out/).
# The peers are Debian packages, installed here when missing.
BENCH_PACKAGES := nginx libnginx-mod-stream haproxy wrk iperf3
bench: setup
	@missing=$$(for p in $(BENCH_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "+ apt-get install $$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing >/dev/null \
		|| { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing >/dev/null; }; \
	fi
	$(PY) -m bench.l7
	$(PY) bench/l4/run.py

# Caches, stamps, reports and l7's compiled modules; keeps .venv (see distclean).
clean:
	-$(PY) scripts/build_native.py --clean
	find . -path ./$(VENV) -prune -o -type d \
		\( -name __pycache__ -o -name '*.egg-info' \) -print0 | xargs -0 rm -rf
	rm -rf .mypy_cache .ruff_cache .pytest_cache .stamps build dist out

distclean: clean
	rm -rf $(VENV)
