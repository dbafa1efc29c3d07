#!/usr/bin/env bash
# The project's single test command (what README and .ci/run call):
#   bash scripts/test-all.sh
# 1. host setup (packages, Open vSwitch running), 2. build, 3. Rust tests,
# 4. the Mininet end-to-end test against the freshly built port25d.
# Exits non-zero if any step fails.
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

section "mininet end-to-end (real Open vSwitch)"
# Debian's python3: the one that has mininet (a pyenv python3 may shadow it).
$SUDO /usr/bin/python3 mininet/test_e2e.py --port25d target/debug/port25d
