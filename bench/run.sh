#!/usr/bin/env bash
# Runs berth-bench against Berth, CNCF distribution 3.x (built from its Go
# module) and Debian's docker-registry (distribution 2.8.2), alternating, for
# several rounds, plus the machine's own limits (sha256 of one core, fsync disk
# writes, nginx over loopback), and writes bench/RESULTS.md and
# bench/results.png.
#
# With --backend postgres-s3: Berth on PostgreSQL + S3 and distribution 3.x
# with its s3 driver, on the same private versitygw (S3) server, started with
# PostgreSQL 15 by tests/backends/up.sh (docker-registry and the nginx
# ceiling are left out). Each server start gets a fresh database and a fresh
# key prefix. After the rounds, write amplification: each registry is
# pointed at a `berth-bench s3-meter` proxy in front of the same server and
# `berth-bench write-amp` counts what each upload makes the store write. The
# results go into the "PostgreSQL + S3" section of bench/RESULTS.md (the
# rest of the file is kept), bench/results-postgres-s3.png and
# bench/results/postgres-s3/.
#
# Usage: bench/run.sh [--backend filesystem|postgres-s3] [--quick] [--rounds N]
#                     [--large-mib N] [--list-count N] [--out FILE]
#   --quick          small sizes, one round; writes target/bench-quick/RESULTS.md
#                    (RESULTS-postgres-s3.md)
#   --rounds N       rounds of every server (default 2)
#   --large-mib N    size of the large blob (default 1024, quick 64)
#   --list-count N   repositories in the catalog and tags in a repository
#                    (default 10000, quick 300)
# Environment: BERTH_TOOL_CACHE (Go-built tools cache), BENCH_TMP (where the
# registries store data; default /var/tmp), DISTRIBUTION_VERSION (default:
# the newest v3 the Go module proxy lists).
set -euo pipefail
# shellcheck source=../tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tests/lib.sh"
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cmdline="bench/run.sh $*"
quick=""
rounds=2
out=""
backend=filesystem
large_mib=""
list_flag=()
usage="usage: $0 [--backend filesystem|postgres-s3] [--quick] [--rounds N] [--large-mib N] [--list-count N] [--out FILE]"
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
	--backend)
		backend="$2"
		shift
		;;
	--large-mib)
		large_mib="$2"
		shift
		;;
	--list-count)
		list_flag=(--list-count "$2")
		shift
		;;
	*)
		echo "$usage" >&2
		exit 2
		;;
	esac
	shift
done
case "$backend" in
filesystem) suffix="" ;;
postgres-s3) suffix="-postgres-s3" ;;
*)
	echo "$usage" >&2
	exit 2
	;;
esac
if [[ -n $quick ]]; then
	rounds=1
	large_mib="${large_mib:-64}"
	out="${out:-$root/target/bench-quick/RESULTS$suffix.md}"
	chart="$(dirname "$out")/results$suffix.png"
	quick_flag=(--quick)
else
	large_mib="${large_mib:-1024}"
	out="${out:-$here/RESULTS.md}"
	chart="$here/results$suffix.png"
	quick_flag=()
fi
mkdir -p "$(dirname "$out")"

work="$(mktemp -d "${BENCH_TMP:-/var/tmp}/berth-bench.XXXXXX")"
on_exit 'rm -rf "$work"'
# PostgreSQL runs as the postgres user and must reach its directory in here.
chmod 755 "$work"

# Every process started below (in $pids), stopped at exit.
on_exit stop_all

# --- builds and peers -------------------------------------------------------
build_binaries "$root"

cache="${BERTH_TOOL_CACHE:-${HOME:-/root}/.cache/berth-tools}"
dist_ver="${DISTRIBUTION_VERSION:-$(go list -m -versions github.com/distribution/distribution/v3 | tr ' ' '\n' | grep -E '^v3\.[0-9]+\.[0-9]+$' | sort -V | tail -1)}"
[[ -n $dist_ver ]] || die "no distribution v3 version found on the Go module proxy"
dist_dir="$cache/distribution-$dist_ver"
if [[ ! -x $dist_dir/registry ]]; then
	log "building distribution $dist_ver from its Go module"
	mkdir -p "$dist_dir"
	(cd "$work" && GOBIN="$dist_dir" GOFLAGS=-mod=mod go install "github.com/distribution/distribution/v3/cmd/registry@$dist_ver")
