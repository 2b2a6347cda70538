#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (cargo-fuzz, libFuzzer) for a bounded time,
# starting from its seed corpus in fuzz/corpus/<target>/, and fails on the
# first crash (the input is kept under fuzz/artifacts/<target>/).
#
#   tests/fuzz/run.sh                 # every target, FUZZ_SECONDS each (default 10)
#   FUZZ_SECONDS=600 tests/fuzz/run.sh manifest
#
# Needs a nightly toolchain (installed with rustup if missing) and cargo-fuzz
# (built once into ${BERTH_TOOL_CACHE:-$HOME/.cache/berth-tools}).
# New inputs the fuzzer finds go to target/fuzz-corpus/<target>/, not into
# the repository; copy the interesting ones into fuzz/corpus/ by hand.
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
script_name=fuzz
cd "$(dirname "$0")/../.."

CARGO_FUZZ_VERSION=0.13.2
seconds="${FUZZ_SECONDS:-10}"
cache="${BERTH_TOOL_CACHE:-${HOME:-/root}/.cache/berth-tools}"
fuzz_dir="$cache/cargo-fuzz-$CARGO_FUZZ_VERSION"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
	log "installing the nightly toolchain"
	rustup toolchain install nightly --profile minimal >&2 || die "cannot install nightly"
fi
if [[ ! -x $fuzz_dir/bin/cargo-fuzz ]]; then
	log "building cargo-fuzz $CARGO_FUZZ_VERSION into $fuzz_dir"
	cargo install --quiet --locked --root "$fuzz_dir.tmp" --version "$CARGO_FUZZ_VERSION" cargo-fuzz ||
		die "cannot build cargo-fuzz"
	rm -rf "$fuzz_dir" && mv "$fuzz_dir.tmp" "$fuzz_dir"
fi
export PATH="$fuzz_dir/bin:$PATH"

mapfile -t all < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^berth-fuzz$')
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")

cargo fmt --manifest-path fuzz/Cargo.toml -- --check || die "cargo fmt: fuzz/ is not formatted"
cargo +nightly fuzz build -O || die "building the fuzz targets failed"

for t in "${targets[@]}"; do
	corpus="target/fuzz-corpus/$t"
	mkdir -p "$corpus"
	fuzz_log="$(mktemp)"
	if ! cargo +nightly fuzz run -O "$t" "$corpus" "fuzz/corpus/$t" -- \
		-max_total_time="$seconds" -print_final_stats=1 >"$fuzz_log" 2>&1; then
		tail -n 60 "$fuzz_log" >&2
		die "$t: crashed (input kept under fuzz/artifacts/$t/)"
	fi
	runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$fuzz_log")"
	edges="$(grep -o 'cov: [0-9]*' "$fuzz_log" | tail -n 1 | cut -d' ' -f2)"
	printf 'fuzz: %-10s %10s runs in %s s, %s coverage edges, 0 crashes\n' "$t" "${runs:-?}" "$seconds" "${edges:-?}"
	rm -f "$fuzz_log"
done
