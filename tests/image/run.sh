#!/usr/bin/env bash
# The container image, end to end, with real parts only:
#   1. images/build.sh builds the image (OCI layout, umoci) and skopeo pushes
#      it to a running `berth`, so the registry carries its own image;
#   2. a private containerd pulls it back from that berth over plain HTTP
#      (and imports the oci-archive build.sh wrote: the same manifest);
#   3. runc runs both binaries from the pulled image (`berth --version`,
#      `berth-operator --help`), and `berth serve` as the image's user, which
#      must answer /v2/ from inside the container.
#
# Usage: tests/image/run.sh
# Environment:
#   BERTH_IMAGE_PROFILE  cargo profile of the binaries in the image (default
#                        debug: CI has built them already; release is what
#                        users get from images/build.sh and costs a full LTO build)
#   BERTH_IMAGE_BUILD    0: use the binaries already in target/ (build.sh
#                        --no-build); default: build.sh runs cargo build
#   BERTH_BIN            the berth that receives the push (default: the one
#                        built for the image)
# Needs root (containerd, runc), umoci, skopeo, containerd, ctr, runc, curl, jq
# (tests/tools/install.sh).
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
script_name="image test"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
profile="${BERTH_IMAGE_PROFILE:-debug}"

for tool in containerd ctr runc skopeo umoci curl jq; do
	command -v "$tool" >/dev/null || die "$tool is not installed (tests/tools/install.sh)"
done
[[ $(id -u) -eq 0 ]] || die "must run as root (a private containerd and runc)"

