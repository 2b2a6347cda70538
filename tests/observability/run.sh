#!/usr/bin/env bash
# Observability against a real Prometheus (Debian's `prometheus` package):
#   1. starts `berth serve` (access control on, so logins can fail) and
#      `berth-operator run` against the real control plane of tests/cluster/
#      (the operator needs an API server), each on free ports;
#   2. `promtool check metrics` on both /metrics outputs: no error, no lint
#      warning;
#   3. starts `prometheus` (own temp dir, free port, 1 s scrape interval)
#      scraping both;
#   4. drives traffic: pushes and pulls an image over HTTP, a 404, a failed
#      login, then `berth retention` and `berth gc` as separate processes;
#   5. waits until Prometheus has scraped the traffic, then evaluates EVERY
#      PromQL expression of charts/berth/dashboards/berth.json through
#      /api/v1/query, printing each with its series count, and fails if any
#      is invalid or returns no series.
#
# Environment:
#   BERTH_BIN           registry binary (default <target>/debug/berth, built if missing)
#   BERTH_OPERATOR_BIN  operator binary (default <target>/debug/berth-operator, built if missing)
#   OBS_KEEP=1          keep the work directory (logs, Prometheus data)
#
# Files: logs in target/observability/ (berth.log, operator.log,
# prometheus.log, queries.txt).
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
script_name=observability
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

for tool in prometheus promtool curl jq python3; do
	command -v "$tool" >/dev/null || die "$tool not found (run tests/tools/install.sh)"
done

target_dir="$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)"
berth="${BERTH_BIN:-$target_dir/debug/berth}"
operator="${BERTH_OPERATOR_BIN:-$target_dir/debug/berth-operator}"
[[ -x $berth ]] || cargo build -p berth-registry --bin berth
[[ -x $operator ]] || cargo build -p berth-operator --bin berth-operator
[[ -x $berth && -x $operator ]] || die "binaries missing: $berth $operator"

out="$target_dir/observability"
rm -rf "$out"
mkdir -p "$out"
work="$(mktemp -d "${TMPDIR:-/tmp}/berth-observability.XXXXXX")"
export BERTH_CLUSTER_DIR="$out/cluster"

# At exit (on_exit runs last registered first): each process and the control
# plane started below stopped, then on failure the end of each log shown,
# then the work directory removed.
on_exit 'if [[ ${OBS_KEEP:-0} == 1 ]]; then log "kept $work"; else rm -rf "$work"; fi'
show_logs() {
	local f
	for f in "$out"/berth.log "$out"/operator.log "$out"/prometheus.log; do
		[[ -f $f ]] || continue
		echo "----- $f (last 25 lines)" >&2
		tail -n 25 "$f" >&2
	done
}
on_exit '((exit_status == 0)) || show_logs'

# ------------------------------------------------------------------ berth
api="127.0.0.1:$(free_port)"
berth_metrics="127.0.0.1:$(free_port)"
robot='robot$obs+ci'
secret="obs-secret-$RANDOM$RANDOM"
cat >"$work/policy.yaml" <<EOF
robots:
  - name: $robot
    password_sha256: $(printf %s "$secret" | sha256sum | cut -d' ' -f1)
rules:
  - repositories: ["*"]
    subjects: ["robot:$robot"]
    actions: [pull, push, delete]
EOF
: >"$work/htpasswd"
"$berth" serve --listen "$api" --metrics-listen "$berth_metrics" \
	--data-dir "$work/berth-data" --policy-file "$work/policy.yaml" \
	--htpasswd-file "$work/htpasswd" >"$out/berth.log" 2>&1 &
on_exit "stop_pid $!"
wait_for 30 "berth on $api (/healthz)" curl -fsS "http://$api/healthz"
log "berth up: api $api, metrics $berth_metrics"

# --------------------------------------------------------------- operator
cluster_start=$SECONDS
"$repo/tests/cluster/build.sh" >&2
on_exit '"$repo/tests/cluster/down.sh"'
eval "$("$repo/tests/cluster/up.sh")"
log "control plane up in $((SECONDS - cluster_start))s"
"$BERTH_KUBECTL" apply -f crds/ >&2
op_metrics="127.0.0.1:$(free_port)"
"$operator" run --metrics-addr "$op_metrics" --leader-elect=false >"$out/operator.log" 2>&1 &
on_exit "stop_pid $!"
wait_for 30 "berth-operator on $op_metrics (/healthz)" curl -fsS "http://$op_metrics/healthz"
log "operator up: metrics $op_metrics"

