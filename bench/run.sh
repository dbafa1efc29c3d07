#!/usr/bin/env bash
# port25 benchmark: builds release, runs every figure of issue 4 with its
# reference in the same run, prints one table. Not a test; not in CI.
#
#   bash bench/run.sh                       # everything (about 10 minutes)
#   bash bench/run.sh --figures ab --runs 5 --sizes 1000,10000,100000
#   bash bench/run.sh --figures g           # only (g): Faucet as a peer
#   FAUCET=1 bash bench/run.sh              # everything, then (g)
#
# (g) is bench/faucet.sh: Faucet from PyPI in a virtualenv on the same
# policy, its own table after p25bench's. Only with a g in --figures or
# FAUCET=1 (it installs Faucet on first use); FAUCET_RULES sets its sizes
# (default 1000). If Faucet cannot be installed it says so and the rest runs.
#
# Needs Open vSwitch running (scripts/setup-host.sh) and root for ovs-vsctl.
# Bridges are named p25b<pid>x<n>, and only those are deleted on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
export P25BENCH_PREFIX="p25b$$"
export P25BENCH_RUN="$(mktemp -d /tmp/p25bench.XXXXXX)"

cleanup() {
    # Only what this run started: port25d pids and bridges it registered.
    if [[ -f "$P25BENCH_RUN/pids" ]]; then
        while read -r pid; do kill -TERM "$pid" 2>/dev/null || true; done < "$P25BENCH_RUN/pids"
    fi
    if [[ -f "$P25BENCH_RUN/bridges" ]]; then
        while read -r br; do ovs-vsctl --timeout=20 --if-exists del-br "$br" 2>/dev/null || true; done < "$P25BENCH_RUN/bridges"
    fi
    rm -rf "$P25BENCH_RUN"
}
trap cleanup EXIT INT TERM

if ! ovs-vsctl --timeout=5 show >/dev/null 2>&1; then
    echo "Open vSwitch is not running: bash scripts/setup-host.sh" >&2
    exit 1
fi

echo "building (release)..." >&2
cargo build --release --quiet -p port25 -p port25-bench
BIN="$CARGO_TARGET_DIR/release"

# --figures and --runs, for (g); p25bench parses them itself.
figures=abcdef
runs=3
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
        --figures) figures="${args[i + 1]:-}" ;;
        --runs) runs="${args[i + 1]:-3}" ;;
    esac
done
faucet="${FAUCET:-0}"
[[ "$figures" == *g* ]] && faucet=1

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(ovs-vsctl --version | head -1), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
if [[ "$figures" == *[a-f]* ]]; then
    "$BIN/p25bench" all --port25d "$BIN/port25d" --work "$P25BENCH_RUN" "$@"
fi
if [[ "$faucet" == 1 ]]; then
    bash bench/faucet.sh --port25d "$BIN/port25d" --runs "$runs" --rules "${FAUCET_RULES:-1000}" ||
        echo "faucet: bench/faucet.sh failed (exit $?)" >&2
fi
