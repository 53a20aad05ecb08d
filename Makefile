# Roomscribe. The two commands a newcomer needs are `make demo` and `make test`;
# both install what they need first (scripts/setup.sh, idempotent and quick when done).

CARGO ?= cargo

.PHONY: setup build demo test bench lint clean packages

setup:
	bash scripts/setup.sh

build: setup
	$(CARGO) build --workspace --bins

## Start the appliance, enroll a local agent and transcribe a sample meeting live.
demo: build
	bash scripts/demo.sh

## Everything CI runs: formatting, lints, the packages, unit, property and end-to-end
## tests (the package tests read and install what `packages` built).
test: setup
	$(CARGO) fmt --all --check
	$(CARGO) build --workspace --bins --tests
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	bash scripts/packages.sh
	$(CARGO) test --workspace

## .deb and .rpm packages of the appliance (static binary) and the agent, in target/packages/.
packages: setup
	bash scripts/packages.sh

## Benchmarks (release build; figures go in docs/BENCHMARKS.md). Never part of `test`.
bench: setup
	$(CARGO) build --release --workspace --bins
	BENCH_DIR=$(CURDIR)/target $(CARGO) bench -p roomscribe-agent --bench envelope_queue
	$(CARGO) bench -p roomscribe-tests --bench agent_live
	$(CARGO) bench -p roomscribe-tests --bench abuse
	$(CARGO) bench -p roomscribe-tests --bench backup
	bash scripts/packages.sh
	$(CARGO) bench -p roomscribe-tests --bench appliance_startup
	$(CARGO) bench -p roomscribe-tests --bench whisper
	$(CARGO) bench -p roomscribe-tests --bench diarize
	$(CARGO) bench -p roomscribe-appliance --bench exports
	$(CARGO) bench -p roomscribe-appliance --bench insights

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
