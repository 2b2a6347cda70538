#!/usr/bin/env bash
# Builds the Berth container image without a Docker engine: an OCI image
# layout assembled with umoci from the Rust binaries `berth` and
# `berth-operator`, optionally pushed with skopeo (e.g. to a running berth, so
# the registry carries its own image).
#
# The image holds:
#   /usr/local/bin/berth, /usr/local/bin/berth-operator
#   the shared libraries they load (found with ldd, copied from this machine:
#     glibc, libgcc_s, the dynamic loader), at the paths ldd reports
#   /etc/passwd and /etc/group with the user and group 65532 ("berth"),
#   /etc/nsswitch.conf, /etc/ssl/certs/ca-certificates.crt (TLS to S3 and the
#   Kubernetes API), an empty /tmp (1777) and /data (owned by 65532)
# Config: user 65532:65532, entrypoint berth, cmd `serve --listen 0.0.0.0:5000
# --metrics-listen 0.0.0.0:5001 --data-dir /data` (flags, not BERTH_* variables,
# which would override the config file the operator mounts), ports 5000 and
# 5001, org.opencontainers.image.* labels. The same as the Dockerfile.
#
# Why copy glibc rather than link statically: the binaries are built for
# x86_64-unknown-linux-gnu, where `+crt-static` needs an explicit --target
# (else proc-macros break) and a second full build of every dependency, and
# static glibc still wants the host's NSS modules at run time. Copying exactly
# what ldd lists is what the Dockerfile's distroless/cc base provides too.
#
# Usage:
#   images/build.sh [options]
#     --profile release|debug   cargo profile of the binaries (default release;
#                               the CI image test uses debug, built anyway)
#     --no-build                use the binaries already in target/ (fails if absent)
#     --out DIR                 OCI layout directory (default target/image/oci)
#     --tag TAG                 tag in the layout (default <version>-<git short sha>)
#     --archive FILE            also write an oci-archive tar (`ctr images import FILE`
#                               gives the image <name>:<tag>)
#     --name NAME               image name in the archive (default ghcr.io/berth-dev/berth,
#                               the operator's default registry image)
#     --push REF                also push to REF (e.g. 127.0.0.1:5000/berth:0.1.0),
#                               plain HTTP, with skopeo copy
# Prints the tag (the last line of stdout is `oci:<layout>:<tag>`).
set -euo pipefail
# shellcheck source=../tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tests/lib.sh"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

profile=release
build=1
out=""
tag=""
archive=""
name="ghcr.io/berth-dev/berth"
push=""

usage() {
	sed -n '/^# Usage:/,/^# Prints/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

while (($#)); do
	case "$1" in
	--profile)
		profile="${2:?--profile needs a value}"
		shift 2
		;;
	--no-build)
		build=""
		shift
		;;
	--out)
		out="${2:?--out needs a directory}"
		shift 2
		;;
	--tag)
		tag="${2:?--tag needs a value}"
		shift 2
		;;
	--archive)
		archive="${2:?--archive needs a file}"
		shift 2
		;;
	--name)
		name="${2:?--name needs a value}"
		shift 2
		;;
	--push)
		push="${2:?--push needs a reference}"
		shift 2
		;;
	-h | --help) usage ;;
	*)
		log "unknown argument $1"
		usage
		;;
	esac
done

case "$profile" in
release) cargo_profile=(--release) ;;
debug) cargo_profile=() ;;
*)
	log "--profile must be release or debug, not $profile"
	exit 2
	;;
esac

for tool in cargo jq umoci ldd git; do
	command -v "$tool" >/dev/null || die "$tool is not installed (tests/tools/install.sh installs umoci, skopeo, jq)"
done
if [[ -n $push ]]; then
	command -v skopeo >/dev/null || die "skopeo is not installed (needed for --push)"
fi

cd "$repo"
metadata="$(cargo metadata --format-version 1 --no-deps)"
version="$(jq -r '.packages[] | select(.name == "berth-registry") | .version' <<<"$metadata")"
target_dir="$(jq -r .target_directory <<<"$metadata")"
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
short="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
# Layer timestamps come from the commit, so that the same commit and the same
# binaries give the same layer digest.
epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
created="$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)"
tag="${tag:-$version-$short}"
out="${out:-$target_dir/image/oci}"

if [[ -n $build ]]; then
	log "cargo build ${cargo_profile[*]} -p berth-registry -p berth-operator"
	nice -n 10 cargo build "${cargo_profile[@]}" -p berth-registry -p berth-operator >&2
fi
bin_dir="$target_dir/$profile"
for b in berth berth-operator; do
	[[ -x "$bin_dir/$b" ]] || die "$bin_dir/$b is missing (run without --no-build)"
done

