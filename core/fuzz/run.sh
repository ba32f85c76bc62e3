#!/usr/bin/env bash
# Fuzzes the header reader for a bounded time; fails on any crash, panic, leak or timeout.
#
#   core/fuzz/run.sh [SECONDS]        (default 60)
#
# Installs cargo-fuzz under ~/.cache/exrscan/cargo-tools when missing. Uses the nightly
# toolchain when present, else stable with RUSTC_BOOTSTRAP=1 (cargo-fuzz needs nightly flags).
# Starts from the committed seeds in corpus/header/ (copied, so the repository stays clean);
# a crashing input is written to core/fuzz/artifacts/header/.
set -euo pipefail

seconds="${1:-60}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${EXRSCAN_CACHE:-$HOME/.cache/exrscan}"
tools="$cache/cargo-tools"
export PATH="$tools/bin:$PATH"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "installing cargo-fuzz into $tools" >&2
    cargo install --locked --root "$tools" cargo-fuzz
fi

if cargo +nightly --version >/dev/null 2>&1; then
    fuzz=(cargo +nightly fuzz)
else
    echo "no nightly toolchain: using stable with RUSTC_BOOTSTRAP=1" >&2
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi

corpus="$(mktemp -d)"
trap 'rm -rf "$corpus"' EXIT
cp "$here"/corpus/header/* "$corpus"/
mkdir -p "$here/artifacts/header"

cd "$here"
# The fuzz build keeps its own target directory: its sanitizer flags would otherwise
# invalidate the shared one.
export CARGO_TARGET_DIR="$cache/fuzz-target"
"${fuzz[@]}" run header "$corpus" -- \
    -max_total_time="$seconds" \
    -max_len=16384 \
    -timeout=10 \
    -rss_limit_mb=2048 \
    -artifact_prefix="$here/artifacts/header/" \
    -print_final_stats=1
