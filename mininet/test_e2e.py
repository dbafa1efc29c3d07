#!/usr/bin/python3
"""End-to-end test of port25d against a real Open vSwitch, with Mininet hosts.

Run as root with Debian's python (the one that has mininet):

    /usr/bin/python3 mininet/test_e2e.py --port25d target/debug/port25d
    /usr/bin/python3 mininet/test_e2e.py --emulate            # harness self-test
    /usr/bin/python3 mininet/test_e2e.py --emulate --omit frag  # must FAIL
    /usr/bin/python3 mininet/test_e2e.py --port25d P --openflow 10  # 1.0-only bridge
    /usr/bin/python3 mininet/test_e2e.py --port25d P --tls          # ssl: controller

Topology: one OVS bridge (userspace datapath, OpenFlow13, fail_mode=secure)
with four hosts on one L2 segment:

    sub1, sub2   subscribers            198.51.100.11/.12   2001:db8::11/::12
    relay        the ISP's mail relay   198.51.100.3        2001:db8::3
    mail         an outside MTA         198.51.100.25       2001:db8::25
                 (listens on TCP 25, 587, 80)

The relay is exempted over the REST API at start.  Every check uses real
traffic (or ofproto/trace for the trace checks), and every check that expects
a drop is paired with a positive control in the same run: a control that fails
makes the check INVALID, never PASS, because a network that passes nothing
would otherwise look exactly like a working port-25 block.

Variants (scripts/test-all.sh runs all three):
  default       the bridge speaks OpenFlow 1.3; the full policy.
  --openflow 10 the bridge speaks only OpenFlow 1.0.  port25d enforces the
                IPv4 policy there and says so in GET /v1/switches
                (ipv6_enforced and fragments_enforced false); the IPv6 and
                fragment checks become informational checks that the
                traffic matches those flags (IPv6 port 25 and fragmented
                SYNs get through), and a check that port 80 and 587 still
                flow (a 1.0 port match without nw_proto drops all IP).
  --tls         port25d listens only for TLS (--openflow-listen none) and
                the switch attaches with ssl:, certificates made by ovs-pki
                in the work dir.  `ovs-vsctl set-ssl` is daemon-wide, so the
                run holds an flock on /run/lock/port25-e2e-ssl.lock and puts
                the previous SSL settings back at the end.  Extra check: a
                bridge whose certificate is from another CA is not served.
                --tls-fault wrong-ca|trust-rogue breaks it on purpose.

--emulate replaces port25d by installing the documented flows with ovs-ofctl
and keeping exemptions in memory; --omit NAME leaves one base flow out, to
prove that the matching check fails (see EMULATED_BASE for names), and
--fault NAME injects a controller bug (see FAULTS) for the same purpose.

Files: e2e_lib.py (lab, controllers, flow reading, reporting), p25probe.py
(the traffic tools run inside the hosts), selftest.sh (proves each check can
fail, using --emulate with --omit/--fault).

Only the bridge, interfaces and namespaces this run creates are touched; names
carry N (from the pid) so that several runs can share one OVS.  Output is one
line per check and a last line "N passed, M failed"; exit 0 only if all
passed.
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # run as root from a checkout: leave no __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_lib import (  # noqa: E402
    EMULATED_BASE, FAULTS, FOREIGN_FLOWS, MAC, OF10_BASE, OFCTL, PROBE, PY, SUB_PORT, V4, V6,
    Emulated, Lab, Pki, Port25d, Report, SharedSsl, base_cookie, base_keys, counter,
    dump_flows, exemption_cookie, exemption_keys, flow_key, log, pick_n, run,
)


# --------------------------------------------------------------- checks


class Suite:
    def __init__(self, lab, ctl, args):
        self.lab = lab
        self.ctl = ctl
        self.timeout = args.timeout
        self.br = lab.bridge
        self.of10 = args.openflow == "10"
        # What the switch is expected to enforce: OpenFlow 1.0 cannot match
        # IPv6 ports or IP fragments (README "OpenFlow 1.0 switches").
        self.fams = (4,) if self.of10 else (4, 6)
        self.frag_enforced = not self.of10
        self.base_names = OF10_BASE if self.of10 else [b[0] for b in EMULATED_BASE]
        self.active = {}  # exemption id -> subnet, as the harness believes
        self.counters = {}

    # helpers -------------------------------------------------------------

    def addrs(self, fam):
        return V4 if fam == 4 else V6

    def suffix(self, fam):
        return "" if fam == 4 else "6"

    def syns(self, src, dst, fam, port, sport, since):
        """SYNs from src that reached dst's wire for this connection attempt."""
        a = self.addrs(fam)
        return [e for e in self.lab.wire(dst, since)
                if e["k"] == "syn" and e["src"] == a[src] and e["dport"] == port
                and (sport is None or e["sport"] == sport)]

    def blocked(self, chk, src, dst, fam, port, sport=None, what=""):
        """Expect the switch to drop src -> dst:port: the connect times out
        AND the SYN never shows up on dst's wire (so a drop of only the
        SYN-ACK by some other flow does not count as "blocked")."""
        t0 = time.time()
        out = self.lab.tcp(src, self.addrs(fam)[dst], port, sport, self.timeout)
        desc = "%s%s -> %s:%d%s (v%d)" % (what, src, dst, port, " from :%d" % sport if sport else "", fam)
        chk.expect(out == "timeout", "%s: %s, want timeout (dropped)" % (desc, out))
        n = len(self.syns(src, dst, fam, port, sport, t0))
        chk.expect(n == 0, "%s: %d SYN(s) reached %s, want none" % (desc, n, dst))

    def works(self, chk, src, dst, fam, port, sport=None, control=True, what=""):
        """Expect src -> dst:port to connect.  As a control it also checks
        that dst's wire log saw the SYN: the observer the drop checks rely
        on is itself working."""
        t0 = time.time()
        out = self.lab.tcp(src, self.addrs(fam)[dst], port, sport, max(self.timeout, 2.0))
        desc = "%s%s -> %s:%d%s (v%d)" % (what, src, dst, port, " from :%d" % sport if sport else "", fam)
        ok = chk.expect(out == "connected", "%s: %s, want connected" % (desc, out))
        if control:
            chk.control(ok, "%s: %s, want connected" % (desc, out))
            n = len(self.syns(src, dst, fam, port, sport, t0))
            chk.control(n >= 1, "%s: connected but %s's wire log saw no SYN" % (desc, dst))

    def grant(self, subnet, note):
        ident = self.ctl.grant(subnet, note)
        self.active[ident] = subnet
        return ident

    def revoke(self, ident):
        self.ctl.revoke(ident)
        self.active.pop(ident, None)

    # checks --------------------------------------------------------------

    def check_warmup(self, chk):
        """Controls for everything: the bridge forwards non-TCP-25 traffic."""
        for fam in (4, 6):
            a = self.addrs(fam)
            for role in ("sub1", "sub2", "relay"):
                ok = self.lab.ping(role, a["mail"]) or self.lab.ping(role, a["mail"])
                chk.control(ok, "ping%s %s -> mail failed" % (self.suffix(fam), role))

    def check_dst25_blocked(self, chk, fam):
        m = "tcp%s,tp_dst=25" % self.suffix(fam)
        before = counter(self.br, 30000, m)
        self.works(chk, "sub1", "mail", fam, 587)
        self.blocked(chk, "sub1", "mail", fam, 25)
        self.works(chk, "sub1", "mail", fam, 80)
        after = counter(self.br, 30000, m)
        self.counters[m] = (before, after)

    def check_counter(self, chk, fam):
        m = "tcp%s,tp_dst=25" % self.suffix(fam)
        before, after = self.counters.get(m, (None, None))
        chk.expect(before is not None and after is not None,
                   "no priority-30000 %s drop flow of ours in dump-flows" % m)
        if before is not None and after is not None:
            chk.expect(after > before, "n_packets of %s stayed %d across a blocked connect" % (m, after))

    def check_exempt_grant(self, chk, fam):
        subnet = self.addrs(fam)["sub1"] + ("/32" if fam == 4 else "/128")
        self.sub1_grant = None
        self.blocked(chk, "sub1", "mail", fam, 25, what="before grant: ")
        self.works(chk, "sub1", "mail", fam, 587, what="before grant: ")
        self.sub1_grant = self.grant(subnet, "e2e sub1 v%d" % fam)
        self.works(chk, "sub1", "mail", fam, 25, control=False, what="exempted: ")
        self.blocked(chk, "sub2", "mail", fam, 25, what="not exempted: ")
        self.works(chk, "sub2", "mail", fam, 587)
        got = self.ctl.exemptions()
        chk.expect(subnet in got, "GET /v1/exemptions lacks %s: %s" % (subnet, got))

    def check_exempt_revoke(self, chk, fam):
        subnet = self.addrs(fam)["sub1"] + ("/32" if fam == 4 else "/128")
        chk.expect(self.sub1_grant is not None, "nothing to revoke: the grant failed")
        if self.sub1_grant is None:
            return
        self.revoke(self.sub1_grant)
        self.blocked(chk, "sub1", "mail", fam, 25, what="revoked: ")
        self.works(chk, "sub1", "mail", fam, 587)
        got = self.ctl.exemptions()
        chk.expect(subnet not in got, "GET /v1/exemptions still has %s: %s" % (subnet, got))

    def check_src25_blocked(self, chk, fam):
        m = "tcp%s,tp_src=25" % self.suffix(fam)
        before = counter(self.br, 30000, m)
        self.works(chk, "mail", "sub2", fam, SUB_PORT, sport=2526)
        self.blocked(chk, "mail", "sub2", fam, SUB_PORT, sport=25)
        self.works(chk, "mail", "sub2", fam, SUB_PORT, sport=2526)
        after = counter(self.br, 30000, m)
        chk.expect(before is not None and after is not None and after > before,
                   "n_packets of %s did not move (%s -> %s)" % (m, before, after))

    def check_relay(self, chk, fam):
        self.works(chk, "relay", "mail", fam, 25, control=False)
        self.works(chk, "mail", "relay", fam, SUB_PORT, sport=25, control=False)

    def check_frag(self, chk):
        """Tiny-fragment TCP SYNs to :25 from an unexempted subscriber.

        The first fragment carries only the TCP ports (8 bytes), so a switch
        that parses ports only from a complete TCP header sees tp_dst=0 and
        only a tcp,nw_frag=yes drop stops it.  IPv4: no fragment may arrive.
        IPv6: OVS gives *later* IPv6 fragments nw_proto=44 (the fragment
        header), so tcp6,nw_frag=yes can only match the first fragment; the
        requirement there is that the first fragment (offset 0) never
        arrives, without which the SYN cannot be reassembled.  In both cases
        mail must send nothing back from port 25.  Controls in the same
        sniff: a fragmented UDP datagram from the same subscriber, and the
        same tiny-fragment SYN from the exempted relay, arrive whole.

        Where the variant does not enforce fragments (OpenFlow 1.0), the
        attack must instead arrive whole: the documented limitation, and
        what /v1/switches says (fragments_enforced false)."""
        lab = self.lab
        t0 = time.time()
        enforced = {fam: self.frag_enforced and fam in self.fams for fam in (4, 6)}
        status = self.ctl.switch_state() or {}
        if not all(enforced.values()):
            chk.expect(status.get("fragments_enforced") is False,
                       "/v1/switches says fragments_enforced=%s, want false" % status.get("fragments_enforced"))
        before = {m: counter(self.br, 30000, m) for m, fam in (("tcp,nw_frag=yes", 4), ("tcp6,nw_frag=yes", 6))
                  if enforced[fam]}
        base = random.randint(1000, 60000)
        sent = []  # (src, fam, proto, ident, sport, fragments sent, expect arrival)
        plan = (
            ("sub2", "tcp", 0, 8, False),        # the attack: tiny-fragment SYN
            ("sub2", "udp", 3000, 1400, True),   # control: fragmented UDP passes
            ("relay", "tcp", 0, 8, True),        # control: exempted SYN passes
        )
        for fam in (4, 6):
            a = self.addrs(fam)
            for i, (src, proto, payload, first, arrive) in enumerate(plan):
                ident = base + 10 * fam + i
                sport = 40000 + 10 * fam + i
                res = lab.h[src].cmd(
                    "%s %s frag --iface %s --src-mac %s --dst-mac %s --src %s --dst %s --proto %s "
                    "--sport %d --dport %d --ident %d --payload %d --first-frag %d --rest-frag 1400"
                    % (PY, PROBE, lab.h[src].defaultIntf().name, MAC[src], MAC["mail"], a[src],
                       a["mail"], proto, sport, 25 if proto == "tcp" else 9, ident, payload, first))
                n = int(res.strip().split()[-1]) if res.strip().startswith("sent") else 0
                chk.control(n >= 2, "crafting fragments failed: %s" % res.strip())
                sent.append((src, fam, proto, ident, sport, n, arrive))
        events = lab.wire("mail", t0, settle=1.0)  # time for SYN-ACK/RST to leave
        for src, fam, proto, ident, sport, n, arrive in sent:
            addr = self.addrs(fam)[src]
            offsets = sorted(e["off"] for e in events
                             if e["k"] == "frag" and e["src"] == addr and e["id"] == ident)
            what = "v%d %s fragments %s -> mail" % (fam, proto, src)
            if not enforced[fam] and not arrive:
                chk.expect(len(offsets) == n, "%s: %d of %d arrived, want all (fragments are not enforced "
                           "here, as documented)" % (what, len(offsets), n))
                if len(offsets) == n:
                    log("  NOTE: v%d tiny-fragment SYN to :25 got through (fragments not enforced)" % fam)
                continue
            if arrive and not enforced[fam] and proto == "tcp":
                # No exemption flows for this family here: the relay's SYN
                # is just another expectation, not a control.
                chk.expect(len(offsets) == n, "%s: %d of %d arrived, want all" % (what, len(offsets), n))
            elif arrive:
                chk.control(len(offsets) == n, "%s: %d of %d arrived, want all" % (what, len(offsets), n))
            elif fam == 4:
                chk.expect(not offsets, "%s: %d of %d arrived (offsets %s), want none"
                           % (what, len(offsets), n, offsets))
            else:
                chk.expect(0 not in offsets, "%s: the first fragment arrived (offsets %s)" % (what, offsets))
            if not arrive and proto == "tcp":
                back = [e for e in events if e["k"] == "out25" and e["dst"] == addr and e["dport"] == sport]
                chk.expect(not back, "%s: mail answered from port 25 %d times (SYN reassembled)"
                           % (what, len(back)))
        for m, b in before.items():
            a = counter(self.br, 30000, m)
            chk.expect(b is not None and a is not None and a > b,
                       "n_packets of %s did not move (%s -> %s)" % (m, b, a))

    def check_trace(self, chk):
        sp = self.lab.ofport
        cases = []  # (description, flow, expect drop, is control)
        for fam in (4, 6):
            a = self.addrs(fam)
            proto = "tcp" if fam == 4 else "tcp6"
            s, d = ("nw_src", "nw_dst") if fam == 4 else ("ipv6_src", "ipv6_dst")

            def flow(src, dst, sport, dport, extra=""):
                return "in_port=%d,dl_src=%s,dl_dst=%s,%s,%s=%s,%s=%s,tp_src=%d,tp_dst=%d%s" % (
                    sp[src], MAC[src], MAC[dst], proto, s, a[src], d, a[dst], sport, dport, extra)

            cases += [
                ("v%d sub2->mail:587" % fam, flow("sub2", "mail", 40000, 587), False, True),
                ("v%d sub2->mail:25" % fam, flow("sub2", "mail", 40000, 25), True, False),
                ("v%d relay->mail:25" % fam, flow("relay", "mail", 40000, 25), False, False),
                ("v%d mail:25->sub2" % fam, flow("mail", "sub2", 25, 40000), True, False),
                ("v%d mail:25->relay" % fam, flow("mail", "relay", 25, 40000), False, False),
                # A tiny first fragment: OVS cannot parse the ports (0).
                ("v%d sub2 first fragment" % fam, flow("sub2", "mail", 0, 0, ",nw_frag=first"), True, False),
            ]
            if fam == 4:  # later IPv6 fragments have nw_proto=44: not "tcp6"
                cases.append(("v4 sub2 later fragment", flow("sub2", "mail", 0, 0, ",nw_frag=later"), True, False))
        for desc, fl, want_drop, is_control in cases:
            # Not enforced on this variant (OpenFlow 1.0): expect forwarding.
            fam = int(desc[1])
            if fam not in self.fams or ("fragment" in desc and not self.frag_enforced):
                want_drop = False
            out = run(["ovs-appctl", "ofproto/trace", self.br, fl], check=False)
            lines = [l for l in out.splitlines() if l.startswith("Datapath actions:")]
            chk.control(len(lines) == 1, "ofproto/trace %s gave no 'Datapath actions': %s" % (fl, out[-300:]))
            actions = lines[0].split(":", 1)[1].strip()
            is_drop = actions == "drop"
            msg = "trace %s: Datapath actions: %s, want %s" % (desc, actions, "drop" if want_drop else "not drop")
            if is_control:
                chk.control(is_drop == want_drop, msg)
            chk.expect(is_drop == want_drop, msg)

    def family_of(self, subnet):
        return 6 if ":" in subnet else 4

    def expected_keys(self):
        """(priority, match, actions) -> cookie, for every flow of ours."""
        want = {k: base_cookie(n) for n, k in zip([b[0] for b in EMULATED_BASE], base_keys())
                if n in self.base_names}
        for ident, subnet in self.active.items():
            if self.family_of(subnet) in self.fams:
                for k in exemption_keys(subnet):
                    want[k] = exemption_cookie(int(ident))
        return want

    def check_flows_exact(self, chk, when):
        flows = dump_flows(self.br)
        ours = sorted((f.key for f in flows if f.ours), key=repr)
        cookies = self.expected_keys()
        want = sorted(cookies, key=repr)
        missing = [k for k in want if k not in ours]
        extra = [k for k in ours if k not in want]
        dups = [k for k in set(ours) if ours.count(k) > 1]
        fmt = lambda ks: "; ".join("priority=%d,%s actions=%s" % (p, ",".join(sorted(m)), a) for p, m, a in ks)
        chk.expect(not missing, "%s: missing flows: %s" % (when, fmt(missing)))
        chk.expect(not extra, "%s: unexpected flows of ours: %s" % (when, fmt(extra)))
        chk.expect(not dups, "%s: duplicated flows: %s" % (when, fmt(dups)))
        bad = ["%s cookie=%s, want %#x" % (f.line.split(" actions=")[0].split(", ")[-1], f.cookie, cookies[f.key])
               for f in flows if f.ours and f.key in cookies and int(f.cookie, 16) != cookies[f.key]]
        chk.expect(not bad, "%s: wrong cookies: %s" % (when, "; ".join(bad)))
        foreign_want = sorted(flow_key(int(fl.split(",")[0].split("=")[1]), fl.split(",", 1)[1], "drop")
                              for _, fl in FOREIGN_FLOWS)
        foreign = [f for f in flows if not f.ours]
        chk.expect(sorted((f.key for f in foreign), key=repr) == sorted(foreign_want, key=repr),
                   "%s: foreign flows changed: have %s" % (when, [f.line for f in foreign]))
        for cookie, _ in FOREIGN_FLOWS:
            chk.expect(any(f.cookie == cookie for f in foreign), "%s: foreign flow cookie=%s gone" % (when, cookie))

    def check_restart(self, chk, real):
        """Blocked stays blocked and exempted stays open across a restart."""
        lab = self.lab
        stop = os.path.join(lab.workdir, "loop.stop")
        t0 = time.time()
        loops = {}
        for role, fam in [(r, f) for f in self.fams for r in ("sub2", "relay")]:
            out = os.path.join(lab.workdir, "loop-%s-%d.jsonl" % (role, fam))
            p = lab.popen(role, ["loop", self.addrs(fam)["mail"], "25", "--out", out,
                                 "--stop-file", stop, "--interval", "0.1", "--timeout", "0.5",
                                 "--max-duration", "40"])
            loops[(role, fam)] = (p, out)
        time.sleep(1.0)
        t_term = time.time()
        rc, took = self.ctl.stop(signal.SIGTERM)
        if real:
            chk.expect(rc == 0, "port25d exited %s after SIGTERM (want 0 within 10s)" % rc)
            chk.expect(took < 5.0, "port25d took %.1fs to exit after SIGTERM" % took)
            self.stop_rc = (rc, took)
        time.sleep(1.0)
        t_restart = time.monotonic()
        self.ctl.start()
        self.ctl.wait_sync(timeout=15.0)
        log("  switch back in sync %.1fs after restart" % (time.monotonic() - t_restart))
        time.sleep(2.0)
        open(stop, "w").close()
        for (role, fam), (p, out) in loops.items():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
            chk.control(os.path.exists(out), "probe loop %s v%d wrote nothing" % (role, fam))
            with open(out) as f:
                recs = [json.loads(l) for l in f if l.strip()]
            outcomes = {}
            for r in recs:
                outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
            if role == "relay":
                # The exempted probe is also this check's positive control.
                chk.control(len(recs) >= 20, "only %d %s v%d probes" % (len(recs), role, fam))
                bad = [r for r in recs if r["outcome"] != "connected"]
                chk.expect(not bad, "exempted relay v%d -> mail:25 failed %d/%d times across the restart "
                           "(first %+.2fs after SIGTERM: %s)" % (fam, len(bad), len(recs),
                                                              bad[0]["t"] - t_term if bad else 0,
                                                              bad[0]["outcome"] if bad else ""))
            else:
                chk.control(len(recs) >= 20, "only %d %s v%d probes" % (len(recs), role, fam))
                bad = [r for r in recs if r["outcome"] != "timeout"]
                chk.expect(not bad, "blocked sub2 v%d -> mail:25 got through %d/%d times across the restart "
                           "(%s)" % (fam, len(bad), len(recs), outcomes))
            log("  loop %s v%d: %d probes %s" % (role, fam, len(recs), outcomes))
        events = lab.wire("mail", t0)
        for fam in self.fams:
            a = self.addrs(fam)
            leaked = [e for e in events if e["k"] == "syn" and e["src"] == a["sub2"] and e["dport"] == 25]
            chk.expect(not leaked, "v%d: %d SYNs from sub2 reached mail:25 across the restart "
                       "(first %+.2fs after SIGTERM)" % (fam, len(leaked), leaked[0]["t"] - t_term if leaked else 0))

    def check_status(self, chk, want):
        """GET /v1/switches says what this switch enforces."""
        st = self.ctl.switch_state()
        chk.expect(st is not None, "our switch is not in GET /v1/switches")
        for k, v in sorted(want.items()):
            chk.expect(st is not None and st.get(k) == v,
                       "/v1/switches %s = %s, want %s" % (k, json.dumps((st or {}).get(k)), json.dumps(v)))

    def check_of10_other_ip_flows(self, chk):
        """The OpenFlow 1.0 errata: 1.0 ignores tp_dst unless dl_type=IPv4
        and nw_proto=6 are set, so a careless port-25 drop matches all IPv4.
        IPv4 ping and TCP to 80 and 587 must flow.  Control: the same over
        IPv6 (untouched by any IPv4 match), so a broken network is INVALID,
        not FAIL."""
        self.works(chk, "sub1", "mail", 6, 80)
        for port in (80, 587):
            self.works(chk, "sub1", "mail", 4, port, control=False)
        ok = self.lab.ping("sub1", V4["mail"]) or self.lab.ping("sub1", V4["mail"])
        chk.expect(ok, "ping sub1 -> mail (v4) failed")

    def check_v6_not_enforced(self, chk):
        """Informational (OpenFlow 1.0): IPv6 port 25 is NOT blocked, as
        documented, and /v1/switches says so (ipv6_enforced false).  The
        traffic must agree with the flag."""
        st = self.ctl.switch_state() or {}
        flag = st.get("ipv6_enforced")
        chk.expect(flag is False, "/v1/switches ipv6_enforced = %s, want false on this switch" % json.dumps(flag))
        self.works(chk, "sub2", "mail", 6, 587)
        if flag is True:
            self.blocked(chk, "sub2", "mail", 6, 25)
            return
        t0 = time.time()
        out = self.lab.tcp("sub2", V6["mail"], 25, None, max(self.timeout, 2.0))
        n = len(self.syns("sub2", "mail", 6, 25, None, t0))
        chk.expect(out == "connected" and n >= 1,
                   "sub2 -> mail:25 (v6) %s with %d SYN(s) at mail, but ipv6_enforced=false says it is "
                   "open" % (out, n))
        if out == "connected":
            log("  NOTE: IPv6 port 25 is NOT blocked on this OpenFlow 1.0 switch "
                "(ipv6_enforced=false; documented limitation)")

    def check_foreign_ca_refused(self, chk, tls):
        """A second bridge, on the same OVS, presenting a certificate from
        another CA (while trusting port25d's): port25d never serves it
        (it never appears in /v1/switches, no flow of ours on it), logs the
        refusal with the peer address, and keeps serving our switch.
        OVS's SSL settings are daemon-wide, so this runs last: it swaps
        the client certificate for every bridge."""
        lab, ctl = self.lab, self.ctl
        mark = ctl.log_size()
        tls["ssl"].set(tls["rogue_key"], tls["rogue_cert"], tls["controller_ca"])
        dpid = 0x2525F00000 + lab.n
        br = lab.add_bare_bridge("x", dpid)
        lab.set_controller(ctl.target(), br)
        seen = None  # any session but our switch's: the rogue got past TLS
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and seen is None:
            seen = next((sw for sw in ctl.switches() if ctl.dpid_of(sw) != ctl.dpid), None)
            time.sleep(0.2)
        ctrl = run(["ovs-vsctl", "--columns=target,is_connected,status", "list", "controller", br]).split("\n")
        log("  rogue bridge %s controller: %s" % (br, " ".join(l.strip() for l in ctrl)))
        refused = [l for l in ctl.log_since(mark) if "TLS connection refused" in l]
        # Control: the rogue bridge did try to reach port25d over TLS, i.e.
        # either it connected (wrong) or port25d turned its handshake down.
        connected = any("is_connected" in l and "true" in l for l in ctrl)
        chk.control(connected or seen is not None or refused,
                    "no sign that %s tried to connect (not connected, no refusal logged)" % br)
        chk.expect(seen is None, "%s (dpid %016x), certificate from another CA, got a session: %s"
                   % (br, dpid, json.dumps(seen)))
        chk.expect(not connected, "OVS reports %s connected to port25d" % br)
        ours = [f.line for f in dump_flows(br) if f.ours]
        chk.expect(not ours, "flows of ours on %s: %s" % (br, ours))
        chk.expect(any("peer=127.0.0.1:" in l for l in refused),
                   "port25d logged no 'TLS connection refused' with the peer address")
        st = ctl.switch_state()
        chk.expect(st is not None and st.get("in_sync") is True,
                   "our switch is no longer in sync meanwhile: %s" % json.dumps(st))

    def check_persisted(self, chk):
        got = self.ctl.exemptions()
        want = sorted(self.active.values())
        chk.expect(got == want, "after restart GET /v1/exemptions = %s, want %s" % (got, want))


