# shellcheck shell=bash
# The cluster back end of tests/e2e/run.sh in a kind cluster (sourced; used
# by .github/workflows/e2e.yml, needs docker and kind). Same functions as
# local.sh. Not runnable on the machine this was written on (no Docker).

kind_name="${E2E_KIND_NAME:-berth-e2e}"
kind_node="$kind_name-control-plane"

cluster_up() {
	command -v kind >/dev/null || {
		echo "e2e/kind.sh: kind is not installed" >&2
		return 1
	}
	# containerd of the node reads per-registry hosts.toml files: only the
	# mirror's upstream.test gets one (install_hosts_toml); Pods pull from
	# Berth through its node endpoint, localhost:<port>, with nothing set.
	cat >"$E2E_DIR/kind.yaml" <<'EOF'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
containerdConfigPatches:
- |-
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/etc/containerd/certs.d"
EOF
	kind create cluster --name "$kind_name" --config "$E2E_DIR/kind.yaml" --wait 120s
	kind get kubeconfig --name "$kind_name" >"$E2E_DIR/kubeconfig"
	export KUBECONFIG="$E2E_DIR/kubeconfig"
	export BERTH_KUBECTL="${BERTH_KUBECTL:-kubectl}"
}

cluster_down() {
	kind delete cluster --name "$kind_name"
}

cluster_logs() {
	kind export logs "$E2E_DIR/kind-logs" --name "$kind_name" >/dev/null 2>&1 || true
	echo "kind logs in $E2E_DIR/kind-logs" >&2
}

load_image() {
	kind load image-archive "$1" --name "$kind_name"
}

install_hosts_toml() {
	docker exec -i "$kind_node" sh -c "mkdir -p /etc/containerd/certs.d/$1 && cat >/etc/containerd/certs.d/$1/hosts.toml" <<<"$2"
}

node_forget_image() {
	docker exec "$kind_node" ctr -n k8s.io images rm --sync "$1" >/dev/null
}

# The runner's address on kind's docker network (the node's default gateway).
host_address() {
	docker exec "$kind_node" ip -4 route show default | awk '{print $3}'
}

upstream_address() {
	echo "$(host_address):$(free_port)"
}

# registry_address_of NS NAME CLUSTER_IP:PORT: sets E2E_ADDRESS_OF to a
# port-forward to the Registry's Service (stopped by run.sh through
# E2E_BG_PIDS).
registry_address_of() {
	local port
	port="$(free_port)"
	# kubectl itself, not the k function: $! must be kubectl's PID.
	"$BERTH_KUBECTL" port-forward -n "$1" "svc/$2" "$port:${3##*:}" >"$E2E_DIR/port-forward-$2.log" 2>&1 &
	E2E_BG_PIDS+=("$!")
	wait_for 30 "port-forward to svc/$2" curl -sS -o /dev/null --max-time 2 "http://127.0.0.1:$port/v2/"
	E2E_ADDRESS_OF="127.0.0.1:$port"
}

# kind's local-path provisioner serves the claim.
prepare_storage() { :; }

# registry_address CLUSTER_IP:PORT: sets E2E_REGISTRY_ADDR, where the
# runner reaches the registry Service. The runner is outside the cluster
# network: a port-forward (stopped by run.sh through E2E_BG_PIDS).
registry_address() {
	local port
	port="$(free_port)"
	# kubectl itself, not the k function: $! must be kubectl's PID.
	"$BERTH_KUBECTL" port-forward -n "$E2E_REGISTRY_NS" "svc/$E2E_REGISTRY_SVC" "$port:${1##*:}" >"$E2E_DIR/port-forward.log" 2>&1 &
	E2E_BG_PIDS+=("$!")
	E2E_REGISTRY_ADDR="127.0.0.1:$port"
	wait_for 30 "port-forward to svc/$E2E_REGISTRY_SVC answering on $E2E_REGISTRY_ADDR" \
		curl -sS -o /dev/null --max-time 2 "http://$E2E_REGISTRY_ADDR/v2/"
}
