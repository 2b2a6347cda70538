#!/usr/bin/env bash
# Times the web UI's repository list (and what it reads) on a registry of
# 10,000 repositories: a release `berth` on a fresh data directory, filled
# by `berth-bench run --workloads lists` (10,000 repositories of one image
# each, and one repository of 10,000 tags), then each page fetched RUNS
# times with curl (whole response, server-rendered HTML). Then the same
# registry restarted with a policy (access control on: the list is
# filtered by the policy for the caller) and the pages fetched with a
# bearer token. Prints a Markdown section; --append puts it into
# bench/RESULTS.md (replacing the one there, between its markers).
#
# Usage: bench/ui-list.sh [--append] [--count N] [--runs N]
# Environment: BENCH_TMP (data directory's parent; default /var/tmp).
set -euo pipefail
# shellcheck source=../tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tests/lib.sh"
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" # splice_section

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
append=""
count=10000
runs=20
while (($#)); do
	case "$1" in
	--append) append=1 ;;
	--count)
		count="$2"
		shift
		;;
	--runs)
		runs="$2"
		shift
		;;
	*)
		echo "usage: $0 [--append] [--count N] [--runs N]" >&2
		exit 2
		;;
	esac
	shift
done

command -v curl >/dev/null || die "curl is needed"
log "building berth and berth-bench (release)"
(cd "$root" && cargo build --release -q -p berth-registry -p berth-bench)
target="$(cd "$root" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
berth="$target/release/berth"
bench="$target/release/berth-bench"

work="$(mktemp -d "${BENCH_TMP:-/var/tmp}/berth-ui-list.XXXXXX")"
pid=""
stop() {
	if [[ -n $pid ]]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		pid=""
	fi
}
on_exit 'stop; rm -rf "$work"'

port=""
# start [FLAGS...]: berth serve on the data directory, on a free port.
start() {
	port="$(free_port)"
	"$berth" serve --listen "127.0.0.1:$port" --metrics-listen 127.0.0.1:0 \
		--data-dir "$work/data" --log-format json "$@" 2>>"$work/berth.log" &
	pid=$!
	serving() {
		kill -0 "$pid" 2>/dev/null || die "berth exited; log: $(tail -n 20 "$work/berth.log")"
		curl -fsS "http://127.0.0.1:$port/healthz"
	}
	wait_for 30 "berth on port $port" serving
}

load_before="$(cut -d' ' -f1 /proc/loadavg)"
start
log "filling the registry: $count repositories (berth-bench lists setup)"
fill_start=$SECONDS
"$bench" run --base "http://127.0.0.1:$port" --server berth --workloads lists \
	--list-count "$count" --no-progress --json "$work/lists.json" >"$work/bench.log" 2>&1 ||
	die "berth-bench failed: $(tail -n 20 "$work/bench.log")"
fill_secs=$((SECONDS - fill_start))
repos="$(curl -fsS "http://127.0.0.1:$port/api/v1/repositories?per_page=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')"
((repos >= count)) || die "expected $count repositories, the list says $repos"

rows=()
# measure LABEL PATH [CURL ARGS...]: RUNS fetches; median, p90 and max in ms.
measure() {
	local label="$1" path="$2"
	shift 2
	local url="http://127.0.0.1:$port$path" times=() out code t size
	curl -fsS -o /dev/null "$@" "$url" # warm: the first request after start
	for ((i = 0; i < runs; i++)); do
		out="$(curl -sS -o /dev/null -w '%{http_code} %{time_total} %{size_download}' "$@" "$url")"
		read -r code t size <<<"$out"
		[[ $code == 200 ]] || die "$path answered $code"
		times+=("$t")
	done
	local stats
	stats="$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1*1000} END {
		m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2;
		p = a[int(NR*0.9 + 0.999)];
		printf "%.1f | %.1f | %.1f", m, p, a[NR] }')"
	rows+=("| $label | \`$path\` | $stats | $((size / 1024)) KiB |")
	log "$label: median | p90 | max ms = $stats"
}

measure "UI list, first page (50)" "/ui/"
measure "UI list, page 150" "/ui/?page=150"
measure "UI search (10 matches)" "/ui/?q=r0999"
measure "UI repository of $count tags (first 50)" "/ui/r/bench/tags"
measure "API list, first page" "/api/v1/repositories"
measure "API list, 200 per page" "/api/v1/repositories?per_page=200"

# Access control on: every name is checked against the policy for the caller.
stop
cat >"$work/policy.yaml" <<'EOF'
rules:
  - repositories: ["bench/*"]
    subjects: ["robot:robot$bench"]
    actions: [pull]
  - repositories: ["team-a/*", "team-b/*", "team-c/*", "ci/*", "public/*"]
    subjects: [authenticated]
    actions: [pull, push]
robots:
  - name: robot$bench
    password_sha256: b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9
EOF
# (the secret is "hello world": a benchmark, not a credential)
start --policy-file "$work/policy.yaml"
token="$(curl -fsS -u 'robot$bench:hello world' "http://127.0.0.1:$port/auth/token?service=berth&scope=registry:catalog:*" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
measure "UI list, policy on (token)" "/ui/" -H "Authorization: Bearer $token"
measure "API list, policy on (token)" "/api/v1/repositories" -H "Authorization: Bearer $token"
stop

load_after="$(cut -d' ' -f1 /proc/loadavg)"
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
commit="$(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- registry || echo ' with uncommitted changes')"
begin="<!-- ui-list: begin (bench/ui-list.sh --append replaces this section) -->"
end="<!-- ui-list: end -->"
section="$(
	cat <<EOF
$begin
## Web UI: the repository list of a $(printf "%'d" "$repos")-repository registry

\`bench/ui-list.sh\` ($(date -u +%Y-%m-%d), $commit, $(nproc) cores, $cpu; 1-minute
load average $load_before at the start, $load_after at the end): a release
\`berth\` on SQLite, filled by \`berth-bench run --workloads lists --list-count
$count\` in ${fill_secs} s; each page fetched $runs times with curl after one
warm-up (the whole response: the server renders the HTML; a browser then
fetches the cached stylesheet and script). Milliseconds:

| page | path | median | p90 | max | size |
| --- | --- | ---: | ---: | ---: | ---: |
$(printf '%s\n' "${rows[@]}")

The list reads every repository name (one indexed scan), filters it by the
search and, with a policy, by what the caller may pull, then sums sizes, tag
counts and last pushes for the page alone: the cost grows with the names,
not with what they hold. Target: under 1 s.
$end
EOF
)"
echo "$section"
if [[ -n $append ]]; then
	echo "$section" >"$work/section.md"
	splice_section "$here/RESULTS.md" "$work/section.md" "$begin" "$end"
	log "wrote its section of bench/RESULTS.md"
fi
