# exrscan — the two commands a new machine needs:
#   make demo   scan the sample EXRs shipped in samples/ (the embedded default)
#   make test   install and start everything the tests need, then run the whole suite
# Builds are cached outside the clone: cargo's target dir and the test servers live in
# $(EXRSCAN_CACHE) (default ~/.cache/exrscan), so warm runs are fast.

EXRSCAN_CACHE ?= $(HOME)/.cache/exrscan
export EXRSCAN_CACHE
export CARGO_TARGET_DIR ?= $(EXRSCAN_CACHE)/target
export EXRSCAN_PYTHON ?= $(EXRSCAN_CACHE)/venv/bin/python
# Seconds of bounded fuzzing of the header reader in `make test`.
FUZZ_SECONDS ?= 60

.PHONY: demo test setup build fuzz bench

demo:
	cargo run -q -p exrscan -- inspect samples/*.exr

setup:
	tests/env/setup.sh

build:
	cargo build --workspace --bins

# `cargo test --workspace` also builds every binary the tests run (exrscan, the operator,
# the node agent) with the same feature set, so each heavy crate is compiled once.
test: setup
	cargo test --workspace --no-fail-fast
	worker/fuzz/run.sh $(FUZZ_SECONDS)

fuzz:
	worker/fuzz/run.sh $(FUZZ_SECONDS)
