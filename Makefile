# irsa-webhook: the single entry point for humans and CI. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8443
METRICS_PORT ?= 9999
# Where `make envtest` caches kube-apiserver, etcd and kubectl (the controller-runtime layout).
ENVTEST_DIR := .cache/envtest
ENVTEST_ASSETS = $${KUBEBUILDER_ASSETS:-$(CURDIR)/$(ENVTEST_DIR)/bin}
# Where `make node` caches the node's binaries (bin/) and images (images/); IRSA_NODE_ASSETS and
# IRSA_NODE_IMAGES point elsewhere (CI keeps them in a persistent cache).
NODE_DIR := .cache/node
NODE_ENV = IRSA_NODE_ASSETS="$${IRSA_NODE_ASSETS:-$(CURDIR)/$(NODE_DIR)/bin}" IRSA_NODE_IMAGES="$${IRSA_NODE_IMAGES:-$(CURDIR)/$(NODE_DIR)/images}"

# uv installs every Python dependency from uv.lock (versions and hashes). The Makefile brings uv
# itself: the version pinned with its hashes in .ci/requirements-uv.txt, into .cache/uv, with nothing but
# $(PYTHON) and the package index. uv uses $(PYTHON), never an interpreter it downloads, and this
# project's .venv whatever venv the shell has active.
UV_DIR := .cache/uv
UV := $(UV_DIR)/bin/uv
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
unexport VIRTUAL_ENV

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

$(UV): .ci/requirements-uv.txt
	rm -rf $(UV_DIR)
	$(PYTHON) -m venv $(UV_DIR)
	$(UV_DIR)/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps --only-binary=:all: \
		--requirement .ci/requirements-uv.txt
	@touch $@

.PHONY: uv
uv: $(UV) ## Install the pinned uv into .cache/uv (every install target does this first)

# Two stamps, both keyed on uv.lock and pyproject.toml: `make run` needs only the runtime
# dependencies (seconds to install); tests and lint need the dev group too. --inexact: a runtime
# sync leaves the dev tools of an earlier `make install` in place. --locked: install exactly what
# uv.lock says, and stop if pyproject.toml and uv.lock disagree (`make lock` is the way to change them).
$(VENV)/.runtime: uv.lock pyproject.toml $(UV)
	$(UV) sync --quiet --locked --no-dev --inexact
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime
	$(UV) sync --quiet --locked
	@touch $@

.PHONY: install
install: $(VENV)/.dev ## Create .venv and install the package with its dev tools (all from uv.lock)

.PHONY: install-runtime
install-runtime: $(VENV)/.runtime ## Create .venv with the package only (what `make run` needs)

.PHONY: lock
lock: $(UV) ## Upgrade every locked version in uv.lock, install them, then lint and run the whole suite
	$(UV) lock --upgrade
	$(MAKE) lint test

.PHONY: lock-check
lock-check: $(UV) ## Fail when pyproject.toml and uv.lock disagree (part of `make lint`)
	$(UV) lock --check

.PHONY: certs
certs: install-runtime ## Generate a throwaway CA and serving certificate into certs/ (and the self-signed component)
	$(BIN)/irsa-webhook certs --out certs
	install -m 0644 certs/ca.crt certs/tls.crt manifests/components/self-signed/generated/
	install -m 0600 certs/tls.key manifests/components/self-signed/generated/

.PHONY: run
run: install-runtime ## Serve the webhook on https://127.0.0.1:$(PORT) with dev certs and examples/ (no cluster)
	@test -f certs/tls.crt || $(BIN)/irsa-webhook certs --out certs
	$(BIN)/irsa-webhook serve --port $(PORT) --metrics-port $(METRICS_PORT) --bind-address 127.0.0.1 \
		--tls-cert certs/tls.crt --tls-key certs/tls.key \
		--service-accounts examples/service-accounts.yaml --aws-default-region us-west-2

# A local single-node cluster (kubelet + containerd, no Docker) with the webhook, the STS stand-ins and
# a demo role; as root. It stays up until `make cluster-down` (docs/local-cluster.md).
.PHONY: cluster
cluster: install envtest helm node ## Start a local cluster with the webhook and print a pod's AWS credentials (root; see docs/local-cluster.md)
	$(NODE_ENV) KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" $(BIN)/python -m tests.cluster up

.PHONY: cluster-down
cluster-down: install ## Stop the local cluster of `make cluster` and remove everything it made
	$(BIN)/python -m tests.cluster down

.PHONY: envtest
envtest: ## Provide kube-apiserver, etcd and kubectl for the e2e suite (built once, cached)
	bash tests/e2e/envtest/build.sh $(ENVTEST_DIR)

.PHONY: node
node: install envtest ## Build the local node's kubelet & co. and its two images (root; cached in .cache/node)
	bash tests/node/build.sh $(NODE_DIR)
	bash tests/node/images.sh "$${IRSA_NODE_IMAGES:-$(NODE_DIR)/images}"

.PHONY: test
test: install envtest helm node ## Run the whole test suite (unit, server, conformance, e2e and, as root, the node tests)
	$(NODE_ENV) KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" $(BIN)/pytest

.PHONY: test-quick
test-quick: install envtest helm ## The whole suite but the node tests (no root, no node build)
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" $(BIN)/pytest -m 'not node'

.PHONY: test-node
test-node: install envtest node ## Only the node tests: pods on a real kubelet + containerd (root)
	$(NODE_ENV) KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" $(BIN)/pytest -m node

.PHONY: test-unit
test-unit: install ## Everything but the e2e and node suites (no control plane needed)
	$(BIN)/pytest -m 'not e2e and not node'

