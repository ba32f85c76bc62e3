# exrscan — the commands a new machine needs:
#   make demo     scan the sample EXRs shipped in samples/ (the embedded default)
#   make install  install an optimised exrscan into ~/.cargo/bin (PREFIX=DIR: DIR/bin)
#   make test     install and start everything the tests need, then run the whole suite
# Builds are cached outside the clone: cargo's target dir and the test servers live in
# $(EXRSCAN_CACHE) (default ~/.cache/exrscan), so warm runs are fast.

EXRSCAN_CACHE ?= $(HOME)/.cache/exrscan
export EXRSCAN_CACHE
export CARGO_TARGET_DIR ?= $(EXRSCAN_CACHE)/target
export EXRSCAN_PYTHON ?= $(EXRSCAN_CACHE)/venv/bin/python
# Seconds of bounded fuzzing of the header reader in `make test`.
FUZZ_SECONDS ?= 60

.PHONY: demo install test setup build images fuzz fmt fmt-check

# The demo catalog: a DuckDB file outside the clone.
DEMO_CATALOG ?= $(EXRSCAN_CACHE)/demo/catalog.duckdb

# Index samples/ into DuckDB, index it again (nothing new is written), then ask for the
# frames most similar to one of them.
# The build shows cargo's progress: the first one compiles DuckDB's C++ for minutes.
demo:
	mkdir -p $(dir $(DEMO_CATALOG))
	cargo build -p exrscan
	$(CARGO_TARGET_DIR)/debug/exrscan scan samples --scan-name demo --sink duckdb://$(DEMO_CATALOG)
	$(CARGO_TARGET_DIR)/debug/exrscan scan samples --scan-name demo --sink duckdb://$(DEMO_CATALOG)
	$(CARGO_TARGET_DIR)/debug/exrscan similar samples/shot010_beauty.1001.exr --sink duckdb://$(DEMO_CATALOG) -k 3

# An optimised build on PATH, for indexing real shows (the demo's is a debug build). The
# release target directory is shared with later runs, so a reinstall rebuilds only what
# changed. PREFIX installs into PREFIX/bin instead of ~/.cargo/bin.
PREFIX ?=
install:
	cargo install --path worker --locked $(if $(PREFIX),--root $(PREFIX))

setup:
	tests/env/setup.sh

# Test builds (and `make build`, which makes the binaries the tests run) link DuckDB's own
# prebuilt static library of the crate's version, from the Go module proxy, instead of
# compiling the duckdb crate's bundled C++, the largest part of a cold build (about 26 min
# on two cores): the worker's default feature `bundled-duckdb` off, and libduckdb-sys pointed
# at the library (tests/env/duckdb-prebuilt.sh). Release builds compile the bundled sources.
TEST_DUCKDB ?= $(EXRSCAN_CACHE)/duckdb/v2.0.0
test build: export DUCKDB_LIB_DIR = $(TEST_DUCKDB)
test build: export DUCKDB_STATIC = 1

build:
	tests/env/duckdb-prebuilt.sh $(TEST_DUCKDB)
	cargo build --workspace --bins --no-default-features

# The operator and worker images from operator/Dockerfile and worker/Dockerfile, built with
# buildah over a distroless-like base made from Debian's packages (mmdebstrap), with the
# binaries of a host release build (the Dockerfiles' BINARIES build argument): OCI archives
# in $(IMAGE_DIR), named $(IMAGE_REPOSITORY)/exrscan-operator:$(IMAGE_TAG) and
# $(IMAGE_REPOSITORY)/exrscan:$(IMAGE_TAG). docs/install.md says how to push them.
IMAGE_REPOSITORY ?= ghcr.io/exrscan
IMAGE_TAG ?= $(shell sed -n 's/^appVersion: "\(.*\)"/\1/p' charts/exrscan-operator/Chart.yaml)
IMAGE_DIR ?= $(EXRSCAN_CACHE)/images/release
images:
	cargo build --release --locked -p exrscan --bin exrscan -p exrscan-operator
	IMAGE_REPOSITORY=$(IMAGE_REPOSITORY) tests/env/build-images.sh $(CARGO_TARGET_DIR)/release $(IMAGE_TAG) $(IMAGE_DIR)

# `cargo test --workspace` also builds every binary the tests run (exrscan, the operator,
# the node agent) with the same feature set, so each heavy crate is compiled once. The
# test environment (apt, venvs, the Go-built servers) is set up while the workspace
# compiles: on two cores the Go builds fill what the Rust compiles and links leave idle.
test: fmt-check
	@mkdir -p $(EXRSCAN_CACHE)/logs
	tests/env/duckdb-prebuilt.sh $(TEST_DUCKDB)
	@tests/env/setup.sh >$(EXRSCAN_CACHE)/logs/setup.log 2>&1 & setup=$$!; \
	cargo test --workspace --no-default-features --no-run; built=$$?; \
	wait $$setup; ready=$$?; cat $(EXRSCAN_CACHE)/logs/setup.log; \
	if [ $$ready -ne 0 ]; then echo "make test: tests/env/setup.sh failed (log above)" >&2; exit 1; fi; \
	exit $$built
	cargo test --workspace --no-default-features --no-fail-fast
	$${EXRSCAN_VAST_PYTHON:-$(EXRSCAN_CACHE)/venv-vast/bin/python} -m pytest -q tests/vast
	core/fuzz/run.sh $(FUZZ_SECONDS)

fuzz:
	core/fuzz/run.sh $(FUZZ_SECONDS)

# Formatting (rustfmt.toml) is checked first by `make test`; `make fmt` applies it.
fmt:
	cargo fmt --all
	cd core/fuzz && cargo fmt

fmt-check:
	cargo fmt --all --check
	cd core/fuzz && cargo fmt --check
