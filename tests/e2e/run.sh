#!/usr/bin/env bash
# End to end, on a real cluster whose containerd has no hosts.toml for
# Berth (nothing on the node names Berth's endpoint): `helm install` of
# charts/berth runs the operator as a Pod (the berth image of
# images/build.sh); kubectl refuses invalid specs at admission; a Registry
# applied by hand (no image named: it runs the operator's) becomes Ready
# with its node endpoint, `localhost:<port>` on the node; a Repository
# grants team-a/default pull and push, and its robot pushes the moment the
# Repository is Ready (no retry); a Pod in team-a with no pull secret in its
# spec runs that image, pulled by the kubelet from localhost:<port> through
# the pull Secret the operator made; the Repository's status counts its
# tags and bytes; a grant into team-b writes nothing until team-b consents;
# wrong credentials and a deleted Repository make pulls fail with an auth
# error (the registry's metric counts the failures); the logs are plain
# and quiet; deleting the Registry and `helm uninstall` clean up. The
# Registry also
# mirrors an upstream registry (CNCF distribution on this host, as
# `upstream.test`): with the operator's hosts.toml on the node, a Pod's
# `upstream.test/library/app:v1` is pulled through Berth, and again after the
# upstream is stopped. A second Registry runs 2 replicas on PostgreSQL and
# versitygw (on the node, tests/backends/up.sh): a push survives every
# registry Pod being replaced mid-upload, a Pod runs the image, `replicas: 3`
# scales up without restarting the others, and a config change rolls every Pod while a
# client pulls in a loop without a failure.
#
#   tests/e2e/run.sh          on this machine (root): tests/cluster/ control
#                             plane + tests/e2e/node-up.sh (containerd,
#                             kubelet, kube-scheduler, kube-proxy)
#   tests/e2e/run.sh kind     in a kind cluster (docker + kind; CI workflow
#                             .github/workflows/e2e.yml)
#
# The two differ only in cluster start-up, image loading and how this host
# reaches the registry (local.sh, kind.sh); every step below is shared. Each
# step prints its duration; the cluster and port-forwards are stopped by PID
# at the end, also on failure. Builds the debug binaries (cargo, warm in
# CI), helm comes from tests/tools/install.sh. Work files: target/e2e/.
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
script_name=e2e
# Cluster state changes in seconds; polling kubectl faster only adds load.
wait_for_interval=1
E2E_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
backend="${1:-local}"
case "$backend" in
local | kind) ;;
*)
	echo "usage: tests/e2e/run.sh [local|kind]" >&2
	exit 2
	;;
esac
E2E_DIR="${E2E_DIR:-$E2E_REPO/target/e2e}"
E2E_PAUSE_IMAGE="${E2E_PAUSE_IMAGE:-registry.k8s.io/pause:3.10}"
export E2E_REPO E2E_DIR E2E_PAUSE_IMAGE
E2E_BG_PIDS=()
E2E_REGISTRY_NS=berth-e2e
E2E_REGISTRY_SVC=e2e
team_ns=team-a
other_ns=team-b
repo_name=team-a/hello
# The node endpoints' ports on this host (the node): free ones.
pull_port="$(free_port)"
ha_pull_port="$(free_port)"
while [[ $ha_pull_port == "$pull_port" ]]; do ha_pull_port="$(free_port)"; done
token="$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
berth_image="berth.local/berth:e2e-$token"

k() { "$BERTH_KUBECTL" "$@"; }