work="$(mktemp -d "${TMPDIR:-/tmp}/berth-image.XXXXXX")"
on_exit 'rm -rf "$work"'
rootfs="$work/rootfs"
mkdir -p "$rootfs"/{usr/local/bin,etc/ssl/certs,data,tmp}

install -m 0755 "$bin_dir/berth" "$bin_dir/berth-operator" "$rootfs/usr/local/bin/"

# Every library ldd resolves (absolute paths: "name => /path (addr)" and the
# loader's "/lib64/ld-linux-x86-64.so.2 (addr)"), copied with symlinks
# resolved to the path the binary asks for.
libs="$(for b in berth berth-operator; do ldd "$bin_dir/$b"; done | awk '
	$2 == "=>" && $3 ~ /^\// { print $3 }
	$1 ~ /^\// && $2 ~ /^\(/ { print $1 }' | sort -u)"
[[ -n $libs ]] || die "ldd found no libraries in $bin_dir/berth (a static binary needs none, but then ldd says so and this script should be simplified)"
while read -r lib; do
	[[ -e $lib ]] || die "ldd listed $lib, which does not exist"
	mkdir -p "$rootfs$(dirname "$lib")"
	cp -L "$lib" "$rootfs$lib"
done <<<"$libs"
# Debian's loader is reached through /lib64 -> the multiarch directory; a
# merged-/usr host reports /lib/... paths that are symlinks to /usr/lib/...
# Both are real files in the image, which is enough for the loader.

cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
berth:x:65532:65532:berth:/data:/sbin/nologin
EOF
cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
berth:x:65532:
EOF
printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
[[ -f /etc/ssl/certs/ca-certificates.crt ]] || die "no /etc/ssl/certs/ca-certificates.crt (apt-get install ca-certificates)"
cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
chmod 0644 "$rootfs"/etc/passwd "$rootfs"/etc/group "$rootfs"/etc/nsswitch.conf "$rootfs"/etc/ssl/certs/ca-certificates.crt
chmod 1777 "$rootfs/tmp"
chmod 0755 "$rootfs/data"

# ---------------------------------------------------------------- OCI layout
rm -rf "$out"
mkdir -p "$(dirname "$out")"
umoci init --layout "$out"
umoci new --image "$out:$tag"
# umoci works on a bundle: unpack the empty image, fill its rootfs, repack.
umoci unpack --image "$out:$tag" "$work/bundle" >/dev/null
rm -rf "$work/bundle/rootfs"
mv "$rootfs" "$work/bundle/rootfs"
chown -R 0:0 "$work/bundle/rootfs"
chown 65532:65532 "$work/bundle/rootfs/data"
find "$work/bundle/rootfs" -exec touch -h -d "@$epoch" {} +
umoci repack --history.created "$created" --history.created_by "images/build.sh" \
	--history.comment "berth, berth-operator, their libraries, passwd, CA certificates" \
	--image "$out:$tag" "$work/bundle"

labels=(
	"org.opencontainers.image.title=berth"
	"org.opencontainers.image.description=Berth: an OCI distribution registry and its Kubernetes operator (berth, berth-operator)"
	"org.opencontainers.image.version=$version"
	"org.opencontainers.image.revision=$revision"
	"org.opencontainers.image.created=$created"
	"org.opencontainers.image.licenses=Apache-2.0"
	"org.opencontainers.image.source=https://github.com/berth-dev/berth"
)
config_args=(
	--no-history
	--created "$created"
	--os linux
	--architecture amd64
	--config.user 65532:65532
	--config.workingdir /data
	--config.env PATH=/usr/local/bin:/usr/bin:/bin
	--config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
	--config.entrypoint /usr/local/bin/berth
	--config.cmd serve
	--config.cmd=--listen
	--config.cmd 0.0.0.0:5000
	--config.cmd=--metrics-listen
	--config.cmd 0.0.0.0:5001
	--config.cmd=--data-dir
	--config.cmd /data
	--config.exposedports 5000/tcp
	--config.exposedports 5001/tcp
)
for l in "${labels[@]}"; do
	config_args+=(--config.label "$l" --manifest.annotation "$l")
done
umoci config "${config_args[@]}" --image "$out:$tag"
umoci gc --layout "$out"

log "built oci:$out:$tag (berth $version, $profile binaries)"

if [[ -n $archive ]]; then
	command -v skopeo >/dev/null || die "skopeo is not installed (needed for --archive)"
	mkdir -p "$(dirname "$archive")"
	rm -f "$archive"
	skopeo copy --quiet "oci:$out:$tag" "oci-archive:$archive:$name:$tag" >&2
	log "wrote $archive ($name:$tag)"
fi

if [[ -n $push ]]; then
	skopeo copy --quiet --dest-tls-verify=false "oci:$out:$tag" "docker://$push" >&2
	log "pushed $push"
fi

echo "oci:$out:$tag"
