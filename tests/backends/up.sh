#!/usr/bin/env bash
# Starts the real servers of the PostgreSQL + S3 backend on loopback, for
# the tests and the benchmark: Debian's PostgreSQL (initdb + pg_ctl, as the
# postgres user, under a work directory) and versitygw (an S3 gateway
# built from its Go module by tests/tools/install.sh; posix backend with
# sidecar metadata). Prints `export` lines:
#   BERTH_TEST_DATABASE_URL   postgres://berth@127.0.0.1:PORT/postgres (an
#                             admin URL: tests create a database each)
#   BERTH_TEST_S3_ENDPOINT    http://127.0.0.1:PORT
#   BERTH_TEST_S3_BUCKET      a bucket there (tests use a key prefix each)
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION
#   BERTH_BACKENDS_DIR        the work directory (tests/backends/down.sh stops them)
#
#   eval "$(tests/backends/up.sh)"     # start, or reuse the servers already up there
#   tests/backends/down.sh             # stop them
#
# A server stopped by `down.sh postgres|versitygw` comes back on the port
# it had (the outage tests restart them under a running registry).
# BERTH_BACKENDS_ADDR (default 127.0.0.1) is the address both listen on and
# the exports name: the e2e gives the node's IP, so that Pods reach them
# (PostgreSQL then trusts every client: these servers hold test data only).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib.sh
source "$here/../lib.sh"
script_name="backends/up.sh"
root="$(cd "$here/../.." && pwd)"
dir="${BERTH_BACKENDS_DIR:-$root/target/backends}"
addr="${BERTH_BACKENDS_ADDR:-127.0.0.1}"
mkdir -p "$dir"

eval "$("$root/tests/tools/install.sh" --paths)"
versitygw="${BERTH_VERSITYGW_BIN:?install.sh --paths names versitygw}"
[[ -x $versitygw ]] || die "versitygw is not built at $versitygw (run tests/tools/install.sh)"
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
[[ -x $pg_bin/initdb ]] || die "PostgreSQL is not installed (tests/tools/install.sh installs Debian's postgresql)"

access_key="berth-test-access"
secret_key="berth-test-secret-7c1f"

# PostgreSQL refuses to run as root: its files belong to the postgres user.
as_postgres() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# The port a server had in this directory if nothing else took it, else
# a free one.
port_of() {
	if [[ -f $1/port ]] && ! (echo >"/dev/tcp/127.0.0.1/$(cat "$1/port")") 2>/dev/null; then
		cat "$1/port"
	else
		free_port
	fi
}

start_postgres() {
	local pgdata="$dir/pg/data" port
	if [[ -f $dir/pg/port ]] && as_postgres "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$(cat "$dir/pg/port")"; then
		return
	fi
	mkdir -p "$dir/pg"
	[[ $(id -u) -ne 0 ]] || chown postgres: "$dir/pg"
	if [[ ! -f $pgdata/PG_VERSION ]]; then
		as_postgres "$pg_bin/initdb" -D "$pgdata" -U berth --auth=trust --no-instructions >"$dir/pg/initdb.log" 2>&1 ||
			{ cat "$dir/pg/initdb.log" >&2; die "initdb failed"; }
		if [[ $addr != 127.0.0.1 ]]; then
			echo "host all all 0.0.0.0/0 trust" | as_postgres tee -a "$pgdata/pg_hba.conf" >/dev/null
		fi
	fi
	port="$(port_of "$dir/pg")"
	local listen=127.0.0.1
	[[ $addr == 127.0.0.1 ]] || listen+=",$addr"
	# fsync on: the tests check that nothing acknowledged is lost.
	as_postgres "$pg_bin/pg_ctl" -D "$pgdata" -l "$dir/pg/server.log" -w -t 60 start \
		-o "-c listen_addresses=$listen -p $port -k $dir/pg -c max_connections=400 -c fsync=on" >/dev/null ||
		{ cat "$dir/pg/server.log" >&2; die "PostgreSQL did not start"; }
	echo "$port" >"$dir/pg/port"
}

start_versitygw() {
	local port
	if [[ -f $dir/s3/pid ]] && kill -0 "$(cat "$dir/s3/pid")" 2>/dev/null; then
		return
	fi
	mkdir -p "$dir/s3/data" "$dir/s3/meta"
	port="$(port_of "$dir/s3")"
	ROOT_ACCESS_KEY_ID="$access_key" ROOT_SECRET_ACCESS_KEY="$secret_key" \
		setsid "$versitygw" --port "$addr:$port" posix --sidecar "$dir/s3/meta" "$dir/s3/data" \
		>"$dir/s3/server.log" 2>&1 </dev/null &
	echo $! >"$dir/s3/pid"
	echo "$port" >"$dir/s3/port"
	wait_for 30 "versitygw on $addr:$port" bash -c "echo >/dev/tcp/$addr/$port" 2>/dev/null
}

# CreateBucket, signed (curl's SigV4); answered 200, or 409 when it exists.
create_bucket() {
	local empty status
	empty="$(printf '' | sha256sum | cut -d' ' -f1)"
	status="$(curl -sS -o /dev/null -w '%{http_code}' -X PUT -H "x-amz-content-sha256: $empty" \
		--aws-sigv4 "aws:amz:us-east-1:s3" --user "$access_key:$secret_key" \
		"http://$addr:$(cat "$dir/s3/port")/$1")"
	[[ $status == 200 || $status == 409 ]] || die "creating bucket $1 answered $status"
}

start_postgres
start_versitygw
create_bucket berth-test
printf 'export BERTH_TEST_DATABASE_URL=%q\n' "postgres://berth@$addr:$(cat "$dir/pg/port")/postgres"
printf 'export BERTH_TEST_S3_ENDPOINT=%q\n' "http://$addr:$(cat "$dir/s3/port")"
printf 'export BERTH_TEST_S3_BUCKET=berth-test\n'
printf 'export AWS_ACCESS_KEY_ID=%q\n' "$access_key"
printf 'export AWS_SECRET_ACCESS_KEY=%q\n' "$secret_key"
printf 'export AWS_REGION=us-east-1\n'
printf 'export BERTH_BACKENDS_DIR=%q\n' "$dir"