# jp KIND NAME NS JSONPATH: one field of an object ("" when absent).
jp() { k get "$1" "$2" -n "$3" -o "jsonpath=$4" 2>/dev/null; }
# is CMD... EXPECTED: CMD's output equals EXPECTED (echoes it otherwise).
is() {
	local want="${*: -1}" got
	got="$("${@:1:$#-1}")" || true
	[[ $got == "$want" ]] || {
		echo "got '$got', want '$want'"
		return 1
	}
}
gone() { ! k get "$@" >/dev/null 2>&1; }

declare -a step_lines=()
cluster_started=""
current_step=""
step() {
	current_step="$1"
	shift
	local start=$SECONDS
	echo "=== e2e: $current_step" >&2
	"$@"
	step_lines+=("$(printf '  %-58s %4ss' "$current_step" "$((SECONDS - start))")")
	echo "--- e2e: $current_step: ok ($((SECONDS - start))s)" >&2
	current_step=""
}

# At exit (on_exit): the failed step's context, background processes and
# the cluster stopped, the summary; sets the exit status.
finish() {
	local rc=$exit_status
	if [[ -n $current_step ]]; then
		log "FAILED in step: $current_step (exit $rc)"
		if [[ -n ${KUBECONFIG:-} ]]; then
			k get nodes,deploy,pods,pvc,pv,svc -A -o wide >&2 2>/dev/null
			k get registries,repositories,daemonsets -A >&2 2>/dev/null
			k get events -A --sort-by=.lastTimestamp 2>/dev/null | tail -n 25 >&2
		fi
		if [[ -n ${KUBECONFIG:-} ]]; then
			echo "----- operator log (last 30 lines)" >&2
			k logs -n berth-system -l app.kubernetes.io/component=operator --tail 30 >&2 2>/dev/null
			echo "----- registry log (last 30 lines)" >&2
			k logs -n "$E2E_REGISTRY_NS" -l app.kubernetes.io/component=registry --tail 30 >&2 2>/dev/null
			k logs -n "$ha_ns" -l app.kubernetes.io/component=registry --tail 30 --prefix >&2 2>/dev/null
		fi
		[[ -n $cluster_started ]] && cluster_logs
		((rc == 0)) && rc=1
	fi
	local p
	for p in "${E2E_BG_PIDS[@]}"; do
		stop_pid "$p" "background process"
	done
	if [[ -n ${ha_backends_dir:-} ]]; then
		BERTH_BACKENDS_DIR="$ha_backends_dir" "$E2E_REPO/tests/backends/down.sh" --clean || true
	fi
	local start=$SECONDS
	if [[ ${E2E_KEEP:-0} == 1 ]]; then
		log "E2E_KEEP=1: cluster left running; stop it with tests/e2e/cluster-down.sh"
	else
		[[ -n $cluster_started ]] && cluster_down
	fi
	step_lines+=("$(printf '  %-58s %4ss' "cluster down" "$((SECONDS - start))")")
	echo "=== e2e summary ($backend)" >&2
	printf '%s\n' "${step_lines[@]}" >&2
	if ((rc == 0)); then echo "e2e: PASSED" >&2; else echo "e2e: FAILED" >&2; fi
	exit_status=$rc
}
on_exit finish
trap 'exit 130' INT TERM

# shellcheck source=local.sh
source "$E2E_REPO/tests/e2e/$backend.sh"

# ------------------------------------------------------------------ steps
build() {
	rm -rf "$E2E_DIR"
	mkdir -p "$E2E_DIR"
	# The berth image (berth + berth-operator) of images/build.sh, from the
	# debug binaries the other stages build anyway.
	"$E2E_REPO/images/build.sh" --profile debug --out "$E2E_DIR/images/berth-oci" --tag e2e >/dev/null
	skopeo copy --quiet "oci:$E2E_DIR/images/berth-oci:e2e" "docker-archive:$E2E_DIR/images/berth.tar:$berth_image"
	"$E2E_REPO/tests/e2e/images.sh" hello "$E2E_DIR/images" "$repo_name:v1" "$token"
	if [[ -z ${BERTH_HELM_BIN:-} ]]; then
		eval "$("$E2E_REPO/tests/tools/install.sh" --paths)"
	fi
	[[ -x ${BERTH_HELM_BIN:-} ]] || {
		log "no helm at '${BERTH_HELM_BIN:-}' (tests/tools/install.sh builds it)"
		return 1
	}
	log "berth image $berth_image ($(du -h "$E2E_DIR/images/berth.tar" | cut -f1)); helm $("$BERTH_HELM_BIN" version --short)"
}

up() {
	cluster_started=1
	cluster_up
	load_image "$E2E_DIR/images/berth.tar"
}

# The chart (CRDs, RBAC, the operator's Deployment with the berth image,
# which is also the image of Registries that name none).
helm_install() {
	"$BERTH_HELM_BIN" install berth "$E2E_REPO/charts/berth" --namespace berth-system --create-namespace \
		--set image.repository="${berth_image%:*}" --set image.tag="${berth_image##*:}" \
		--set operator.leaderElection.enabled=false --set grafanaDashboards.enabled=false \
		--set operator.usageRefreshSeconds=5 \
		--timeout 120s >"$E2E_DIR/helm-install.txt"
	wait_for 180 "operator Deployment berth-system/berth-operator available (its Pod running the berth image)" \
		k rollout status deployment/berth-operator -n berth-system --timeout 5s
	wait_for 60 "CRDs registries.berth.dev and repositories.berth.dev Established" \
		k wait --for condition=Established --timeout 5s crd/registries.berth.dev crd/repositories.berth.dev
	log "operator $(k get pods -n berth-system -l app.kubernetes.io/component=operator -o jsonpath='{.items[0].metadata.name} {.items[0].status.phase} on {.items[0].spec.nodeName}')"
}

# The registry the e2e Registry mirrors: CNCF distribution (built by
# tests/tools/install.sh) on an address the registry Pod reaches, holding
# the test image as library/app:v1; its access log counts what Berth asks.
upstream_up() {
	if [[ -z ${BERTH_DISTRIBUTION_BIN:-} ]]; then
		eval "$("$E2E_REPO/tests/tools/install.sh" --paths)"
	fi
	upstream_addr="$(upstream_address)"
	mkdir -p "$E2E_DIR/upstream"
	cat >"$E2E_DIR/upstream/config.yml" <<EOF
version: 0.1
log: {level: info, accesslog: {disabled: false}}
storage: {filesystem: {rootdirectory: $E2E_DIR/upstream/data}}
http: {addr: $upstream_addr}
EOF
	"$BERTH_DISTRIBUTION_BIN" serve "$E2E_DIR/upstream/config.yml" >"$E2E_DIR/upstream/log" 2>&1 &
	upstream_pid=$!
	E2E_BG_PIDS+=("$upstream_pid")
	wait_for 30 "upstream registry answering on $upstream_addr" \
		curl -fsS -o /dev/null --max-time 2 "http://$upstream_addr/v2/"
	skopeo copy --quiet --dest-tls-verify=false "oci:$E2E_DIR/images/oci:hello" "docker://$upstream_addr/library/app:v1"
	log "upstream.test is distribution at $upstream_addr with library/app:v1"
}

# Requests for library/app in the upstream's access log.
upstream_requests() {
	grep -c 'library/app/' "$E2E_DIR/upstream/log" || true
}

# refused WHAT YAML EXPECTED...: `kubectl apply` of YAML fails, and its
# message has every EXPECTED string.
refused() {
	local what="$1" yaml="$2" out
	shift 2
	if out="$(k apply -f - <<<"$yaml" 2>&1)"; then
		log "kubectl apply accepted $what: $out"
		return 1
	fi
	local want
	for want in "$@"; do
		[[ $out == *"$want"* ]] || {
			log "kubectl apply refused $what without saying '$want': $out"
			return 1
		}
	done
	log "refused $what: ${out#*: }"
}

# Invalid quantities and schedules are refused by the API server at once,
# with the field's path; a valid one (1Pi) passes a server-side dry run.
admission() {
	k create namespace "$E2E_REGISTRY_NS" >/dev/null
	local reg="apiVersion: berth.dev/v1alpha1
kind: Registry
metadata: {name: bad, namespace: $E2E_REGISTRY_NS}
spec:"
	local repo="apiVersion: berth.dev/v1alpha1
kind: Repository
metadata: {name: bad, namespace: $E2E_REGISTRY_NS}
spec:
  registry: e2e
  name: bad/app"
	refused "Registry size 10Zi" "$reg {storage: {volume: {size: 10Zi}}}" \
		"spec.storage.volume.size" "must be a quantity of bytes"
	refused "Registry size abc" "$reg {storage: {volume: {size: abc}}}" "spec.storage.volume.size"
	refused "Registry gc schedule 'every day at 3'" "$reg {gc: {schedule: every day at 3}}" \
		"spec.gc.schedule" "must be a cron schedule"
	refused "Repository quota 10Zi" "$repo
  quota: 10Zi" "spec.quota" "must be a quantity of bytes"
	refused "Repository retention schedule 'every day at 3'" "$repo
  retention: {schedule: every day at 3, keepLast: 1}" "spec.retention.schedule"
	local out
	out="$(k apply -f - <<<"$reg {replicas: 2}" 2>&1)" && {
		log "replicas: 2 on a volume was accepted"
		return 1
	}
	[[ $out == *"spec.replicas: Invalid value"* && $out != *"<nil>"* ]] || {
		log "the replicas rule does not name its field: $out"
		return 1
	}
	log "refused replicas: 2 on a volume: ${out#*: }"
	k apply --dry-run=server -f - <<<"$reg {storage: {volume: {size: 1Pi}}}" >/dev/null
	log "accepted (server-side dry run): size 1Pi"
}

registry_ready() {
	prepare_storage "$E2E_REGISTRY_NS"
	# No image: the operator's own (the chart passed it). The node endpoint
	# on a free port of this host (the node).
	k apply -f - >/dev/null <<EOF
apiVersion: berth.dev/v1alpha1
kind: Registry
metadata: {name: e2e, namespace: $E2E_REGISTRY_NS}
spec:
  storage: {volume: {size: 1Gi}}
  nodeEndpoint: {port: $pull_port}
  mirrors:
  - {name: upstream.test, url: "http://$upstream_addr"}
EOF
	wait_for 180 "Registry $E2E_REGISTRY_NS/e2e Ready=True with readyReplicas 1 (its Pod and the node endpoint running the berth image)" \
		is jp registry e2e "$E2E_REGISTRY_NS" '{.status.conditions[?(@.type=="Ready")].status}/{.status.readyReplicas}' "True/1"
	endpoint="$(jp registry e2e "$E2E_REGISTRY_NS" '{.status.endpoint}')"
	[[ $endpoint == "localhost:$pull_port" ]] || {
		log "status.endpoint is '$endpoint', not the node endpoint localhost:$pull_port"
		return 1
	}
	local image
	image="$(jp deployment e2e "$E2E_REGISTRY_NS" '{.spec.template.spec.containers[0].image}')"
	[[ $image == "$berth_image" ]] || {
		log "the Registry runs '$image', not the operator's image $berth_image"
		return 1
	}
	local pod
	pod="$(k get pods -n "$E2E_REGISTRY_NS" -l app.kubernetes.io/component=registry -o name | head -n1)"
	log "Registry Ready: $(jp registry e2e "$E2E_REGISTRY_NS" '{.status.conditions[?(@.type=="Ready")].message}')"
	log "$pod on node $(k get -n "$E2E_REGISTRY_NS" "$pod" -o jsonpath='{.spec.nodeName} image {.spec.containers[0].image} IP {.status.podIP}'); node endpoint $(jp daemonset e2e-node "$E2E_REGISTRY_NS" '{.status.numberReady}/{.status.desiredNumberScheduled}') ready"
	# Pushes go to the Service (this host reaches it; Pods pull from localhost).
	registry_address "$(jp service e2e "$E2E_REGISTRY_NS" '{.spec.clusterIP}:{.spec.ports[0].port}')"
	log "this host pushes to the registry's Service at $E2E_REGISTRY_ADDR"
	# A new Registry's events: each object created once, nothing updated.
	local updated
	updated="$(k get events -n "$E2E_REGISTRY_NS" --field-selector involvedObject.name=e2e,reason=Updated -o jsonpath='{range .items[*]}{.note}{.message}{"\n"}{end}')"
	[[ -z $updated ]] || {
		log "a new Registry got Updated events: $updated"
		return 1
	}
}

# grant NAME NAMESPACES...: a Repository NAME of $repo_name granting each
# namespace's default ServiceAccount (pull; push for the first).
repository_yaml() {
	local first="$1"
	shift
	cat <<EOF
apiVersion: berth.dev/v1alpha1
kind: Repository
metadata: {name: hello, namespace: $E2E_REGISTRY_NS}
spec:
  registry: e2e
  name: $repo_name
  access:
  - serviceAccounts: [{namespace: $first, name: default}]
    actions: [pull, push]
EOF
	local ns
	for ns in "$@"; do
		printf '  - serviceAccounts: [{namespace: %s, name: default}]\n    actions: [pull]\n' "$ns"
	done
}

repository() {
	# team-a accepts grants from the registries' namespaces.
	k create namespace "$team_ns" >/dev/null
	k annotate namespace "$team_ns" "berth.dev/accept-grants-from=$E2E_REGISTRY_NS,$ha_ns" >/dev/null
	wait_for 60 "ServiceAccount $team_ns/default" k get serviceaccount default -n "$team_ns"
	local start=$SECONDS
	repository_yaml "$team_ns" | k apply -f - >/dev/null
	wait_for 90 "Repository $E2E_REGISTRY_NS/hello Ready=True" \
		is jp repository hello "$E2E_REGISTRY_NS" '{.status.conditions[?(@.type=="Ready")].status}' True
	log "Repository Ready $((SECONDS - start))s after it was applied: $(jp repository hello "$E2E_REGISTRY_NS" '{.status.conditions[?(@.type=="Ready")].message}')"
	robot_user="$(jp secret hello-robot "$E2E_REGISTRY_NS" '{.data.username}' | base64 -d)"
	robot_pass="$(jp secret hello-robot "$E2E_REGISTRY_NS" '{.data.password}' | base64 -d)"
	[[ -n $robot_user && -n $robot_pass ]] || {
		log "robot Secret $E2E_REGISTRY_NS/hello-robot has no username/password"
		return 1
	}
	# Ready means usable: one push, no retry.
	skopeo copy --quiet --dest-tls-verify=false --dest-creds "$robot_user:$robot_pass" \
		"oci:$E2E_DIR/images/oci:hello" "docker://$E2E_REGISTRY_ADDR/$repo_name:v1" || {
		log "the robot's push was refused although the Repository is Ready"
		return 1
	}
	log "pushed $E2E_REGISTRY_ADDR/$repo_name:v1 (token $token) with the robot at once"
	# Anonymous pulls are refused (private repository).
	if skopeo inspect --raw --no-creds --tls-verify=false "docker://$E2E_REGISTRY_ADDR/$repo_name:v1" >/dev/null 2>&1; then
		log "anonymous pull of $repo_name:v1 was allowed"
		return 1
	fi
	pull_secret="berth-pull-$E2E_REGISTRY_NS-hello"
	wait_for 30 "pull Secret $team_ns/$pull_secret" k get secret "$pull_secret" -n "$team_ns"
	wait_for 30 "ServiceAccount $team_ns/default listing imagePullSecret $pull_secret" \
		is jp serviceaccount default "$team_ns" "{.imagePullSecrets[?(@.name==\"$pull_secret\")].name}" "$pull_secret"
	local cfg
	cfg="$(jp secret "$pull_secret" "$team_ns" '{.data.\.dockerconfigjson}' | base64 -d)"
	jq -e --arg e "$endpoint" '.auths[$e].auth' <<<"$cfg" >/dev/null || {
		log "pull Secret has no auth for $endpoint: $(jq -c '.auths | keys' <<<"$cfg")"
		return 1
	}
	log "pull Secret $team_ns/$pull_secret for $(jq -c '.auths | keys' <<<"$cfg"); robot $robot_user"
}

# pod NAMESPACE NAME IMAGE PULL_POLICY [PULL_SECRET]
pod() {
	local secrets=""
	[[ -n ${5:-} ]] && secrets="imagePullSecrets: [{name: $5}]"
	k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $2, namespace: $1}
spec:
  terminationGracePeriodSeconds: 5
  $secrets
  containers:
  - {name: app, image: "$3", imagePullPolicy: $4}
EOF
}

