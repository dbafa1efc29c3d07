#!/usr/bin/env bash
# The project's single test command (what README and .ci/run call):
#   bash scripts/test-all.sh
# 1. host setup (packages, Open vSwitch running), 2. build, 3. Rust tests,
# 4. a bounded libFuzzer run (scripts/fuzz-smoke.sh, 20 s per target, stable
# Rust), 5. the Mininet end-to-end test against the freshly built port25d,
# in three variants: OpenFlow 1.3, an OpenFlow 1.0-only bridge, and TLS.
# Stops at the first failing step, except that all three Mininet variants
# run; exits non-zero if any step or variant failed. About 8 minutes on a
# fresh 2-core machine (3 of them packages and the first build).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() {
    printf '\n==== %s ====\n' "$*"
}

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo -n -E"
fi

section "host setup"
bash scripts/setup-host.sh

section "cargo build"
if [ -f Cargo.lock ]; then
    cargo build --workspace --all-targets --locked
else
    cargo build --workspace --all-targets
fi

section "cargo test"
cargo test --workspace

section "fuzz (libFuzzer on stable, bounded)"
bash scripts/fuzz-smoke.sh 20

# Three variants, each "N passed, M failed"; all run even if one fails, and
# the script fails if any did.  Debian's python3: the one that has mininet
# (a pyenv python3 may shadow it).
e2e_failed=()
for variant in "" "--openflow 10" "--tls"; do
    section "mininet end-to-end (real Open vSwitch) ${variant:-OpenFlow 1.3}"
    # shellcheck disable=SC2086 # the variant is words on purpose
    if ! $SUDO /usr/bin/python3 mininet/test_e2e.py --port25d target/debug/port25d $variant; then
        e2e_failed+=("${variant:-default}")
    fi
done
if [ ${#e2e_failed[@]} -ne 0 ]; then
    echo "mininet end-to-end FAILED: ${e2e_failed[*]}" >&2
    exit 1
fi
