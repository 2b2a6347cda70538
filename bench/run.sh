#!/usr/bin/env bash
# Runs berth-bench against Berth, CNCF distribution 3.x (built from its Go
# module) and Debian's docker-registry (distribution 2.8.2), alternating, for
# several rounds, plus the machine's own limits (sha256 of one core, fsync disk
# writes, nginx over loopback), and writes bench/RESULTS.md and
# bench/results.png.
#
# Usage: bench/run.sh [--quick] [--rounds N] [--out FILE]
#   --quick     small sizes, one round; writes target/bench-quick/RESULTS.md
#   --rounds N  rounds of every server (default 2)
# Environment: BERTH_TOOL_CACHE (Go-built tools cache), BENCH_TMP (where the
# registries store data; default /var/tmp), DISTRIBUTION_VERSION (default:
# the newest v3 the Go module proxy lists).
set -euo pipefail
# shellcheck source=../tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tests/lib.sh"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cmdline="bench/run.sh $*"
quick=""
rounds=2
out=""
while (($#)); do
	case "$1" in
	--quick) quick=1 ;;
	--rounds)
		rounds="$2"
		shift
		;;
	--out)
		out="$2"
		shift
		;;
	*)
		echo "usage: $0 [--quick] [--rounds N] [--out FILE]" >&2
		exit 2
		;;
	esac
	shift
done
if [[ -n $quick ]]; then
	rounds=1
	large_mib=64
	out="${out:-$root/target/bench-quick/RESULTS.md}"
	chart="$(dirname "$out")/results.png"
	quick_flag=(--quick)
else
	large_mib=1024
	out="${out:-$here/RESULTS.md}"
	chart="$here/results.png"
	quick_flag=()
fi
mkdir -p "$(dirname "$out")"

work="$(mktemp -d "${BENCH_TMP:-/var/tmp}/berth-bench.XXXXXX")"
on_exit 'rm -rf "$work"'
# Every process started below, stopped at exit (all signalled, then waited for).
pids=()
stop_all() {
	local p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
}
on_exit stop_all

# --- builds and peers -------------------------------------------------------
log "building berth and berth-bench (release)"
# Two invocations: built together, cargo would unify dependency features and
# rebuild everything instead of reusing each package's own release build.
(cd "$root" && cargo build --release -q -p berth-registry && cargo build --release -q -p berth-bench)
berth="$root/target/release/berth"
bench="$root/target/release/berth-bench"

cache="${BERTH_TOOL_CACHE:-${HOME:-/root}/.cache/berth-tools}"
dist_ver="${DISTRIBUTION_VERSION:-$(go list -m -versions github.com/distribution/distribution/v3 | tr ' ' '\n' | grep -E '^v3\.[0-9]+\.[0-9]+$' | sort -V | tail -1)}"
[[ -n $dist_ver ]] || die "no distribution v3 version found on the Go module proxy"
dist_dir="$cache/distribution-$dist_ver"
if [[ ! -x $dist_dir/registry ]]; then
	log "building distribution $dist_ver from its Go module"
	mkdir -p "$dist_dir"
	(cd "$work" && GOBIN="$dist_dir" GOFLAGS=-mod=mod go install "github.com/distribution/distribution/v3/cmd/registry@$dist_ver")
fi
command -v docker-registry >/dev/null || apt-get install -y -q docker-registry >/dev/null
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || apt-get install -y -q nginx-light >/dev/null
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
dr_ver="$(dpkg-query -W -f='${Version}' docker-registry 2>/dev/null || echo unknown)"
nginx_ver="$(dpkg-query -W -f='${Version}' nginx-light 2>/dev/null || dpkg-query -W -f='${Version}' nginx 2>/dev/null || echo unknown)"
dist_label="distribution-${dist_ver#v}"
dr_label="docker-registry-${dr_ver%%+*}"

# wait_http URL WHAT PID: waits (30 s at most) until URL answers HTTP 200 or
# 401; dies at once if PID (WHAT) exits.
wait_http() {
	wait_for 30 "$2 at $1" answers_http "$@"
}
answers_http() {
	local code
	code="$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)"
	[[ $code == 200 || $code == 401 ]] && return 0
	kill -0 "$3" 2>/dev/null || die "$2 exited before answering $1"
	return 1
}
wait_for_interval=0.1

# Stops a server we started, by PID (SIGTERM, then SIGKILL after 10 s).
stop_pid() {
	local pid="$1" deadline=$((SECONDS + 10))
	kill "$pid" 2>/dev/null || return 0
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			log "pid $pid still running 10 s after SIGTERM; SIGKILL"
			kill -9 "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.1
	done
	wait "$pid" 2>/dev/null || true
}

distribution_config() {
	# What the upstream example config sets, with filesystem storage.
	cat >"$1" <<YML
version: 0.1
log:
  level: error
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $2
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$3
YML
}

