#!/usr/bin/env bash
# Installs and builds everything the test suite needs, idempotently, caching outside the
# clone in $EXRSCAN_CACHE (default ~/.cache/exrscan):
#   Debian:  openexr (exrheader), openssl                              apt-get, once
#            runc, containernetworking-plugins, iptables (the real node),
#            buildah, mmdebstrap (images: tests/env/build-images.sh)
#   PyPI:    tests/env/requirements.txt (+ tests/corpus/requirements.txt) → $EXRSCAN_CACHE/venv
#            tests/env/requirements-vast.txt (VAST's SDK, the twin)   → $EXRSCAN_CACHE/venv-vast
#   Go:      etcd, kube-apiserver, kube-controller-manager, kubectl, kubelet, kube-proxy,
#            kube-scheduler, containerd, MinIO, Apache Arrow's Flight SQL server, helm,
#            promtool; the pause image                                 tests/env/build-servers.sh
#   Maven:   Apache Kafka's broker jars (run on the machine's Java)    tests/env/build-kafka.sh
#   Debian:  the images' base (mmdebstrap), as root                    tests/env/build-images.sh base
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
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
# The Kafka client's librdkafka (built from source by cargo) links the system OpenSSL.
[ -f /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v buildah >/dev/null || need+=(buildah)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
if [ ${#need[@]} -gt 0 ]; then
	step "apt-get install ${need[*]}"
	sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
	"${sudo_cmd[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Python venvs, each rebuilt only when its requirements change: venv DIR REQUIREMENTS...
venv() {
	local dir=$1
	shift
	local want
	want=$(cat "$@" | sha256sum | cut -c1-16)
	if [ "$(cat "$dir/.exrscan-reqs" 2>/dev/null)" != "$want" ]; then
		step "creating the Python venv $dir"
		python3 -m venv "$dir"
		for r in "$@"; do "$dir/bin/pip" install -q -r "$r"; done
		echo "$want" >"$dir/.exrscan-reqs"
	fi
}
reqs=("$here/requirements.txt")
[ -f "$root/tests/corpus/requirements.txt" ] && reqs+=("$root/tests/corpus/requirements.txt")
venv "$cache/venv" "${reqs[@]}"
# VAST's SDK needs an older pyarrow than the suite pins (see requirements-vast.txt).
venv "$cache/venv-vast" "$here/requirements-vast.txt"

# Go-built servers.
"$here/build-servers.sh"

# The Kafka broker (Maven Central).
"$here/build-kafka.sh"

# The images' base, from Debian's packages: the real-node test (as root) builds the images
# inside a network namespace with no route out, so the one download is made here.
if [ "$(id -u)" -eq 0 ]; then
	"$here/build-images.sh" base
else
	step "not making the images' base: buildah's storage here needs root, as the real-node test does"
fi

step "ready"