# runs NAMESPACE POD SECRET: the Pod got SECRET from its ServiceAccount,
# runs, and logged the build's token.
runs() {
	local secrets
	secrets="$(jp pod "$2" "$1" '{.spec.imagePullSecrets[*].name}')"
	[[ " $secrets " == *" $3 "* ]] || {
		log "Pod $1/$2 did not get imagePullSecret $3 from its ServiceAccount (has '$secrets')"
		return 1
	}
	wait_for 120 "Pod $1/$2 Running (image pulled by the kubelet)" \
		is jp pod "$2" "$1" '{.status.phase}' Running
	wait_for 30 "log of Pod $1/$2 to say 'berth-e2e $token'" \
		sh -c "'$BERTH_KUBECTL' logs -n '$1' '$2' | grep -Fx 'berth-e2e $token'"
	log "Pod $1/$2 runs $(jp pod "$2" "$1" '{.status.containerStatuses[0].imageID}') and logged 'berth-e2e $token'"
}

pod_runs() {
	pod "$team_ns" hello "$endpoint/$repo_name:v1" IfNotPresent
	runs "$team_ns" hello "$pull_secret"
}

# The Repository's status counts what the registry holds: 1 tag, and the
# bytes of the manifest and its blobs.
usage() {
	local layout="$E2E_DIR/images/oci" digest manifest bytes
	digest="$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "hello") | .digest' "$layout/index.json")"
	manifest="$layout/blobs/sha256/${digest#sha256:}"
	bytes=$(($(stat -c %s "$manifest") + $(jq '[.config.size] + [.layers[].size] | add' "$manifest")))
	wait_for 60 "Repository $E2E_REGISTRY_NS/hello status tagCount 1, sizeBytes $bytes" \
		is jp repository hello "$E2E_REGISTRY_NS" '{.status.tagCount}/{.status.sizeBytes}' "1/$bytes"
	log "$(k get repository hello -n "$E2E_REGISTRY_NS" | sed -n 2p)"
}

