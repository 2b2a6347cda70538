#!/usr/bin/env bash
# Berth as a pull-through cache beside CNCF distribution 3.x in proxy mode
# (`proxy: remoteurl:`), both mirroring the same upstream: a plain
# distribution 3.x on loopback holding one image of --layers layers of
# --layer-mib MiB of random data (plus a config). Per round and per mirror,
# each time on a fresh mirror (empty cache):
#   - one client pulls the image (cold), then again (warm);
#   - --concurrency clients pull it at once (cold), then again (warm);
# a pull is the manifest by tag, then every blob (3 at a time, as
# containerd and Docker do), every digest verified (`berth-bench
# pull-image`). The upstream's access log counts what each mirror asked of
# it in each phase (GET/HEAD of manifests and blobs, bytes sent). Berth is
# addressed with its prefix (`/v2/upstream.test/bench/app/...`),
# distribution as itself (`/v2/bench/app/...`). Writes the "Mirror" section
# of bench/RESULTS.md (the rest of the file is kept) and
# bench/results/mirror/.
#
# Usage: bench/mirror.sh [--rounds N] [--layers N] [--layer-mib N]
#                        [--concurrency N] [--quick] [--out FILE]
#   --rounds N       rounds of both mirrors, order alternating (default 2)
#   --layers N       layers of the image (default 10)
#   --layer-mib N    MiB per layer (default 4)
#   --concurrency N  clients of the concurrent phases (default 20)
#   --quick          one round, 2 layers of 1 MiB, 4 clients; writes
#                    target/bench-quick/RESULTS-mirror.md
# Environment: BENCH_TMP (where the registries store data; default
# /var/tmp). Distribution is the one tests/tools/install.sh builds.
set -euo pipefail
# shellcheck source=../tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tests/lib.sh"
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cmdline="bench/mirror.sh $*"
rounds=2 layers=10 layer_mib=4 concurrency=20 quick="" out=""
usage="usage: $0 [--rounds N] [--layers N] [--layer-mib N] [--concurrency N] [--quick] [--out FILE]"
while (($#)); do
	case "$1" in
	--rounds | --layers | --layer-mib | --concurrency | --out)
		(($# >= 2)) || die "$usage"
		v="${1#--}"
		printf -v "${v//-/_}" '%s' "$2"
		shift
		;;
	--quick) quick=1 ;;
	*) die "$usage" ;;
	esac
	shift
done
if [[ -n $quick ]]; then
	rounds=1 layers=2 layer_mib=1 concurrency=4
	out="${out:-$root/target/bench-quick/RESULTS-mirror.md}"
else
	out="${out:-$here/RESULTS.md}"
fi
mkdir -p "$(dirname "$out")"

work="$(mktemp -d "${BENCH_TMP:-/var/tmp}/berth-bench-mirror.XXXXXX")"
on_exit 'rm -rf "$work"'
on_exit stop_all

build_binaries "$root"
eval "$("$root/tests/tools/install.sh" --paths)"
dist="${BERTH_DISTRIBUTION_BIN:?tests/tools/install.sh --paths set no BERTH_DISTRIBUTION_BIN}"
dist_ver="$("$dist" --version | grep -oE 'v3\.[0-9]+\.[0-9]+' | head -1 || true)"
dist_label="distribution-${dist_ver#v}"
start_load_sampler

# distribution_config FILE ROOTDIR PORT [PROXY_URL]: filesystem storage,
# access log on (info level), proxy mode when PROXY_URL is given.
distribution_config() {
	cat >"$1" <<YML
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
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
	[[ -z ${4:-} ]] || printf 'proxy:\n  remoteurl: %s\n' "$4" >>"$1"
}

# --- the upstream -------------------------------------------------------------
mkdir -p "$work/upstream" "$work/results" "$work/upstream-log"
up_port="$(free_port)"
distribution_config "$work/upstream/config.yml" "$work/upstream/data" "$up_port"
OTEL_TRACES_EXPORTER=none "$dist" serve "$work/upstream/config.yml" >"$work/upstream/log" 2>&1 &
up_pid=$!
pids+=("$up_pid")
up_url="http://127.0.0.1:$up_port"
wait_http "$up_url/v2/" "upstream $dist_label" "$up_pid"
log "upstream $dist_label at $up_url: pushing bench/app:v1 ($layers layers of $layer_mib MiB)"
read -r digest image_bytes < <("$bench" seed-image --base "$up_url" --repo bench/app --tag v1 \
	--layers "$layers" --layer-mib "$layer_mib")
log "bench/app:v1 is $digest ($image_bytes bytes)"

# --- mirrors ------------------------------------------------------------------
# start_mirror KIND: a fresh mirror of the upstream; sets mirror_pid,
# mirror_url, mirror_repo (the image's name through it).
start_mirror() {
	local kind="$1" port dir
	port="$(free_port)"
	dir="$work/mirror-$kind"
	rm -rf "$dir"
	mkdir -p "$dir"
	case "$kind" in
	berth)
		BERTH_LOG=warn "$berth" serve --listen "127.0.0.1:$port" \
			--metrics-listen "127.0.0.1:$(free_port)" --data-dir "$dir/data" \
			--mirror "upstream.test=$up_url" >"$dir/log" 2>&1 &
		mirror_repo=upstream.test/bench/app
		;;
	"$dist_label")
		distribution_config "$dir/config.yml" "$dir/data" "$port" "$up_url"
		sed -i 's/level: info/level: error/; /accesslog:/,+1d' "$dir/config.yml"
		OTEL_TRACES_EXPORTER=none "$dist" serve "$dir/config.yml" >"$dir/log" 2>&1 &
		mirror_repo=bench/app
		;;
	esac
	mirror_pid=$!
	pids+=("$mirror_pid")
	mirror_url="http://127.0.0.1:$port"
	wait_http "$mirror_url/v2/" "$kind" "$mirror_pid"
}

