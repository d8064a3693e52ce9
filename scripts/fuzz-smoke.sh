#!/usr/bin/env bash
# Fuzz smoke test: builds every cargo-fuzz target of confab-sip and runs each for a short time
# from a seed corpus of the RFC 4475 and RFC 5118 torture messages. Exits non-zero if a target
# fails to build, crashes, leaks, times out on one input or runs out of memory.
#
#   scripts/fuzz-smoke.sh                  # every target, 60 s each
#   FUZZ_SECONDS=300 scripts/fuzz-smoke.sh parse
#
# Environment:
#   FUZZ_SECONDS    run time per target in seconds (default 60)
#   FUZZ_SANITIZER  address (default) or none; passed to `cargo fuzz -s`
#
# cargo-fuzz drives rustc with unstable flags (-Zsanitizer=address); on a stable toolchain they
# are allowed by RUSTC_BOOTSTRAP=1, which this script sets for cargo fuzz only. Crash inputs are
# kept in crates/confab-sip/fuzz/artifacts/TARGET/ (git-ignored); reproduce one with
#   (cd crates/confab-sip && RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET fuzz/artifacts/TARGET/FILE)
set -euo pipefail

seconds="${FUZZ_SECONDS:-60}"
sanitizer="${FUZZ_SANITIZER:-address}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
crate="$root/crates/confab-sip"
data="$crate/tests/data"

if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "fuzz-smoke: FUZZ_SECONDS must be a whole number of seconds, not '$seconds'" >&2
    exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
cargo fuzz --version

fuzz() { RUSTC_BOOTSTRAP=1 cargo fuzz "$@"; }

cd "$crate"
if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(fuzz list)
fi
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "fuzz-smoke: no fuzz targets found in $crate/fuzz" >&2
    exit 1
fi

echo "fuzz-smoke: building ${targets[*]} (sanitizer: $sanitizer)"
build_start=$SECONDS
for target in "${targets[@]}"; do
    fuzz build -s "$sanitizer" "$target"
done
echo "fuzz-smoke: built in $((SECONDS - build_start)) s"

# Generated corpora stay out of the repository: each run starts from the seeds in a scratch
# directory that is removed on exit.
scratch="$(mktemp -d "${TMPDIR:-/tmp}/confab-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

seed_corpus() { # DIR: the RFC 4475 messages as they are, the RFC 5118 ones with CRLF endings
    local dir="$1" file
    mkdir -p "$dir"
    cp "$data"/rfc4475/*.dat "$dir"/
    for file in "$data"/rfc5118/*; do
        [[ "$(basename "$file")" == README.md ]] && continue
        sed 's/$/\r/' "$file" >"$dir/rfc5118-$(basename "$file")"
    done
}

failed=()
for target in "${targets[@]}"; do
    corpus="$scratch/corpus/$target"
    log="$scratch/$target.log"
    seed_corpus "$corpus"
    echo "fuzz-smoke: running $target for $seconds s from $(find "$corpus" -type f | wc -l) seeds"
    # -timeout: one input running longer than this is a hang and fails the run.
    if fuzz run -s "$sanitizer" "$target" "$corpus" -- \
        -max_total_time="$seconds" -timeout=20 -dict=fuzz/sip.dict -print_final_stats=1 \
        </dev/null >"$log" 2>&1; then
        grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
        echo "fuzz-smoke: $target passed"
    else
        tail -n 80 "$log"
        echo "fuzz-smoke: $target FAILED; the crashing input is in $crate/fuzz/artifacts/$target/" >&2
        failed+=("$target")
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz-smoke: failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz-smoke: ${#targets[@]} passed, 0 failed"
