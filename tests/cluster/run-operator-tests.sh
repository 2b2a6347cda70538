#!/usr/bin/env bash
# The operator's tests against a real control plane: builds it if needed
# (build.sh, cached), starts it (up.sh), runs the cluster tests of
# berth-operator (feature `cluster-tests`, one at a time: each starts its
# own operator process), and stops it again whatever happened.
#
#   tests/cluster/run-operator-tests.sh [extra cargo test args]
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
script_name=run-operator-tests
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/../.."

start=$SECONDS
"$here/build.sh"
log "control plane binaries ready in $((SECONDS - start))s"

# Compile the tests before starting the cluster (the cluster needs no CPU
# while cargo builds, and a long build does not eat into its lifetime).
cargo test -p berth-operator --features cluster-tests --test cluster --no-run

on_exit '"$here/down.sh"'
start=$SECONDS
eval "$("$here/up.sh")"
log "control plane up in $((SECONDS - start))s (KUBECONFIG=$KUBECONFIG)"
rc=0
cargo test -p berth-operator --features cluster-tests --test cluster "$@" -- --test-threads=1 || rc=$?
if ((rc != 0)); then
	dir="${BERTH_CLUSTER_DIR:-target/cluster}"
	for f in "$dir"/logs/*.log; do
		echo "----- $f (last 30 lines)" >&2
		tail -n 30 "$f" >&2
	done
fi
exit "$rc"