# --------------------------------------------------------------- promtool
for target in "berth $berth_metrics" "berth-operator $op_metrics"; do
	read -r name addr <<<"$target"
	curl -fsS "http://$addr/metrics" >"$out/$name.metrics"
	lint_out="$(promtool check metrics <"$out/$name.metrics" 2>&1)" || die "promtool check metrics failed for $name:
$lint_out"
	[[ -z $lint_out ]] || die "promtool check metrics reported problems for $name:
$lint_out"
	log "promtool check metrics: $name ok ($(grep -c '^# TYPE' "$out/$name.metrics") metrics)"
done

# ------------------------------------------------------------- prometheus
prom="127.0.0.1:$(free_port)"
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: berth
    static_configs: [{targets: ["$berth_metrics"]}]
  - job_name: berth-operator
    static_configs: [{targets: ["$op_metrics"]}]
EOF
promtool check config "$work/prometheus.yml" >&2
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prom-data" \
	--web.listen-address="$prom" --log.level=warn >"$out/prometheus.log" 2>&1 &
on_exit "stop_pid $!"
wait_for 60 "prometheus on $prom (/-/ready)" curl -fsS "http://$prom/-/ready"
log "prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}') up on $prom"

# query EXPR: prints the JSON answer of an instant query.
query() {
	curl -fsS "http://$prom/api/v1/query" --data-urlencode "query=$1"
}
# series EXPR: the number of series an instant query returns.
series() {
	query "$1" | jq -r '.data.result | length'
}
both_up() {
	[[ "$(query 'sum(up{job=~"berth|berth-operator"})' | jq -r '.data.result[0].value[1]')" == 2 ]]
}
wait_for 60 "both targets up in Prometheus" both_up

# ---------------------------------------------------------------- traffic
base="http://$api"
auth=(-u "$robot:$secret")
repo_name="obs/app"
blob() {
	local file="$1" digest
	digest="sha256:$(sha256sum "$file" | cut -d' ' -f1)"
	curl -fsS "${auth[@]}" -X POST --data-binary @"$file" \
		-H 'content-type: application/octet-stream' \
		"$base/v2/$repo_name/blobs/uploads/?digest=$digest" -o /dev/null
	echo "$digest"
}
head -c 200000 /dev/urandom >"$work/layer"
printf '{"architecture":"amd64","os":"linux"}' >"$work/config"
layer_digest="$(blob "$work/layer")"
config_digest="$(blob "$work/config")"
cat >"$work/manifest" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
 "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$config_digest","size":$(stat -c %s "$work/config")},
 "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"$layer_digest","size":200000}]}
EOF
curl -fsS "${auth[@]}" -X PUT -H 'content-type: application/vnd.oci.image.manifest.v1+json' \
	--data-binary @"$work/manifest" "$base/v2/$repo_name/manifests/v1" -o /dev/null
curl -fsS "${auth[@]}" -H 'accept: application/vnd.oci.image.manifest.v1+json' \
	"$base/v2/$repo_name/manifests/v1" -o /dev/null
curl -fsS "${auth[@]}" "$base/v2/$repo_name/blobs/$layer_digest" -o "$work/pulled"
cmp -s "$work/layer" "$work/pulled" || die "the pulled layer differs from the pushed one"
code="$(curl -sS "${auth[@]}" -o /dev/null -w '%{http_code}' "$base/v2/$repo_name/manifests/missing")"
[[ $code == 404 ]] || die "expected 404 for a missing manifest, got $code"
code="$(curl -sS -u "$robot:wrong-secret" -o /dev/null -w '%{http_code}' "$base/v2/$repo_name/tags/list")"
[[ $code == 401 ]] || die "expected 401 for a wrong secret, got $code"
# An upload left open (uploads in progress).
curl -fsS "${auth[@]}" -X POST "$base/v2/$repo_name/blobs/uploads/" -o /dev/null
log "traffic sent: push (2 blobs, 1 manifest), pull, a 404, a failed login, an open upload"