# A grant into team-b, which has not consented: nothing is written there
# and the status says what team-b must do; once it consents, its Pods pull.
consent() {
	k create namespace "$other_ns" >/dev/null
	wait_for 60 "ServiceAccount $other_ns/default" k get serviceaccount default -n "$other_ns"
	repository_yaml "$team_ns" "$other_ns" | k apply -f - >/dev/null
	wait_for 60 "Repository $E2E_REGISTRY_NS/hello Ready=False GrantNotAccepted" \
		is jp repository hello "$E2E_REGISTRY_NS" '{.status.conditions[?(@.type=="Ready")].status}/{.status.conditions[?(@.type=="Ready")].reason}' False/GrantNotAccepted
	local msg
	msg="$(jp repository hello "$E2E_REGISTRY_NS" '{.status.conditions[?(@.type=="Ready")].message}')"
	[[ $msg == *"kubectl annotate namespace $other_ns berth.dev/accept-grants-from=$E2E_REGISTRY_NS"* ]] || {
		log "the status does not say what $other_ns must do: $msg"
		return 1
	}
	log "without consent: $msg"
	if k get secret "$pull_secret" -n "$other_ns" >/dev/null 2>&1; then
		log "a pull Secret was written into $other_ns without its consent"
		return 1
	fi
	[[ -z "$(jp serviceaccount default "$other_ns" '{.imagePullSecrets}')" ]] || {
		log "ServiceAccount $other_ns/default was edited without consent"
		return 1
	}
	k get secret "$pull_secret" -n "$team_ns" >/dev/null
	k annotate namespace "$other_ns" "berth.dev/accept-grants-from=$E2E_REGISTRY_NS" >/dev/null
	wait_for 60 "Repository $E2E_REGISTRY_NS/hello Ready=True after $other_ns consented" \
		is jp repository hello "$E2E_REGISTRY_NS" '{.status.conditions[?(@.type=="Ready")].status}' True
	wait_for 30 "ServiceAccount $other_ns/default listing imagePullSecret $pull_secret" \
		is jp serviceaccount default "$other_ns" "{.imagePullSecrets[?(@.name==\"$pull_secret\")].name}" "$pull_secret"
	pod "$other_ns" hello "$endpoint/$repo_name:v1" IfNotPresent
	runs "$other_ns" hello "$pull_secret"
}

