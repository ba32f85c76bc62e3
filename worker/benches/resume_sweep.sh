#!/usr/bin/env bash
# Sweep of an unchanged S3 prefix into a large DuckDB catalog, against the bare LIST.
#
#   worker/benches/resume_sweep.sh [OBJECTS] [CATALOG_FILES]
#   default: 100,000 objects, a catalog of 1,000,000 files
#
# MinIO (tests/env/build-servers.sh) on loopback holds OBJECTS copies of one sample EXR. A
# first `exrscan scan` indexes them; the catalog is then padded with other files' rows to
# CATALOG_FILES. Printed, each the best of RUNS (default 3) runs:
#   - list:  `exrscan plan --shards 1` of the prefix (the LIST requests alone),
#   - sweep: `exrscan scan` of the same prefix into the catalog, where every object is
#            unchanged (the LIST plus the resume checks, no GET).
# EXRSCAN_BIN picks the binary (default: the release build); EXRSCAN_PYTHON a Python with
# boto3 and duckdb (default: the test venv); BASELINE_BIN, another exrscan binary (an earlier
# build) whose sweep is printed too, on the same data.
set -euo pipefail

objects=${1:-100000}
catalog_files=${2:-1000000}
runs=${RUNS:-3}
here=$(cd "$(dirname "$0")/../.." && pwd)
cache=${EXRSCAN_CACHE:-$HOME/.cache/exrscan}
exrscan=${EXRSCAN_BIN:-${CARGO_TARGET_DIR:-$cache/target}/release/exrscan}
python=${EXRSCAN_PYTHON:-$cache/venv/bin/python}
minio=$cache/bin/minio
for tool in "$exrscan" "$minio" "$python"; do
	[ -x "$tool" ] || { echo "resume_sweep: $tool is missing (cargo build --release -p exrscan; tests/env/setup.sh)" >&2; exit 1; }
done

work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export AWS_ACCESS_KEY_ID=sweep-bench AWS_SECRET_ACCESS_KEY=sweep-bench-secret AWS_REGION=us-east-1
export EXRSCAN_S3_ENDPOINT=http://127.0.0.1:$port EXRSCAN_S3_FORCE_PATH_STYLE=true
MINIO_ROOT_USER=$AWS_ACCESS_KEY_ID MINIO_ROOT_PASSWORD=$AWS_SECRET_ACCESS_KEY MINIO_BROWSER=off MINIO_UPDATE=off \
	"$minio" server "$work/minio" --address "127.0.0.1:$port" --quiet >"$work/minio.log" 2>&1 &
pid=$!

echo "uploading $objects objects" >&2
"$python" - "$EXRSCAN_S3_ENDPOINT" "$objects" "$here/samples/shot010_beauty.1001.exr" <<'EOF'
import sys, time, concurrent.futures, boto3, botocore.config
endpoint, n, sample = sys.argv[1], int(sys.argv[2]), open(sys.argv[3], "rb").read()
s3 = boto3.client("s3", endpoint_url=endpoint, config=botocore.config.Config(max_pool_connections=64))
for _ in range(100):
    try:
        s3.create_bucket(Bucket="sweep")
        break
    except Exception:
        time.sleep(0.1)
def put(i):
    s3.put_object(Bucket="sweep", Key=f"show/seq{i // 10000:03d}/shot{i // 100 % 100:02d}/beauty.{i:07d}.exr", Body=sample)
with concurrent.futures.ThreadPoolExecutor(64) as pool:
    list(pool.map(put, range(n)))
EOF

db=$work/catalog.duckdb
"$exrscan" scan s3://sweep/show/ --sink "duckdb://$db" --json >"$work/first.json"
echo "padding the catalog to $catalog_files files" >&2
"$python" - "$db" "$objects" "$catalog_files" <<'EOF'
import sys, duckdb
db, objects, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
con = duckdb.connect(db)
# Other shows' files: the first row with a new file_id and source_uri each.
con.execute(
    "INSERT INTO files SELECT f.* REPLACE (sha256('pad' || i::VARCHAR) AS file_id, "
    "'s3://other/show' || (i % 97)::VARCHAR || '/frame.' || i::VARCHAR || '.exr' AS source_uri) "
    "FROM (SELECT * FROM files LIMIT 1) f, range(?) t(i)",
    [max(0, total - objects)],
)
con.execute("CHECKPOINT")
print(con.execute("SELECT count(*) FROM files").fetchone()[0], "files in the catalog", file=sys.stderr)
EOF

best() { # best COMMAND…: the shortest wall time of RUNS runs, in seconds
	local t best=
	for ((r = 0; r < runs; r++)); do
		/usr/bin/time -f %e -o "$work/time" "$@" >"$work/out" 2>"$work/err"
		t=$(tail -1 "$work/time")
		if [ -z "$best" ] || python3 -c "import sys; sys.exit(not $t < $best)"; then best=$t; fi
	done
	echo "$best"
}
list=$(best "$exrscan" plan s3://sweep/show/ --shards 1)
row() { # row LABEL BINARY: one Markdown row of the sweep by BINARY
	local sweep
	sweep=$(best "$2" scan s3://sweep/show/ --sink "duckdb://$db" --json)
	python3 - "$work/out" "$objects" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["unchanged"] == int(sys.argv[2]) and s["inserted"] == 0 and s["bytes_read"] == 0, s
EOF
	python3 -c "print(f'| $1 | $objects | $catalog_files | {$list:.2f} s | {$sweep:.2f} s | {$sweep / $list:.2f} |')"
}
echo "| build | objects | catalog files | LIST alone | sweep | sweep / LIST |"
echo "|---|---:|---:|---:|---:|---:|"
row "$(basename "$exrscan")" "$exrscan"
if [ -n "${BASELINE_BIN:-}" ]; then row "$(basename "$BASELINE_BIN") (baseline)" "$BASELINE_BIN"; fi
