#!/usr/bin/env bash
# Berth with 1 and 3 replicas behind HAProxy (Debian's 2.6; round-robin per
# request, no affinity, health-checked) on one PostgreSQL database and one
# versitygw bucket prefix (tests/backends/up.sh), and the same for CNCF
# distribution 3.x: N instances on one s3 prefix with a shared
# `http.secret`, no Redis. Each (server, N) runs fresh (new database, new
# prefix) once per round and gets berth-bench's small-image and hot
# manifest workloads through the load balancer (`berth-bench run
# --workloads small,hot`), with the CPU of all its replicas summed per
# phase (`--pid` once per replica) and PostgreSQL's + versitygw's CPU.
# Writes the "Replicas" section of bench/RESULTS.md (the rest of the file is
# kept) and bench/results/replicas/.
#
# Usage: bench/replicas.sh [--rounds N] [--replicas "1 3"] [--quick] [--out FILE]
#   --rounds N        rounds (default 2); the order of the runs reverses
#                     every other round
#   --replicas LIST   replica counts (default "1 3")
#   --quick           one round, berth-bench --quick sizes; writes
#                     target/bench-quick/RESULTS-replicas.md
# Environment: BENCH_TMP (default /var/tmp). Distribution is the one
# tests/tools/install.sh builds.
set -euo pipefail
# shellcheck source=../tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tests/lib.sh"
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cmdline="bench/replicas.sh $*"
rounds=2 replicas="1 3" quick="" out=""
usage="usage: $0 [--rounds N] [--replicas \"1 3\"] [--quick] [--out FILE]"
while (($#)); do
	case "$1" in
	--rounds | --replicas | --out)
		(($# >= 2)) || die "$usage"
		printf -v "${1#--}" '%s' "$2"
		shift
		;;
	--quick) quick=1 ;;
	*) die "$usage" ;;
	esac
	shift
done
quick_flag=()
if [[ -n $quick ]]; then
	rounds=1
	quick_flag=(--quick)
	out="${out:-$root/target/bench-quick/RESULTS-replicas.md}"
else
	out="${out:-$here/RESULTS.md}"
fi
mkdir -p "$(dirname "$out")"
command -v haproxy >/dev/null || die "haproxy is not installed (tests/tools/install.sh installs Debian's)"

work="$(mktemp -d "${BENCH_TMP:-/var/tmp}/berth-bench-replicas.XXXXXX")"
on_exit 'rm -rf "$work"'
# PostgreSQL runs as the postgres user and must reach its directory in here.
chmod 755 "$work"
on_exit stop_all

build_binaries "$root"
eval "$("$root/tests/tools/install.sh" --paths)"
dist="${BERTH_DISTRIBUTION_BIN:?tests/tools/install.sh --paths set no BERTH_DISTRIBUTION_BIN}"
dist_ver="$("$dist" --version | grep -oE 'v3\.[0-9]+\.[0-9]+' | head -1 || true)"
dist_label="distribution-${dist_ver#v}"
haproxy_ver="$(haproxy -v | head -1 | awk '{ print $3 }')"

export BERTH_BACKENDS_DIR="$work/backends"
on_exit 'stop_all; "$root/tests/backends/down.sh" --clean >/dev/null 2>&1'
log "starting PostgreSQL and versitygw (tests/backends/up.sh)"
eval "$("$root/tests/backends/up.sh")" || die "tests/backends/up.sh failed"
admin_url="$BERTH_TEST_DATABASE_URL"
s3_endpoint="$BERTH_TEST_S3_ENDPOINT"
s3_bucket="$BERTH_TEST_S3_BUCKET"
pg_ver="$(psql "$admin_url" -Atc 'SHOW server_version')"
# shellcheck source=../tests/tools/versions.env
versitygw_ver="$(source "$root/tests/tools/versions.env" && echo "$VERSITYGW_VERSION")"
store_flags=(--store-pid "$(head -n 1 "$BERTH_BACKENDS_DIR/pg/data/postmaster.pid")"
	--store-pid "$(cat "$BERTH_BACKENDS_DIR/s3/pid")")
start_load_sampler

# distribution_s3_config FILE PREFIX PORT SECRET: as bench/run.sh
# --backend postgres-s3 configures it, plus the secret every instance shares.
distribution_s3_config() {
	cat >"$1" <<YML
version: 0.1
log:
  level: error
storage:
  cache:
    blobdescriptor: inmemory
  s3:
    region: us-east-1
    regionendpoint: $s3_endpoint
    bucket: $s3_bucket
    rootdirectory: /$2
    forcepathstyle: true
    accesskey: $AWS_ACCESS_KEY_ID
    secretkey: $AWS_SECRET_ACCESS_KEY
    secure: false
    v4auth: true
  redirect:
    disable: true
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$3
  secret: $4
YML
}

# haproxy_config FILE PORT CHECK_PATH ADDR...: the replica tests' HAProxy
# (registry/tests/replicas/cluster.rs): round-robin per request, health
# check on CHECK_PATH, only connection failures retried.
haproxy_config() {
	local file="$1" port="$2" check="$3" i=0 a
	shift 3
	cat >"$file" <<CFG
global
  maxconn 8192
defaults
  mode http
  timeout connect 2s
  timeout client 120s
  timeout server 120s
  timeout http-request 60s
  retries 3
  option redispatch
  retry-on conn-failure
frontend lb
  bind 127.0.0.1:$port
  default_backend replicas
backend replicas
  balance roundrobin
  option httpchk GET $check
  http-check expect status 200
  default-server inter 300ms fall 2 rise 1
CFG
	for a in "$@"; do
		echo "  server r$i $a check" >>"$file"
		i=$((i + 1))
	done
}

starts=0
# run_cluster KIND N ROUND: N fresh replicas of KIND behind HAProxy, the
# workloads through it, everything stopped.
run_cluster() {
	local kind="$1" n="$2" r="$3" i port addrs=() rpids=() db prefix dir lb_port hp check secret
	starts=$((starts + 1))
	prefix="bench-replicas-$starts-$kind-$n"
	dir="$work/run-$starts"
	mkdir -p "$dir"
	secret="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
	if [[ $kind == berth ]]; then
		db="bench_replicas_$starts"
		psql "$admin_url" -q -c "CREATE DATABASE $db" >/dev/null
	fi
	for ((i = 0; i < n; i++)); do
		port="$(free_port)"
		case "$kind" in
		berth)
			BERTH_LOG=warn "$berth" serve --listen "127.0.0.1:$port" \
				--metrics-listen "127.0.0.1:$(free_port)" --data-dir "$dir/data-$i" \
				--database-url "${admin_url%/*}/$db" --storage s3 --s3-bucket "$s3_bucket" \
				--s3-endpoint "$s3_endpoint" --s3-prefix "$prefix" >"$dir/log-$i" 2>&1 &
			check=/readyz
			;;
		*)
			distribution_s3_config "$dir/config-$i.yml" "$prefix" "$port" "$secret"
			OTEL_TRACES_EXPORTER=none "$dist" serve "$dir/config-$i.yml" >"$dir/log-$i" 2>&1 &
			check=/v2/
			;;
		esac
		rpids+=("$!")
		pids+=("$!")
		addrs+=("127.0.0.1:$port")
		wait_http "http://127.0.0.1:$port/v2/" "$kind replica $i" "$!"
	done
	lb_port="$(free_port)"
	haproxy_config "$dir/haproxy.cfg" "$lb_port" "$check" "${addrs[@]}"
	haproxy -db -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 &
	hp=$!
	pids+=("$hp")
	wait_http "http://127.0.0.1:$lb_port/v2/" haproxy "$hp"
	# HAProxy marks a server up after one check: give each one its check.
	sleep 1
	local pid_flags=()
	for i in "${rpids[@]}"; do pid_flags+=(--pid "$i"); done
	log "round $r/$rounds: $kind x $n"
	"$bench" run --base "http://127.0.0.1:$lb_port" --server "$kind x$n" --round "$r" \
		"${pid_flags[@]}" "${store_flags[@]}" "${quick_flag[@]}" --workloads small,hot \
		--no-progress --json "$work/results/$kind-x$n-r$r.json" ||
		log "berth-bench reported errors against $kind x $n (kept in the results)"
	# HAProxy's own CPU over the whole run (utime + stime, ticks).
	awk '{ print ($14 + $15) / 100 }' "/proc/$hp/stat" >"$work/results/$kind-x$n-r$r.haproxy-cpu"
	stop_pid "$hp"
	for i in "${rpids[@]}"; do stop_pid "$i"; done
	rm -rf "$dir"
	rm -rf "${BERTH_BACKENDS_DIR:?}/s3/data/$s3_bucket/$prefix"
}

