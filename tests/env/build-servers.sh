#!/usr/bin/env bash
# Builds the real programs the tests run against from the Go module proxy, each at a pinned
# version, into $EXRSCAN_CACHE/bin (default ~/.cache/exrscan/bin). A program whose pinned
# inputs have not changed is not rebuilt.
#
#   etcd, kube-apiserver, kube-controller-manager, kubectl   tests/env/go/controlplane
#   kubelet, kube-proxy, kube-scheduler (the real node)      tests/env/go/controlplane
#   containerd, containerd-shim-runc-v2, ctr                 CONTAINERD_VERSION below
#   pause (the pod sandbox; Kubernetes' pause.c, gcc -static) and its image
#     $EXRSCAN_CACHE/images/pause.tar (buildah)              same k8s.io/kubernetes version
#   flightsql-server (Apache Arrow's reference, SQLite)      tests/env/go/flightsql
#   minio                                                    MINIO_VERSION below
#   helm                                                     HELM_VERSION below
#   promtool (checks the chart's PrometheusRule)             PROMTOOL_VERSION below
#
# When KUBEBUILDER_ASSETS names a folder holding etcd, kube-apiserver and
# kube-controller-manager (the envtest convention), those are used as they are.
set -euo pipefail

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
HELM_VERSION=v3.22.0
# Prometheus v3.16.0 (its Go module is tagged v0.316.0). About 7 min and 3.2 GB of memory for
# a first build on 2 busy cores (350 s CPU), seconds once Go's build cache has it.
PROMTOOL_VERSION=v0.316.0
# containerd 2.x, the CRI runtime Kubernetes 1.36 supports (runc and the CNI plugins are
# Debian's, installed by setup.sh). About 2.5 min on 2 cores with a warm module cache.
CONTAINERD_VERSION=v2.4.2

here=$(cd "$(dirname "$0")" && pwd)
cache=${EXRSCAN_CACHE:-$HOME/.cache/exrscan}
bin=$cache/bin
stamps=$cache/stamps
mkdir -p "$bin" "$stamps"
export GOFLAGS="-buildvcs=false -trimpath"
export CGO_ENABLED=0

# fresh NAME KEY: true when NAME was built from KEY and its binaries exist.
fresh() {
	[ -f "$stamps/$1" ] && [ "$(cat "$stamps/$1")" = "$2" ] || return 1
	shift 2
	for b in "$@"; do [ -x "$bin/$b" ] || return 1; done
}

# key DIR: hash of a Go module folder's pinned inputs and the Go version.
key() { (cd "$1" && cat go.mod go.sum $(find . -name '*.go' | sort) && go version) | sha256sum | cut -c1-16; }

build() {
	local name=$1 key=$2; shift 2
	local bins=() ; while [ "$1" != -- ]; do bins+=("$1"); shift; done; shift
	if fresh "$name" "$key" "${bins[@]}"; then
		echo "build-servers: $name is cached ($key)"
		return
	fi
	echo "build-servers: building $name ($key); the first build takes minutes"
	local t0=$SECONDS log=$cache/logs/build-$name.log
	mkdir -p "$cache/logs"
	if ! "$@" >"$log" 2>&1; then
		tail -n 40 "$log" >&2
		echo "build-servers: FAILED to build $name from the Go module proxy (full output: $log)" >&2
		exit 1
	fi
	echo "$key" >"$stamps/$name"
	echo "build-servers: built $name in $((SECONDS - t0))s"
}

cp_dir=$here/go/controlplane
cp_bins=(etcd kube-apiserver kube-controller-manager kubectl)
cp_pkgs=(./etcd k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl)
if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
	for b in etcd kube-apiserver kube-controller-manager; do
		[ -x "$KUBEBUILDER_ASSETS/$b" ] || { echo "build-servers: KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS has no $b" >&2; exit 1; }
	done
	echo "build-servers: control plane from KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
	# envtest asset folders may lack kubectl; build just that one then.
	cp_bins=(kubectl)
	cp_pkgs=(k8s.io/kubernetes/cmd/kubectl)
	[ -x "$KUBEBUILDER_ASSETS/kubectl" ] && cp_bins=()
fi