# phase KIND ROUND NAME CONCURRENCY: one measured pull-image phase; the
# upstream's access log lines it caused go to upstream-log/.
phase() {
	local kind="$1" r="$2" name="$3" c="$4" offset
	offset="$(stat -c %s "$work/upstream/log")"
	"$bench" pull-image --base "$mirror_url" --server "$kind" --pid "$mirror_pid" --round "$r" \
		--repo "$mirror_repo" --tag v1 --digest "$digest" --concurrency "$c" \
		--workload "$name" --no-progress --json "$work/results/$kind-$name-r$r.json" ||
		log "pull-image reported errors against $kind (kept in the results)"
	# Anything the mirror still asks after its clients are served counts too.
	sleep 1
	tail -c +"$((offset + 1))" "$work/upstream/log" >"$work/upstream-log/$kind-$name-r$r.log"
}

servers=(berth "$dist_label")
for ((r = 1; r <= rounds; r++)); do
	order=("${servers[@]}")
	((r % 2)) || order=("${servers[1]}" "${servers[0]}")
	for s in "${order[@]}"; do
		log "round $r/$rounds: $s, one client"
		start_mirror "$s"
		phase "$s" "$r" cold-1 1
		phase "$s" "$r" warm-1 1
		stop_pid "$mirror_pid"
		rm -rf "$work/mirror-$s"
		log "round $r/$rounds: $s, $concurrency concurrent clients"
		start_mirror "$s"
		phase "$s" "$r" "cold-$concurrency" "$concurrency"
		phase "$s" "$r" "warm-$concurrency" "$concurrency"
		stop_pid "$mirror_pid"
		rm -rf "$work/mirror-$s"
	done
done
stop_pid "$up_pid"

