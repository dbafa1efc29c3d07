#!/usr/bin/env bash
# A bounded, coverage-guided fuzz run of the OpenFlow decoders and of a
# whole switch session (fuzz/), on stable Rust: libFuzzer with LLVM's
# sanitizer-coverage flags (no sanitizer; cargo-fuzz itself needs nightly).
#
#   bash scripts/fuzz-smoke.sh [SECONDS_PER_TARGET]     (default 20)
#
# Starts from the seed corpus in fuzz/corpus/decode. A crash fails the run
# and leaves its input in the printed artifact directory: turn it into a
# regression test (controller/tests/codec_decode.rs) before fixing it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"

SECS="${1:-20}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/target}"
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# --target keeps the instrumentation off build scripts and proc macros.
cargo build --release --locked --target "$TRIPLE" --bins

WORK="$(mktemp -d /tmp/port25-fuzz.XXXXXX)"
status=0
for target in decode session; do
    mkdir -p "$WORK/$target/corpus" "$WORK/$target/artifacts"
    cp corpus/decode/* "$WORK/$target/corpus/"
    echo "fuzz: $target for ${SECS}s"
    if ! "$CARGO_TARGET_DIR/$TRIPLE/release/$target" "$WORK/$target/corpus" \
        -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$WORK/$target/artifacts/" -print_final_stats=1 2>"$WORK/$target/log"; then
        echo "fuzz: $target FAILED; input and log in $WORK/$target" >&2
        tail -30 "$WORK/$target/log" >&2
        status=1
    else
        grep -E "^stat::number_of_executed_units" "$WORK/$target/log" || true
    fi
done
if [ "$status" -eq 0 ]; then
    rm -rf "$WORK"
    echo "fuzz: no crash"
fi
exit "$status"