# Maintenance, as the operator's CronJobs run it (separate processes on the
# same data directory): a second tag, retention keeping the newest, then gc.
curl -fsS "${auth[@]}" -X PUT -H 'content-type: application/vnd.oci.image.manifest.v1+json' \
	--data-binary @"$work/manifest" "$base/v2/$repo_name/manifests/v2" -o /dev/null
"$berth" retention --data-dir "$work/berth-data" --repository "$repo_name" --keep-last 1 >&2
"$berth" gc --data-dir "$work/berth-data" --grace-seconds 0 >&2
log "maintenance run: berth retention --keep-last 1, berth gc"

# Wait until Prometheus holds the traffic: the failed login and the pulled
# layer counted, and a few scrapes after that so rates have samples.
scraped() {
	[[ "$(query 'sum(berth_auth_failures_total{job="berth"})' | jq -r '.data.result[0].value[1]')" == 1 ]] &&
		[[ "$(query 'sum(berth_http_response_bytes_total{job="berth",route="/v2/{name}/blobs/{digest}"})' | jq -r '.data.result[0].value[1]')" == 200000 ]] &&
		[[ "$(query 'sum(berth_maintenance_runs_total{job="berth",result="ok"})' | jq -r '.data.result[0].value[1]')" == 2 ]] &&
		[[ "$(query 'sum(berth_maintenance_deleted_objects_total{job="berth",kind="retention",object="tag"})' | jq -r '.data.result[0].value[1]')" == 1 ]]
}
wait_for 60 "Prometheus to scrape the traffic" scraped
enough_samples() {
	[[ "$(series 'count_over_time(berth_http_requests_in_flight{job="berth"}[10s]) >= 5')" == 1 ]]
}
wait_for 60 "5 scrapes within 10s" enough_samples

# ------------------------------------------------------- dashboard queries
dashboard="$repo/charts/berth/dashboards/berth.json"
jq empty "$dashboard" || die "$dashboard is not JSON"
# Grafana's own variables, as Grafana would substitute them; the dashboard's
# `job` variable matches every job.
substitute() {
	sed -e 's/\$__rate_interval/20s/g' -e 's/\$__interval/5s/g' -e 's/\$__range/5m/g' \
		-e 's/\${job}/.+/g' -e 's/\$job/.+/g'
}
mapfile -t exprs < <(jq -r '[.. | objects | select(has("expr")) | .expr] | .[]' "$dashboard")
# Variable queries: label_values(METRIC, LABEL) -> count by (LABEL) (METRIC).
mapfile -t var_queries < <(jq -r '.templating.list[] | select(.type == "query") | .definition' "$dashboard")
for v in "${var_queries[@]}"; do
	if [[ $v =~ ^label_values\(([^,]+),[[:space:]]*([a-zA-Z_]+)\)$ ]]; then
		exprs+=("count by (${BASH_REMATCH[2]}) (${BASH_REMATCH[1]})")
	else
		die "unsupported variable query: $v"
	fi
done
((${#exprs[@]} > 0)) || die "no expressions found in $dashboard"

failed=0
: >"$out/queries.txt"
for raw in "${exprs[@]}"; do
	expr="$(substitute <<<"$raw")"
	if [[ $expr == *'$'* ]]; then
		echo "UNSUBSTITUTED VARIABLE  $raw" | tee -a "$out/queries.txt" >&2
		failed=1
		continue
	fi
	answer="$(curl -sS "http://$prom/api/v1/query" --data-urlencode "query=$expr")"
	status="$(jq -r .status <<<"$answer")"
	if [[ $status != success ]]; then
		echo "INVALID   $expr  -> $(jq -r .error <<<"$answer")" | tee -a "$out/queries.txt" >&2
		failed=1
		continue
	fi
	n="$(jq -r '.data.result | length' <<<"$answer")"
	if ((n == 0)); then
		echo "NO SERIES $expr" | tee -a "$out/queries.txt" >&2
		failed=1
	else
		printf 'ok %3d    %s\n' "$n" "$expr" | tee -a "$out/queries.txt" >&2
	fi
done
((failed == 0)) || die "some dashboard queries are invalid or return no series (see above, $out/queries.txt)"
log "all ${#exprs[@]} dashboard queries valid and with series (Prometheus $prom)"