.PHONY: test-e2e
test-e2e: install envtest helm ## Only the e2e suite against the real kube-apiserver + etcd
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" $(BIN)/pytest -m 'e2e and not node'

.PHONY: lint
lint: install lock-check lint-python lint-deploy ## uv.lock in step with pyproject.toml, ruff, mypy strict, hadolint and the manifest checks

.PHONY: lint-python
lint-python: install ## ruff (lint + format check) and mypy strict
	$(BIN)/ruff check webhook tests
	$(BIN)/ruff format --check webhook tests
	$(BIN)/mypy

.PHONY: fmt
fmt: install ## Format and autofix
	$(BIN)/ruff format webhook tests
	$(BIN)/ruff check --fix webhook tests

.PHONY: bench
bench: install ## Load-test the real server over TLS and print the figures (not a test)
	$(BIN)/python -m tests.bench

.PHONY: fuzz
fuzz: install ## Fuzz /mutate with 100,000 hostile AdmissionReviews (FUZZ_EXAMPLES=N to change); prints the count
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-100000} $(BIN)/pytest -q -s --timeout=0 tests/reliability/test_reliability_fuzz.py

.PHONY: soak
soak: install envtest ## Soak: fixed-rate load, certificate rotations and ServiceAccount churn (SOAK_DURATION, default 10m)
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" $(BIN)/python -m tests.reliability.soak --duration $${SOAK_DURATION:-10m}

.PHONY: all
all: lint test ## What CI runs

# --- deploy: the image, the manifests and their linters ---
# The image `make image` builds and the kind overlay runs (manifests/overlays/kind uses this tag).
IMAGE ?= irsa-webhook:dev
# The provisioner's image (`irsa-webhook controller`): the same Dockerfile with the package's
# `provisioner` extra, boto3, which the webhook's image leaves out (docs/deploy.md, "The image").
PROVISIONER_IMAGE ?= irsa-webhook-provisioner:dev
KIND_CLUSTER ?= kind
# hadolint and checkov live in their own venvs under .cache/deploy-tools, synced from uv.lock's
# hadolint and checkov groups (tests/deploy/tools.sh).
DEPLOY_TOOLS := .cache/deploy-tools
RENDERED := .cache/deploy-render
SELF_SIGNED_DIR := manifests/components/self-signed/generated

.PHONY: helm
helm: ## Provide helm (built once from the Go module proxy into .cache/helm; HELM=/path/to/helm uses yours)
	bash tests/deploy/tools.sh helm

.PHONY: lint-deploy
lint-deploy: install envtest helm ## hadolint the Dockerfile, helm lint the chart, render every overlay and chart example, checkov all
	bash tests/deploy/tools.sh hadolint
	$(DEPLOY_TOOLS)/hadolint/bin/hadolint Dockerfile
	$(BIN)/python -m tests.deploy.helm lint
	KUBEBUILDER_ASSETS="$${KUBEBUILDER_ASSETS:-$(CURDIR)/$(ENVTEST_DIR)/bin}" \
		$(BIN)/python -m tests.deploy.render --out $(RENDERED)
	bash tests/deploy/tools.sh checkov
	$(DEPLOY_TOOLS)/checkov/bin/checkov --config-file .checkov.yaml --quiet --compact -f Dockerfile $$(printf -- '-f %s ' $(RENDERED)/*.yaml)

.PHONY: render
render: install envtest helm ## Write every overlay and chart example as kustomize and helm render them (into .cache/deploy-render/)
	KUBEBUILDER_ASSETS="$${KUBEBUILDER_ASSETS:-$(CURDIR)/$(ENVTEST_DIR)/bin}" \
		$(BIN)/python -m tests.deploy.render --out $(RENDERED)

.PHONY: test-deploy
test-deploy: install envtest helm ## Deploy checks only: manifests, chart, entrypoint (read-only), server-side dry run and helm e2e
	KUBEBUILDER_ASSETS="$${KUBEBUILDER_ASSETS:-$(CURDIR)/$(ENVTEST_DIR)/bin}" \
		$(BIN)/pytest tests/deploy tests/e2e/test_e2e_manifests.py tests/e2e/test_e2e_helm.py

.PHONY: self-signed-certs
self-signed-certs: certs ## `make certs`, then copy them into the self-signed kustomize component
	install -m 0644 certs/ca.crt certs/tls.crt $(SELF_SIGNED_DIR)/
	install -m 0600 certs/tls.key $(SELF_SIGNED_DIR)/

.PHONY: image
image: ## Build the container image $(IMAGE) with docker
	docker build --tag $(IMAGE) .

.PHONY: image-provisioner
image-provisioner: ## Build the provisioner's image $(PROVISIONER_IMAGE): the same Dockerfile, plus boto3
	docker build --build-arg EXTRAS=provisioner --tag $(PROVISIONER_IMAGE) .

.PHONY: kind-deploy
kind-deploy: image self-signed-certs ## Build, `kind load` and install the kind overlay into cluster $(KIND_CLUSTER)
	kind load docker-image $(IMAGE) --name $(KIND_CLUSTER)
	kubectl apply -k manifests/overlays/kind
	kubectl -n irsa-webhook rollout status deployment/irsa-webhook --timeout=120s

# The kind overlay runs the webhook only. An overlay of yours that adds components/provisioner (with
# `images: [{name: irsa-webhook-provisioner, newTag: dev}]`) needs this image loaded too.
.PHONY: kind-load-provisioner
kind-load-provisioner: image-provisioner ## Build and `kind load` $(PROVISIONER_IMAGE) into cluster $(KIND_CLUSTER)
	kind load docker-image $(PROVISIONER_IMAGE) --name $(KIND_CLUSTER)
# --- end deploy ---
