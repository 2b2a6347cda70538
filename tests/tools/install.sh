#!/usr/bin/env bash
# Installs everything the tests need beyond Rust and Go themselves:
#   - Debian packages: skopeo, umoci, jq, curl, prometheus, chromium and its
#     driver, and C build tools
#     (apt-get, only when missing)
#   - Go-built tools pinned in tests/tools/versions.env: the OCI conformance
#     suite, the oras, Helm, crane, regctl and cosign CLIs, built once and
#     cached outside the clone at
#     ${BERTH_TOOL_CACHE:-$HOME/.cache/berth-tools}/<tool>-<version>/<tool>
#   - cri-pull (tests/tools/cri-pull, a CRI PullImage client) and
#     apptainer-client (tests/tools/apptainer-client: library:// and oras://
#     as Apptainer does them, with container-library-client, and real SIF
#     files made with the sif/v2 module), each cached under a hash of its
#     sources
#   - the Python oras package (PyPI), pinned, in a venv in the same cache
#
# Idempotent: a second run finds everything in place and does nothing.
# Quiet on success (set BERTH_TOOLS_VERBOSE=1 to see progress); on failure it
# prints the failing step's full log and exits non-zero.
#
# Usage:
#   tests/tools/install.sh          install (or verify) everything
#   tests/tools/install.sh --env    same, then print shell `export` lines on
#                                   stdout (PATH with the tool dirs,
#                                   BERTH_CONFORMANCE_BIN, BERTH_ORAS_BIN,
#                                   BERTH_HELM_BIN, BERTH_APPTAINER_CLIENT_BIN), for
#                                   `eval "$(tests/tools/install.sh --env)"`
#   tests/tools/install.sh --paths  print those export lines without installing
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache="${BERTH_TOOL_CACHE:-${HOME:-/root}/.cache/berth-tools}"
conformance_dir="$cache/conformance-$CONFORMANCE_VERSION"
oras_dir="$cache/oras-$ORAS_VERSION"
helm_dir="$cache/helm-$HELM_VERSION"
crane_dir="$cache/crane-$CRANE_VERSION"
regctl_dir="$cache/regctl-$REGCTL_VERSION"
cosign_dir="$cache/cosign-$COSIGN_VERSION"
python_oras_dir="$cache/python-oras-$PYTHON_ORAS_VERSION"
versitygw_dir="$cache/versitygw-$VERSITYGW_VERSION"
distribution_dir="$cache/distribution-$DISTRIBUTION_VERSION"
cri_pull_src="$here/cri-pull"
cri_pull_dir="$cache/cri-pull-$(cat "$cri_pull_src"/go.mod "$cri_pull_src"/go.sum "$cri_pull_src"/*.go | sha256sum | cut -c1-16)"
apptainer_client_src="$here/apptainer-client"
apptainer_client_dir="$cache/apptainer-client-$(cat "$apptainer_client_src"/go.mod "$apptainer_client_src"/go.sum "$apptainer_client_src"/*.go | sha256sum | cut -c1-16)"

mode="install"
case "${1:-}" in
"") ;;
--env) mode="env" ;;
--paths) mode="paths" ;;
*)
	echo "usage: $0 [--env|--paths]" >&2
	exit 2
	;;
esac

print_env() {
	printf 'export PATH=%q\n' "$oras_dir:$helm_dir:$conformance_dir:$cri_pull_dir:$apptainer_client_dir:$crane_dir:$regctl_dir:$cosign_dir:$PATH"
	printf 'export BERTH_CONFORMANCE_BIN=%q\n' "$conformance_dir/conformance"
	printf 'export BERTH_ORAS_BIN=%q\n' "$oras_dir/oras"
	printf 'export BERTH_HELM_BIN=%q\n' "$helm_dir/helm"
	printf 'export BERTH_PYTHON_ORAS=%q\n' "$python_oras_dir/bin/python"
	printf 'export BERTH_VERSITYGW_BIN=%q\n' "$versitygw_dir/versitygw"
	printf 'export BERTH_DISTRIBUTION_BIN=%q\n' "$distribution_dir/registry"
	printf 'export BERTH_APPTAINER_CLIENT_BIN=%q\n' "$apptainer_client_dir/apptainer-client"
}

if [[ $mode == paths ]]; then
	print_env
	exit 0
fi

# verbose MESSAGE...: log, with BERTH_TOOLS_VERBOSE=1 only.
verbose() { if [[ ${BERTH_TOOLS_VERBOSE:-0} == 1 ]]; then log "$@"; fi; }

