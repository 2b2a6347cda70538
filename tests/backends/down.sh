#!/usr/bin/env bash
# Stops the servers tests/backends/up.sh started (and removes their data
# with --clean), or only one of them.
#   tests/backends/down.sh [--clean]
#   tests/backends/down.sh postgres|versitygw
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib.sh
source "$here/../lib.sh"
script_name="backends/down.sh"
root="$(cd "$here/../.." && pwd)"
dir="${BERTH_BACKENDS_DIR:-$root/target/backends}"
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
what="${1:-all}"
if [[ $what != versitygw && -f $dir/pg/data/postmaster.pid ]]; then
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$pg_bin/pg_ctl" -D "$dir/pg/data" -m fast -w stop >/dev/null || true
	else
		"$pg_bin/pg_ctl" -D "$dir/pg/data" -m fast -w stop >/dev/null || true
	fi
fi
if [[ $what != postgres && -f $dir/s3/pid ]]; then
	pid="$(cat "$dir/s3/pid")"
	kill "$pid" 2>/dev/null || true
	# Gone, so that its port is free for the next start.
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	rm -f "$dir/s3/pid"
fi
if [[ $what == --clean ]]; then
	rm -rf "$dir"
fi