# --- report -------------------------------------------------------------------
if [[ -z $quick ]]; then
	mkdir -p "$here/results/mirror"
	rm -f "$here"/results/mirror/*
	cp "$work"/results/*.json "$here/results/mirror/"
	for f in "$work"/upstream-log/*.log; do
		grep -E '"(GET|HEAD) /v2/' "$f" >"$here/results/mirror/upstream-$(basename "$f")" || true
	done
fi
begin="<!-- mirror: begin (bench/mirror.sh replaces this section) -->"
end="<!-- mirror: end -->"
{
	echo "$begin"
	echo
	echo "## Mirror: Berth and distribution's proxy mode on the same upstream"
	echo
	echo "Generated by \`$cmdline\` on $(date -u '+%Y-%m-%d %H:%M UTC') (berth built from commit $commit)."
	[[ -z $quick ]] || printf '\n**Quick smoke run: small sizes, not comparable to a full run.**\n'
	echo
	machine
	echo "- Upstream: $dist_label (\`tests/tools/install.sh\`), filesystem storage, on loopback, holding \`bench/app:v1\`: $layers layers of $layer_mib MiB of random data plus a config ($image_bytes bytes with the manifest). Its access log counts the requests below."
	echo "- berth: \`berth serve --data-dir <fresh> --mirror upstream.test=<upstream>\` (SQLite + directory), pulled as \`upstream.test/bench/app:v1\` (prefix addressing); default tag TTL."
	echo "- $dist_label proxy: the same binary with \`proxy: remoteurl: <upstream>\`, filesystem storage, inmemory blob descriptor cache, pulled as \`bench/app:v1\`."
	echo "- A pull (\`berth-bench pull-image\`): GET of the manifest by tag, then GET of the config and every layer, 3 at a time, each digest verified while streaming. Every \"cold\" phase is on a fresh mirror (empty data dir, just started); \"warm\" is the same phase again right after. $rounds round(s), the order of the two mirrors alternating; the table shows each round's value (median first when there are several)."
	echo "- Upstream requests: lines of the upstream's access log written during the phase (and 1 s after), GET/HEAD of \`/v2/.../manifests/\` and \`/v2/.../blobs/\`; upstream MiB is the bytes it sent."
	echo
	python3 - "$work" "$concurrency" "$layers" berth "$dist_label" <<'PY'
import glob, json, os, re, statistics, sys
work, conc, layers, servers = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
line = re.compile(r'"(GET|HEAD) /v2/\S+/(manifests|blobs)/\S* HTTP/[\d.]+" (\d+) (\d+|-)')
def rounds_of(kind, name):
    files = sorted(glob.glob(f"{work}/results/{kind}-{name}-r*.json"))
    return [json.load(open(f))["results"][0] for f in files]
def counts(kind, name):
    out = []
    for f in sorted(glob.glob(f"{work}/upstream-log/{kind}-{name}-r*.log")):
        c = {"GET manifests": 0, "HEAD manifests": 0, "GET blobs": 0, "HEAD blobs": 0, "bytes": 0}
        for l in open(f, errors="replace"):
            m = line.search(l)
            if m:
                c[f"{m.group(1)} {m.group(2)}"] += 1
                c["bytes"] += int(m.group(4)) if m.group(4) != "-" else 0
        out.append(c)
    return out
def show(vals, fmt):
    if not vals:
        return "-"
    if len(vals) == 1:
        return fmt(vals[0])
    return f"{fmt(statistics.median(vals))} ({', '.join(fmt(v) for v in vals)})"
s3 = lambda v: f"{v:.3f}"
s2 = lambda v: f"{v:.2f}"
i0 = lambda v: f"{v:g}"
phases = [("cold-1", "cold, 1 client"), ("warm-1", "warm, 1 client"),
          (f"cold-{conc}", f"cold, {conc} concurrent clients"), (f"warm-{conc}", f"warm, {conc} concurrent clients")]
print("### Pull time")
print()
print("Wall time until the last pull finished; per pull p50 / max; the mirror's CPU during the phase.")
print()
print("| phase | " + " | ".join(f"{k} wall s" for k in servers) + " | " + " | ".join(f"{k} per pull p50 / max ms" for k in servers) + " | " + " | ".join(f"{k} CPU s" for k in servers) + " |")
print("|---|" + "---:|" * (3 * len(servers)))
for name, label in phases:
    walls, lats, cpus = [], [], []
    for k in servers:
        rs = rounds_of(k, name)
        errs = sum(r["errors"] for r in rs)
        walls.append(show([r["wall_s"] for r in rs], s3) + (f" **{errs} failed pulls**" if errs else ""))
        lats.append(show([r["p50_ms"] for r in rs], lambda v: f"{v:.0f}") + " / " + show([r["max_ms"] for r in rs], lambda v: f"{v:.0f}"))
        cpus.append(show([r["server_cpu_s"] or 0.0 for r in rs], s2))
    print(f"| {label} | " + " | ".join(walls + lats + cpus) + " |")
print()
print(f"### Upstream requests ({layers + 1} blobs and 1 manifest in the image)")
print()
print("| phase | mirror | manifest GET | manifest HEAD | blob GET | blob HEAD | MiB sent by the upstream |")
print("|---|---|---:|---:|---:|---:|---:|")
for name, label in phases:
    for k in servers:
        cs = counts(k, name)
        cells = [show([c[key] for c in cs], i0) for key in ["GET manifests", "HEAD manifests", "GET blobs", "HEAD blobs"]]
        cells.append(show([c["bytes"] / 1048576 for c in cs], lambda v: f"{v:.1f}"))
        print(f"| {label} | {k} | " + " | ".join(cells) + " |")
PY
	echo
	echo "Raw results: \`bench/results/mirror/\` (berth-bench JSON per phase and round, and the upstream's access log lines of each phase)."
	echo
	echo "$end"
} >"$work/section.md"
if [[ -n $quick ]]; then
	cp "$work/section.md" "$out"
else
	splice_section "$out" "$work/section.md" "$begin" "$end"
fi
log "wrote $out"