def diagnostics(lab, ctl):
    print("---- port25d log tail ----", file=sys.stderr)
    print(ctl.log_tail() if ctl else "(none)", file=sys.stderr, end="")
    if lab and lab.net is not None:
        print("---- ovs-ofctl dump-flows %s ----" % lab.bridge, file=sys.stderr)
        print(run(OFCTL + ["dump-flows", lab.bridge], check=False),
              file=sys.stderr, end="")
        print("---- controller ----", file=sys.stderr)
        print(run(["ovs-vsctl", "--columns=target,is_connected,max_backoff,status", "list", "controller",
                   lab.bridge], check=False), file=sys.stderr, end="")
    print("--------", file=sys.stderr, flush=True)


def setup_tls(workdir, fault, ssl):
    """Certificates (ovs-pki, in the work dir), and OVS's SSL settings taken
    under ssl's lock (the caller restores them whatever happens).  Returns
    the dict the checks and Port25d use."""
    t0 = time.monotonic()
    ours = Pki(os.path.join(workdir, "pki"))
    rogue = Pki(os.path.join(workdir, "pki-rogue"))  # "another CA"
    cert, key = ours.sign("port25d", "controller")
    sw_cert, sw_key = ours.sign("switch", "switch")
    rogue_cert, rogue_key = rogue.sign("rogue", "switch")
    client_ca = ours.switch_ca
    if fault == "trust-rogue":  # port25d trusts both switch CAs
        client_ca = os.path.join(workdir, "both-switch-cas.pem")
        with open(client_ca, "w") as out:
            for f in (ours.switch_ca, rogue.switch_ca):
                out.write(open(f).read())
    if fault == "wrong-ca":  # our switch presents the other CA's certificate
        sw_cert, sw_key = rogue_cert, rogue_key
    log("certificates made with ovs-pki in %.1fs" % (time.monotonic() - t0))
    tls = {"cert": cert, "key": key, "client_ca": client_ca, "controller_ca": ours.controller_ca,
           "rogue_cert": rogue_cert, "rogue_key": rogue_key, "ssl": ssl}
    ssl.acquire()
    ssl.set(sw_key, sw_cert, ours.controller_ca)
    return tls


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port25d", help="path of the port25d binary under test")
    ap.add_argument("--emulate", action="store_true",
                    help="self-test the harness: install the documented flows with ovs-ofctl")
    ap.add_argument("--openflow", choices=("13", "10"), default="13",
                    help="the bridge's OpenFlow version: 13 (default) or 10 (IPv4 policy only)")
    ap.add_argument("--tls", action="store_true",
                    help="port25d serves switches only over TLS; the switch attaches with ssl:")
    ap.add_argument("--tls-fault", choices=("wrong-ca", "trust-rogue"),
                    help="with --tls: our switch gets a certificate from another CA (the run must "
                    "fail), or port25d trusts that CA too (tls_foreign_ca_switch_refused must FAIL)")
    ap.add_argument("--omit", action="append", default=[],
                    choices=[b[0] for b in EMULATED_BASE],
                    help="with --emulate: leave this base flow out (the matching check must FAIL)")
    ap.add_argument("--fault", choices=FAULTS,
                    help="with --emulate: misbehave like a buggy controller (the matching checks must FAIL)")
    ap.add_argument("--timeout", type=float, default=1.0,
                    help="seconds a TCP connect waits before counting as dropped")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs, data dir)")
    args = ap.parse_args()
    if bool(args.port25d) == bool(args.emulate):
        ap.error("give exactly one of --port25d PATH or --emulate")
    if (args.omit or args.fault) and not args.emulate:
        ap.error("--omit and --fault need --emulate")
    if args.fault and args.fault.startswith("of10-") and args.openflow != "10":
        ap.error("--fault %s needs --openflow 10" % args.fault)
    if args.tls and args.emulate:
        ap.error("--tls needs the real port25d (--port25d PATH)")
    if args.tls_fault and not args.tls:
        ap.error("--tls-fault needs --tls")
    if args.port25d and not os.access(args.port25d, os.X_OK):
        ap.error("%s is not an executable" % args.port25d)
    if os.geteuid() != 0:
        ap.error("must run as root (Mininet)")
    of10 = args.openflow == "10"

    # Turn SIGTERM/SIGHUP into KeyboardInterrupt so the finally block cleans up.
    def on_signal(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_signal)

    t_start = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="p25e2e-")
    report = Report()
    lab = ctl = tls = None
    ssl = SharedSsl() if args.tls else None
    aborted = None
    log("variant: OpenFlow %s bridge, controller over %s%s" % (
        "1.0" if of10 else "1.3", "TLS" if args.tls else "TCP",
        " (emulated)" if args.emulate else ""))
    try:
        lab = Lab(pick_n(), workdir, protocols="OpenFlow10" if of10 else "OpenFlow13")
        real = not args.emulate
        if args.tls:
            tls = setup_tls(workdir, args.tls_fault, ssl)
        if real:
            ctl = Port25d(args.port25d, workdir, lab.dpid, tls=tls)
        else:
            ctl = Emulated(lab.bridge, args.omit, args.fault, of10=of10)
        lab.start()
        lab.start_servers()
        if real:
            # The switch is told about the controller before port25d runs
            # (it retries every max_backoff).  Order matters: OVS flushes
            # every flow of a bridge when it goes from no controller to one,
            # so a flow added before set-controller would vanish whatever
            # port25d does.
            lab.set_controller(ctl.target())
        lab.add_foreign(*FOREIGN_FLOWS[0])  # present at port25d's first connect
        suite = Suite(lab, ctl, args)

        def attach(chk):
            if real:
                ctl.start()
            sw = ctl.attached(lab.bridge)
            log("  switch state: %s" % json.dumps(sw))
            if tls:
                target = run(["ovs-vsctl", "get", "controller", lab.bridge, "target"]).strip().strip('"')
                chk.expect(target.startswith("ssl:"), "controller target is %s, want ssl:" % target)
            for role in ("relay",):
                suite.grant(V4[role] + "/32", "ISP relay v4")
                suite.grant(V6[role] + "/128", "ISP relay v6")

        if not report.run("switch_in_sync_and_relay_exempted", attach):
            raise RuntimeError("controller never synced the switch; skipping traffic checks")
        report.run("switch_status_openflow%s" % args.openflow, suite.check_status,
                   {"openflow_version": "1.0" if of10 else "1.3", "in_sync": True,
                    "ipv6_enforced": not of10, "fragments_enforced": not of10})
        lab.add_foreign(*FOREIGN_FLOWS[1])  # after the first sync, before the restart
        report.run("flows_initial", suite.check_flows_exact, "initial")
        if of10:
            # Before the warm-up: a careless 1.0 port match drops all IPv4,
            # ping included, and should be named as such.
            report.run("v4_of10_port_match_keeps_80_587_ping_open", suite.check_of10_other_ip_flows)
        if not report.run("network_warmup_ping", suite.check_warmup):
            raise RuntimeError("hosts cannot ping each other; skipping traffic checks")
        for fam in suite.fams:
            v = "v%d" % fam
            report.run(v + "_dst25_blocked_587_80_open", suite.check_dst25_blocked, fam)
            report.run(v + "_drop_counter_dst25", suite.check_counter, fam)
            report.run(v + "_exemption_grant_opens_only_sub1", suite.check_exempt_grant, fam)
            report.run(v + "_exemption_revoke_blocks_again", suite.check_exempt_revoke, fam)
            report.run(v + "_src25_to_subscriber_blocked", suite.check_src25_blocked, fam)
            report.run(v + "_relay_exempt_both_directions", suite.check_relay, fam)
        if of10:
            report.run("v6_port25_NOT_blocked_on_of10_as_status_says", suite.check_v6_not_enforced)
            report.run("fragmented_syn_NOT_blocked_on_of10_as_status_says", suite.check_frag)
        else:
            report.run("fragmented_syn_blocked", suite.check_frag)
        report.run("ofproto_trace", suite.check_trace)
        report.run("flows_after_grants_revokes", suite.check_flows_exact, "after grants/revokes")
        report.run("controller_restart_no_gap", suite.check_restart, real)
        report.run("flows_after_restart", suite.check_flows_exact, "after restart")
        report.run("exemptions_persisted", suite.check_persisted)
        if tls:
            report.run("tls_foreign_ca_switch_refused", suite.check_foreign_ca_refused, tls)
    except KeyboardInterrupt as e:
        aborted = "interrupted (%s)" % (e or "SIGINT")
    except Exception as e:
        aborted = "%s: %s" % (type(e).__name__, e)
    finally:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)  # finish cleaning up first
        if aborted:
            print("FAIL harness: %s" % aborted, flush=True)
            report.failed += 1
        if report.failed:
            try:
                diagnostics(lab, ctl)
            except Exception as e:
                log("diagnostics failed: %s" % e)
        if ctl is not None:
            try:
                ctl.stop(signal.SIGTERM, timeout=5)
            except Exception as e:
                log("stopping port25d: %s" % e)
        if lab is not None:
            try:
                lab.stop()
            except Exception as e:
                log("stopping mininet: %s" % e)
        if ssl is not None:
            try:
                ssl.restore()
            except Exception as e:
                print("FAIL harness: restoring OVS's SSL settings: %s" % e, flush=True)
                report.failed += 1
        if args.keep or report.failed:
            log("work dir kept: %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    log("total %.1fs" % (time.monotonic() - t_start))
    print("%d passed, %d failed" % (report.passed, report.failed), flush=True)
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
