#!/usr/bin/env bash
# Starts a real Kubernetes control plane on loopback for the operator's
# tests: etcd, kube-apiserver and kube-controller-manager (garbage
# collector, namespace, serviceaccount, deployment, replicaset, PVC
# protection and disruption controllers), built by build.sh. No nodes and no
# scheduler: pods are created but never run.
#
#   tests/cluster/up.sh      start; prints `export KUBECONFIG=… BERTH_KUBECTL=…`
#                            on stdout (PATH is left alone: changing it would
#                            make cargo rebuild crates whose build scripts
#                            watch it)
#   tests/cluster/down.sh    stop (by the PIDs recorded here)
#
# BERTH_CLUSTER_EXTRA_CONTROLLERS (comma-separated) adds controllers to the
# controller manager (tests/e2e adds the ones a node with Pods needs).
#
# State (certificates, tokens, data, logs, pids, kubeconfig) lives in
# ${BERTH_CLUSTER_DIR:-<repo>/target/cluster}; each start begins from an
# empty etcd. Ports are free ones picked at start.
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
script_name=cluster/up.sh
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dir="${BERTH_CLUSTER_DIR:-$repo/target/cluster}"

"$here/build.sh" >&2
eval "$("$here/build.sh" --paths)"
kube="$BERTH_KUBE_BIN_DIR"
etcd="$BERTH_ETCD_BIN"

if [[ -f $dir/pids ]]; then
	"$here/down.sh" >&2 || true
fi
rm -rf "$dir"
mkdir -p "$dir"/{pki,etcd,logs}
pki="$dir/pki"

etcd_port="$(free_port)"
etcd_peer="$(free_port)"
api_port="$(free_port)"

# ------------------------------------------------------------ certificates
ossl() { openssl "$@" >/dev/null 2>&1 || die "openssl $*"; }
ossl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=berth-test-ca" \
	-keyout "$pki/ca.key" -out "$pki/ca.crt"
# cert NAME SUBJECT [SAN]
cert() {
	local name="$1" subj="$2" san="${3:-}"
	local ext="$pki/$name.ext"
	{
		echo "basicConstraints=CA:FALSE"
		echo "keyUsage=digitalSignature,keyEncipherment"
		if [[ -n $san ]]; then
			echo "extendedKeyUsage=serverAuth,clientAuth"
			echo "subjectAltName=$san"
		else
			echo "extendedKeyUsage=clientAuth"
		fi
	} >"$ext"
	ossl req -newkey rsa:2048 -nodes -subj "$subj" -keyout "$pki/$name.key" -out "$pki/$name.csr"
	ossl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
		-days 2 -extfile "$ext" -out "$pki/$name.crt"
}
# Pods reach the API server only when it listens beyond loopback: with
# BERTH_CLUSTER_NODE_IP set (tests/e2e), it binds all addresses and
# advertises that one (the `kubernetes` Service's endpoint).
bind_address=127.0.0.1
advertise_address=127.0.0.1
extra_san=""
if [[ -n ${BERTH_CLUSTER_NODE_IP:-} ]]; then
	bind_address=0.0.0.0
	advertise_address="$BERTH_CLUSTER_NODE_IP"
	extra_san=",IP:$BERTH_CLUSTER_NODE_IP"
fi
cert apiserver "/CN=kube-apiserver" "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc$extra_san"
cert admin "/O=system:masters/CN=berth-test-admin"
cert controller-manager "/CN=system:kube-controller-manager"
ossl genrsa -out "$pki/sa.key" 2048
ossl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub"

kubeconfig() {
	local user="$1" file="$2"
	cat >"$file" <<KC
apiVersion: v1
kind: Config
clusters:
- name: berth-test
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $pki/ca.crt
users:
- name: $user
  user:
    client-certificate: $pki/$user.crt
    client-key: $pki/$user.key
contexts:
- name: berth-test
  context: {cluster: berth-test, user: $user, namespace: default}
current-context: berth-test
KC
}
kubeconfig admin "$dir/kubeconfig"
kubeconfig controller-manager "$dir/controller-manager.kubeconfig"

# ----------------------------------------------------------------- start
: >"$dir/pids"
start() {
	local name="$1"
	shift
	nohup "$@" >"$dir/logs/$name.log" 2>&1 &
	echo "$! $name" >>"$dir/pids"
}
running() { kill -0 "$(awk -v n="$1" '$2==n{print $1}' "$dir/pids")" 2>/dev/null; }
# From here on a failure shows the end of every log and stops what started;
# on success everything keeps running.
show_logs_and_stop() {
	local f
	for f in "$dir"/logs/*.log; do
		echo "----- $f (last 40 lines)" >&2
		tail -n 40 "$f" >&2
	done
	"$here/down.sh" >&2
}
on_exit '((exit_status == 0)) || show_logs_and_stop'

start etcd "$etcd" --name berth-test --data-dir "$dir/etcd" \
	--listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
	--listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
	--initial-cluster "berth-test=http://127.0.0.1:$etcd_peer" \
	--unsafe-no-fsync --quota-backend-bytes 1073741824

wait_for 20 "etcd to become healthy" curl -fsS "http://127.0.0.1:$etcd_port/health"

start kube-apiserver "$kube/kube-apiserver" \
	--etcd-servers "http://127.0.0.1:$etcd_port" \
	--bind-address "$bind_address" --advertise-address "$advertise_address" --secure-port "$api_port" \
	--cert-dir "$dir/pki" \
	--tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
	--client-ca-file "$pki/ca.crt" \
	--service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
	--service-account-issuer https://kubernetes.default.svc \
	--service-cluster-ip-range 10.0.0.0/24 \
	--authorization-mode RBAC \
	--kubelet-preferred-address-types InternalIP,Hostname \
	--enable-priority-and-fairness=false \
	--profiling=false

apiserver_ready() {
	running kube-apiserver || die "kube-apiserver exited"
	curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
		"https://127.0.0.1:$api_port/readyz"
}
wait_for_interval=0.5
wait_for 150 "kube-apiserver to become ready" apiserver_ready

start kube-controller-manager "$kube/kube-controller-manager" \
	--kubeconfig "$dir/controller-manager.kubeconfig" \
	--authentication-kubeconfig "$dir/controller-manager.kubeconfig" \
	--authorization-kubeconfig "$dir/controller-manager.kubeconfig" \
	--bind-address 127.0.0.1 --secure-port "$(free_port)" \
	--controllers "garbage-collector-controller,namespace-controller,serviceaccount-controller,deployment-controller,replicaset-controller,persistentvolumeclaim-protection-controller,disruption-controller${BERTH_CLUSTER_EXTRA_CONTROLLERS:+,$BERTH_CLUSTER_EXTRA_CONTROLLERS}" \
	--leader-elect=false --use-service-account-credentials=true \
	--root-ca-file "$pki/ca.crt" --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key"

# The controller manager is up when it has made the default ServiceAccount.
wait_for 60 "kube-controller-manager to create the default ServiceAccount" \
	env KUBECONFIG="$dir/kubeconfig" "$kube/kubectl" get serviceaccount default -n default
log "control plane ready: kube-apiserver https://127.0.0.1:$api_port ($("$kube/kube-apiserver" --version)), etcd $("$etcd" --version | head -1 | awk '{print $3}')"
printf 'export KUBECONFIG=%q\n' "$dir/kubeconfig"
printf 'export BERTH_KUBECTL=%q\n' "$kube/kubectl"