# Runs a command with its output captured, up to 3 times (package registries
# have transient failures); on final failure shows all of its output.
run_logged() {
	local what="$1"
	shift
	local out attempt ok=""
	out="$(mktemp)"
	for attempt in 1 2 3; do
		if "$@" >"$out" 2>&1; then
			ok=1
			break
		fi
		if ((attempt < 3)); then
			log "$what failed (attempt $attempt), retrying"
			sleep $((attempt * 5))
		fi
	done
	if [[ -z $ok ]]; then
		local output
		output="$(cat "$out")"
		rm -f "$out"
		die "$what failed: $*
----- output -----
$output
------------------"
	fi
	if [[ ${BERTH_TOOLS_VERBOSE:-0} == 1 ]]; then cat "$out" >&2; fi
	rm -f "$out"
}

# ---------------------------------------------------------------- apt packages
# skopeo, umoci, podman, buildah, containerd (with runc): real-client tests;
# containernetworking-plugins (bridge, host-local, loopback, portmap) and
# iptables: the e2e node's Pod network and kube-proxy (tests/e2e);
# prometheus (prometheus + promtool): the observability test; postgresql:
# the metadata database of the PostgreSQL + S3 backend; siftool (SIF
# files inspected, the reference for what Berth reads from SIF headers) and
# squashfs-tools (mksquashfs: real root file systems for SIF and OCI-SIF
# images): the Apptainer tests; chromium, chromium-driver, fonts-dejavu-core:
# the web UI's browser tests (registry/tests/ui/, headless, over WebDriver);
# jq, curl: scripts; cmake, build-essential, pkg-config: native build steps of
# crates (aws-lc-sys, libsqlite3-sys) when a machine image lacks them (a no-op
# where they are installed).
apt_packages=(skopeo umoci podman buildah containerd runc containernetworking-plugins iptables jq curl ca-certificates cmake build-essential pkg-config prometheus postgresql haproxy siftool squashfs-tools chromium chromium-driver fonts-dejavu-core)

