#!/usr/bin/env bash
# Installs and builds everything the test suite needs, idempotently, caching outside the
# clone in $EXRSCAN_CACHE (default ~/.cache/exrscan):
#   Debian:  openexr (exrheader), openssl                              apt-get, once
#   PyPI:    tests/env/requirements.txt (+ tests/corpus/requirements.txt) → $EXRSCAN_CACHE/venv
#   Go:      etcd, kube-apiserver, kube-controller-manager, kubectl, MinIO, Apache Arrow's
#            Flight SQL server, helm                                   tests/env/build-servers.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${EXRSCAN_CACHE:-$HOME/.cache/exrscan}
mkdir -p "$cache"
step() { echo "setup: $*"; }

# Debian packages.
need=()
command -v exrheader >/dev/null || need+=(openexr)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
	step "apt-get install ${need[*]}"
	sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
	"${sudo_cmd[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Python venv, rebuilt only when the requirements change.
venv=$cache/venv
reqs=("$here/requirements.txt")
[ -f "$root/tests/corpus/requirements.txt" ] && reqs+=("$root/tests/corpus/requirements.txt")
want=$(cat "${reqs[@]}" | sha256sum | cut -c1-16)
if [ "$(cat "$venv/.exrscan-reqs" 2>/dev/null)" != "$want" ]; then
	step "creating the Python venv $venv"
	python3 -m venv "$venv"
	for r in "${reqs[@]}"; do "$venv/bin/pip" install -q -r "$r"; done
	echo "$want" >"$venv/.exrscan-reqs"
fi

# Go-built servers.
"$here/build-servers.sh"

step "ready"
