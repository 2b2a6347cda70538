#!/usr/bin/env bash
# Removes what the tests left on the servers of tests/backends/up.sh: every
# database and key prefix named berth_t_* (each test makes one of each, and a
# test that pushes 1 GiB leaves 1 GiB). The servers keep running.
#   tests/backends/prune.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib.sh
source "$here/../lib.sh"
script_name="backends/prune.sh"
root="$(cd "$here/../.." && pwd)"
dir="${BERTH_BACKENDS_DIR:-$root/target/backends}"
[[ -d $dir ]] || exit 0

if [[ -f $dir/pg/port ]]; then
	url="postgres://berth@127.0.0.1:$(cat "$dir/pg/port")/postgres"
	mapfile -t dbs < <(psql "$url" -Atq -c "SELECT datname FROM pg_database WHERE datname LIKE 'berth\_t\_%'" 2>/dev/null || true)
	for db in "${dbs[@]}"; do
		psql "$url" -q -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 ||
			log "could not drop database $db"
	done
	log "dropped ${#dbs[@]} test databases"
fi
# versitygw's posix backend keeps a key prefix as a directory of the bucket's
# (and its sidecar metadata as one under meta/).
n=0
for p in "$dir"/s3/data/*/berth_t_* "$dir"/s3/meta/*/berth_t_*; do
	[[ -e $p ]] || continue
	rm -rf "$p"
	n=$((n + 1))
done
log "removed $n test key prefixes"
