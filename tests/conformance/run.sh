#!/usr/bin/env bash
# Runs the OCI distribution-spec conformance suite (version pinned in
# tests/tools/versions.env, configuration in tests/conformance/oci-conformance.yaml)
# against a fresh `berth serve` on an ephemeral port with a temporary data dir.
#
# Reports are kept in target/conformance/ at the repository root:
#   junit.xml, report.html, results.yaml  (written by the suite)
#   output.txt                            (the suite's full console report)
#   server.log                            (the registry's log for this run)
#   summary.txt                           (the closing count line)
#
# Exit status: 0 only if the suite ran, executed at least one check, and no
# check failed or errored.
#
# Environment:
#   BERTH_BIN              registry binary (default: <cargo target dir>/debug/berth,
#                          built with `cargo build -p berth-registry` if missing)
#   BERTH_CONFORMANCE_BIN  conformance binary (default: the cached build from
#                          tests/tools/install.sh, installed if missing)
#   CONFORMANCE_SERVER     berth (default) or docker-registry (Debian's
#                          distribution 2.8, to compare against)
#   CONFORMANCE_REGISTRY   host:port of an already running registry to test
#                          instead of starting one
#   CONFORMANCE_RESULTS    where the reports go instead (e.g. target/conformance-replicas)
#   CONFORMANCE_KEEP_DATA  1 = keep the temporary data dir (path is printed)
#   BERTH_TEST_BACKEND     postgres-s3: berth on PostgreSQL + S3 (the servers of
#                          tests/backends/up.sh); reports in target/conformance-postgres-s3/
#   OCI_*                  any conformance setting, overriding the YAML file
#                          (e.g. OCI_FILTER_TEST, OCI_LOG=debug)
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
script_name=conformance

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
repo="$(pwd)"
results="$repo/target/conformance"
if [[ ${BERTH_TEST_BACKEND:-} == postgres-s3 ]]; then
	results="$repo/target/conformance-postgres-s3"
fi
results="${CONFORMANCE_RESULTS:-$results}"
config="$repo/tests/conformance/oci-conformance.yaml"
server_kind="${CONFORMANCE_SERVER:-berth}"

command -v curl >/dev/null || die "curl not found (run tests/tools/install.sh)"

# ------------------------------------------------------------ the test binary
conformance_bin="${BERTH_CONFORMANCE_BIN:-}"
if [[ -z $conformance_bin ]]; then
	eval "$(tests/tools/install.sh --paths)"
	conformance_bin="$BERTH_CONFORMANCE_BIN"
	if [[ ! -x $conformance_bin ]]; then
		tests/tools/install.sh
	fi
fi
[[ -x $conformance_bin ]] || die "conformance binary not executable: $conformance_bin"
# shellcheck source=../tools/versions.env
source tests/tools/versions.env

# ------------------------------------------------------------------ the server
server_pid=""
suite_pid=""
data_dir=""
work_dir="$(mktemp -d "${TMPDIR:-/tmp}/berth-conformance.XXXXXX")"
on_exit 'rm -rf "$work_dir"'
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$results"
rm -f "$results"/{junit.xml,report.html,results.yaml,output.txt,server.log,summary.txt}

# BERTH_TEST_BACKEND=postgres-s3: berth on a fresh PostgreSQL database and
# S3 prefix (the servers of tests/backends/up.sh); the same flags on restarts.
backend_args=()
if [[ ${BERTH_TEST_BACKEND:-} == postgres-s3 && $server_kind == berth ]]; then
	: "${BERTH_TEST_DATABASE_URL:?BERTH_TEST_BACKEND=postgres-s3 needs the servers of tests/backends/up.sh}"
	db="berth_conformance_$(date +%s)_$$"
	psql "$BERTH_TEST_DATABASE_URL" -q -c "CREATE DATABASE $db" || die "cannot create database $db"
	backend_args=(--database-url "${BERTH_TEST_DATABASE_URL%/*}/$db" --storage s3
		--s3-bucket "$BERTH_TEST_S3_BUCKET" --s3-endpoint "$BERTH_TEST_S3_ENDPOINT" --s3-prefix "$db")
	log "backend: PostgreSQL database $db, S3 prefix $db in bucket $BERTH_TEST_S3_BUCKET"
fi

start_server() {
	local port="$1"
	case "$server_kind" in
	berth)
		"$berth_bin" serve --listen "127.0.0.1:$port" --metrics-listen 127.0.0.1:0 --data-dir "$data_dir" \
			"${backend_args[@]}" >>"$results/server.log" 2>&1 &
		;;
	docker-registry)
		cat >"$work_dir/registry.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $data_dir
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
		docker-registry serve "$work_dir/registry.yml" >>"$results/server.log" 2>&1 &
		;;
	*) die "unknown CONFORMANCE_SERVER=$server_kind (berth or docker-registry)" ;;
	esac
	server_pid=$!
}

# Stops the server started last, if it still runs: SIGTERM, SIGKILL after 5 s.
stop_server() {
	if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
		kill "$server_pid" 2>/dev/null || true
		for _ in $(seq 50); do
			kill -0 "$server_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
}

