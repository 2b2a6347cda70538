#!/usr/bin/env bash
# Builds the real Kubernetes control plane for the operator's tests, once,
# cached outside the clone:
#   ${BERTH_TOOL_CACHE:-$HOME/.cache/berth-tools}/kubernetes-<ver>/{kube-apiserver,kube-controller-manager,kubectl,kube-scheduler,kubelet,kube-proxy}
#   ${BERTH_TOOL_CACHE:-$HOME/.cache/berth-tools}/etcd-<ver>/etcd
# Versions: tests/cluster/versions.env. A second run finds the cache and
# returns at once. On failure it prints the failing step's log.
#
#   tests/cluster/build.sh           build (or verify) everything
#   tests/cluster/build.sh --paths   print `export` lines (BERTH_KUBE_BIN_DIR,
#                                    BERTH_ETCD_BIN) without building
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
script_name=cluster/build.sh
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache="${BERTH_TOOL_CACHE:-${HOME:-/root}/.cache/berth-tools}"
kube_dir="$cache/kubernetes-$KUBERNETES_VERSION"
etcd_dir="$cache/etcd-$ETCD_VERSION"

print_env() {
	printf 'export BERTH_KUBE_BIN_DIR=%q\n' "$kube_dir"
	printf 'export BERTH_ETCD_BIN=%q\n' "$etcd_dir/etcd"
}
if [[ ${1:-} == --paths ]]; then
	print_env
	exit 0
fi

# run_logged WHAT CMD...: up to 3 tries (the module proxy has transient
# failures); shows the full log on final failure.
run_logged() {
	local what="$1" out attempt
	shift
	out="$(mktemp)"
	for attempt in 1 2 3; do
		if "$@" >"$out" 2>&1; then
			rm -f "$out"
			return 0
		fi
		log "$what failed (attempt $attempt)"
		((attempt < 3)) && sleep $((attempt * 5))
	done
	echo "----- $what: $* -----" >&2
	tail -n 200 "$out" >&2
	rm -f "$out"
	die "$what failed 3 times (its output is above)"
}

command -v go >/dev/null || die "go is not installed"
mkdir -p "$cache"
exec 9>"$cache/.lock-cluster"
flock 9

# Go env for every build: module mode, static binaries, low priority (the
# machine is shared with cargo).
gobuild() {
	env CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" GOWORK=off \
		nice -n 10 go build -trimpath -ldflags "-s -w" "$@"
}

# kube-scheduler, kubelet and kube-proxy are for the end-to-end suite (tests/e2e), which
# runs Pods on a real node; the operator's tests use the first three.
kube_binaries=(kube-apiserver kube-controller-manager kubectl kube-scheduler kubelet kube-proxy)

build_kubernetes() {
	local b missing=""
	for b in "${kube_binaries[@]}"; do
		[[ -x $kube_dir/$b ]] || missing=1
	done
	[[ -n $missing ]] || return 0
	local start=$SECONDS tmp mod
	tmp="$(mktemp -d "$cache/.build-kubernetes.XXXXXX")"
	run_logged "download k8s.io/kubernetes@$KUBERNETES_VERSION" \
		env GOFLAGS=-mod=mod go mod download k8s.io/kubernetes@"$KUBERNETES_VERSION"
	mod="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$KUBERNETES_VERSION.mod"
	[[ -f $mod ]] || die "no go.mod for k8s.io/kubernetes@$KUBERNETES_VERSION at $mod"
	# Upstream's go.mod, with our module name, a requirement on
	# k8s.io/kubernetes itself, and each `k8s.io/X => ./staging/src/k8s.io/X`
	# replaced by the published `k8s.io/X $STAGING_VERSION`.
	mkdir -p "$tmp/src"
	sed -e 's|^module k8s.io/kubernetes$|module berth.dev/cluster-tools|' \
		-e "s|=> ./staging/src/\(k8s.io/[A-Za-z0-9_.-]*\)$|=> \1 $STAGING_VERSION|" \
		"$mod" >"$tmp/src/go.mod"
	grep -q 'staging/src' "$tmp/src/go.mod" && die "unrewritten staging replace in $tmp/src/go.mod"
	printf '\nrequire k8s.io/kubernetes %s\n' "$KUBERNETES_VERSION" >>"$tmp/src/go.mod"
	log "building Kubernetes $KUBERNETES_VERSION (${kube_binaries[*]}); cold this takes a while"
	(
		cd "$tmp/src"
		run_logged "go build kubernetes" gobuild \
			-ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)" \
			-o "$tmp/" "${kube_binaries[@]/#/k8s.io/kubernetes/cmd/}"
	)
	"$tmp/kube-apiserver" --version >/dev/null || die "kube-apiserver does not run"
	# One rename per binary (atomic), so a cache that lacked only the newer
	# binaries is completed without pulling the others from under a running
	# cluster.
	mkdir -p "$kube_dir"
	for b in "${kube_binaries[@]}"; do
		mv -f "$tmp/$b" "$kube_dir/$b"
	done
	rm -rf "$tmp"
	log "built Kubernetes $KUBERNETES_VERSION in $((SECONDS - start))s -> $kube_dir"
}

build_etcd() {
	if [[ -x $etcd_dir/etcd ]]; then
		return
	fi
	local start=$SECONDS tmp
	tmp="$(mktemp -d "$cache/.build-etcd.XXXXXX")"
	mkdir -p "$tmp/src"
	# The etcd modules' go.mod files replace each other with local paths, so
	# `go install …@version` refuses them; a small module requiring the
	# server module builds the same `etcd` main package.
	printf 'module berth.dev/etcd-build\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" >"$tmp/src/go.mod"
	log "building etcd $ETCD_VERSION"
	(
		cd "$tmp/src"
		run_logged "go mod tidy (etcd)" env GOFLAGS=-mod=mod go get go.etcd.io/etcd/server/v3@"$ETCD_VERSION"
		run_logged "go build etcd" gobuild -o "$tmp/etcd" go.etcd.io/etcd/server/v3
	)
	"$tmp/etcd" --version >/dev/null || die "etcd does not run"
	rm -rf "$tmp/src" "$etcd_dir"
	mv -T "$tmp" "$etcd_dir"
	log "built etcd $ETCD_VERSION in $((SECONDS - start))s -> $etcd_dir"
}

build_etcd
build_kubernetes
flock -u 9
if [[ ${1:-} == --env ]]; then
	print_env
fi