# The node pulls upstream.test images through the Registry: the operator's
# hosts.toml installed on the node, a Pod runs the upstream image, the
# registry counts a mirror miss; the upstream stops, the image leaves the
# node, and a second Pod still starts (the registry serves it from its cache).
mirror_pull() {
	local image=upstream.test/library/app:v1 hosts
	wait_for 60 "ConfigMap $E2E_REGISTRY_NS/e2e-containerd-hosts" k get configmap e2e-containerd-hosts -n "$E2E_REGISTRY_NS"
	hosts="$(k get configmap e2e-containerd-hosts -n "$E2E_REGISTRY_NS" -o jsonpath='{.data.upstream\.test\.hosts\.toml}')"
	grep -Fq "[host.\"http://$endpoint\"]" <<<"$hosts" || {
		log "the operator's hosts.toml does not name the Registry's endpoint $endpoint:"$'\n'"$hosts"
		return 1
	}
	install_hosts_toml upstream.test "$hosts"
	pod "$team_ns" mirror-first "$image" IfNotPresent
	wait_for 120 "Pod $team_ns/mirror-first Running (image $image pulled through the Registry)" \
		is jp pod mirror-first "$team_ns" '{.status.phase}' Running
	wait_for 30 "log of Pod $team_ns/mirror-first to say 'berth-e2e $token'" \
		sh -c "'$BERTH_KUBECTL' logs -n '$team_ns' mirror-first | grep -Fx 'berth-e2e $token'"
	local misses upstream_before
	misses="$(metric 'berth_mirror_pulls_total{mirror="upstream.test",result="miss"}')"
	((misses > 0)) || {
		log "the registry counted no mirror miss: the node did not pull through it"
		return 1
	}
	upstream_before="$(upstream_requests)"
	stop_pid "$upstream_pid" "upstream registry"
	k delete pod mirror-first -n "$team_ns" --wait=true --timeout 60s >/dev/null
	node_forget_image "$image"
	pod "$team_ns" mirror-second "$image" Always
	wait_for 120 "Pod $team_ns/mirror-second Running with the upstream stopped" \
		is jp pod mirror-second "$team_ns" '{.status.phase}' Running
	local hits
	hits="$(metric 'berth_mirror_pulls_total{mirror="upstream.test",result="hit"}')"
	((hits > 0)) || {
		log "the registry counted no mirror hit for the second Pod"
		return 1
	}
	log "through the mirror: $misses misses then $hits hits; the upstream saw $upstream_before requests for library/app (stopped before the second Pod)"
}

# ------------------------------------------------- replicas (PostgreSQL + S3)
ha_ns=berth-ha
ha_repo=team-a/ha

# PostgreSQL and versitygw on the node's address (Pods reach it), private
# to this run, and Registry berth-ha/ha with 2 replicas on them.
ha_registry() {
	local exports
	ha_backends_dir="$E2E_DIR/backends"
	exports="$(BERTH_BACKENDS_DIR="$ha_backends_dir" BERTH_BACKENDS_ADDR="$(host_address)" "$E2E_REPO/tests/backends/up.sh")"
	eval "$exports"
	psql "$BERTH_TEST_DATABASE_URL" -q -c "CREATE DATABASE berth_ha" >/dev/null
	k create namespace "$ha_ns" >/dev/null
	k create secret generic ha-db -n "$ha_ns" --from-literal=url="${BERTH_TEST_DATABASE_URL%/*}/berth_ha" >/dev/null
	k create secret generic ha-s3 -n "$ha_ns" --from-literal=accessKeyId="$AWS_ACCESS_KEY_ID" \
		--from-literal=secretAccessKey="$AWS_SECRET_ACCESS_KEY" >/dev/null
	k apply -f - >/dev/null <<EOF
apiVersion: berth.dev/v1alpha1
kind: Registry
metadata: {name: ha, namespace: $ha_ns}
spec:
  image: $berth_image
  replicas: 2
  storage:
    s3: {bucket: $BERTH_TEST_S3_BUCKET, endpoint: "$BERTH_TEST_S3_ENDPOINT", region: us-east-1, prefix: ha, credentialsSecret: ha-s3}
  database:
    postgres: {urlSecret: {name: ha-db}}
  nodeEndpoint: {port: $ha_pull_port}
---
apiVersion: berth.dev/v1alpha1
kind: Repository
metadata: {name: app, namespace: $ha_ns}
spec:
  registry: ha
  name: $ha_repo
  access:
  - serviceAccounts: [{namespace: $team_ns, name: default}]
    actions: [pull, push]
EOF
	wait_for 180 "Registry $ha_ns/ha Ready=True with readyReplicas 2" \
		is jp registry ha "$ha_ns" '{.status.conditions[?(@.type=="Ready")].status}/{.status.readyReplicas}' "True/2"
	# Ready means usable: every ready registry pod serves the robot.
	wait_for 90 "Repository $ha_ns/app Ready=True" \
		is jp repository app "$ha_ns" '{.status.conditions[?(@.type=="Ready")].status}' True
	k get pvc -n "$ha_ns" -o name | grep -q . && {
		log "a Registry on S3 + PostgreSQL has a claim: $(k get pvc -n "$ha_ns" -o name)"
		return 1
	}
	ha_endpoint="$(jp registry ha "$ha_ns" '{.status.endpoint}')"
	[[ $ha_endpoint == "localhost:$ha_pull_port" ]] || {
		log "status.endpoint of $ha_ns/ha is '$ha_endpoint', not its node endpoint localhost:$ha_pull_port"
		return 1
	}
	wait_for 60 "robot Secret $ha_ns/app-robot" k get secret app-robot -n "$ha_ns"
	ha_user="$(jp secret app-robot "$ha_ns" '{.data.username}' | base64 -d)"
	ha_pass="$(jp secret app-robot "$ha_ns" '{.data.password}' | base64 -d)"
	registry_address_of "$ha_ns" ha "$(jp service ha "$ha_ns" '{.spec.clusterIP}:{.spec.ports[0].port}')"
	ha_addr="$E2E_ADDRESS_OF"
	log "Registry $ha_ns/ha: 2 pods on PostgreSQL $BERTH_TEST_DATABASE_URL and versitygw $BERTH_TEST_S3_ENDPOINT; endpoint $ha_endpoint"
}

