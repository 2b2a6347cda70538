#!/usr/bin/env bash
# Profiles a fresh release berth under each berth-bench workload alone: a flat
# perf profile and strace syscall counts per workload, into ${1:-/tmp/bench-prof}.
# Needs perf and strace; run bench/run.sh (or cargo build --release) first.
set -eu  # no pipefail: `perf report | head` ends with SIGPIPE
# shellcheck source=../tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tests/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
b=target/release/berth-bench
out="${1:-/tmp/bench-prof}"; rm -rf "$out"; mkdir -p "$out"
start() {
  d=$(mktemp -d /var/tmp/bprof.XXXX); port=$(free_port)
  BERTH_LOG=warn target/release/berth serve --listen 127.0.0.1:$port --metrics-listen 127.0.0.1:$((port+1)) --data-dir $d/data >$d/log 2>&1 &
  pid=$!; wait_for 10 "berth on 127.0.0.1:$port" curl -s -o /dev/null http://127.0.0.1:$port/v2/
}
stop() { kill $pid; wait $pid 2>/dev/null || true; rm -rf $d; }
for w in hot small large chunked; do
  start
  case $w in
    hot) args=(--workloads hot --hot-secs 5 --hot-concurrency 64);;
    small) args=(--workloads small);;
    large) args=(--workloads large --large-mib 512);;
    chunked) args=(--workloads chunked);;
  esac
  # perf pass
  perf record -F 499 -p $pid -o $out/$w.perf.data -- sleep 600 >/dev/null 2>&1 & ppid=$!
  sleep 0.5
  $b run --base http://127.0.0.1:$port --server berth --pid $pid --no-progress "${args[@]}" > $out/$w.perf.txt 2>&1 || true
  kill -INT $ppid; wait $ppid 2>/dev/null || true
  perf report -i $out/$w.perf.data --no-children --sort dso,symbol --stdio 2>/dev/null | grep -v "^#" | grep -v "^$" | head -40 > $out/$w.perf.report
  # strace pass: syscall counts
  strace -f -c -o $out/$w.strace -p $pid & spid=$!
  sleep 0.5
  $b run --base http://127.0.0.1:$port --server berth --pid $pid --no-progress --round 2 "${args[@]}" > $out/$w.strace.txt 2>&1 || true
  kill -INT $spid; wait $spid 2>/dev/null || true
  stop
done
echo done
