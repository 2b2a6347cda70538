# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154 # berth, bench, commit are the callers'; $work is theirs
# Helpers of the bench/ scripts (sourced after tests/lib.sh, which has
# stop_pid; they need $work, set by the script).
#
# build_binaries ROOT: release builds of berth and berth-bench, copied into
#   $work/bin (a rebuild in the clone during the run changes nothing); sets
#   berth, bench and commit (short hash, plus a note when the sources the
#   binaries come from have uncommitted changes).
# start_load_sampler: samples the 1-minute load average every 5 s into
#   $work/loadavg (stopped with the script's other pids by stop_all).
# load_summary: "mean X, max Y over N samples (every 5 s)".
# machine: Markdown lines about the machine and the load during the run.
# wait_http URL WHAT PID: until URL answers 200 or 401 (30 s), dying if PID exits.
# splice_section FILE SECTION_FILE BEGIN END: replaces the lines from BEGIN to
#   END in FILE with SECTION_FILE, or appends it.

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

build_binaries() {
	local root="$1"
	log "building berth and berth-bench (release)"
	(cd "$root" && cargo build --release -q -p berth-registry && cargo build --release -q -p berth-bench)
	mkdir -p "$work/bin"
	cp "$root/target/release/berth" "$root/target/release/berth-bench" "$work/bin/"
	berth="$work/bin/berth"
	bench="$work/bin/berth-bench"
	commit="$(cd "$root" && git rev-parse --short HEAD)"
	if [[ -n $(cd "$root" && git status --porcelain -- registry config bench/src Cargo.toml Cargo.lock) ]]; then
		commit="$commit plus uncommitted changes in the working tree"
	fi
}

start_load_sampler() {
	(while :; do
		cut -d' ' -f1 /proc/loadavg >>"$work/loadavg"
		sleep 5
	done) &
	pids+=("$!")
}

load_summary() {
	awk '{ s += $1; if ($1 > m) m = $1 } END { printf "mean %.2f, max %.2f over %d samples (every 5 s)", s / NR, m, NR }' "$work/loadavg"
}

machine() {
	echo "- CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); memory $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo); $(uname -sr)"
	echo "- Disk (data dirs in ${BENCH_TMP:-/var/tmp}): $(df --output=source "$work" | tail -1), $(df -h --output=fstype,size "$work" | tail -1 | xargs)"
	echo "- Load average (1 min) during the run: $(load_summary); client, servers and stores share its $(nproc) cores."
}

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

splice_section() {
	python3 - "$@" <<'PY'
import os, sys
path, section, begin, end = sys.argv[1], open(sys.argv[2]).read().strip("\n"), sys.argv[3], sys.argv[4]
old = open(path).read() if os.path.exists(path) else ""
i, j = old.find(begin), old.find(end)
if i >= 0 and j > i:
    new = old[:i] + section + old[j + len(end):]
else:
    new = old.rstrip("\n") + ("\n\n" if old else "") + section + "\n"
open(path, "w").write(new)
PY
}