if [ ${#cp_bins[@]} -gt 0 ]; then
	# Stamp the version as Kubernetes' own release build does, so `kubectl version` and
	# helm's capability checks see the pinned release rather than v0.0.0-master.
	kver=$(cd "$cp_dir" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
	[[ $kver =~ ^v1\.[0-9]+\.[0-9]+$ ]] || { echo "build-servers: cannot read the Kubernetes version from $cp_dir/go.mod ($kver)" >&2; exit 1; }
	kminor=$(echo "$kver" | cut -d. -f2)
	kv=k8s.io/component-base/version
	cp_ldflags="-s -X $kv.gitVersion=$kver -X $kv.gitMajor=1 -X $kv.gitMinor=$kminor -X $kv.gitTreeState=clean"
	build controlplane "$(key "$cp_dir")-$(echo "${cp_bins[*]} $cp_ldflags" | sha256sum | cut -c1-8)" "${cp_bins[@]}" -- \
		bash -c 'cd "$0" && go build -ldflags="$2" -o "$1/" "${@:3}"' "$cp_dir" "$bin" "$cp_ldflags" "${cp_pkgs[@]}"
fi

# The node, from the same module (and so the same version) as the control plane.
kver=$(cd "$cp_dir" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
[[ $kver =~ ^v1\.[0-9]+\.[0-9]+$ ]] || { echo "build-servers: cannot read the Kubernetes version from $cp_dir/go.mod ($kver)" >&2; exit 1; }
kv=k8s.io/component-base/version
k_ldflags="-s -X $kv.gitVersion=$kver -X $kv.gitMajor=1 -X $kv.gitMinor=$(echo "$kver" | cut -d. -f2) -X $kv.gitTreeState=clean"
build node "$(key "$cp_dir")-$(echo "$k_ldflags" | sha256sum | cut -c1-8)" kubelet kube-proxy kube-scheduler -- \
	bash -c 'cd "$0" && go build -ldflags="$2" -o "$1/" "${@:3}"' "$cp_dir" "$bin" "$k_ldflags" \
	k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kube-scheduler

build containerd "$CONTAINERD_VERSION-$(go env GOVERSION)" containerd containerd-shim-runc-v2 ctr -- \
	env GOBIN="$bin" go install -tags "urfave_cli_no_docs no_btrfs osusergo netgo static_build" \
	-ldflags="-s -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
	"github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
	"github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION"

# The pod sandbox image (no registry to pull registry.k8s.io/pause from): Kubernetes' own
# pause.c from the k8s.io/kubernetes module, as localhost/pause:<its tag>.
pause_src=$(cd "$cp_dir" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause
pause_tag=$(sed -n 's/^TAG ?= //p' "$pause_src/Makefile")
mkdir -p "$cache/images"
build pause "$kver-$pause_tag-$(gcc -dumpfullversion)" pause -- bash -c '
	set -e
	gcc -Os -static -DVERSION="$2" -o "$1/pause" "$0/linux/pause.c"
	s=$3/buildah
	bah() { buildah --root "$s/root" --runroot "$s/run" --storage-driver vfs "$@"; }
	c=$(bah from scratch)
	bah copy --chmod 0755 "$c" "$1/pause" /pause
	bah config --entrypoint "[\"/pause\"]" --user 65535:65535 "$c"
	bah commit --quiet --rm "$c" "localhost/pause:$2"
	rm -f "$3/images/pause.tar"
	bah push --quiet "localhost/pause:$2" "oci-archive:$3/images/pause.tar:localhost/pause:$2"
	echo "localhost/pause:$2" >"$3/images/pause.name"' "$pause_src" "$bin" "$pause_tag" "$cache"

fs_dir=$here/go/flightsql
build flightsql "$(key "$fs_dir")" flightsql-server -- \
	bash -c 'cd "$0" && go build -ldflags=-s -o "$1/flightsql-server" .' "$fs_dir" "$bin"

build minio "$MINIO_VERSION-$(go env GOVERSION)" minio -- \
	env GOBIN="$bin" go install -ldflags=-s "github.com/minio/minio@$MINIO_VERSION"

build helm "$HELM_VERSION-$(go env GOVERSION)" helm -- \
	env GOBIN="$bin" go install -ldflags=-s "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"

build promtool "$PROMTOOL_VERSION-$(go env GOVERSION)" promtool -- \
	env GOBIN="$bin" go install -ldflags=-s "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION"
