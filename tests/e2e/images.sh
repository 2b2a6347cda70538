#!/usr/bin/env bash
# Builds the two small images of the end-to-end suite without Docker (umoci,
# skopeo), each as a docker archive (for `ctr images import` / `kind load
# image-archive`) and, for the test image, an OCI layout to push from.
#
#   tests/e2e/images.sh pause DIR REF         the kubelet's sandbox image:
#                                             /tiny sleeps until SIGTERM
#   tests/e2e/images.sh hello DIR REF TOKEN   the test Pod's image: prints
#                                             "berth-e2e TOKEN", then sleeps
#
# Writes DIR/<kind>.tar (docker archive named REF) and DIR/oci (layout, tag
# <kind>). tiny/ is a static Go program (no module dependencies).
# The berth image itself comes from images/build.sh.
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
script_name=e2e/images.sh
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
usage="usage: images.sh pause|hello DIR REF [TOKEN]"
kind="${1:?$usage}"
dir="${2:?$usage}"
ref="${3:?$usage}"

for t in umoci skopeo; do
	command -v "$t" >/dev/null || die "$t is not installed (tests/tools/install.sh)"
done
mkdir -p "$dir"
layout="$dir/oci"
[[ -f $layout/index.json ]] || umoci init --layout "$layout"

tiny() {
	command -v go >/dev/null || die "go is not installed"
	(cd "$here/tiny" && CGO_ENABLED=0 GOWORK=off GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$dir/tiny" .) ||
		die "go build tests/e2e/tiny failed"
}

bundle="$dir/bundle-$kind"
rm -rf "$bundle"
umoci new --image "$layout:$kind"
umoci unpack --rootless --image "$layout:$kind" "$bundle" >/dev/null
rootfs="$bundle/rootfs"
cfg=(--os linux --architecture amd64)
case "$kind" in
pause)
	tiny
	install -m 0755 "$dir/tiny" "$rootfs/tiny"
	cfg+=(--config.entrypoint /tiny)
	;;
hello)
	token="${4:?$usage}"
	tiny
	install -m 0755 "$dir/tiny" "$rootfs/tiny"
	cfg+=(--config.entrypoint /tiny --config.cmd berth-e2e --config.cmd "$token")
	;;
*) die "$usage" ;;
esac
umoci repack --image "$layout:$kind" "$bundle"
umoci config --image "$layout:$kind" "${cfg[@]}"
rm -rf "$bundle"
umoci gc --layout "$layout"
rm -f "$dir/$kind.tar"
skopeo copy --quiet "oci:$layout:$kind" "docker-archive:$dir/$kind.tar:$ref"
log "$kind image $ref -> $dir/$kind.tar ($(du -h "$dir/$kind.tar" | cut -f1))"
