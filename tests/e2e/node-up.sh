#!/usr/bin/env bash
# Turns the control plane of tests/cluster/up.sh into a single-node cluster
# that runs Pods: a private containerd (CRI plugin, runc, a bridge CNI
# network; registry hosts under certs.d/, where the e2e puts only the
# mirror's upstream.test: nothing for Berth's own endpoint), kube-scheduler,
# kube-proxy (iptables mode, so the host reaches Service cluster IPs) and a
# kubelet (node "e2e-node", cgroupfs driver: this machine mounts cgroup v1).
#
#   tests/e2e/node-up.sh PAUSE_TAR     needs KUBECONFIG/BERTH_KUBECTL from
#                                      up.sh; PAUSE_TAR is the sandbox image
#                                      (a docker archive named $E2E_PAUSE_IMAGE)
#
# Prints `export E2E_CONTAINERD_SOCK=… E2E_CERTS_D=…` on stdout. PIDs go to
# the cluster's pids file; tests/e2e/cluster-down.sh stops everything.
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
script_name=e2e/node-up.sh
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dir="${BERTH_CLUSTER_DIR:-$repo/target/e2e-cluster}"
pause_tar="${1:?usage: node-up.sh PAUSE_TAR}"
pause_ref="${E2E_PAUSE_IMAGE:-registry.k8s.io/pause:3.10}"
node="e2e-node"
# Pod network of the bridge plugin; Debian's containernetworking-plugins.
pod_cidr="${E2E_POD_CIDR:-10.244.77.0/24}"
cni_bin="${E2E_CNI_BIN_DIR:-/usr/lib/cni}"
bridge="e2e0"

[[ $(id -u) -eq 0 ]] || die "the kubelet and containerd need root"
for t in containerd ctr runc openssl iptables; do
	command -v "$t" >/dev/null || die "$t is not installed (tests/tools/install.sh)"
done
[[ -x $cni_bin/bridge && -x $cni_bin/host-local && -x $cni_bin/loopback ]] ||
	die "no CNI plugins in $cni_bin (Debian package containernetworking-plugins)"
: "${KUBECONFIG:?run tests/cluster/up.sh first}" "${BERTH_KUBECTL:?}"
eval "$("$repo/tests/cluster/build.sh" --paths)"
kube="$BERTH_KUBE_BIN_DIR"
k() { "$BERTH_KUBECTL" "$@"; }
pki="$dir/pki"
# The kubelet refuses a loopback node IP (local.sh: the default route's).
node_ip="${E2E_NODE_IP:?set E2E_NODE_IP to the IPv4 address of this host}"
api="$(awk '/server:/{print $2; exit}' "$KUBECONFIG")"

start() {
	local name="$1"
	shift
	nohup "$@" >"$dir/logs/$name.log" 2>&1 &
	echo "$! $name" >>"$dir/pids"
}
running() { kill -0 "$(awk -v n="$1" '$2==n{print $1}' "$dir/pids")" 2>/dev/null; }

# ------------------------------------------------------------ certificates
client_cert() {
	local name="$1" subj="$2"
	openssl req -newkey rsa:2048 -nodes -subj "$subj" -keyout "$pki/$name.key" -out "$pki/$name.csr" >/dev/null 2>&1 &&
		printf 'extendedKeyUsage=clientAuth\n' >"$pki/$name.ext" &&
		openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
			-days 2 -extfile "$pki/$name.ext" -out "$pki/$name.crt" >/dev/null 2>&1 || die "openssl: $name certificate"
	cat >"$dir/$name.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: "$api", certificate-authority: "$pki/ca.crt"}
users:
- name: $name
  user: {client-certificate: "$pki/$name.crt", client-key: "$pki/$name.key"}
contexts:
- name: e2e
  context: {cluster: e2e, user: $name}
current-context: e2e
KC
}
client_cert kube-scheduler "/CN=system:kube-scheduler"
client_cert kube-proxy "/CN=system:kube-proxy"
client_cert kubelet "/O=system:nodes/CN=system:node:$node"
# The API server runs RBAC only (no Node authorizer): bind the kubelet's
# group to the built-in system:node role.
k create clusterrolebinding e2e-nodes --clusterrole=system:node --group=system:nodes >/dev/null