mkdir -p "$work/results"
runs=()
for s in berth "$dist_label"; do
	for n in $replicas; do runs+=("$s $n"); done
done
for ((r = 1; r <= rounds; r++)); do
	order=("${runs[@]}")
	if ((r % 2 == 0)); then
		order=()
		for ((i = ${#runs[@]} - 1; i >= 0; i--)); do order+=("${runs[$i]}"); done
	fi
	for run in "${order[@]}"; do
		# shellcheck disable=SC2086
		run_cluster $run "$r"
	done
done

# --- report -------------------------------------------------------------------
if [[ -z $quick ]]; then
	mkdir -p "$here/results/replicas"
	rm -f "$here"/results/replicas/*
	cp "$work"/results/* "$here/results/replicas/"
fi
begin="<!-- replicas: begin (bench/replicas.sh replaces this section) -->"
end="<!-- replicas: end -->"
{
	echo "$begin"
	echo
	echo "## Replicas: 1 and 3 behind HAProxy on one PostgreSQL and one bucket"
	echo
	echo "Generated by \`$cmdline\` on $(date -u '+%Y-%m-%d %H:%M UTC') (berth built from commit $commit)."
	[[ -z $quick ]] || printf '\n**Quick smoke run: small sizes, not comparable to a full run.**\n'
	echo
	machine
	echo "- PostgreSQL $pg_ver and versitygw $versitygw_ver (posix backend) from \`tests/backends/up.sh\`, on loopback, on the same 2 cores."
	echo "- HAProxy $haproxy_ver (Debian), as in \`registry/tests/replicas/\`: \`balance roundrobin\` per request, no affinity, \`option httpchk\` (berth: \`/readyz\`, distribution: \`/v2/\`), \`retry-on conn-failure\`."
	echo "- berth: N \`berth serve --database-url <fresh database> --storage s3 --s3-bucket $s3_bucket --s3-endpoint <versitygw> --s3-prefix <fresh prefix>\`, each with its own (unused) data dir."
	echo "- $dist_label: N instances with the s3 driver on one fresh prefix of the same bucket (the config of \`bench/run.sh --backend postgres-s3\`: \`redirect: disable: true\`, inmemory blob descriptor cache), a shared \`http.secret\`, no Redis."
	echo "- Workloads (\`berth-bench run --workloads small,hot\` through HAProxy): small-push / small-pull, 16 clients x 8 images (config + 3 layers of 32/64/128 KiB + manifest, each blob POST then PUT: the two requests of an upload usually land on different replicas); hot-get / hot-head, one manifest by tag from 64 connections for 10 s."
	echo "- server CPU s: the replicas' CPU during the phase, summed; store CPU s: PostgreSQL's (all backends) plus versitygw's. HAProxy's CPU is not in either (its total per run is in \`bench/results/replicas/*.haproxy-cpu\`). $rounds round(s); each cell is the median over rounds (every round's value in parentheses)."
	echo
	python3 - "$work/results" "$replicas" berth "$dist_label" <<'PY'
import glob, json, statistics, sys
res, counts, servers = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
def runs(kind, n):
    return [json.load(open(f)) for f in sorted(glob.glob(f"{res}/{kind}-x{n}-r*.json"))]
def wl(run, name):
    if name == "haproxy":
        f = f"{res}/{run['server'].replace(' x', '-x')}-r{run['round']}.haproxy-cpu"
        return float(open(f).read())
    return next((w for w in run["results"] if w["workload"] == name), None)
def show(vals, fmt):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    if len(vals) == 1:
        return fmt(vals[0])
    return f"{fmt(statistics.median(vals))} ({', '.join(fmt(v) for v in vals)})"
rows = [
    ("small-push", "small images pushed by 16 clients, wall s", lambda w: w["wall_s"], "{:.2f}"),
    ("small-push", "  server CPU s", lambda w: w["server_cpu_s"], "{:.2f}"),
    ("small-push", "  store CPU s", lambda w: w["store_cpu_s"], "{:.2f}"),
    ("small-pull", "the same pulled back, wall s", lambda w: w["wall_s"], "{:.2f}"),
    ("small-pull", "  server CPU s", lambda w: w["server_cpu_s"], "{:.2f}"),
    ("hot-get", "manifest GET by tag, req/s", lambda w: w["ops_per_s"], "{:,.0f}"),
    ("hot-get", "  p50 / p99 ms", None, None),
    ("hot-get", "  server CPU µs per request (all replicas)", lambda w: (w["server_cpu_s"] or 0) / max(w["ops"], 1) * 1e6, "{:.0f}"),
    ("hot-get", "  store CPU µs per request", lambda w: (w["store_cpu_s"] or 0) / max(w["ops"], 1) * 1e6, "{:.0f}"),
    ("hot-head", "manifest HEAD by tag, req/s", lambda w: w["ops_per_s"], "{:,.0f}"),
    ("hot-head", "  server CPU µs per request (all replicas)", lambda w: (w["server_cpu_s"] or 0) / max(w["ops"], 1) * 1e6, "{:.0f}"),
    ("haproxy", "HAProxy CPU s, whole run (all four phases)", lambda w: w, "{:.2f}"),
]
cols = [(k, n) for k in servers for n in counts]
print("| workload | " + " | ".join(f"{k} x{n}" for k, n in cols) + " |")
print("|---|" + "---:|" * len(cols))
for name, label, f, fmt in rows:
    cells = []
    for k, n in cols:
        ws = [wl(r, name) for r in runs(k, n)]
        ws = [w for w in ws if w is not None]
        if f is None:
            cell = show([w["p50_ms"] for w in ws], lambda v: f"{v:.1f}") + " / " + show([w["p99_ms"] for w in ws], lambda v: f"{v:.1f}")
        else:
            cell = show([f(w) for w in ws], fmt.format)
        errs = sum(w["errors"] for w in ws if isinstance(w, dict))
        if errs and label[0] != " ":
            cell += f" **{errs} errors**"
        cells.append(cell)
    print(f"| {label.strip() if label[0] != ' ' else '&nbsp;&nbsp;' + label.strip()} | " + " | ".join(cells) + " |")
errors = []
for k, n in cols:
    for r in runs(k, n):
        for w in r["results"]:
            if w["errors"]:
                errors.append(f"- {k} x{n} round {r['round']}, {w['workload']}: {w['errors']} of {w['ops'] + w['errors']} failed; first: `{(w.get('first_error') or '')[:200]}`")
if errors:
    print()
    print("Errors:")
    print()
    print("\n".join(errors))
PY
	echo
	echo "Raw results: \`bench/results/replicas/\`."
	echo
	echo "$end"
} >"$work/section.md"
if [[ -n $quick ]]; then
	cp "$work/section.md" "$out"
else
	splice_section "$out" "$work/section.md" "$begin" "$end"
fi
log "wrote $out"