fi
dist_label="distribution-${dist_ver#v}"
if [[ $backend == filesystem ]]; then
	command -v docker-registry >/dev/null || apt-get install -y -q docker-registry >/dev/null
	command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || apt-get install -y -q nginx-light >/dev/null
	nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
	dr_ver="$(dpkg-query -W -f='${Version}' docker-registry 2>/dev/null || echo unknown)"
	nginx_ver="$(dpkg-query -W -f='${Version}' nginx-light 2>/dev/null || dpkg-query -W -f='${Version}' nginx 2>/dev/null || echo unknown)"
	dr_label="docker-registry-${dr_ver%%+*}"
	servers=(berth "$dist_label" "$dr_label")
else
	servers=(berth "$dist_label")
fi

# --- PostgreSQL + S3 ------------------------------------------------------------
# A private PostgreSQL 15 and versitygw under $work, stopped (after the
# registries) and removed at exit.
store_flags=()
if [[ $backend == postgres-s3 ]]; then
	export BERTH_BACKENDS_DIR="$work/backends"
	on_exit 'stop_all; "$root/tests/backends/down.sh" --clean >/dev/null 2>&1'
	log "starting PostgreSQL and versitygw (tests/backends/up.sh)"
	backends_env="$("$root/tests/backends/up.sh")" || die "tests/backends/up.sh failed"
	eval "$backends_env"
	admin_url="$BERTH_TEST_DATABASE_URL"
	s3_endpoint="$BERTH_TEST_S3_ENDPOINT"
	s3_bucket="$BERTH_TEST_S3_BUCKET"
	pg_ver="$(psql "$admin_url" -Atc 'SHOW server_version')"
	# shellcheck source=../tests/tools/versions.env
	versitygw_ver="$(source "$root/tests/tools/versions.env" && echo "$VERSITYGW_VERSION")"
	# Their CPU is recorded per phase too (PostgreSQL with its backends).
	store_flags=(--store-pid "$(head -n 1 "$BERTH_BACKENDS_DIR/pg/data/postmaster.pid")"
		--store-pid "$(cat "$BERTH_BACKENDS_DIR/s3/pid")")
	log "PostgreSQL $pg_ver at ${admin_url%/*}, versitygw $versitygw_ver at $s3_endpoint (bucket $s3_bucket)"
fi
starts=0

wait_for_interval=0.1

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

# distribution_s3_config FILE ENDPOINT ROOTDIRECTORY PORT: the same with the
# s3 driver (option names from registry/storage/driver/s3-aws/s3.go).
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
    regionendpoint: $2
    bucket: $s3_bucket
    rootdirectory: $3
    forcepathstyle: true
    accesskey: $AWS_ACCESS_KEY_ID
    secretkey: $AWS_SECRET_ACCESS_KEY
    secure: false
    v4auth: true
  # Blob GETs served through the registry, as Berth serves them (the
  # default, a 307 to a presigned URL, would measure versitygw instead).
  redirect:
    disable: true
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$4
YML
}

# Starts server $1 with a fresh data dir (and, on PostgreSQL + S3, a fresh
# database and key prefix; $2 is the S3 endpoint, default the server
# itself); sets server_pid, server_url and server_prefix.
start_server() {
	local kind="$1" endpoint="${2:-${s3_endpoint:-}}" port dir db
	port="$(free_port)"
	dir="$work/srv-$kind"
	rm -rf "$dir"
	mkdir -p "$dir/data"
	starts=$((starts + 1))
	server_prefix="bench-$starts-$kind"
	case "$backend:$kind" in
	filesystem:berth)
		BERTH_LOG=warn "$berth" serve --listen "127.0.0.1:$port" \
			--metrics-listen "127.0.0.1:$(free_port)" --data-dir "$dir/data" \
			>"$dir/log" 2>&1 &
		;;
	"filesystem:$dist_label")
		distribution_config "$dir/config.yml" "$dir/data" "$port"
		OTEL_TRACES_EXPORTER=none "$dist_dir/registry" serve "$dir/config.yml" >"$dir/log" 2>&1 &
		;;
	"filesystem:${dr_label:-}")
		distribution_config "$dir/config.yml" "$dir/data" "$port"
		docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
		;;
	postgres-s3:berth)
		db="bench_$starts"
		psql "$admin_url" -q -c "CREATE DATABASE $db" >/dev/null
		BERTH_LOG=warn "$berth" serve --listen "127.0.0.1:$port" \
			--metrics-listen "127.0.0.1:$(free_port)" --data-dir "$dir/data" \
			--database-url "${admin_url%/*}/$db" --storage s3 --s3-bucket "$s3_bucket" \
			--s3-endpoint "$endpoint" --s3-prefix "$server_prefix" \
			>"$dir/log" 2>&1 &
		;;
	"postgres-s3:$dist_label")
		distribution_s3_config "$dir/config.yml" "$endpoint" "/$server_prefix" "$port"
		OTEL_TRACES_EXPORTER=none "$dist_dir/registry" serve "$dir/config.yml" >"$dir/log" 2>&1 &
		;;
	*) die "unknown server $kind" ;;
	esac
	server_pid=$!
	pids+=("$server_pid")
	server_url="http://127.0.0.1:$port"
	wait_http "$server_url/v2/" "$kind" "$server_pid"
}

