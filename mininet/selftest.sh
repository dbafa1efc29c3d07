#!/usr/bin/env bash
# Self-test of the e2e harness (not part of test-all: ~4 minutes).
#
# Runs test_e2e.py --emulate once as it should be (must pass), then once per
# injected defect (a missing base flow, or a controller bug), and asserts
# that the run fails AND that the check about that defect is among the
# failures.  A harness whose checks cannot fail proves nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

PY=/usr/bin/python3
status=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

expect_fail() {  # expect_fail "ARGS" CHECK...
    local args=$1; shift
    if $PY test_e2e.py --emulate $args >"$out" 2>/dev/null; then
        echo "SELFTEST FAIL [$args]: the run passed"
        status=1
        return
    fi
    for check in "$@"; do
        if ! grep -qE "^(FAIL|INVALID) $check:" "$out"; then
            echo "SELFTEST FAIL [$args]: $check did not fail"
            grep -E '^(FAIL|INVALID)' "$out" | sed 's/^/    /'
            status=1
            return
        fi
    done
    echo "ok   [$args] -> $(grep -cE '^(FAIL|INVALID)' "$out") failing checks, including: $*"
}

if $PY test_e2e.py --emulate >"$out" 2>/dev/null; then
    echo "ok   [--emulate] passes: $(tail -n1 "$out")"
else
    echo "SELFTEST FAIL [--emulate]: the correct flows did not pass"
    grep -E '^(FAIL|INVALID)' "$out" | sed 's/^/    /'
    status=1
fi
expect_fail "--omit dst25"    v4_dst25_blocked_587_80_open v4_drop_counter_dst25 controller_restart_no_gap
expect_fail "--omit dst25_6"  v6_dst25_blocked_587_80_open v6_drop_counter_dst25 controller_restart_no_gap
expect_fail "--omit src25"    v4_src25_to_subscriber_blocked ofproto_trace
expect_fail "--omit src25_6"  v6_src25_to_subscriber_blocked ofproto_trace
expect_fail "--omit frag"     fragmented_syn_blocked ofproto_trace
expect_fail "--omit frag6"    fragmented_syn_blocked ofproto_trace
expect_fail "--fault no-grant"     v4_exemption_grant_opens_only_sub1 v6_exemption_grant_opens_only_sub1
expect_fail "--fault no-revoke"    v4_exemption_revoke_blocks_again v6_exemption_revoke_blocks_again
expect_fail "--fault restart-wipe" controller_restart_no_gap flows_after_restart
expect_fail "--fault restart-open" controller_restart_no_gap
exit $status
