#!/usr/bin/env bash
# DuckDB's own prebuilt static libraries for test builds, so that `make test` does not compile
# the duckdb crate's bundled C++ (about 26 minutes of a cold build on two cores, more than
# anything else in it). They come from the Go module proxy: go.duckdb.org/libduckdb/linux-amd64
# holds DuckDB's release archive `duckdb-static-libs-linux-amd64.tar.gz` of the same version
# as the libduckdb-sys crate in Cargo.lock (1.20000.1 is DuckDB v2.0.0). Release builds
# (`make install`, `make images`, the Dockerfiles) still compile the bundled sources.
#
# Usage: duckdb-prebuilt.sh DIR
#   Makes DIR hold libduckdb_static.a, libcore_functions_extension.a and pkgconfig/duckdb.pc;
#   build with DUCKDB_LIB_DIR=DIR DUCKDB_STATIC=1 and `--no-default-features` (the worker's
#   default feature `bundled-duckdb` off), as the Makefile's test target does.
set -euo pipefail
[ $# -eq 1 ] || { sed -n '2,14p' "$0" >&2; exit 2; }
dir=$1
module=go.duckdb.org/libduckdb/linux-amd64
version=v0.20000.0
duckdb_version=2.0.0
[ "$(uname -sm)" = "Linux x86_64" ] || {
	echo "duckdb-prebuilt: DuckDB's prebuilt libraries are fetched for linux-amd64 only; build with the bundled sources (cargo test --workspace)" >&2
	exit 1
}
root=$(cd "$(dirname "$0")/../.." && pwd)
grep -q '^version = "1.20000.1"' <(grep -A1 '^name = "libduckdb-sys"' "$root/Cargo.lock") || {
	echo "duckdb-prebuilt: Cargo.lock's libduckdb-sys is not 1.20000.1 (DuckDB $duckdb_version): update $module's version here" >&2
	exit 1
}
command -v pkg-config >/dev/null || {
	echo "duckdb-prebuilt: pkg-config is missing (apt-get install pkg-config): libduckdb-sys reads the link line from it" >&2
	exit 1
}
stamp="$module@$version"
if [ "$(cat "$dir/.source" 2>/dev/null)" = "$stamp" ]; then
	exit 0
fi
src=$(go mod download -json "$module@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -n "$src" ] && [ -f "$src/libduckdb_static.a" ] || {
	echo "duckdb-prebuilt: go mod download $module@$version gave no libduckdb_static.a" >&2
	exit 1
}
grep -q "\"duckdb_version\": \"v$duckdb_version\"" "$src/provenance.json" || {
	echo "duckdb-prebuilt: $src is not DuckDB v$duckdb_version ($(cat "$src/provenance.json"))" >&2
	exit 1
}
mkdir -p "$dir/pkgconfig"
# Only the extension the bundled build links (core_functions); the worker registers it
# before it opens a catalog. The archives are linked from the module cache, read-only.
for lib in libduckdb_static.a libcore_functions_extension.a; do
	ln -sf "$src/$lib" "$dir/$lib"
done
# libduckdb-sys asks pkg-config (PKG_CONFIG_PATH=$DUCKDB_LIB_DIR/pkgconfig) for the link
# line: the extension before the library it calls, and the C++ runtime DuckDB needs.
cat >"$dir/pkgconfig/duckdb.pc" <<EOF
libdir=$dir
Name: duckdb
Description: DuckDB v$duckdb_version, prebuilt static libraries ($module@$version)
Version: $duckdb_version
Libs: -L\${libdir} -lcore_functions_extension -lduckdb_static -lstdc++ -lm -ldl
EOF
echo "$stamp" >"$dir/.source"
echo "duckdb-prebuilt: DuckDB v$duckdb_version's static libraries in $dir"
