#!/usr/bin/env bash
# port25d against Faucet on the same port-25 policy, measured in the same run
# (issue 4: "where Faucet installs from PyPI into a virtualenv, Faucet on the
# same policy as a peer"). Prints one table: figure | port25d | faucet | ratio.
#
#   bash bench/faucet.sh                          # 1000 exemption rules, 3 runs
#   bash bench/faucet.sh --rules 1000,10000 --runs 5
#   bash bench/faucet.sh --port25d target/release/port25d   # skip the build
#
# Other options go to bench/faucet_bench.py: --poll-ms 20, --settle 1,
# --match port25|smtp (exemption rules as port25d's flows, or port-25 only),
# --acl-ports 1|2 (Faucet's ACL on port 1, or on both ports).
#
# Environment: P25BENCH_VENV (default /tmp/p25-faucet-venv, reused if it
# holds the pinned Faucet), FAUCET_VERSION (default 1.10.12), PYTHON
# (default python3, for the virtualenv and the stdlib-only helper).
#
# If Faucet cannot be installed it prints why and "faucet: not available"
# and exits 0. Needs Open vSwitch running (scripts/setup-host.sh) and root
# for ovs-vsctl. Everything listens on 127.0.0.1. Bridges are named
# p25fb<pid>x<n>; only those are created or deleted, and every process,
# bridge and temporary directory this run started is removed on exit,
# Ctrl-C included.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

VENV="${P25BENCH_VENV:-/tmp/p25-faucet-venv}"
FAUCET_VERSION="${FAUCET_VERSION:-1.10.12}"
PY="${PYTHON:-python3}"
PREFIX="p25fb$$"
RUN="$(mktemp -d /tmp/p25fb.XXXXXX)"

# Registered by bench/faucet_bench.py: $RUN/pids, $RUN/bridges.
cleanup() {
    local pid br left
    if [[ -f "$RUN/pids" ]]; then
        while read -r pid; do
            # Only a process we started that is still that process.
            if grep -qaE 'osken-manager|faucet|port25d' "/proc/$pid/cmdline" 2>/dev/null; then
                kill -TERM "$pid" 2>/dev/null || true
            fi
        done < "$RUN/pids"
        for _ in $(seq 50); do
            left=0
            while read -r pid; do
                if grep -qaE 'osken-manager|faucet|port25d' "/proc/$pid/cmdline" 2>/dev/null; then left=1; fi
            done < "$RUN/pids"
            [[ $left == 0 ]] && break
            sleep 0.2
        done
        while read -r pid; do
            if grep -qaE 'osken-manager|faucet|port25d' "/proc/$pid/cmdline" 2>/dev/null; then
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done < "$RUN/pids"
    fi
    if [[ -f "$RUN/bridges" ]]; then
        while read -r br; do
            case "$br" in
                "${PREFIX}x"*) ovs-vsctl --timeout=20 --if-exists del-br "$br" 2>/dev/null || true ;;
            esac
        done < "$RUN/bridges"
    fi
    rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --port25d BIN is ours; everything else goes to the helper.
P25D=""
HELPER_ARGS=()
while (($#)); do
    case "$1" in
        --port25d) P25D="$2"; shift 2 ;;
        --port25d=*) P25D="${1#*=}"; shift ;;
        *) HELPER_ARGS+=("$1"); shift ;;
    esac
done

if ! ovs-vsctl --timeout=5 show >/dev/null 2>&1; then
    echo "Open vSwitch is not running: bash scripts/setup-host.sh" >&2
    exit 1
fi

# Faucet from PyPI, pinned, in its own virtualenv.
faucet_ready() {
    [[ -x "$VENV/bin/faucet" ]] && "$VENV/bin/faucet" --version 2>&1 | grep -qx "Faucet $FAUCET_VERSION"
}
if ! faucet_ready; then
    why=""
    echo "installing faucet==$FAUCET_VERSION from PyPI into $VENV (a few minutes the first time)..." >&2
    if ! command -v "$PY" >/dev/null; then
        why="no $PY to create the virtualenv with"
    elif [[ ! -x "$VENV/bin/pip" ]] && ! "$PY" -m venv "$VENV" >"$RUN/venv.log" 2>&1; then
        why="$PY -m venv $VENV failed: $(tail -n 2 "$RUN/venv.log" | tr '\n' ' ')"
    # DEBINSTALL=1: Faucet's setup.py otherwise copies its sample configs to
    # /etc/faucet and creates /var/log/faucet when built as root.
    elif ! DEBINSTALL=1 "$VENV/bin/pip" install --disable-pip-version-check --quiet "faucet==$FAUCET_VERSION" >"$RUN/pip.log" 2>&1; then
        why="pip install faucet==$FAUCET_VERSION failed: $(grep -m1 -iE 'error' "$RUN/pip.log" || tail -n 2 "$RUN/pip.log" | tr '\n' ' ')"
    elif ! faucet_ready; then
        why="installed, but '$VENV/bin/faucet --version' does not say Faucet $FAUCET_VERSION: $("$VENV/bin/faucet" --version 2>&1 | tail -n 1)"
    fi
    if [[ -n "$why" ]]; then
        echo "faucet: ${why:0:400}" >&2
        echo "faucet: not available"
        exit 0
    fi
fi

if [[ -z "$P25D" ]]; then
    echo "building port25d (release)..." >&2
    cargo build --release --quiet -p port25
    P25D="$CARGO_TARGET_DIR/release/port25d"
fi

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(ovs-vsctl --version | head -1), Faucet $FAUCET_VERSION ($("$VENV/bin/pip" show os-ken 2>/dev/null | sed -n 's/^Version: /os-ken /p')), load $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" bench/faucet_bench.py --work "$RUN" --prefix "$PREFIX" \
    --faucet "$VENV/bin/faucet" --faucet-version "$FAUCET_VERSION" --port25d "$P25D" "${HELPER_ARGS[@]}"