# Deletes the large objects a stopped server left under its prefix in
# versitygw's directory (the disk is small; the many small objects stay
# until exit: removing a distribution tree of 10,000 repositories with its
# sidecar metadata took over 20 minutes on this machine, and would load it
# while the next server runs).
drop_large_objects() {
	[[ $backend == postgres-s3 ]] || return 0
	local d="$BERTH_BACKENDS_DIR/s3/data/$s3_bucket/$1"
	[[ ! -d $d ]] || find "$d" -type f -size +1M -delete
}

# The cold-pull workload drops the page cache, which needs root.
page_flag=()
if [[ $(id -u) != 0 ]]; then
	page_flag=(--keep-page-cache)
	log "not root: the cold-pull workload runs with the page cache kept (its blobs are warm)"
fi

# --- machine limits -----------------------------------------------------------
mib_per_s() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", b / 1048576 / s }'; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }

start_load_sampler

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

if [[ $backend == filesystem ]]; then
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
fi

# --- rounds -------------------------------------------------------------------
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
			"${store_flags[@]}" --large-mib "$large_mib" "${list_flag[@]}" "${quick_flag[@]}" "${page_flag[@]}" \
			--json "$work/results/$s-r$r.json" ||
			log "berth-bench reported errors against $s (kept in the results)"
		stop_pid "$server_pid"
		drop_large_objects "$server_prefix"
		# Data dirs are removed only at exit: deleting a distribution tree of
		# 10,000 repositories took minutes on a busy machine and delayed the
		# next server.
		mv "$work/srv-$s" "$work/done-$s-r$r"
		# Its large files go now (6 GiB a run; the disk is small).
		find "$work/done-$s-r$r" -type f -size +1M -delete
	done
	[[ $backend == filesystem ]] || continue
	log "round $r/$rounds: nginx ceiling"
	"$bench" ceiling --base "http://127.0.0.1:$nginx_port" --server nginx --round "$r" \
		--large-mib "$large_mib" "${quick_flag[@]}" --large-path /large.bin \
		--hot-path /v2/bench/hot/manifests/latest --json "$work/results/nginx-r$r.json"
done
[[ $backend != filesystem ]] || stop_pid "$nginx_pid"

# --- write amplification (PostgreSQL + S3) --------------------------------------
# Each registry once more, fresh, with a berth-bench s3-meter proxy as its S3
# endpoint (in front of the same versitygw; bytes forwarded unchanged): the
# bytes each upload makes the store write, per byte of blob.
wamp_files=()
if [[ $backend == postgres-s3 ]]; then
	mkdir -p "$work/write-amp"
	for s in "${servers[@]}"; do
		log "write amplification: $s (through berth-bench s3-meter)"
		meter_port="$(free_port)"
		meter_out="$work/write-amp/$s-meter.json"
		"$bench" s3-meter --listen "127.0.0.1:$meter_port" --upstream "${s3_endpoint#http://}" \
			--out "$meter_out" 2>"$work/write-amp/$s-meter.log" &
		meter_pid=$!
		pids+=("$meter_pid")
		wait_for 10 "s3-meter on 127.0.0.1:$meter_port" test -s "$meter_out"
		start_server "$s" "http://127.0.0.1:$meter_port"
		"$bench" write-amp --base "$server_url" --server "$s" --pid "$server_pid" \
			--meter "$meter_out" "${quick_flag[@]}" --json "$work/write-amp/$s.json" ||
			log "berth-bench write-amp reported errors against $s (kept in the results)"
		stop_pid "$server_pid"
		stop_pid "$meter_pid"
		drop_large_objects "$server_prefix"
		mv "$work/srv-$s" "$work/done-$s-write-amp"
		wamp_files+=(--write-amp "$work/write-amp/$s.json")
	done