# Starts server $1 with a fresh data dir; sets server_pid and server_url.
start_server() {
	local kind="$1" port dir
	port="$(free_port)"
	dir="$work/srv-$kind"
	rm -rf "$dir"
	mkdir -p "$dir/data"
	case "$kind" in
	berth)
		BERTH_LOG=warn "$berth" serve --listen "127.0.0.1:$port" \
			--metrics-listen "127.0.0.1:$(free_port)" --data-dir "$dir/data" \
			>"$dir/log" 2>&1 &
		;;
	"$dist_label")
		distribution_config "$dir/config.yml" "$dir/data" "$port"
		OTEL_TRACES_EXPORTER=none "$dist_dir/registry" serve "$dir/config.yml" >"$dir/log" 2>&1 &
		;;
	"$dr_label")
		distribution_config "$dir/config.yml" "$dir/data" "$port"
		docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
		;;
	*) die "unknown server $kind" ;;
	esac
	server_pid=$!
	pids+=("$server_pid")
	server_url="http://127.0.0.1:$port"
	wait_http "$server_url/v2/" "$kind" "$server_pid"
}

# --- machine limits -----------------------------------------------------------
mib_per_s() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", b / 1048576 / s }'; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }

loadlog="$work/loadavg"
(while :; do
	cut -d' ' -f1 /proc/loadavg >>"$loadlog"
	sleep 5
done) &
pids+=("$!")

mkdir -p "$work/nginx/root/v2/bench/hot/manifests" "$work/nginx/tmp" "$work/results"
big="$work/nginx/root/large.bin"
bytes=$((large_mib * 1048576))
log "machine limits: writing a ${large_mib} MiB test file"
head -c "$bytes" /dev/urandom >"$big"
cat "$big" >/dev/null
t0="$(now)"
openssl dgst -sha256 "$big" >/dev/null
sha_mib="$(mib_per_s "$bytes" "$(elapsed "$t0" "$(now)")")"
rm -f "$work/ddtest"
t0="$(now)"
dd if="$big" of="$work/ddtest" bs=4M conv=fsync status=none
disk_mib="$(mib_per_s "$bytes" "$(elapsed "$t0" "$(now)")")"
rm -f "$work/ddtest"
log "sha256 one core: $sha_mib MiB/s; disk write+fsync: $disk_mib MiB/s"

"$bench" hot-manifest "${quick_flag[@]}" "$work/nginx/root/v2/bench/hot/manifests/latest"
nginx_port="$(free_port)"
nginx_user=""
[[ $(id -u) == 0 ]] && nginx_user="user root root;"
cat >"$work/nginx/nginx.conf" <<CONF
$nginx_user
worker_processes auto;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  default_type application/octet-stream;
  client_body_temp_path $work/nginx/tmp/body;
  proxy_temp_path $work/nginx/tmp/proxy;
  fastcgi_temp_path $work/nginx/tmp/fastcgi;
  uwsgi_temp_path $work/nginx/tmp/uwsgi;
  scgi_temp_path $work/nginx/tmp/scgi;
  server {
    listen 127.0.0.1:$nginx_port;
    root $work/nginx/root;
  }
}
CONF
"$nginx_bin" -c "$work/nginx/nginx.conf" -p "$work/nginx" &
nginx_pid=$!
pids+=("$nginx_pid")
wait_http "http://127.0.0.1:$nginx_port/v2/bench/hot/manifests/latest" nginx "$nginx_pid"
speed="$(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$nginx_port/large.bin")"
curl_mib="$(awk -v s="$speed" 'BEGIN { printf "%.1f", s / 1048576 }')"
log "nginx -> curl, ${large_mib} MiB file: $curl_mib MiB/s"