work="$(mktemp -d "${TMPDIR:-/tmp}/berth-image-test.XXXXXX")"
# At exit, after the processes below are stopped: on failure the logs are
# shown and kept, else the work directory is removed.
keep_or_remove_work() {
	if ((exit_status != 0)); then
		log "logs kept in $work"
		for f in "$work"/*.log; do
			[[ -f $f ]] || continue
			echo "----- $f (last 30 lines)" >&2
			tail -n 30 "$f" >&2
		done
	else
		# containerd's native snapshots are root-owned trees; remove them all.
		rm -rf "$work"
	fi
}
on_exit keep_or_remove_work

# ------------------------------------------------------------ 1. build, push
echo "image test: building the image ($profile binaries)"
build_args=(--profile "$profile" --out "$work/oci" --archive "$work/berth.tar")
if [[ ${BERTH_IMAGE_BUILD:-1} == 0 ]]; then
	build_args+=(--no-build)
fi
layout_ref="$("$repo/images/build.sh" "${build_args[@]}" | tail -n 1)"
tag="${layout_ref##*:}"
target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$repo/Cargo.toml" | jq -r .target_directory)"
berth_bin="${BERTH_BIN:-$target_dir/$profile/berth}"
version="$("$target_dir/$profile/berth" --version | awk '{print $2}')"

port="$(free_port)"
registry="127.0.0.1:$port"
"$berth_bin" serve --listen "$registry" --metrics-listen "127.0.0.1:$(free_port)" \
	--data-dir "$work/berth-data" >"$work/berth.log" 2>&1 &
on_exit "kill $! 2>/dev/null; wait $! 2>/dev/null"
wait_for 30 "berth to answer http://$registry/v2/" curl -fsS "http://$registry/v2/"

image="$registry/berth/berth:$tag"
echo "image test: pushing $layout_ref to $image"
skopeo copy --quiet --dest-tls-verify=false "$layout_ref" "docker://$image"

# What the registry serves is the image we built: same config, same user.
config="$(skopeo inspect --tls-verify=false --config "docker://$image")"
[[ $(jq -r .config.User <<<"$config") == "65532:65532" ]] || die "image user is not 65532:65532: $(jq -c .config <<<"$config")"
[[ $(jq -r '.config.Entrypoint | join(" ")' <<<"$config") == "/usr/local/bin/berth" ]] ||
	die "entrypoint is not /usr/local/bin/berth: $(jq -c .config.Entrypoint <<<"$config")"
[[ $(jq -r '.config.Labels["org.opencontainers.image.version"]' <<<"$config") == "$version" ]] ||
	die "label org.opencontainers.image.version is not $version: $(jq -c .config.Labels <<<"$config")"

# ----------------------------------------------- 2. containerd pulls it back
mkdir -p "$work/certs.d/$registry"
cat >"$work/certs.d/$registry/hosts.toml" <<EOF
server = "http://$registry"
[host."http://$registry"]
  capabilities = ["pull", "resolve"]
EOF
cat >"$work/containerd.toml" <<EOF
version = 2
root = "$work/containerd-root"
state = "$work/containerd-state"
[grpc]
  address = "$work/containerd.sock"
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "$work/certs.d"
EOF
containerd --config "$work/containerd.toml" >"$work/containerd.log" 2>&1 &
containerd_pid=$!
stop_containerd() {
	# Tasks first, so that runc leaves no process behind.
	ctr -a "$work/containerd.sock" tasks kill -s SIGKILL berth-serve >/dev/null 2>&1 || true
	kill "$containerd_pid" 2>/dev/null || true
	wait "$containerd_pid" 2>/dev/null || true
}
on_exit stop_containerd
ctr_() { ctr -a "$work/containerd.sock" "$@"; }
wait_for 30 "containerd at $work/containerd.sock" ctr_ version

# The native snapshotter works wherever the test runs (overlayfs may not be
# available inside a container).
snap=(--snapshotter native)
echo "image test: ctr images pull $image"
ctr_ images pull "${snap[@]}" --plain-http "$image" >"$work/pull.log"
pushed_digest="$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$image")"
ctr_ images ls | grep -F "$image" | grep -qF "$pushed_digest" ||
	die "containerd does not list $image at $pushed_digest: $(ctr_ images ls)"

# The oci-archive imports into containerd under the image's name, with the
# same manifest as the one pushed.
ctr_ images import "${snap[@]}" "$work/berth.tar" >"$work/import.log"
ctr_ images ls | grep -F "ghcr.io/berth-dev/berth:$tag" | grep -qF "$pushed_digest" ||
	die "ctr images import of the archive did not give ghcr.io/berth-dev/berth:$tag at $pushed_digest: $(ctr_ images ls)"

# ------------------------------------------------------- 3. run the binaries
out="$(ctr_ run --rm "${snap[@]}" "$image" berth-version berth --version)"
echo "image test: berth --version -> $out"
[[ $out == "berth $version" ]] || die "berth --version printed '$out', expected 'berth $version'"

out="$(ctr_ run --rm "${snap[@]}" "$image" berth-operator-help berth-operator --help)"
grep -q '^Usage: berth-operator' <<<"$out" || die "berth-operator --help printed: $out"
grep -q 'run' <<<"$out" || die "berth-operator --help lists no run command: $out"
echo "image test: berth-operator --help -> $(head -n 1 <<<"$out")"

out="$(ctr_ run --rm "${snap[@]}" "$image" berth-operator-version berth-operator --version)"
[[ $out == "berth-operator $version" ]] || die "berth-operator --version printed '$out'"

# The image's default command, as its own user (65532) on the host network:
# the registry must start, write its data dir and answer.
serve_port="$(free_port)"
ctr_ run --rm --net-host "${snap[@]}" "$image" berth-serve \
	berth serve --listen "127.0.0.1:$serve_port" --metrics-listen "127.0.0.1:$(free_port)" \
	--data-dir /tmp/berth-data >"$work/serve.log" 2>&1 &
serve_pid=$!
serving() {
	kill -0 "$serve_pid" 2>/dev/null || die "berth serve in the container exited: $(tail -n 5 "$work/serve.log")"
	curl -fsS "http://127.0.0.1:$serve_port/v2/"
}
wait_for 60 "berth serve inside the container on 127.0.0.1:$serve_port" serving
uid="$(ctr_ tasks ps berth-serve | awk 'NR == 2 {print $1}')"
ps_user="$(ps -o user= -p "$uid" 2>/dev/null | tr -d ' ' || true)"
[[ $ps_user == 65532 || $ps_user == berth ]] || die "berth serve in the container runs as '$ps_user', not 65532"
ctr_ tasks kill -s SIGTERM berth-serve >/dev/null
wait_for 30 "the container berth-serve to stop" bash -c "! kill -0 $serve_pid"
wait "$serve_pid" || true

echo "image test: ok: $image pushed to berth, pulled by containerd, berth $version and berth-operator run from it as uid 65532"
