#!/usr/bin/env bash
# Runs the README's "try-it" code block as it is written, in a fresh
# directory, with the berth binary CI built (BERTH_BIN, default
# target/debug/berth) as `berth` on PATH and the test tools installed by
# tests/tools/install.sh: the README's first steps cannot rot.
#
#   tests/readme/run.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib.sh
source "$here/../lib.sh"
script_name=readme
root="$(cd "$here/../.." && pwd)"
eval "$("$root/tests/tools/install.sh" --paths)"

berth_bin="${BERTH_BIN:-$root/target/debug/berth}"
[[ -x $berth_bin ]] || die "no berth binary at $berth_bin (cargo build -p berth-registry)"

work="$(mktemp -d)"
on_exit 'rm -rf "$work"'
mkdir -p "$work/bin"
ln -s "$berth_bin" "$work/bin/berth"
export PATH="$work/bin:$PATH"

# The block starts with a "# try-it" line.
awk '/^```sh$/ { inblock = 1; lines = ""; next }
     /^```$/ { if (inblock && tried) { printf "%s", lines; exit } inblock = 0; next }
     inblock { if ($0 ~ /^# try-it/) tried = 1; lines = lines $0 "\n" }' \
	"$root/README.md" >"$work/try-it.sh"
[[ -s $work/try-it.sh ]] || die "README.md has no \"# try-it\" block"
grep -q 'berth serve' "$work/try-it.sh" || die "the try-it block does not start berth"

# Port 5000 as the README says: nothing else may hold it.
if (echo >/dev/tcp/127.0.0.1/5000) 2>/dev/null; then
	die "something already listens on 127.0.0.1:5000; the README's block needs it"
fi
cd "$work"
log "running the README's try-it block in $work"
# -e: any failing step fails; the block's `berth serve &` is its job %1.
if ! timeout 300 bash -euo pipefail -c "set -m; source try-it.sh" >"$work/out.txt" 2>&1; then
	cat "$work/out.txt" >&2
	pkill -f "$work/bin/berth serve" 2>/dev/null || true
	die "a step of the README's try-it block failed (output above)"
fi
out="$(cat "$work/out.txt")"
for expect in "hello from berth" "demo/hello" "demo/base" '"repositories":["demo/base","demo/hello"]'; do
	grep -qF "$expect" <<<"$out" || {
		printf '%s\n' "$out" >&2
		die "the try-it block's output lacks: $expect"
	}
done
[[ -d $work/berth-data ]] || die "berth serve did not put its data in ./berth-data"
log "ok: the README's try-it block ran as written ($(wc -l <"$work/try-it.sh") lines)"