pkg_installed() {
	[[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

install_apt() {
	local missing=()
	local p
	for p in "${apt_packages[@]}"; do
		pkg_installed "$p" || missing+=("$p")
	done
	if [[ ${#missing[@]} -eq 0 ]]; then
		verbose "apt packages present: ${apt_packages[*]}"
		return
	fi
	command -v apt-get >/dev/null || die "missing packages (${missing[*]}) and no apt-get to install them"
	local sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null || die "missing packages (${missing[*]}); not root and no sudo"
		sudo=(sudo -n)
	fi
	verbose "apt-get install ${missing[*]}"
	run_logged "apt-get update" "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
	run_logged "apt-get install ${missing[*]}" "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends "${missing[@]}"
	for p in "${missing[@]}"; do
		pkg_installed "$p" || die "package $p still not installed after apt-get install"
	done
	log "installed ${missing[*]} (apt)"
	# skopeo refuses to run without a signature policy; Debian ships one in
	# containers-common (a dependency), but make sure.
	if [[ ! -e /etc/containers/policy.json ]]; then
		"${sudo[@]}" mkdir -p /etc/containers
		echo '{"default":[{"type":"insecureAcceptAnything"}]}' | "${sudo[@]}" tee /etc/containers/policy.json >/dev/null
	fi
}

# ------------------------------------------------------------ Go-built tools
# go_tool NAME PACKAGE@VERSION DEST_DIR [CHECK_ARGS...]
# Builds PACKAGE@VERSION with `go install` into a temp dir, checks it runs
# with CHECK_ARGS (if given; the conformance binary takes no arguments and
# would start testing a registry),
# then moves it into DEST_DIR (atomic rename) so a half-built tool is never
# mistaken for a cached one.
go_tool() {
	local name="$1" pkg="$2" dest="$3"
	shift 3
	if [[ -x "$dest/$name" ]]; then
		verbose "$name cached at $dest"
		return
	fi
	command -v go >/dev/null || die "go is not installed (needed to build $name from $pkg)"
	mkdir -p "$cache"
	local tmp
	tmp="$(mktemp -d "$cache/.build-$name.XXXXXX")"
	verbose "building $pkg"
	# GOFLAGS from the environment could carry -mod=vendor etc.; build a
	# module-mode install of exactly the pinned version. CGO off: static
	# binaries that keep working whatever libc the machine gets later.
	run_logged "go install $pkg" env GOBIN="$tmp" CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
		nice -n 10 go install -trimpath -ldflags "-s -w $GO_LDFLAGS" "$pkg"
	[[ -x "$tmp/$name" ]] || die "go install $pkg produced no $name binary"
	if [[ $# -gt 0 ]]; then
		run_logged "$name smoke check" "$tmp/$name" "$@"
	fi
	rm -rf "$dest"
	mv -T "$tmp" "$dest"
	log "built $name -> $dest/$name"
}

install_go_tools() {
	# The conformance suite reports this string as its "commit".
	GO_LDFLAGS="-X main.Version=$CONFORMANCE_VERSION"
	go_tool conformance "$CONFORMANCE_MODULE@$CONFORMANCE_VERSION" "$conformance_dir"
	GO_LDFLAGS=""
	go_tool oras "$ORAS_PACKAGE@$ORAS_VERSION" "$oras_dir" version
	# Helm reports its version from these variables (set by its Makefile).
	GO_LDFLAGS="-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
	go_tool helm "$HELM_PACKAGE@$HELM_VERSION" "$helm_dir" version
	GO_LDFLAGS=""
	go_tool crane "$CRANE_PACKAGE@$CRANE_VERSION" "$crane_dir" version
	go_tool regctl "$REGCTL_PACKAGE@$REGCTL_VERSION" "$regctl_dir" version
	go_tool cosign "$COSIGN_PACKAGE@$COSIGN_VERSION" "$cosign_dir" version
	go_tool versitygw "$VERSITYGW_PACKAGE@$VERSITYGW_VERSION" "$versitygw_dir" --version
	go_tool registry "$DISTRIBUTION_PACKAGE@$DISTRIBUTION_VERSION" "$distribution_dir" --version
	install_cri_pull
	install_apptainer_client
	install_python_oras
}

# The Python oras client (oras-py), pinned, in its own venv (a venv cannot
# be moved, so it is built in place; the import check finds a broken one).
install_python_oras() {
	if "$python_oras_dir/bin/python" -c "import oras.client" 2>/dev/null; then
		verbose "python oras cached at $python_oras_dir"
		return
	fi
	rm -rf "$python_oras_dir"
	mkdir -p "$cache"
	run_logged "python3 -m venv" python3 -m venv "$python_oras_dir"
	run_logged "pip install oras==$PYTHON_ORAS_VERSION" \
		"$python_oras_dir/bin/pip" install --quiet --disable-pip-version-check "oras==$PYTHON_ORAS_VERSION"
	"$python_oras_dir/bin/python" -c "import oras.client" || die "python oras does not import"
	log "installed python oras $PYTHON_ORAS_VERSION -> $python_oras_dir"
}

# cri-pull is a module in this repository, not a published tool: build it
# from its sources, keyed by their hash.
install_cri_pull() {
	if [[ -x "$cri_pull_dir/cri-pull" ]]; then
		verbose "cri-pull cached at $cri_pull_dir"
		return
	fi
	local tmp
	tmp="$(mktemp -d "$cache/.build-cri-pull.XXXXXX")"
	run_logged "go build cri-pull" env -C "$cri_pull_src" CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
		nice -n 10 go build -trimpath -ldflags "-s -w" -o "$tmp/cri-pull" .
	rm -rf "$cri_pull_dir"
	mv -T "$tmp" "$cri_pull_dir"
	log "built cri-pull -> $cri_pull_dir/cri-pull"
}

# apptainer-client is a module in this repository too (the library client
# and sif modules at the versions its go.mod pins): built from its sources,
# keyed by their hash.
install_apptainer_client() {
	if [[ -x "$apptainer_client_dir/apptainer-client" ]]; then
		verbose "apptainer-client cached at $apptainer_client_dir"
		return
	fi
	local tmp
	tmp="$(mktemp -d "$cache/.build-apptainer-client.XXXXXX")"
	run_logged "go build apptainer-client" env -C "$apptainer_client_src" CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
		nice -n 10 go build -trimpath -ldflags "-s -w" -o "$tmp/apptainer-client" .
	rm -rf "$apptainer_client_dir"
	mv -T "$tmp" "$apptainer_client_dir"
	log "built apptainer-client -> $apptainer_client_dir/apptainer-client"
}

main() {
	install_apt
	mkdir -p "$cache"
	# Serialise concurrent runs sharing one cache.
	exec 9>"$cache/.lock"
	flock 9
	install_go_tools
	flock -u 9
	local c
	for c in skopeo umoci podman buildah containerd ctr runc jq curl siftool mksquashfs chromium chromedriver; do
		command -v "$c" >/dev/null || die "$c is not on PATH after installing"
	done
	[[ -x "$conformance_dir/conformance" ]] || die "conformance binary missing at $conformance_dir"
	[[ -x "$oras_dir/oras" ]] || die "oras binary missing at $oras_dir"
	[[ -x "$helm_dir/helm" ]] || die "helm binary missing at $helm_dir"
	local t
	for t in "$crane_dir/crane" "$regctl_dir/regctl" "$cosign_dir/cosign" "$python_oras_dir/bin/python" "$versitygw_dir/versitygw" "$distribution_dir/registry" "$apptainer_client_dir/apptainer-client"; do
		[[ -x $t ]] || die "$t missing"
	done
}

main
if [[ $mode == env ]]; then
	print_env
fi
