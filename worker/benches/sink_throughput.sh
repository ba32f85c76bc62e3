#!/usr/bin/env bash
# Sink throughput: `exrscan scan` of a tree of sample copies into each sink, per batch size.
# Prints one Markdown table row per run: sink, batch files, files, rows, seconds (the whole
# `exrscan scan` process, closing the catalog included), files/s, rows/s, the process's
# peak RSS and its CPU time (user + system) per file (GNU time).
#
#   worker/benches/sink_throughput.sh [COPIES] [BATCH_SIZES]
#   default: 500 copies of samples/ (4,500 files), batch sizes "100 1000"
#
# Needs a release build (`cargo build --release -p exrscan`; EXRSCAN_BIN=path overrides it),
# the Flight SQL test server (tests/env/build-servers.sh) and, for the VAST rows, the VAST
# protocol twin's venv (tests/env/setup.sh; EXRSCAN_VAST_PYTHON overrides it). SINKS picks
# sinks (default "duckdb flight vast"). Each run writes into a fresh, empty catalog.
set -euo pipefail

copies=${1:-500}
batches=${2:-"100 1000"}
here=$(cd "$(dirname "$0")/../.." && pwd)
cache=${EXRSCAN_CACHE:-$HOME/.cache/exrscan}
exrscan=${EXRSCAN_BIN:-${CARGO_TARGET_DIR:-$cache/target}/release/exrscan}
server=$cache/bin/flightsql-server
vast_python=${EXRSCAN_VAST_PYTHON:-$cache/venv-vast/bin/python}
sinks=${SINKS:-"duckdb flight vast"}
for tool in "$exrscan" "$server"; do
	[ -x "$tool" ] || { echo "sink_throughput: $tool is missing (cargo build --release -p exrscan; tests/env/build-servers.sh)" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "sink_throughput: GNU time is missing (Debian package time)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
for ((i = 0; i < copies; i++)); do
	mkdir -p "$work/tree/shot$i"
	cp "$here"/samples/*.exr "$work/tree/shot$i/"
done
files=$(find "$work/tree" -name '*.exr' | wc -l)
# Warm the page cache so that the sinks, not the disk, are measured.
cat "$work"/tree/*/*.exr >/dev/null

port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

run() { # run SINK_LABEL BATCH URI
	local out start end
	start=$(date +%s.%N)
	out=$(/usr/bin/time -f "%M %U %S" -o "$work/rss" "$exrscan" scan "$work/tree" --sink "$3" --batch-files "$2" --json 2>"$work/log")
	end=$(date +%s.%N)
	python3 - "$1" "$2" "$out" "$start" "$end" $(cat "$work/rss") <<'EOF'
import json, sys
label, batch, s = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
rss_mib = int(sys.argv[6]) / 1024
cpu_ms = (float(sys.argv[7]) + float(sys.argv[8])) * 1000 / s["inserted"]
assert s["inserted"] == s["processed"] and s["failed"] == 0, s
# The whole process: DuckDB compresses what is still in its log when the scan closes it.
secs = float(sys.argv[5]) - float(sys.argv[4])
print(f"| {label} | {batch} | {s['inserted']} | {s['rows_written']} | {secs:.2f} | {s['inserted'] / secs:,.0f} | {s['rows_written'] / secs:,.0f} | {rss_mib:.0f} MiB | {cpu_ms:.2f} |")
EOF
}

echo "$files files ($copies copies of samples/), $(nproc) cores"
echo
echo "| sink | batch (files) | files | rows | seconds | files/s | rows/s | peak RSS | exrscan CPU ms/file |"
echo "|---|---|---|---|---|---|---|---|---|"
wait_port() { for _ in $(seq 600); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; }
for batch in $batches; do
	[[ " $sinks " == *" duckdb "* ]] || continue
	run "DuckDB" "$batch" "duckdb://$work/duck-$batch.duckdb"
done
for mode in prepared bulk; do
	[[ " $sinks " == *" flight "* ]] || continue
	for batch in $batches; do
		p=$(port)
		flags=()
		[ "$mode" = bulk ] && flags=(-ingest)
		"$server" -host 127.0.0.1 -port "$p" -db "$work/flight-$mode-$batch.sqlite" "${flags[@]}" >"$work/server.log" 2>&1 &
		pids+=($!)
		wait_port "$p"
		run "Flight SQL reference server, $mode" "$batch" "flight+grpc://127.0.0.1:$p"
		kill "${pids[-1]}"
	done
done
# The VAST protocol twin (Python over DuckDB, tests/vast/vasttwin) on the same cores.
export VAST_TWIN_KEYS=bench-access:bench-secret EXRSCAN_VAST_ACCESS_KEY_ID=bench-access EXRSCAN_VAST_SECRET_ACCESS_KEY=bench-secret
for batch in $batches; do
	[[ " $sinks " == *" vast "* ]] || continue
	p=$(port)
	PYTHONPATH="$here/tests/vast" "$vast_python" -m vasttwin --db "$work/vast-$batch.duckdb" --bucket catalog --port "$p" >"$work/twin.log" 2>&1 &
	pids+=($!)
	wait_port "$p"
	run "VAST protocol twin (vast://)" "$batch" "vast://127.0.0.1:$p?bucket=catalog&schema=exrscan&tls=false"
	kill "${pids[-1]}"
done
