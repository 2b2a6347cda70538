#!/usr/bin/env bash
# Stops what tests/e2e/cluster-up.sh started, by the PIDs it recorded: the
# kubelet, kube-proxy and kube-scheduler, then every container left in the
# private containerd (by container id, through ctr), containerd itself, the
# mounts under the cluster directory, kube-proxy's iptables rules and the
# bridge; then the control plane (tests/cluster/down.sh).
set -uo pipefail
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
script_name=e2e/cluster-down.sh
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export BERTH_CLUSTER_DIR="${BERTH_CLUSTER_DIR:-$repo/target/e2e-cluster}"
dir="$BERTH_CLUSTER_DIR"
[[ -f $dir/pids ]] || exit 0

stop() {
	local name="$1" pid
	pid="$(awk -v n="$name" '$2==n{print $1}' "$dir/pids")"
	[[ -n $pid ]] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	log "$name ($pid) ignored SIGTERM for 10 s; SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
}

stop kubelet
stop kube-proxy
stop kube-scheduler
sock="$dir/containerd/containerd.sock"
if [[ -S $sock ]] && ctr -a "$sock" version >/dev/null 2>&1; then
	c=(ctr -a "$sock" -n k8s.io)
	for id in $("${c[@]}" tasks ls -q 2>/dev/null); do
		"${c[@]}" tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
	done
	for id in $("${c[@]}" tasks ls -q 2>/dev/null); do
		for _ in $(seq 1 50); do
			"${c[@]}" tasks rm "$id" >/dev/null 2>&1 && break
			sleep 0.1
		done
	done
	for id in $("${c[@]}" containers ls -q 2>/dev/null); do
		"${c[@]}" containers rm "$id" >/dev/null 2>&1 || true
	done
fi
stop containerd
# Sandboxes' network namespaces, secret tmpfs, overlay rootfs: deepest first.
awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
	umount -l "$m" 2>/dev/null || true
done
eval "$("$repo/tests/cluster/build.sh" --paths)"
if [[ -x $BERTH_KUBE_BIN_DIR/kube-proxy && -f $dir/kube-proxy.yaml ]]; then
	"$BERTH_KUBE_BIN_DIR/kube-proxy" --cleanup --config "$dir/kube-proxy.yaml" >/dev/null 2>&1 || true
fi
# The kubelet's own chains (KUBE-FIREWALL, KUBE-KUBELET-CANARY).
for ipt in iptables ip6tables; do
	command -v "$ipt" >/dev/null || continue
	for chain in INPUT OUTPUT; do
		"$ipt" -D "$chain" -j KUBE-FIREWALL 2>/dev/null || true
	done
	"$ipt" -F KUBE-FIREWALL 2>/dev/null && "$ipt" -X KUBE-FIREWALL 2>/dev/null
	for table in filter nat mangle; do
		"$ipt" -t "$table" -F KUBE-KUBELET-CANARY 2>/dev/null && "$ipt" -t "$table" -X KUBE-KUBELET-CANARY 2>/dev/null
		"$ipt" -t "$table" -X KUBE-IPTABLES-HINT 2>/dev/null
	done
done
ip link del e2e0 2>/dev/null || true
"$repo/tests/cluster/down.sh"
