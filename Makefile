# Two commands do all the set-up on a fresh machine:
#   make demo   # local control plane + operator + sidecar + an app, watch a prompt change live
#   make test   # the whole test suite (builds what is missing first)

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: help venv binaries demo demo-down test test-deps unit integration lint clean chart-crd manifests bench bench-quick reliability

help:
	@echo "make demo        run the whole chain on a local control plane"
	@echo "make test        run every test (unit, integration, end to end)"
	@echo "make unit        unit tests only (seconds, no cluster)"
	@echo "make lint        ruff and mypy"
	@echo "make demo-down   stop the demo's cluster"
	@echo "make reliability run the reliability suite, regenerate docs/reliability.md"

$(STAMP): pyproject.toml client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

venv: $(STAMP)

# Builds kube-apiserver, kube-controller-manager, etcd and helm from their Go
# modules into ~/.cache/prompt-operator/bin (once; later runs reuse them).
binaries: $(STAMP)
	$(BIN)/prompt-operator cluster build

demo: binaries
	$(BIN)/python hack/demo.py

demo-down: $(STAMP)
	$(BIN)/prompt-operator cluster down

# Debian's chromium + chromium-driver (console browser tests) and prometheus,
# installed from the distribution's archive when missing.
test-deps:
	bash hack/test-deps.sh

test: binaries test-deps
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: binaries test-deps
	$(BIN)/pytest tests/integration

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build *.egg-info

# The chart ships crds/prompts.yaml; keep its copy and the static manifest current.
chart-crd:
	cp crds/prompts.yaml charts/prompt-operator/files/prompts.yaml

manifests: binaries chart-crd
	$(BIN)/python -m prompt_cluster.manifests > deploy/install.yaml

# Benchmarks print their numbers and write bench/results/; they never fail on speed.
bench: binaries
	$(BIN)/python -m bench

bench-quick: binaries
	$(BIN)/python -m bench --quick

# Every case of the reliability and security suite (faults, bad input, forged
# requests, RBAC, files), then docs/reliability.md regenerated from the results.
reliability: binaries
	$(BIN)/pytest tests -m reliability --reliability-report=docs/reliability.md
