#!/usr/bin/env bash
# Builds the exrscan images from the project's Dockerfiles with buildah, without pulling
# from any registry:
#   base     a distroless-like runtime made from Debian's packages with mmdebstrap: glibc,
#            libgcc, libstdc++, libssl3 (librdkafka), the CA bundle, /etc/passwd with nonroot (65532), /tmp; no
#            shell, no package manager                             → RUNTIME_IMAGE
#   binaries the already-built exrscan and exrscan-operator in a scratch image under /out
#            (what the Dockerfiles' builder stage produces)        → --build-arg BINARIES
#   images   operator/Dockerfile and worker/Dockerfile (their own runtime stage; the builder
#            stage is skipped as unused), saved as OCI archives
#
# Usage: build-images.sh BINARY_DIR TAG OUT_DIR
#   BINARY_DIR holds exrscan and exrscan-operator (e.g. target/release), TAG is the image
#   tag, OUT_DIR receives exrscan-operator.tar and exrscan.tar (OCI archives, for
#   `ctr images import` or `buildah push`).
#        build-images.sh base
#   Only the base: the one step that downloads (Debian's packages). tests/env/setup.sh runs
#   it, so that the real-node test, which builds the images inside a network namespace of
#   its own (no route out), finds the base made.
# Environment: IMAGE_REPOSITORY (default ghcr.io/exrscan) names the images
#   $IMAGE_REPOSITORY/exrscan-operator:TAG and $IMAGE_REPOSITORY/exrscan:TAG;
#   BUILDAH_ROOT (default $EXRSCAN_CACHE/buildah) is buildah's storage.
# Each step is skipped when its inputs have not changed (stamps in OUT_DIR and the cache).
set -euo pipefail
if [ $# -eq 1 ] && [ "$1" = base ]; then
	only_base=1
elif [ $# -eq 3 ]; then
	only_base=
	binary_dir=$(cd "$1" && pwd)
	tag=$2
	out=$3
	mkdir -p "$out"
else
	sed -n '2,24p' "$0" >&2
	exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${EXRSCAN_CACHE:-$HOME/.cache/exrscan}
repo=${IMAGE_REPOSITORY:-ghcr.io/exrscan}
storage=${BUILDAH_ROOT:-$cache/buildah}
mkdir -p "$cache/stamps" "$storage"
step() { echo "build-images: $*"; }
bah() { buildah --root "$storage/root" --runroot "$storage/run" --storage-driver vfs "$@"; }

# The runtime base, rebuilt when this script or the Debian suite's packages change.
suite=bookworm
base_packages=libc6,libgcc-s1,libstdc++6,libssl3
base=localhost/exrscan-base:$suite
base_key=$( (cat "$0"; echo "$suite $base_packages") | sha256sum | cut -c1-16)
if [ "$(cat "$cache/stamps/image-base" 2>/dev/null)" != "$base_key" ] || ! bah inspect --type image "$base" >/dev/null 2>&1; then
	t0=$SECONDS
	step "making $base from Debian's packages (mmdebstrap)"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	offline="build-images: making the base needs Debian's mirror; run \`tests/env/build-images.sh base\` (tests/env/setup.sh does) where it is reachable"
	# The CA bundle comes from Debian's ca-certificates, unpacked without its maintainer
	# scripts (which need a shell and openssl) and concatenated as update-ca-certificates does.
	(cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root ca-certificates >/dev/null) || { echo "$offline" >&2; exit 1; }
	# The extract variant unpacks the packages and runs no maintainer scripts or hooks;
	# the rest is done here on the unpacked tree.
	mmdebstrap --quiet --mode=root --variant=extract --include="$base_packages" \
		"$suite" "$tmp/root" >"$tmp/mmdebstrap.log" 2>&1 || { cat "$tmp/mmdebstrap.log" >&2; echo "$offline" >&2; exit 1; }
	r=$tmp/root
	dpkg-deb -x "$tmp"/ca-certificates_*.deb "$r"
	mkdir -p "$r/etc/ssl/certs"
	cat "$r"/usr/share/ca-certificates/mozilla/*.crt >"$r/etc/ssl/certs/ca-certificates.crt"
	printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$r/etc/passwd"
	printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$r/etc/group"
	printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$r/etc/nsswitch.conf"
	install -d -m 1777 "$r/tmp"
	install -d -m 0700 -o 65532 -g 65532 "$r/home/nonroot"
	rm -rf "$r/etc/apt" "$r/var/lib/apt" "$r/var/cache" "$r/usr/share/doc" "$r/usr/share/man"
	ldconfig -r "$r"
	[ -s "$r/etc/ssl/certs/ca-certificates.crt" ] || { echo "build-images: no CA bundle in the base" >&2; exit 1; }
	tar -C "$r" --numeric-owner -cf "$tmp/rootfs.tar" .
	c=$(bah from scratch)
	bah add --quiet "$c" "$tmp/rootfs.tar" / >/dev/null
	bah config --user 65532:65532 --workingdir /home/nonroot --env PATH=/usr/local/bin:/usr/bin:/bin \
		--env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt "$c"
	bah commit --quiet --rm "$c" "$base" >/dev/null
	echo "$base_key" >"$cache/stamps/image-base"
	rm -rf "$tmp"
	trap - EXIT
	step "made $base in $((SECONDS - t0))s"
else
	step "$base is made ($base_key)"
fi
[ -z "$only_base" ] || exit 0

# The images, rebuilt when the binaries, the Dockerfiles or the base change.
key=$( (sha256sum "$binary_dir/exrscan" "$binary_dir/exrscan-operator" | cut -d' ' -f1
	cat "$root/operator/Dockerfile" "$root/worker/Dockerfile"; echo "$base_key $repo $tag") | sha256sum | cut -c1-16)
if [ "$(cat "$out/.stamp" 2>/dev/null)" = "$key" ] && [ -f "$out/exrscan.tar" ] && [ -f "$out/exrscan-operator.tar" ]; then
	step "images $repo/{exrscan,exrscan-operator}:$tag are built ($key)"
	exit 0
fi
t0=$SECONDS
binaries=localhost/exrscan-binaries:$tag
c=$(bah from scratch)
for b in exrscan exrscan-operator; do bah copy --quiet --chmod 0755 "$c" "$binary_dir/$b" "/out/$b" >/dev/null; done
bah commit --quiet --rm "$c" "$binaries" >/dev/null
for image in operator:exrscan-operator worker:exrscan; do
	dir=${image%%:*} name=${image#*:}
	step "building $repo/$name:$tag from $dir/Dockerfile"
	bah bud --quiet --isolation chroot --layers=false --pull=never \
		--build-arg RUNTIME_IMAGE="$base" --build-arg BINARIES="$binaries" \
		-f "$root/$dir/Dockerfile" -t "$repo/$name:$tag" "$root" >/dev/null
	rm -f "$out/$name.tar"
	bah push --quiet "$repo/$name:$tag" "oci-archive:$out/$name.tar:$repo/$name:$tag"
	bah rmi "$repo/$name:$tag" >/dev/null
done
# buildah 1.28 leaves a working container of the `binaries` stage behind; the storage is
# this script's own.
bah rm --all >/dev/null
bah rmi "$binaries" >/dev/null
bah rmi --prune >/dev/null
echo "$key" >"$out/.stamp"
step "built $repo/{exrscan,exrscan-operator}:$tag in $((SECONDS - t0))s → $out"