# Waits for GET /v2/ to answer 200; returns 1 if the server exited.
wait_ready() {
	local port="$1" code
	for _ in $(seq 600); do
		if ! kill -0 "$server_pid" 2>/dev/null; then
			wait "$server_pid" 2>/dev/null || true
			server_pid=""
			return 1
		fi
		code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/v2/" || true)"
		if [[ $code == 200 ]]; then
			return 0
		fi
		sleep 0.1
	done
	die "server did not answer 200 on http://127.0.0.1:$port/v2/ within 60s (last status: ${code:-none}); log: $results/server.log
$(tail -n 40 "$results/server.log")"
}

if [[ -n ${CONFORMANCE_REGISTRY:-} ]]; then
	registry="$CONFORMANCE_REGISTRY"
	server_kind="external"
	log "testing the running registry at $registry"
else
	if [[ $server_kind == berth ]]; then
		berth_bin="${BERTH_BIN:-}"
		if [[ -z $berth_bin ]]; then
			target_dir="$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)"
			berth_bin="$target_dir/debug/berth"
			if [[ ! -x $berth_bin ]]; then
				log "building berth (cargo build -p berth-registry)"
				cargo build -q -p berth-registry
			fi
		fi
		[[ -x $berth_bin ]] || die "berth binary not found at $berth_bin (set BERTH_BIN)"
	else
		command -v docker-registry >/dev/null || die "docker-registry not installed (apt-get install docker-registry)"
	fi
	data_dir="$(mktemp -d "${TMPDIR:-/tmp}/berth-conformance-data.XXXXXX")"
	on_exit 'if [[ ${CONFORMANCE_KEEP_DATA:-0} == 1 ]]; then log "kept data dir $data_dir"; else rm -rf "$data_dir"; fi'
	on_exit stop_server
	started=""
	for attempt in 1 2 3 4 5; do
		port="$(free_port)"
		start_server "$port"
		if wait_ready "$port"; then
			started=1
			break
		fi
		log "server exited during start-up (attempt $attempt, port $port); retrying"
	done
	[[ -n $started ]] || die "$server_kind failed to start; last lines of $results/server.log:
$(tail -n 40 "$results/server.log")"
	registry="127.0.0.1:$port"
	log "started $server_kind on $registry (pid $server_pid, data $data_dir)"
fi

# ------------------------------------------------------------------- the suite
log "running conformance $CONFORMANCE_VERSION against $registry"
on_exit 'if [[ -n $suite_pid ]]; then kill "$suite_pid" 2>/dev/null; wait "$suite_pid" 2>/dev/null; fi'
# In the background + wait, so that a signal to this script is handled at
# once (bash runs traps only between foreground commands).
(
	cd "$work_dir" # the suite also reads ./oci-conformance.yaml; keep cwd clean
	OCI_CONFIGURATION="$config" \
		OCI_REGISTRY="$registry" \
		OCI_TLS="${OCI_TLS:-disabled}" \
		OCI_RESULTS_DIR="$results" \
		exec "$conformance_bin"
) >"$results/output.txt" 2>&1 &
suite_pid=$!
suite_rc=0
wait "$suite_pid" || suite_rc=$?
suite_pid=""

server_died=""
if [[ -n $server_pid ]] && ! kill -0 "$server_pid" 2>/dev/null; then
	server_died=1
fi

# ------------------------------------------------------------------ the report
junit="$results/junit.xml"
if [[ ! -s $junit ]]; then
	tail -n 60 "$results/output.txt" >&2 || true
	die "the suite wrote no $junit (exit $suite_rc); see $results/output.txt"
fi

