#!/usr/bin/env bash
# Self-test of the e2e harness (not part of test-all: ~6 minutes).
#
# Runs test_e2e.py --emulate once as it should be (must pass), then once per
# injected defect (a missing base flow, or a controller bug), and asserts
# that the run fails AND that the check about that defect is among the
# failures.  A harness whose checks cannot fail proves nothing.
#
#   bash mininet/selftest.sh                            # emulated controller
#   bash mininet/selftest.sh target/debug/port25d       # + the TLS defects
#
# The same for the OpenFlow 1.0 variant (--openflow 10).  The TLS defects
# (a switch certificate from another CA; port25d trusting that CA) need the
# real daemon, so they run only when its path is given.
set -euo pipefail
PORT25D=${1:+$(realpath "$1")}
cd "$(dirname "${BASH_SOURCE[0]}")"

PY=/usr/bin/python3
status=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

expect_fail() {  # expect_fail "ARGS" CHECK...   (ARGS without --port25d: --emulate)
    local args=$1; shift
    case " $args " in *" --port25d "*) ;; *) args="--emulate $args" ;; esac
    if $PY test_e2e.py $args >"$out" 2>/dev/null; then
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

expect_pass() {  # expect_pass "ARGS"
    if $PY test_e2e.py $1 >"$out" 2>/dev/null; then
        echo "ok   [$1] passes: $(tail -n1 "$out")"
    else
        echo "SELFTEST FAIL [$1]: the correct flows did not pass"
        grep -E '^(FAIL|INVALID)' "$out" | sed 's/^/    /'
        status=1
    fi
}

expect_pass "--emulate"
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

# OpenFlow 1.0: the IPv4 policy only, and the traffic must agree with the
# status flags.  of10-careless: tp_dst=25 without nw_proto (raw 1.0
# flow-mod) drops all IPv4; of10-extras: IPv6/fragment drops installed while
# /v1/switches says they are not enforced.
expect_pass "--emulate --openflow 10"
expect_fail "--openflow 10 --omit dst25" v4_dst25_blocked_587_80_open flows_initial
expect_fail "--openflow 10 --fault of10-careless" v4_of10_port_match_keeps_80_587_ping_open flows_initial
expect_fail "--openflow 10 --fault of10-extras" v6_port25_NOT_blocked_on_of10_as_status_says \
    fragmented_syn_NOT_blocked_on_of10_as_status_says flows_initial ofproto_trace

if [ -n "$PORT25D" ]; then
    expect_fail "--port25d $PORT25D --tls --tls-fault wrong-ca" switch_in_sync_and_relay_exempted harness
    expect_fail "--port25d $PORT25D --tls --tls-fault trust-rogue" tls_foreign_ca_switch_refused
else
    echo "skip [--tls --tls-fault ...]: give the port25d binary to run them"
fi
exit $status
