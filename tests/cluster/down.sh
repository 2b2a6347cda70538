#!/usr/bin/env bash
# Stops the control plane up.sh started, by the PIDs it recorded
# (controller manager, then API server, then etcd).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dir="${BERTH_CLUSTER_DIR:-$repo/target/cluster}"
[[ -f $dir/pids ]] || exit 0
for name in kube-controller-manager kube-apiserver etcd; do
	pid="$(awk -v n="$name" '$2==n{print $1}' "$dir/pids")"
	[[ -n $pid ]] || continue
	kill -TERM "$pid" 2>/dev/null || continue
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
done
rm -f "$dir/pids"