# -------------------------------------------------------------- containerd
ctd="$dir/containerd"
mkdir -p "$ctd"/{certs.d,cni-conf,cni-state} "$dir/kubelet" "$dir/pod-logs"
sock="$ctd/containerd.sock"
cat >"$ctd/config.toml" <<EOF
version = 2
root = "$ctd/root"
state = "$ctd/state"
[grpc]
  address = "$sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$ctd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_ref"
  # This machine's root lacks CAP_SYS_RESOURCE: runc cannot lower
  # oom_score_adj (the kubelet asks -998 for sandboxes), "nsexec: failed to
  # update /proc/self/oom_score_adj: Permission denied". Clamp instead.
  restrict_oom_score_adj = true
  # Sandboxes' network namespaces under our state directory, not
  # /var/run/netns: cluster-down.sh unmounts whatever a failed run leaves.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$cni_bin"
    conf_dir = "$ctd/cni-conf"
  # hosts.toml files (the mirror's upstream.test only; Pods pull from Berth
  # at localhost:<port>, plain HTTP by containerd's default).
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$ctd/certs.d"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      Root = "$ctd/runc"
      SystemdCgroup = false
EOF
cat >"$ctd/cni-conf/10-e2e.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "e2e",
  "plugins": [
    {"type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$pod_cidr"}]], "routes": [{"dst": "0.0.0.0/0"}],
              "dataDir": "$ctd/cni-state"}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
EOF
# From here on a failure shows the end of the node's logs (the processes
# stay: tests/e2e/cluster-down.sh stops them).
show_logs() {
	local f
	for f in "$dir"/logs/{containerd,kubelet,kube-proxy,kube-scheduler}.log; do
		[[ -f $f ]] || continue
		echo "----- $f (last 40 lines)" >&2
		tail -n 40 "$f" >&2
	done
}
on_exit '((exit_status == 0)) || show_logs'
start containerd containerd --config "$ctd/config.toml"
containerd_answers() {
	running containerd || die "containerd exited"
	[[ -S $sock ]] && ctr -a "$sock" version
}
wait_for 30 "containerd to answer on $sock" containerd_answers
ctr -a "$sock" -n k8s.io images import "$pause_tar" >/dev/null || die "ctr images import $pause_tar"

# -------------------------------------------------- scheduler, kube-proxy
start kube-scheduler "$kube/kube-scheduler" --kubeconfig "$dir/kube-scheduler.kubeconfig" \
	--authentication-kubeconfig "$dir/kube-scheduler.kubeconfig" \
	--authorization-kubeconfig "$dir/kube-scheduler.kubeconfig" \
	--bind-address 127.0.0.1 --secure-port "$(free_port)" --leader-elect=false
cat >"$dir/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: "$dir/kube-proxy.kubeconfig"}
hostnameOverride: $node
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:$(free_port)
metricsBindAddress: 127.0.0.1:$(free_port)
clusterCIDR: $pod_cidr
conntrack: {maxPerCore: 0}
EOF
start kube-proxy "$kube/kube-proxy" --config "$dir/kube-proxy.yaml"

# ------------------------------------------------------------------ kubelet
# Anonymous, unauthorised access to the kubelet API: the API server of
# up.sh has no kubelet client certificate, and `kubectl logs` and
# port-forward go through it. It listens on the node IP only (the API server
# dials that).
kubelet_port="$(free_port)"
cat >"$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $(free_port)
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://$sock
cgroupDriver: cgroupfs
failSwapOn: false
podLogsDir: $dir/pod-logs
registerNode: true
# Keep a small, busy disk from evicting the test's Pods or their images.
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
EOF
start kubelet "$kube/kubelet" --config "$dir/kubelet.yaml" --kubeconfig "$dir/kubelet.kubeconfig" \
	--root-dir "$dir/kubelet" --cert-dir "$dir/kubelet/pki" \
	--hostname-override "$node" --node-ip "$node_ip" --v 1

start=$SECONDS
while :; do
	if [[ "$(k get node "$node" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]] &&
		[[ -z "$(k get node "$node" -o jsonpath='{.spec.taints}' 2>/dev/null)" ]]; then
		break
	fi
	for c in containerd kube-scheduler kube-proxy kubelet; do
		running "$c" || die "$c exited"
	done
	((SECONDS - start < 120)) || {
		k get node -o wide >&2 || true
		k describe node "$node" 2>&1 | tail -n 30 >&2 || true
		die "node $node did not become Ready without taints within 120 s"
	}
	sleep 1
done
log "node $node ($node_ip) Ready in $((SECONDS - start))s (kubelet $("$kube/kubelet" --version | awk '{print $2}'), $(containerd --version | awk '{print $2, $3}'), runc $(runc --version | awk 'NR==1{print $3}'))"
printf 'export E2E_CONTAINERD_SOCK=%q\n' "$sock"
printf 'export E2E_CERTS_D=%q\n' "$ctd/certs.d"