# --- rounds -------------------------------------------------------------------
servers=(berth "$dist_label" "$dr_label")
for ((r = 1; r <= rounds; r++)); do
	# Rotate the order each round so no server always runs first or last.
	order=()
	for ((i = 0; i < ${#servers[@]}; i++)); do
		order+=("${servers[$(((i + r - 1) % ${#servers[@]}))]}")
	done
	for s in "${order[@]}"; do
		log "round $r/$rounds: $s"
		start_server "$s"
		"$bench" run --base "$server_url" --server "$s" --pid "$server_pid" --round "$r" \
			--large-mib "$large_mib" "${quick_flag[@]}" --json "$work/results/$s-r$r.json" ||
			log "berth-bench reported errors against $s (kept in the results)"
		stop_pid "$server_pid"
		# Data dirs are removed only at exit: deleting a distribution tree of
		# 10,000 repositories took minutes on a busy machine and delayed the
		# next server.
		mv "$work/srv-$s" "$work/done-$s-r$r"
	done
	log "round $r/$rounds: nginx ceiling"
	"$bench" ceiling --base "http://127.0.0.1:$nginx_port" --server nginx --round "$r" \
		--large-mib "$large_mib" "${quick_flag[@]}" --large-path /large.bin \
		--hot-path /v2/bench/hot/manifests/latest --json "$work/results/nginx-r$r.json"
done
stop_pid "$nginx_pid"

# --- report -------------------------------------------------------------------
"$bench" report --out "$work/tables.md" --chart "$chart" --subject berth \
	--peers "$dist_label,$dr_label" --ceiling nginx \
	--limit "sha256=$sha_mib" --limit "disk_fsync=$disk_mib" --limit "curl_nginx=$curl_mib" \
	"$work"/results/*.json
if [[ -z $quick ]]; then
	mkdir -p "$here/results"
	rm -f "$here"/results/*.json
	cp "$work"/results/*.json "$here/results/"
fi
load_summary="$(awk '{ s += $1; if ($1 > m) m = $1 } END { printf "mean %.2f, max %.2f over %d samples (every 5 s)", s / NR, m, NR }' "$loadlog")"
disk_dev="$(df --output=source "$work" | tail -1)"
{
	echo "# Berth benchmark results"
	echo
	echo "Generated by \`$cmdline\` on $(date -u '+%Y-%m-%d %H:%M UTC') (commit $(cd "$root" && git rev-parse --short HEAD))."
	[[ -n $quick ]] && echo && echo "**Quick smoke run: small sizes, not comparable to a full run.**"
	echo
	echo "## Machine"
	echo
	echo "- CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
	echo "- Memory: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "- Kernel: $(uname -sr)"
	echo "- Disk (registry data dirs in ${BENCH_TMP:-/var/tmp}): $disk_dev, $(df -h --output=fstype,size "$work" | tail -1 | xargs)"
	echo "- Load average during the run: $load_summary. The machine is shared with other agents; client and servers share its $(nproc) cores."
	echo
	echo "## Machine limits (same run)"
	echo
	echo "| limit | MiB/s |"
	echo "|---|---:|"
	echo "| sha256, one core (\`openssl dgst -sha256\`, ${large_mib} MiB file in page cache) | $sha_mib |"
	echo "| disk write + fsync (\`dd bs=4M conv=fsync\`, ${large_mib} MiB, same filesystem as the registries) | $disk_mib |"
	echo "| nginx $nginx_ver (sendfile) -> curl over loopback, ${large_mib} MiB file | $curl_mib |"
	echo
	echo "## Servers"
	echo
	echo "- berth: \`target/release/berth serve\` (this commit), filesystem data dir"
	echo "- $dist_label: \`github.com/distribution/distribution/v3/cmd/registry@$dist_ver\` built with $(go version | cut -d' ' -f3), filesystem storage, inmemory blob descriptor cache (as the upstream example config)"
	echo "- $dr_label: Debian \`docker-registry\` $dr_ver, same config"
	echo "- nginx: Debian nginx $nginx_ver, sendfile on, \`worker_processes auto\`, serving a file of the same size (ceiling only)"
	echo
	echo "Each server runs fresh (empty data dir) once per round; the order rotates each round; $rounds round(s)."
	echo "Numbers are medians over rounds (peak RSS: the highest round). \"berth vs this\" is Berth's performance divided by the row's (higher is better for Berth; for wall time and latency it is the row's time divided by Berth's)."
	echo "Server CPU s and peak RSS are read from /proc/<pid>/stat and VmHWM (reset through clear_refs before each phase); nginx's are not recorded (its workers are separate processes)."
	echo
	echo "## Workloads"
	echo
	echo "- large-push: one ${large_mib} MiB blob, POST then one streamed PUT ?digest= (the client generates it from a seeded PRNG; its digest is computed in an untimed first pass)."
	echo "- large-pull: GET of that blob to a sink, hashing and verifying the digest while streaming; large-pull-raw: the same without hashing (comparable to nginx)."
	echo "- chunked-upload: a blob in 5 MiB PATCH chunks with Content-Range, then PUT ?digest=; latencies are per PATCH."
	echo "- small-push / small-pull: concurrent clients each pushing images (HEAD, POST, PUT per blob: config + 3 layers; then the manifest), then pulling them back with digest checks; latencies are per image."
	echo "- hot-get / hot-head: a manifest by tag at fixed concurrency for a fixed time; nginx serves the same bytes as a file."
	echo "- catalog-* / tags-*: a registry with the set number of repositories (plus the few bench repositories) and a repository with that many tags; *-page-n100 is one request for the first page (n=100); *-full-n100 and *-full-n1000 are full listings paged with n=100 / n=1000, *-full a full listing with the server's default page size, each following Link headers; latency is one whole listing."
	echo
	echo "## Results"
	cat "$work/tables.md"
	echo
	echo "![chart]($(basename "$chart"))"
} >"$out"
log "wrote $out and $chart"
