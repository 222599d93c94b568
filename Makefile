# Two commands do all the set-up on a fresh machine:
#   make demo   # local control plane + operator + sidecar + an app, watch a prompt change live
#   make test   # the whole test suite (builds what is missing first)

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: help venv system-packages binaries demo demo-node demo-down test test-deps unit integration lint sizes clean chart-crd manifests bench bench-quick reliability dist bump chart-readme flags-doc

help:
	@echo "make demo        run the whole chain on a local control plane"
	@echo "make test        run every test (unit, integration, end to end)"
	@echo "make unit        unit tests only (seconds, no cluster)"
	@echo "make lint        ruff, mypy, import contracts, release checks, sizes"
	@echo "make sizes       modules under 450 lines, functions under 60 (or a reason)"
	@echo "make demo-node   the same on a real node: image, helm install, injected pod (root)"
	@echo "make demo-down   stop the demo's cluster"
	@echo "make reliability run the reliability suite, regenerate docs/reliability.md"
	@echo "make dist        every release artifact into dist/ (IMAGE=registry/name:tag)"
	@echo "make bump VERSION=x.y.z   write a new version into every file that carries it"

# The product's four distributions, editable: the contract (standard library
# only), which the client, the sidecar and the operator each require; the dev
# tools; and the local cluster harness (hack/control-plane, `prompt-cluster`).
$(STAMP): pyproject.toml contract/pyproject.toml client/pyproject.toml sidecar/pyproject.toml hack/control-plane/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e contract -e client -e sidecar -e '.[dev]' -e hack/control-plane
	@touch $@

venv: $(STAMP)

# Debian packages the real node and the image build need: the OCI runtime, CNI
# plugins, kube-proxy's iptables and conntrack, and the image tools. Installed
# only when one is missing (CI is a clean Debian machine, run as root).
NODE_PACKAGES = runc containernetworking-plugins iptables conntrack umoci mmdebstrap buildah
system-packages:
	@missing=$$(for p in $(NODE_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		apt-get -o DPkg::Lock::Timeout=900 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends $$missing; \
	fi

# Builds kube-apiserver, kube-controller-manager, etcd, helm and the real node's
# kubelet, kube-scheduler, kube-proxy, containerd and CoreDNS from their Go
# modules into ~/.cache/prompt-operator/bin, and meanwhile the images into
# ~/.cache/prompt-operator/images (once; later runs reuse them).
binaries: $(STAMP) system-packages
	$(BIN)/prompt-cluster build --node --images

demo: binaries
	$(BIN)/python hack/demo.py

# The same story as a user installs it: images built here, a real node, helm
# install, an injected app pod. Needs root; the first run builds for a while.
demo-node: binaries
	$(BIN)/python hack/demo_node.py

demo-down: $(STAMP)
	$(BIN)/prompt-cluster down

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

# The release workflow too: actionlint (built once from its Go module into
# ~/.cache/prompt-operator/bin) with shellcheck on its scripts.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m prompt_cluster.release check
	$(BIN)/python -m prompt_cluster.release actionlint
	@$(MAKE) --no-print-directory sizes

# The size rule (prompt_cluster/sizes.py): product modules under 450 lines and
# functions under 60, unless a `# size: <reason>` comment says why; the
# offenders it found on arrival are in prompt_cluster/size_debt.txt.
sizes: $(STAMP)
	$(BIN)/python -m prompt_cluster.sizes

clean:
	rm -rf $(VENV) build *.egg-info dist

# The chart ships crds/prompts.yaml; keep its copy and the static manifest current.
chart-crd:
	cp crds/prompts.yaml charts/prompt-operator/files/prompts.yaml

# deploy/install.yaml takes its image from the chart (image.repository at
# appVersion); IMAGE=registry/name:tag renders it for another image.
IMAGE ?=
manifests: binaries chart-crd
	$(BIN)/python -m prompt_cluster.manifests $(if $(IMAGE),--image=$(IMAGE)) > deploy/install.yaml

# Release artifacts into dist/: wheels and sdists of the four distributions
# (twine check --strict), the chart (helm package), the image as an OCI
# archive, install.yaml for IMAGE (default: the chart's image at VERSION)
# and SHA256SUMS. .github/workflows/release.yml publishes exactly these.
dist: $(STAMP) system-packages
	$(BIN)/python -m prompt_cluster.release dist --out dist $(if $(IMAGE),--image=$(IMAGE))

# The version lives in VERSION; this writes it into every copy (pyprojects,
# chart, Dockerfile, __version__, install.yaml, CHANGELOG, chart README).
bump: $(STAMP)
	@test -n "$(VERSION)" || { echo "usage: make bump VERSION=x.y.z"; exit 2; }
	$(BIN)/python -m prompt_cluster.release bump $(VERSION)

# charts/prompt-operator/README.md (`helm show readme`) from values.schema.json.
chart-readme: $(STAMP)
	$(BIN)/python -m prompt_cluster.release chart-readme

# docs/configuration.md's flag tables from the commands' FLAGS declarations.
flags-doc: $(STAMP)
	$(BIN)/python -m prompt_cluster.flagdocs

# Benchmarks print their numbers and write bench/results/; they never fail on speed.
BENCH_STAMP = $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	@touch $@

bench: binaries $(BENCH_STAMP)
	$(BIN)/python -m bench

bench-quick: binaries $(BENCH_STAMP)
	$(BIN)/python -m bench --quick

# Every case of the reliability and security suite (faults, bad input, forged
# requests, RBAC, files), then docs/reliability.md regenerated from the results.
reliability: binaries
	$(BIN)/pytest tests -m reliability --reliability-report=docs/reliability.md