# Go's encoding/xml writes each <testcase> on one line, with newlines inside
# text escaped as &#xA;. Emit: status<TAB>name<TAB>system-out<TAB>system-err.
parse_junit() {
	awk '
	function unesc(s) {
		gsub(/&#xA;/, "\n", s); gsub(/&#x9;/, "\t", s); gsub(/&#xD;/, "", s)
		gsub(/&#34;/, "\"", s); gsub(/&#39;/, "'"'"'", s)
		gsub(/&lt;/, "<", s); gsub(/&gt;/, ">", s); gsub(/&quot;/, "\"", s)
		gsub(/&apos;/, "'"'"'", s); gsub(/&amp;/, "\\&", s)
		return s
	}
	function attr(s, a,   m) {
		if (match(s, " " a "=\"[^\"]*\"")) { m = substr(s, RSTART + length(a) + 3, RLENGTH - length(a) - 4); return m }
		return ""
	}
	function elem(s, e,   i, j) {
		i = index(s, "<" e ">"); if (i == 0) return ""
		s = substr(s, i + length(e) + 2); j = index(s, "</" e ">")
		return j ? substr(s, 1, j - 1) : s
	}
	/<testcase / { inside = 1; buf = "" }
	inside { buf = buf $0 }
	inside && (/<\/testcase>/ || /<testcase [^>]*\/>/) {
		inside = 0
		out = unesc(elem(buf, "system-out")); err = unesc(elem(buf, "system-err"))
		gsub(/\t/, " ", out); gsub(/\n/, "\x1f", out); gsub(/\t/, " ", err); gsub(/\n/, "\x1f", err)
		printf "%s\t%s\t%s\t%s\n", attr(buf, "status"), unesc(attr(buf, "name")), out, err
	}' "$junit"
}

cases="$work_dir/cases.tsv"
parse_junit >"$cases"
n_pass=$(awk -F'\t' '$1=="passed"' "$cases" | wc -l)
n_fail=$(awk -F'\t' '$1=="failure"' "$cases" | wc -l)
n_err=$(awk -F'\t' '$1=="error"' "$cases" | wc -l)
n_skip=$(awk -F'\t' '$1=="skipped"' "$cases" | wc -l)
n_total=$(wc -l <"$cases")

strip_prefix() { sed 's#OCI Conformance Test/##'; }

# Skips are how this suite reports an optional API the registry did not
# support (e.g. 202 instead of 201 for an anonymous mount, 400 on tag delete,
# no single-POST upload). Berth must support them all (issue 9), so a skip
# fails the run unless its check name matches a line (extended regex) of
# tests/conformance/allowed-skips.txt. CONFORMANCE_ALLOW_SKIPS=1 relaxes this.
allowed="$repo/tests/conformance/allowed-skips.txt"
allowed_re="$work_dir/allowed.re"
if [[ -f $allowed ]]; then
	grep -vE '^[[:space:]]*(#|$)' "$allowed" >"$allowed_re" || true
else
	: >"$allowed_re"
fi
skip_is_allowed() {
	[[ -s $allowed_re ]] && grep -qE -f "$allowed_re" <<<"$1"
}

limit="${CONFORMANCE_PRINT_LIMIT:-60}"
n_bad_skip=0
if ((n_skip > 0)); then
	echo "Skipped checks (the registry answered that it does not support the API):" >&2
	while IFS=$'\t' read -r status name reason; do
		tag="SKIP"
		if ! skip_is_allowed "$name"; then
			n_bad_skip=$((n_bad_skip + 1))
			tag="SKIP (not in allowed-skips.txt)"
		fi
		if ((n_bad_skip <= limit)); then
			printf '  %s %s\n       %s\n' "$tag" "${name#OCI Conformance Test/}" "$reason" >&2
		fi
	done < <(awk -F'\t' '$1=="skipped" {
		reason = $3
		if (reason == "") { n = split($4, l, "\x1f"); for (i = 1; i <= n; i++) if (l[i] ~ /skipping test:/) { reason = l[i+1]; break } }
		sub(/\x1f.*/, "", reason); gsub(/^ +/, "", reason)
		printf "%s\t%s\t%s\n", $1, $2, reason
	}' "$cases")
	echo >&2
fi

if ((n_fail + n_err > 0)); then
	echo "Failed checks (full requests and responses in $results/report.html):" >&2
	awk -F'\t' -v limit="$limit" '$1=="failure" || $1=="error" {
		shown++
		if (shown > limit) next
		printf "  %s %s\n", ($1=="error" ? "ERROR" : "FAIL"), $2
		n = split($3, l, "\x1f")
		for (i = 1; i <= n && i <= 15; i++) printf "       %s\n", substr(l[i], 1, 400)
		if (n > 15) printf "       ... (%d more lines)\n", n - 15
	}
	END { if (shown > limit) printf "  ... and %d more failed checks (CONFORMANCE_PRINT_LIMIT=%d)\n", shown - limit, limit }' "$cases" | strip_prefix >&2
	echo >&2
fi

# Summary tables printed by the suite (per API and per data type; its own
# tallies count every assertion, the line below counts JUnit test cases).
sed -n '/^OCI Conformance Result:/,$p' "$results/output.txt" >&2

log "conformance $CONFORMANCE_VERSION against $server_kind at $registry"
log "reports: $results/report.html, $junit, $results/output.txt, $results/server.log"
if [[ -n $server_died ]]; then
	log "the registry process DIED during the run; see $results/server.log"
	tail -n 40 "$results/server.log" >&2 || true
fi

failed=$((n_fail + n_err))
echo "conformance: $n_pass passed, $failed failed, $n_skip skipped" | tee "$results/summary.txt"

if ((n_total == 0)); then
	die "the suite executed no checks"
fi
if ((failed > 0)) || [[ -n $server_died ]]; then
	exit 1
fi
if ((n_bad_skip > 0)) && [[ ${CONFORMANCE_ALLOW_SKIPS:-0} != 1 ]]; then
	die "$n_bad_skip skipped checks are not listed in tests/conformance/allowed-skips.txt: the registry lacks an API the spec defines (set CONFORMANCE_ALLOW_SKIPS=1 to accept)"
fi
if ((suite_rc != 0)); then
	die "the suite exited with status $suite_rc although no check failed; see $results/output.txt"
fi
exit 0
