# meshtally: `make demo` runs it, `make test` proves it. `make help` lists the rest.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

WASM := target/wasm32-wasip1/release/meshtally_filter.wasm
export ENVOY_BIN ?= $(CURDIR)/.venv/bin/envoy-bin
# wasm32-wasip1 test binaries (the filter logic's) run in Node's WASI: V8, as in Envoy.
export CARGO_TARGET_WASM32_WASIP1_RUNNER := node $(CURDIR)/scripts/wasi-run.mjs
# ENVOY_VERSION, ISTIO_VERSION, ISTIO_PSEUDO_VERSION, KUBERNETES_VERSION: the one place they are pinned.
include scripts/versions.env

PREFIX ?= $(HOME)/.local
# `make install PROFILE=debug` installs the debug build (the install test uses it: same files,
# no extra release build in CI).
PROFILE ?= release

.PHONY: help setup setup-demo deny wasm size lint unit wasm-unit e2e install install-test istio-check test ci-cold demo manifests bench dashboard-perf fuzz clean cluster-up cluster-down

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(firstword $(MAKEFILE_LIST)) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

setup: ## install what a fresh machine lacks for the tests (rust targets, Envoy in .venv, npm packages, chromium, registry tools, the Kubernetes control plane)
	@scripts/setup.sh

setup-demo: ## install only what `make demo` needs (wasm32-wasip1, wasm-opt, Envoy in .venv)
	@scripts/setup.sh demo

wasm: ## build the filter module (cargo, then wasm-opt -Os in place)
	cargo build --release --target wasm32-wasip1 -p meshtally-filter
	@scripts/wasm-opt.sh $(WASM)

size: wasm ## print the module's size and initial memory
	@python3 scripts/wasm-size.py $(WASM) 64

deny: ## cargo-deny: licenses, bans (one version of each crate) and sources; advisories when reachable
	@scripts/deny.sh

lint: ## rustfmt and clippy, warnings are errors
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p meshtally-filter -p meshtally-empty-filter -p meshtally-probe-filter --target wasm32-wasip1 -- -D warnings

unit: ## native tests of every crate that needs no Envoy (the deployer's also against a real registry and the loopback control plane)
	@# the static demo-service that the `push --service-image` test packs
	cargo build --release -p demo-service --target x86_64-unknown-linux-musl
	cargo test --workspace --exclude meshtally-tests

wasm-unit: ## the filter logic's tests built as the filter ships (wasm32-wasip1, release), run in Node's WASI (V8)
	cargo test --release -p meshtally-wire -p meshtally-core --target wasm32-wasip1

e2e: wasm ## end-to-end tests against real Envoy (the filter alone, then the local mesh)
	cargo build --target wasm32-wasip1
	cargo build -p meshtally-deployer -p demo-service
	cargo test -p meshtally-tests

install: setup-demo wasm ## put deployer and demo-service in $(PREFIX)/bin (default ~/.local), the module and Envoy beside them
	cargo build $(if $(filter release,$(PROFILE)),--release) -p meshtally-deployer -p demo-service
	install -Dm755 target/$(if $(filter release,$(PROFILE)),release,debug)/deployer $(PREFIX)/bin/deployer
	install -Dm755 target/$(if $(filter release,$(PROFILE)),release,debug)/demo-service $(PREFIX)/bin/demo-service
	install -Dm644 $(WASM) $(PREFIX)/share/meshtally/meshtally_filter.wasm
	install -Dm644 -t $(PREFIX)/share/meshtally/examples examples/*.yaml
	install -Dm755 "$$(readlink -f $(ENVOY_BIN))" $(PREFIX)/lib/meshtally/envoy
	@echo "installed into $(PREFIX): make sure $(PREFIX)/bin is on PATH, then: deployer up"

install-test: ## make install into a temporary prefix, then up/verify/down from outside the checkout
	tests/install.sh

istio-check: wasm ## Istio's own code judges every render: validate, analyze, CRDs+CEL, kube-inject, istiod's xDS, `up` vs istiod
	@scripts/setup-istio.sh
	cargo build -p meshtally-deployer -p demo-service
	cd tests/istio && go vet ./... && test -z "$$(gofmt -l .)"
	cd tests/istio && go test -count=1 -timeout 30m ./...

# Each phase is its own make run, timed (scripts/phases.sh prints the table at the end).
test: ## everything, as CI runs it, each phase timed
	@scripts/phases.sh setup lint deny size unit wasm-unit e2e install-test istio-check
	@echo "make test: all checks passed"

ci-cold: ## CI on a clean clone of HEAD with empty Go, cargo, npm and pip caches and a fresh HOME (about 45 min)
	@scripts/ci-cold.sh

demo: setup-demo wasm ## the local mesh: 3 services on 8000-8002 with Envoy sidecars, gateway on 8080 (Ctrl-C stops)
	cargo build --release -p meshtally-deployer -p demo-service
	target/release/deployer up --services 3 --base-port 8000 --gateway-port 8080

manifests: wasm ## render the default mesh into manifests/ (incl. the generated filter ConfigMap)
	cargo run -q --release -p meshtally-deployer -- render --output manifests

bench: ## meshtally vs no filter, empty Wasm, Lua and native rules in real Envoy (~4 min); writes BENCHMARKS.md
	@bench/run.sh --out BENCHMARKS.md

dashboard-perf: ## the dashboard page's update and frame times with 30 services and 870 edges, in headless Chromium
	cargo build -p meshtally-deployer
	@tests/dashboard/perf.sh

fuzz: ## a long property-based pass over the filter's input handling
	PROPTEST_CASES=50000 cargo test --release -p meshtally-core --test it fuzz::

cluster-up: ## a loopback Kubernetes control plane with Istio's CRDs (kwok plays the node); prints the export line
	@scripts/cluster.sh up .cluster

cluster-down: ## stop what cluster-up started; nothing is left running
	@scripts/cluster.sh down .cluster

clean: ## remove build output
	cargo clean