# A token for the robot with push and pull on the repository.
ha_token() {
	curl -fsS -u "$ha_user:$ha_pass" "http://$ha_addr/auth/token?scope=repository:$ha_repo:pull,push" | jq -er .token
}

# The robot may start an upload.
ha_robot_may_push() {
	local token
	token="$(ha_token)" &&
		curl -fsS -o /dev/null -X POST -H "Authorization: Bearer $token" "http://$ha_addr/v2/$ha_repo/blobs/uploads/"
}

# A blob uploaded in two PATCHes with every registry Pod replaced between
# them: the session is in PostgreSQL and the bytes in the bucket, so the new
# Pods finish an upload that none of them began. Then the image is pushed
# with skopeo.
ha_push_survives_a_pod() {
	local token location code digest
	# The Repository is Ready: the robot may push through either replica at
	# once (six requests over the Service, no retry).
	local i
	for i in 1 2 3 4 5 6; do
		ha_robot_may_push || {
			log "request $i: the robot may not push although Repository $ha_ns/app is Ready"
			return 1
		}
	done
	token="$(ha_token)"
	head -c 3145728 /dev/urandom >"$E2E_DIR/ha-blob"
	digest="sha256:$(sha256sum "$E2E_DIR/ha-blob" | cut -d' ' -f1)"
	location="$(curl -fsS -o /dev/null -D - -X POST -H "Authorization: Bearer $token" "http://$ha_addr/v2/$ha_repo/blobs/uploads/" |
		awk 'tolower($1)=="location:" {print $2}' | tr -d '\r')"
	[[ $location == /* ]] && location="http://$ha_addr$location"
	head -c 1048576 "$E2E_DIR/ha-blob" >"$E2E_DIR/ha-part1"
	tail -c +1048577 "$E2E_DIR/ha-blob" >"$E2E_DIR/ha-part2"
	location="$(curl -fsS -o /dev/null -D - -X PATCH -H "Authorization: Bearer $token" -H 'Content-Type: application/octet-stream' \
		-H 'Content-Range: 0-1048575' --data-binary @"$E2E_DIR/ha-part1" "$location" |
		awk 'tolower($1)=="location:" {print $2}' | tr -d '\r')"
	[[ $location == /* ]] && location="http://$ha_addr$location"
	# Every Pod that may have taken the first PATCH goes, and is gone (its
	# shutdown delay over) before the second: that one reaches a new Pod.
	local old_pods
	old_pods="$(k get pods -n "$ha_ns" -l app.kubernetes.io/component=registry -o name | sort)"
	# shellcheck disable=SC2086 # one argument per Pod
	k delete -n "$ha_ns" $old_pods --wait=true --timeout 120s >/dev/null
	wait_for 180 "2 new registry Pods Ready in $ha_ns" ha_new_pods_ready "$old_pods"
	# The Service's rules follow the new endpoints a moment later.
	wait_for 30 "the new Pods answering at $ha_addr" ha_answers
	location="$(curl -fsS -o /dev/null -D - -X PATCH -H "Authorization: Bearer $token" -H 'Content-Type: application/octet-stream' \
		-H 'Content-Range: 1048576-3145727' --data-binary @"$E2E_DIR/ha-part2" "$location" |
		awk 'tolower($1)=="location:" {print $2}' | tr -d '\r')"
	[[ $location == /* ]] && location="http://$ha_addr$location"
	local sep='?'
	[[ $location == *\?* ]] && sep='&'
	code="$(curl -sS -o /dev/null -w '%{http_code}' -X PUT -H "Authorization: Bearer $token" "$location${sep}digest=$digest")"
	[[ $code == 201 ]] || {
		log "closing the upload on new Pods answered $code"
		return 1
	}
	curl -fsS -H "Authorization: Bearer $token" "http://$ha_addr/v2/$ha_repo/blobs/$digest" | cmp -s - "$E2E_DIR/ha-blob" || {
		log "the blob pulled back is not the one pushed"
		return 1
	}
	skopeo copy --quiet --retry-times 3 --dest-tls-verify=false --dest-creds "$ha_user:$ha_pass" \
		"oci:$E2E_DIR/images/oci:hello" "docker://$ha_addr/$ha_repo:v1"
	log "3 MiB blob in two PATCHes, every registry Pod replaced between them ($(echo $old_pods)): 201 and the same bytes back; image pushed"
}

# The registry answers /v2/ at the node endpoint (401 without credentials).
ha_answers() {
	local code
	code="$(curl -s -o /dev/null -w '%{http_code}' "http://$ha_addr/v2/" || true)"
	[[ $code == 401 || $code == 200 ]] || {
		echo "GET /v2/ answered '$code'"
		return 1
	}
}

# ha_new_pods_ready OLD_PODS: two registry Pods Ready, none of them in
# OLD_PODS (pod/NAME lines).
ha_new_pods_ready() {
	local ready
	ready="$(k get pods -n "$ha_ns" -l app.kubernetes.io/component=registry -o json |
		jq -r '.items[] | select(.metadata.deletionTimestamp == null)
			| select(any(.status.conditions[]?; .type == "Ready" and .status == "True"))
			| "pod/\(.metadata.name)"' | sort)"
	[[ $(grep -c . <<<"$ready") == 2 ]] && [[ -z $(comm -12 <(echo "$ready") <(echo "$1")) ]] || {
		echo "ready: $(echo $ready)"
		return 1
	}
}

ha_pod_runs() {
	wait_for 120 "Registry $ha_ns/ha back to readyReplicas 2" \
		is jp registry ha "$ha_ns" '{.status.readyReplicas}' 2
	local pull_secret="berth-pull-$ha_ns-app"
	wait_for 30 "pull Secret $team_ns/$pull_secret" k get secret "$pull_secret" -n "$team_ns"
	pod "$team_ns" ha-app "$ha_endpoint/$ha_repo:v1" IfNotPresent "$pull_secret"
	wait_for 120 "Pod $team_ns/ha-app Running (pulled from the 2 replicas)" \
		is jp pod ha-app "$team_ns" '{.status.phase}' Running
}

# The registry pods (not those terminating) as name=restarts, sorted.
ha_pods() {
	k get pods -n "$ha_ns" -l app.kubernetes.io/component=registry -o json |
		jq -r '.items[] | select(.metadata.deletionTimestamp == null) | "\(.metadata.name)=\(.status.containerStatuses[0].restartCount)"' | sort
}

ha_scale_up() {
	local before after
	before="$(ha_pods)"
	k patch registry ha -n "$ha_ns" --type merge -p '{"spec":{"replicas":3}}' >/dev/null
	wait_for 120 "Registry $ha_ns/ha readyReplicas 3" \
		is jp registry ha "$ha_ns" '{.status.readyReplicas}' 3
	after="$(ha_pods)"
	local p
	for p in $before; do
		grep -qx "$p" <<<"$after" || {
			log "scaling restarted or replaced $p: now $(tr '\n' ' ' <<<"$after")"
			return 1
		}
	done
	log "scaled to 3; the 2 running pods kept ($(tr '\n' ' ' <<<"$before"))"
}

# A config change (the log format) rolls all 3 pods, one new pod before an
# old one stops, while a client pulls the manifest in a loop (one token: it
# lives 300 s, the rollout is given 240).
ha_rolling_config_change() {
	local old_hash new_hash token results="$E2E_DIR/ha-pulls" loop
	old_hash="$(jp registry ha "$ha_ns" '{.status.configHash}')"
	token="$(ha_token)"
	: >"$results"
	(
		while [[ ! -e $results.stop ]]; do
			if curl -fsS -o /dev/null --max-time 10 -H "Authorization: Bearer $token" \
				-H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$ha_addr/v2/$ha_repo/manifests/v1" 2>>"$results.err"; then
				echo ok >>"$results"
			else
				echo failed >>"$results"
			fi
		done
	) &
	loop=$!
	E2E_BG_PIDS+=("$loop")
	k patch registry ha -n "$ha_ns" --type merge -p '{"spec":{"logFormat":"text"}}' >/dev/null
	local rolled=""
	if wait_for 240 "every registry pod of $ha_ns/ha on the new config, Ready with 3" ha_rolled "$old_hash"; then
		rolled=1
	fi
	touch "$results.stop"
	wait "$loop" || true
	new_hash="$(jp registry ha "$ha_ns" '{.status.configHash}')"
	local pulls failed
	pulls="$(grep -c '^ok$' "$results" || true)"
	failed="$(grep -c '^failed$' "$results" || true)"
	log "rolled 3 pods from config ${old_hash:0:12} to ${new_hash:0:12}: $pulls manifest pulls during the rollout, $failed failed"
	[[ -n $rolled && $new_hash != "$old_hash" ]] || return 1
	((pulls > 0 && failed == 0)) || {
		log "failed pulls: $(sort "$results.err" | uniq -c | head -5)"
		return 1
	}
}

# The rollout is over: a new config hash, Ready with 3 pods, none (not even
# a terminating one) on the old config.
ha_rolled() {
	[[ $(jp registry ha "$ha_ns" '{.status.configHash}') != "$1" ]] &&
		is jp registry ha "$ha_ns" '{.status.conditions[?(@.type=="Ready")].status}/{.status.readyReplicas}' "True/3" &&
		[[ $(k get pods -n "$ha_ns" -l app.kubernetes.io/component=registry -o name | wc -l) == 3 ]] &&
		! k get pods -n "$ha_ns" -l app.kubernetes.io/component=registry \
			-o jsonpath="{.items[*].metadata.annotations['berth\\.dev/config-hash']}" | grep -q "$1"
}

ha_cleanup() {
	k delete pod ha-app -n "$team_ns" --wait=true --timeout 60s >/dev/null
	k delete registry ha -n "$ha_ns" --wait=true --timeout 60s >/dev/null
	wait_for 60 "registry Pods of $ha_ns/ha gone" is sh -c "'$BERTH_KUBECTL' get pods -n '$ha_ns' -o name" ""
	k delete namespace "$ha_ns" --wait=true --timeout 90s >/dev/null
}

# metric NAME_AND_LABELS: its value from the registry Pod's /metrics (the
# metrics port of the pod: a port-forward, stopped by its own PID).
metric() {
	local pod port pf v
	pod="$(k get pods -n "$E2E_REGISTRY_NS" -l app.kubernetes.io/instance=e2e,app.kubernetes.io/component=registry -o name | head -n1)"
	port="$(free_port)"
	# kubectl itself, not the k function: $! must be kubectl's PID.
	"$BERTH_KUBECTL" port-forward -n "$E2E_REGISTRY_NS" "$pod" "$port:5001" >"$E2E_DIR/metrics-port-forward.log" 2>&1 &
	pf=$!
	# In a subshell: on a timeout wait_for dies, and the port-forward must
	# still be stopped.
	if ! (wait_for 30 "port-forward to $pod:5001 (metrics)" curl -fsS -o "$E2E_DIR/metrics.txt" "http://127.0.0.1:$port/metrics"); then
		stop_pid "$pf" port-forward
		return 1
	fi
	stop_pid "$pf" port-forward
	v="$(awk -v m="$1" '$1==m {print $2}' "$E2E_DIR/metrics.txt")"
	echo "${v:-0}"
}

wrong_credentials() {
	# containerd follows the registry's Bearer challenge (its realm is
	# localhost:<port> too): the wrong password is refused at the token
	# endpoint.
	auth_failures_before="$(metric 'berth_auth_failures_total{endpoint="token"}')"
	k create secret docker-registry wrong-credentials -n "$team_ns" --docker-server "$endpoint" \
		--docker-username "$robot_user" --docker-password "not-the-password" >/dev/null
	pod "$team_ns" hello-wrong "$endpoint/$repo_name:v1" Always wrong-credentials
	pull_fails hello-wrong
	local after
	after="$(metric 'berth_auth_failures_total{endpoint="token"}')"
	((after > auth_failures_before)) || {
		log "berth_auth_failures_total{endpoint=\"token\"} did not grow: $auth_failures_before -> $after"
		return 1
	}
	log "registry metric berth_auth_failures_total{endpoint=\"token\"}: $auth_failures_before -> $after"
}

# pull_fails POD: its container waits in ErrImagePull/ImagePullBackOff and
# an event of the Pod carries the registry's auth error.
pull_fails() {
	wait_for 90 "Pod $team_ns/$1 waiting with ErrImagePull or ImagePullBackOff" \
		sh -c "'$BERTH_KUBECTL' get pod -n '$team_ns' '$1' -o jsonpath='{.status.containerStatuses[0].state.waiting.reason}' | grep -E '^(ErrImagePull|ImagePullBackOff)$'"
	wait_for 30 "an event of Pod $team_ns/$1 with an auth error (401/unauthorized)" \
		sh -c "'$BERTH_KUBECTL' get events -n '$team_ns' --field-selector involvedObject.name='$1' -o jsonpath='{.items[*].message}' | grep -Ei '401|unauthorized|authoriz'"
	log "Pod $team_ns/$1: $(k get events -n "$team_ns" --field-selector involvedObject.name="$1",reason=Failed -o jsonpath='{.items[0].message}' | head -c 400)"
}

repository_deleted() {
	k delete repository hello -n "$E2E_REGISTRY_NS" --wait=true --timeout 60s >/dev/null
	local ns
	for ns in "$team_ns" "$other_ns"; do
		wait_for 30 "pull Secret $ns/$pull_secret deleted" gone secret "$pull_secret" -n "$ns"
		wait_for 30 "ServiceAccount $ns/default without imagePullSecret $pull_secret" \
			is jp serviceaccount default "$ns" "{.imagePullSecrets[?(@.name==\"$pull_secret\")].name}" ""
	done
	wait_for 30 "robot Secret $E2E_REGISTRY_NS/hello-robot deleted" gone secret hello-robot -n "$E2E_REGISTRY_NS"
	pod "$team_ns" hello-after "$endpoint/$repo_name:v1" Always
	pull_fails hello-after
}

# The logs a person reads: no colour codes, no probe lines, no warnings for
# routine work.
logs() {
	local op
	op="$(k logs -n berth-system -l app.kubernetes.io/component=operator --tail -1)"
	if grep -q $'\e\[' <<<"$op"; then
		log "ANSI colour codes in the operator's log"
		return 1
	fi
	if grep -F 'reconcile failed' <<<"$op"; then
		log "the operator logged failed reconciles (above)"
		return 1
	fi
	local dup
	dup="$(grep -F 'spec cannot work' <<<"$op" | sed 's/^[^ ]* //' | sort | uniq -d || true)"
	[[ -z $dup ]] || {
		log "a 'spec cannot work' warning repeated: $dup"
		return 1
	}
	local ns probes
	for ns in "$E2E_REGISTRY_NS" "$ha_ns"; do
		probes="$(k logs -n "$ns" -l app.kubernetes.io/component=registry --tail -1 2>/dev/null | grep -cE '"path":"/(readyz|healthz)"' || true)"
		((probes == 0)) || {
			log "$probes probe request lines in the registry log of $ns"
			return 1
		}
	done
	log "operator log: $(wc -l <<<"$op") lines, $(grep -c ' WARN ' <<<"$op" || true) warnings, no colour codes; registry logs: no probe lines"
}

cleanup() {
	local ns
	for ns in "$team_ns" "$other_ns"; do
		k delete pods --all -n "$ns" --wait=true --timeout 60s >/dev/null
	done
	k delete registry e2e -n "$E2E_REGISTRY_NS" --wait=true --timeout 60s >/dev/null
	local what
	for what in deployment/e2e service/e2e configmap/e2e-config configmap/e2e-containerd-hosts secret/e2e-token-key pvc/e2e-data cronjob/e2e-gc daemonset/e2e-node; do
		wait_for 60 "$what deleted with its Registry" gone "$what" -n "$E2E_REGISTRY_NS"
	done
	wait_for 60 "registry Pods gone" is sh -c "'$BERTH_KUBECTL' get pods -n '$E2E_REGISTRY_NS' -o name" ""
	"$BERTH_HELM_BIN" uninstall berth --namespace berth-system --timeout 120s
	wait_for 60 "operator Pods gone" is sh -c "'$BERTH_KUBECTL' get pods -n berth-system -o name" ""
	for what in clusterrole/berth-operator clusterrolebinding/berth-operator; do
		wait_for 30 "$what deleted by helm uninstall" gone "$what"
	done
	k delete namespace "$team_ns" "$other_ns" "$E2E_REGISTRY_NS" berth-system --wait=true --timeout 90s >/dev/null
}

step "build images (berth via images/build.sh, test image)" build
step "cluster up ($backend; no hosts.toml for Berth)" up
step "upstream registry for the mirror (distribution)" upstream_up
step "helm install charts/berth (operator as a Pod)" helm_install
step "kubectl apply refuses invalid sizes, schedules (admission)" admission
step "Registry applied by hand Ready (node endpoint localhost)" registry_ready
step "Repository Ready; its robot pushes at once (no retry)" repository
step "Pod in $team_ns pulls from localhost:$pull_port and runs" pod_runs
step "Repository status: tagCount, sizeBytes" usage
step "grant into $other_ns: nothing without consent, pulls after" consent
step "mirror: a Pod pulls upstream.test through the Registry, again without the upstream" mirror_pull
step "wrong credentials: auth error, metric counted" wrong_credentials
step "Repository deleted: Secrets gone, pull fails" repository_deleted
step "replicas: 2 on PostgreSQL + versitygw (on the node)" ha_registry
step "replicas: a push survives every registry Pod replaced mid-upload" ha_push_survives_a_pod
step "replicas: a Pod runs the image" ha_pod_runs
step "replicas: 3, the running pods untouched" ha_scale_up
step "replicas: a config change rolls them, pulls never fail" ha_rolling_config_change
step "logs: plain, probes quiet, no spurious warnings" logs
step "replicas: Registry deleted" ha_cleanup
step "delete Registry, helm uninstall: cleanup" cleanup