fi

# --- report -------------------------------------------------------------------
sections_begin="<!-- postgres-s3: begin (bench/run.sh --backend postgres-s3 replaces this section) -->"
sections_end="<!-- postgres-s3: end -->"
chunked_mib="$([[ -n $quick ]] && echo 16 || echo 256)"
cold_mib="$([[ -n $quick ]] && echo 32 || echo 1024)"
cold_note="4 concurrent pulls (raw, byte counts checked) of distinct ${cold_mib} MiB blobs pushed just before"
if ((${#page_flag[@]})); then
	cold_note="$cold_note, page cache NOT dropped (not root)"
else
	cold_note="$cold_note, after \`sync\` and \`echo 3 > /proc/sys/vm/drop_caches\`"
fi

if [[ $backend == filesystem ]]; then
	"$bench" report --out "$work/tables.md" --chart "$chart" --subject berth \
		--peers "$dist_label,$dr_label" --ceiling nginx \
		--limit "sha256=$sha_mib" --limit "disk_fsync=$disk_mib" --limit "curl_nginx=$curl_mib" \
		"$work"/results/*.json
	if [[ -z $quick ]]; then
		mkdir -p "$here/results"
		rm -f "$here"/results/*.json
		cp "$work"/results/*.json "$here/results/"
	fi
	# The sections other scripts write (PostgreSQL + S3, bench/mirror.sh,
	# bench/replicas.sh: from the first `<!-- NAME: begin` line to the end)
	# are kept.
	kept=""
	if [[ -f $out ]] && grep -qE '^<!-- [a-z0-9-]+: begin' "$out"; then
		kept="$work/kept-sections.md"
		sed -n '/^<!-- [a-z0-9-]*: begin/,$p' "$out" >"$kept"
	fi
	{
		echo "# Berth benchmark results"
		echo
		echo "Generated by \`$cmdline\` on $(date -u '+%Y-%m-%d %H:%M UTC') (berth built from commit $commit)."
		[[ -n $quick ]] && echo && echo "**Quick smoke run: small sizes, not comparable to a full run.**"
		echo
		echo "## Machine"
		echo
		machine
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
		echo "- berth: \`target/release/berth serve\` (built at the start of the run from commit $commit), filesystem data dir"
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
		echo "- chunked-upload: a $chunked_mib MiB blob in 5 MiB PATCH chunks with Content-Range, then PUT ?digest=; latencies are per PATCH. chunked-upload-1m / -64m: the same with 1 MiB and 64 MiB PATCHes (a new blob each)."
		echo "- small-push / small-pull: concurrent clients each pushing images (HEAD, POST, PUT per blob: config + 3 layers; then the manifest), then pulling them back with digest checks; latencies are per image."
		echo "- hot-get / hot-head: a manifest by tag at fixed concurrency for a fixed time; nginx serves the same bytes as a file."
		echo "- cold-pull: $cold_note; hot-get-under-cold-pull: the hot-get load (same clients and concurrency) for exactly as long, its p99 the figure. warm-pull / hot-get-under-warm-pull: the same pulls again right after, with the blobs in the page cache — the control: what the pulls cost the hot load when no disk read is involved. The pulls' clients run at nice 19 on their own threads (the receiving end of a pull is another machine in real life; here it would otherwise take the CPU from the server and the hot clients it is measured against)."
		echo "- catalog-* / tags-*: a registry with the set number of repositories (plus the few bench repositories) and a repository with that many tags; *-page-n100 is one request for the first page (n=100); *-full-n100 and *-full-n1000 are full listings paged with n=100 / n=1000, *-full a full listing with the server's default page size, each following Link headers; latency is one whole listing."
		echo
		echo "## Results"
		cat "$work/tables.md"
		echo
		echo "![chart]($(basename "$chart"))"
	} >"$out"
	[[ -z $kept ]] || printf '\n%s\n' "$(cat "$kept")" >>"$out"
	log "wrote $out and $chart"
	exit 0
fi

# PostgreSQL + S3: one section of $out (the whole of it for --quick).
"$bench" report --out "$work/tables.md" --chart "$chart" --subject berth \
	--peers "$dist_label" --no-targets "${wamp_files[@]}" "$work"/results/*.json
results_dir="$here/results/postgres-s3"
if [[ -z $quick ]]; then
	mkdir -p "$results_dir"
	rm -f "$results_dir"/*.json
	cp "$work"/results/*.json "$work"/write-amp/*.json "$results_dir/"
fi
list_count="${list_flag[1]:-$([[ -n $quick ]] && echo 300 || echo 10000)}"
{
	echo "$sections_begin"
	echo
	echo "## PostgreSQL + S3: Berth and distribution on the same bucket"
	echo
	echo "Generated by \`$cmdline\` on $(date -u '+%Y-%m-%d %H:%M UTC') (berth built from commit $commit)."
	[[ -n $quick ]] && echo && echo "**Quick smoke run: small sizes, not comparable to a full run.**"
	echo
	echo "### Machine and stores"
	echo
	machine
	echo "- PostgreSQL $pg_ver and versitygw $versitygw_ver (posix backend, sidecar metadata), private to this run, started by \`tests/backends/up.sh\` on loopback; both write to the disk above (PostgreSQL with fsync on)."
	echo "- Machine limits (same run): sha256 of one core $sha_mib MiB/s, disk write + fsync (\`dd bs=4M conv=fsync\`, ${large_mib} MiB) $disk_mib MiB/s."
	echo
	echo "### Servers"
	echo
	echo "- berth: \`target/release/berth serve --database-url postgres://…/<fresh database> --storage s3 --s3-bucket $s3_bucket --s3-endpoint <versitygw> --s3-prefix <fresh prefix>\` (built at the start of the run from commit $commit); credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY."
	echo "- $dist_label: \`github.com/distribution/distribution/v3/cmd/registry@$dist_ver\` built with $(go version | cut -d' ' -f3), \`s3\` storage driver on the same versitygw and bucket (\`region: us-east-1, regionendpoint, forcepathstyle: true, secure: false, v4auth: true, rootdirectory: /<fresh prefix>\`, default chunk sizes), inmemory blob descriptor cache, \`redirect: disable: true\` (blob GETs go through the registry, as Berth's do without \`--s3-redirect\`; distribution's default would answer them with a 307 to a presigned versitygw URL)."
	echo "- Not in this run: docker-registry 2.8 and the nginx ceiling (the filesystem run above has them)."
	echo
	echo "Each server runs fresh (new database, new key prefix) once per round; the order rotates each round; $rounds round(s). Numbers are medians over rounds (peak RSS: the highest round). \"berth vs this\" is Berth's performance divided by the row's (higher is better for Berth). Server CPU s and peak RSS are the registry process's; store CPU s is PostgreSQL's (postmaster and every backend) plus versitygw's during the phase: distribution keeps everything in the bucket, Berth its metadata in PostgreSQL."
	echo
	echo "### Workloads"
	echo
	echo "- large-push / large-pull / large-pull-raw: one ${large_mib} MiB blob pushed with POST and one streamed PUT ?digest=, pulled with and without digest verification."
	echo "- chunked-upload: a ${chunked_mib} MiB blob in 5 MiB PATCHes with Content-Range, then PUT ?digest=; chunked-upload-1m / -64m: 1 MiB and 64 MiB PATCHes."
	echo "- cold-pull / warm-pull, hot-get-under-*: $cold_note, then again with the blobs cached, each beside the hot-get load (see the filesystem section)."
	echo "- small-push / small-pull: concurrent clients pushing and pulling small images (config + 3 layers + manifest)."
	echo "- hot-get / hot-head: one manifest by tag at fixed concurrency for a fixed time."
	echo "- lists-setup, catalog-* / tags-*: $list_count repositories and a repository with $list_count tags, listed one page at a time and in full (n=100, n=1000, the server's default)."
	echo "- write amplification: each registry once more, fresh, with \`berth-bench s3-meter\` as its S3 endpoint, a proxy in front of the same versitygw that forwards every byte unchanged (SigV4 still verifies: the Host the registry signs is the proxy's, and it reaches versitygw as signed) and counts what each upload makes the store write: PutObject and UploadPart bodies, plus what it makes the store copy server-side (CopyObject: the source object's size; UploadPartCopy: its range). \"read back\" is every byte the store sent to the registry during the upload (GETs of tails and of whole objects, response heads). Not timed with the other workloads; the proxy is in the path."
	echo
	echo "### Results"
	sed 's/^### /#### /; s/^## /### /' "$work/tables.md"
	echo
	echo "![chart](results$suffix.png)"
	echo
	echo "$sections_end"
} >"$work/section.md"
if [[ -n $quick ]]; then
	cp "$work/section.md" "$out"
else
	splice_section "$out" "$work/section.md" "$sections_begin" "$sections_end"
fi
log "wrote $out and $chart"
