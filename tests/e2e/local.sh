# shellcheck shell=bash
# The cluster back end of tests/e2e/run.sh on this machine (sourced): the
# control plane of tests/cluster/up.sh plus a node (tests/e2e/node-up.sh:
# containerd, kubelet, kube-scheduler, kube-proxy). Every function here has
# a counterpart in kind.sh.

export BERTH_CLUSTER_DIR="${BERTH_CLUSTER_DIR:-$E2E_REPO/target/e2e-cluster}"

# Controllers a node with Pods needs beyond the operator tests' set: node
# taints follow the kubelet's Ready condition, claims bind to the PV made
# below, Services get EndpointSlices (kube-proxy), Pods' token volumes find
# kube-root-ca.crt, DaemonSets (the node endpoint) get their Pods.
e2e_controllers="daemonset-controller,node-lifecycle-controller,persistentvolume-binder-controller,endpointslice-controller,root-ca-certificate-publisher-controller"

cluster_up() {
	"$E2E_REPO/tests/e2e/images.sh" pause "$E2E_DIR/images" "$E2E_PAUSE_IMAGE"
	# The node's address (the kubelet refuses loopback): the default route's.
	E2E_NODE_IP="${E2E_NODE_IP:-$(ip -4 route get 1.1.1.1 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "src") print $(i + 1)}')}"
	[[ -n $E2E_NODE_IP ]] || {
		echo "e2e/local.sh: cannot find this host's IPv4 address (set E2E_NODE_IP)" >&2
		return 1
	}
	export E2E_NODE_IP
	eval "$(BERTH_CLUSTER_EXTRA_CONTROLLERS="$e2e_controllers" BERTH_CLUSTER_NODE_IP="$E2E_NODE_IP" "$E2E_REPO/tests/cluster/up.sh")"
	export KUBECONFIG BERTH_KUBECTL
	eval "$("$E2E_REPO/tests/e2e/node-up.sh" "$E2E_DIR/images/pause.tar")"
	export E2E_CONTAINERD_SOCK E2E_CERTS_D
}

cluster_down() {
	"$E2E_REPO/tests/e2e/cluster-down.sh"
}

cluster_logs() {
	local f
	for f in "$BERTH_CLUSTER_DIR"/logs/*.log; do
		echo "----- $f (last 30 lines)" >&2
		tail -n 30 "$f" >&2
	done
}

# load_image TAR: a docker archive into the node's image store.
load_image() {
	ctr -a "$E2E_CONTAINERD_SOCK" -n k8s.io images import "$1" >/dev/null
}

# install_hosts_toml REGISTRY CONTENT: the node's containerd uses CONTENT as
# the hosts.toml of REGISTRY (what a node image or provisioning script does
# with the operator's <registry>-containerd-hosts ConfigMap). Only the
# mirror's upstream.test gets one: Berth's own endpoint, localhost:<port>,
# needs none.
install_hosts_toml() {
	mkdir -p "$E2E_CERTS_D/$1"
	printf '%s\n' "$2" >"$E2E_CERTS_D/$1/hosts.toml"
}

# node_forget_image REF: the node's containerd drops the image (and, by its
# garbage collection, the layers no other image uses).
node_forget_image() {
	ctr -a "$E2E_CONTAINERD_SOCK" -n k8s.io images rm --sync "$1" >/dev/null
}

# host_address: where a process on this host listens so that Pods reach it
# (the node IP).
host_address() {
	echo "$E2E_NODE_IP"
}

upstream_address() {
	echo "$(host_address):$(free_port)"
}

# registry_address_of NS NAME CLUSTER_IP:PORT: sets E2E_ADDRESS_OF, where
# this host reaches a Registry's Service (kube-proxy runs here: the cluster
# IP itself).
registry_address_of() {
	E2E_ADDRESS_OF="$3"
}

# prepare_storage NS: a PersistentVolume for the Registry's claim (there is
# no provisioner here): a host directory, writable by the registry's user.
prepare_storage() {
	local path="$BERTH_CLUSTER_DIR/pv-registry"
	mkdir -p "$path"
	chown 65532:65532 "$path"
	k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolume
metadata: {name: e2e-registry-data}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: "$path", type: Directory}
EOF
}

# registry_address CLUSTER_IP:PORT: sets E2E_REGISTRY_ADDR, where this host
# reaches the registry Service. kube-proxy runs on this host: the cluster IP
# itself.
registry_address() {
	E2E_REGISTRY_ADDR="$1"
}
