#!/usr/bin/python3
"""End-to-end test of port25d against a real Open vSwitch, with Mininet hosts.

Run as root with Debian's python (the one that has mininet):

    /usr/bin/python3 mininet/test_e2e.py --port25d target/debug/port25d
    /usr/bin/python3 mininet/test_e2e.py --emulate            # harness self-test
    /usr/bin/python3 mininet/test_e2e.py --emulate --omit frag  # must FAIL

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

--emulate replaces port25d by installing the documented flows with ovs-ofctl
and keeping exemptions in memory; --omit NAME leaves one base flow out, to
prove that the matching check fails (see EMULATED_BASE for names), and
--fault NAME injects a controller bug (see FAULTS) for the same purpose.

Only the bridge, interfaces and namespaces this run creates are touched; names
carry N (from the pid) so that several runs can share one OVS.  Output is one
line per check and a last line "N passed, M failed"; exit 0 only if all
passed.
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
PROBE = os.path.join(HERE, "p25probe.py")
PY = "/usr/bin/python3"  # Debian's: the pyenv python3 on PATH has no mininet

ROLES = ("sub1", "sub2", "relay", "mail")
V4 = {"sub1": "198.51.100.11", "sub2": "198.51.100.12", "relay": "198.51.100.3", "mail": "198.51.100.25"}
V6 = {"sub1": "2001:db8::11", "sub2": "2001:db8::12", "relay": "2001:db8::3", "mail": "2001:db8::25"}
MAC = {"sub1": "02:25:00:00:00:11", "sub2": "02:25:00:00:00:12",
       "relay": "02:25:00:00:00:03", "mail": "02:25:00:00:00:25"}
SUB_PORT = 2525  # subscribers and relay listen here (targets of "from port 25")
MAIL_PORTS = (25, 587, 80)
COOKIE_PREFIX = "0x2525"
FOREIGN_FLOWS = (
    # (cookie, flow) added with ovs-ofctl; port25d must never touch them.
    ("0x1234", "priority=100,udp,tp_dst=9999"),
    ("0x1235", "priority=100,udp,tp_dst=9998"),
)

# Base flows as (name, priority, match, action); the flows port25d installs.
EMULATED_BASE = (
    ("dst25", 30000, "tcp,tp_dst=25", "drop"),
    ("src25", 30000, "tcp,tp_src=25", "drop"),
    ("frag", 30000, "tcp,nw_frag=yes", "drop"),
    ("dst25_6", 30000, "tcp6,tp_dst=25", "drop"),
    ("src25_6", 30000, "tcp6,tp_src=25", "drop"),
    ("frag6", 30000, "tcp6,nw_frag=yes", "drop"),
    ("normal", 0, "", "NORMAL"),
)
EXEMPT_PRIORITY = 40000
# --emulate --fault: controller bugs the harness must catch.
FAULTS = ("no-grant", "no-revoke", "restart-wipe", "restart-open")


def log(msg):
    print("# " + msg, file=sys.stderr, flush=True)


def run(cmd, check=True, timeout=20):
    """Run a root-namespace command; returns stdout."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(cmd), p.returncode, p.stderr.strip()))
    return p.stdout


# --------------------------------------------------------------- reporting


class ControlFailed(Exception):
    """A positive control failed: the check's negative result means nothing."""


class Check:
    """What one check found: failed expectations, or a failed control."""

    def __init__(self):
        self.failures = []

    def control(self, ok, what):
        if not ok:
            raise ControlFailed(what)

    def expect(self, ok, what):
        if not ok:
            self.failures.append(what)
        return ok


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def run(self, name, fn, *args):
        """Run one check and print its line; returns True if it passed."""
        chk = Check()
        t0 = time.monotonic()
        try:
            fn(chk, *args)
        except ControlFailed as e:
            extra = ("; also: " + "; ".join(chk.failures)) if chk.failures else ""
            return self._line(False, "INVALID %s: control failed: %s%s" % (name, e, extra), t0)
        except Exception as e:  # a harness or API error fails this check only
            chk.failures.append("%s: %s" % (type(e).__name__, e))
        if chk.failures:
            return self._line(False, "FAIL %s: %s" % (name, "; ".join(chk.failures)), t0)
        return self._line(True, "PASS %s" % name, t0)

    def _line(self, ok, text, t0):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print(text, flush=True)
        log("  (%s took %.1fs)" % (text.split(":")[0], time.monotonic() - t0))
        return ok


# --------------------------------------------------------------- flows


class Flow:
    def __init__(self, line):
        self.line = line.strip()
        head, _, self.actions = self.line.partition(" actions=")
        fields = [f.strip() for f in head.split(", ")]
        self.cookie = "0x0"
        self.n_packets = 0
        self.priority = 32768
        match = []
        for f in fields:
            key, eq, val = f.partition("=")
            if key == "cookie":
                self.cookie = val
            elif key == "n_packets":
                self.n_packets = int(val)
            elif key in ("duration", "table", "n_bytes", "idle_age", "hard_age",
                         "idle_timeout", "hard_timeout", "importance"):
                continue
            else:
                # The last field is "priority=P,match,..." (or bare flags).
                for tok in f.split(","):
                    k, _, v = tok.partition("=")
                    if k == "priority":
                        self.priority = int(v)
                    elif tok in ("send_flow_rem", "check_overlap", "reset_counts",
                                 "no_packet_counts", "no_byte_counts"):
                        continue
                    elif tok:
                        match.append(tok)
        self.match = frozenset(match)
        if self.actions in ("", "drop"):
            self.actions = "drop"

    @property
    def ours(self):
        return self.cookie.lower().startswith(COOKIE_PREFIX)

    @property
    def key(self):
        return (self.priority, self.match, self.actions)


def flow_key(priority, match, actions):
    return (priority, frozenset(t for t in match.split(",") if t), actions)


def dump_flows(bridge):
    out = run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", bridge])
    return [Flow(l) for l in out.splitlines() if "actions=" in l]


def exemption_keys(subnet):
    """The two flows port25d installs for one exemption."""
    addr = subnet.split("/")[0]
    if ":" in addr:
        return [flow_key(EXEMPT_PRIORITY, "tcp6,ipv6_src=" + addr, "NORMAL"),
                flow_key(EXEMPT_PRIORITY, "tcp6,ipv6_dst=" + addr, "NORMAL")]
    return [flow_key(EXEMPT_PRIORITY, "tcp,nw_src=" + addr, "NORMAL"),
            flow_key(EXEMPT_PRIORITY, "tcp,nw_dst=" + addr, "NORMAL")]


def base_keys():
    return [flow_key(p, m, a) for _, p, m, a in EMULATED_BASE]


def counter(bridge, priority, match):
    """n_packets of our flow (priority, match), or None if it is absent."""
    want = flow_key(priority, match, "drop")[:2]
    for f in dump_flows(bridge):
        if f.ours and (f.priority, f.match) == want:
            return f.n_packets
    return None


# --------------------------------------------------------------- controllers


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Port25d:
    """The real daemon, driven over its CLI and REST API."""

    def __init__(self, path, workdir, dpid):
        self.path = os.path.abspath(path)
        self.data_dir = os.path.join(workdir, "data")
        self.log_path = os.path.join(workdir, "port25d.log")
        self.dpid = int(dpid, 16)
        self.of_port = free_port()
        self.api_port = free_port()
        self.proc = None

    def target(self):
        return "tcp:127.0.0.1:%d" % self.of_port

    def start(self, timeout=15.0):
        os.makedirs(self.data_dir, exist_ok=True)
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("NO_COLOR", "1")  # the log is a file, read by people
        logf = open(self.log_path, "a")
        logf.write("==== start %s ====\n" % time.strftime("%H:%M:%S"))
        logf.flush()
        self.proc = subprocess.Popen(
            [self.path, "--openflow-listen", "127.0.0.1:%d" % self.of_port,
             "--api-listen", "127.0.0.1:%d" % self.api_port, "--data-dir", self.data_dir],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, env=env)
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("port25d exited with %s at start" % self.proc.returncode)
            try:
                if self.api("GET", "/healthz").get("status") == "ok":
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise RuntimeError("port25d /healthz not ok within %.0fs" % timeout)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Signal the daemon; returns (exit code or None if killed, seconds)."""
        if self.proc is None or self.proc.poll() is not None:
            return (self.proc.returncode if self.proc else None), 0.0
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            rc = None
        return rc, time.monotonic() - t0

    def api(self, method, path, body=None, timeout=5.0):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.api_port, path),
                                     data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            self.last_status = resp.status
        return json.loads(raw) if raw else None

    def switch_state(self):
        for sw in self.api("GET", "/v1/switches").get("switches", []):
            if int(str(sw.get("dpid", "")).replace(":", "").replace("0x", ""), 16) == self.dpid:
                return sw
        return None

    def wait_sync(self, timeout=10.0):
        """Wait until our switch is in_sync at (at least) the current policy."""
        want = self.api("GET", "/healthz")["policy_version"]
        deadline = time.monotonic() + timeout
        sw = None
        while time.monotonic() < deadline:
            try:
                sw = self.switch_state()
            except (OSError, ValueError):
                sw = None
            if sw and sw.get("in_sync") is True and sw.get("policy_version", -1) >= want:
                return sw
            time.sleep(0.05)
        raise RuntimeError("switch not in_sync at policy_version>=%s within %.0fs (last: %s)"
                           % (want, timeout, json.dumps(sw)))

    def grant(self, subnet, note):
        resp = self.api("POST", "/v1/exemptions", {"subscriber": subnet, "note": note})
        if self.last_status != 201:
            raise RuntimeError("POST /v1/exemptions -> %s" % self.last_status)
        if resp.get("subscriber") != subnet:
            raise RuntimeError("POST echoed subscriber %r, sent %r" % (resp.get("subscriber"), subnet))
        self.wait_sync()
        return resp["id"]

    def revoke(self, ident):
        self.api("DELETE", "/v1/exemptions/%s" % ident)
        if self.last_status != 204:
            raise RuntimeError("DELETE /v1/exemptions/%s -> %s" % (ident, self.last_status))
        self.wait_sync()

    def exemptions(self):
        resp = self.api("GET", "/v1/exemptions")
        items = resp.get("exemptions", resp) if isinstance(resp, dict) else resp
        return sorted(e["subscriber"] for e in items)

    def attached(self, bridge):
        """After set-controller: wait for the first sync."""
        return self.wait_sync(timeout=15.0)

    def log_tail(self, n=60):
        try:
            with open(self.log_path, errors="replace") as f:
                return re.sub(r"\x1b\[[0-9;]*m", "", "".join(f.readlines()[-n:]))
        except OSError:
            return "(no log)"


class Emulated:
    """Stand-in for port25d: the documented flows, installed with ovs-ofctl.

    For self-testing the harness only (before the daemon exists, and to show
    that each check fails when the flow it is about is missing)."""

    COOKIE = "0x2525000000000001"

    def __init__(self, bridge, omit=(), fault=None):
        self.bridge = bridge
        self.omit = set(omit)
        self.fault = fault
        self.next_id = 1
        self.active = {}
        self.up = False
        self.bridge_ready = False
        self.log = []

    def target(self):
        return None

    def _ofctl(self, *args):
        self.log.append("ovs-ofctl " + " ".join(args))
        run(["ovs-ofctl", "-O", "OpenFlow13"] + list(args))

    def _add(self, priority, match, action):
        spec = "cookie=%s,priority=%d,%s%sactions=%s" % (
            self.COOKIE, priority, match, "," if match else "", action)
        self._ofctl("add-flow", self.bridge, spec)

    def _install(self):
        for name, p, m, a in EMULATED_BASE:
            if name not in self.omit:
                self._add(p, m, a)
        for subnet in self.active.values():
            for p, m, a in exemption_keys(subnet):
                self._add(p, ",".join(sorted(m, key=lambda t: "=" in t)), a)

    def start(self):
        """A restart re-adds whatever is missing (add-flow is idempotent),
        unless a --fault says to misbehave the way a buggy controller would."""
        self.up = True
        if not self.bridge_ready:
            return
        if self.fault == "restart-wipe":  # delete-all-then-add, foreign flows too
            self._ofctl("del-flows", self.bridge)
            time.sleep(1.0)
        elif self.fault == "restart-open":  # forwarding first, drops 1 s later
            self._ofctl("del-flows", self.bridge, "cookie=%s/-1" % self.COOKIE)
            self._add(0, "", "NORMAL")
            time.sleep(1.0)
        self._install()

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        self.up = False
        return 0, 0.0

    def attached(self, bridge):
        self.bridge_ready = True
        self._install()
        return {"in_sync": True}

    def wait_sync(self, timeout=10.0):
        return {"in_sync": True}

    def grant(self, subnet, note):
        ident = self.next_id
        self.next_id += 1
        self.active[ident] = subnet
        if self.fault != "no-grant":
            self._install()
        return ident

    def revoke(self, ident):
        subnet = self.active.pop(ident)
        if self.fault == "no-revoke":
            return
        for p, m, a in exemption_keys(subnet):
            spec = "priority=%d,%s" % (p, ",".join(sorted(m, key=lambda t: "=" in t)))
            self._ofctl("--strict", "del-flows", self.bridge, spec)

    def exemptions(self):
        return sorted(self.active.values())

    def switch_state(self):
        return {"in_sync": True}

    def log_tail(self, n=60):
        return "\n".join(self.log[-n:]) + "\n"


# --------------------------------------------------------------- lab


def pick_n():
    n = os.getpid() % 100000
    for _ in range(100000):
        names = ["p25s%d" % n] + ["p%d%s" % (n, r[0] + r[-1]) for r in ROLES]
        busy = subprocess.run(["ovs-vsctl", "br-exists", names[0]]).returncode == 0
        busy = busy or any(os.path.exists("/sys/class/net/%s-eth0" % h) for h in names[1:])
        busy = busy or os.path.exists("/sys/class/net/%s" % names[0])
        if not busy:
            return n
        n = (n + 1) % 100000
    raise RuntimeError("no free run number")


class Lab:
    """The Mininet network: one secure OVS bridge and four hosts."""

    def __init__(self, n, workdir):
        self.n = n
        self.workdir = workdir
        self.bridge = "p25s%d" % n  # "p25s99999-eth1" is 14 chars (limit 15)
        self.dpid = "%016x" % (0x2525000000 + n)
        self.net = None
        self.h = {}
        self.procs = []
        self.ofport = {}

    def name(self, role):
        return "p%d%s" % (self.n, role[0] + role[-1])  # e.g. p1234s1, p1234ml

    def start(self):
        from mininet.log import setLogLevel
        from mininet.net import Mininet
        from mininet.node import OVSSwitch

        setLogLevel("warning")
        self.net = Mininet(topo=None, build=False, controller=None, autoSetMacs=False,
                           waitConnected=False)
        sw = self.net.addSwitch(self.bridge, cls=OVSSwitch, datapath="user", failMode="secure",
                                protocols="OpenFlow13", dpid=self.dpid)
        for role in ROLES:
            h = self.net.addHost(self.name(role), ip=V4[role] + "/24", mac=MAC[role])
            self.net.addLink(h, sw)
            self.h[role] = h
        self.net.build()
        self.net.start()
        self.sw = sw
        for role, h in self.h.items():
            intf = h.defaultIntf().name
            h.cmd("sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0")
            h.cmd("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 "
                  "net.ipv6.conf.%s.accept_dad=0" % intf)
            h.cmd("ip -6 addr add %s/64 dev %s nodad" % (V6[role], intf))
            # The userspace datapath never fills in offloaded checksums: TCP
            # would silently fail and look exactly like a port-25 drop.
            out = h.cmd("ethtool -K %s tx off 2>&1; echo rc=$?" % intf)
            if "rc=0" not in out:
                raise RuntimeError("ethtool -K %s tx off failed: %s" % (intf, out.strip()))
            swintf = h.defaultIntf().link.intf2.name
            self.ofport[role] = int(run(["ovs-vsctl", "get", "Interface", swintf, "ofport"]).strip())
        # Tag the bridge so a person can tell whose it is if a run is killed -9.
        run(["ovs-vsctl", "set", "Bridge", self.bridge, "external-ids:p25e2e-pid=%d" % os.getpid()])
        # Check the bridge really is what the test claims to run on.
        got = run(["ovs-vsctl", "get", "Bridge", self.bridge, "datapath_type", "fail_mode", "protocols"])
        log("bridge %s dpid %s: %s" % (self.bridge, self.dpid, " ".join(got.split())))

    def add_foreign(self, cookie, flow):
        run(["ovs-ofctl", "-O", "OpenFlow13", "add-flow", self.bridge,
             "cookie=%s,%s,actions=drop" % (cookie, flow)])

    def set_controller(self, target):
        run(["ovs-vsctl", "set-controller", self.bridge, target,
             "--", "set", "controller", self.bridge, "max_backoff=1000"])

    def popen(self, role, args, out=None):
        f = open(out, "w") if out else subprocess.DEVNULL
        p = self.h[role].popen([PY, PROBE] + list(args), stdin=subprocess.DEVNULL,
                               stdout=f, stderr=subprocess.STDOUT)
        if out:
            f.close()
        self.procs.append(p)
        return p

    def wait_file(self, path, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(path):
                return True
            time.sleep(0.02)
        return False

    def start_servers(self):
        """TCP listeners, plus a wire log on every host (see p25probe wirelog)."""
        ready = []
        for role in ROLES:
            ports = ",".join(str(p) for p in MAIL_PORTS) if role == "mail" else str(SUB_PORT)
            r = os.path.join(self.workdir, "ready-serve-%s" % role)
            self.popen(role, ["serve", ports, "--ready", r, "--max-duration", "300"],
                       out=os.path.join(self.workdir, "serve-%s.log" % role))
            ready.append(r)
            r = os.path.join(self.workdir, "ready-wire-%s" % role)
            self.popen(role, ["wirelog", "--iface", self.h[role].defaultIntf().name,
                              "--out", self.wire_path(role), "--ready", r, "--max-duration", "300"],
                       out=os.path.join(self.workdir, "wirelog-%s.err" % role))
            ready.append(r)
        for r in ready:
            if not self.wait_file(r):
                raise RuntimeError("%s did not start" % os.path.basename(r))

    def wire_path(self, role):
        return os.path.join(self.workdir, "wire-%s.jsonl" % role)

    def wire(self, role, since, settle=0.2):
        """Events the host's wire log recorded at or after `since` (time.time())."""
        time.sleep(settle)  # let the logger write what it has seen
        events = []
        with open(self.wire_path(role)) as f:
            for line in f:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue  # a line still being written
                if ev["t"] >= since:
                    events.append(ev)
        return events

    def tcp(self, role, dst, port, sport=None, timeout=1.0):
        cmd = "%s %s connect %s %d --timeout %s" % (PY, PROBE, dst, port, timeout)
        if sport is not None:
            cmd += " --sport %d" % sport
        out = self.h[role].cmd(cmd).strip().splitlines()
        return out[-1].strip() if out else "no-output"

    def ping(self, role, dst):
        ping = "ping -6" if ":" in dst else "ping"
        out = self.h[role].cmd("%s -c1 -W1 %s >/dev/null 2>&1; echo rc=$?" % (ping, dst))
        return "rc=0" in out

    def stop(self):
        """Remove everything this run created, even after an interrupt."""
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if self.net is None:
            return
        nodes = list(self.net.hosts) + list(self.net.switches)
        for node in nodes:
            # A cmd() cut short by a signal leaves the node "waiting", and
            # Mininet then refuses (AssertionError) every later command,
            # including the ones net.stop() needs.
            if getattr(node, "waiting", False):
                try:
                    node.sendInt()
                    time.sleep(0.1)
                except Exception:
                    pass
                node.waiting = False
        try:
            self.net.stop()  # deletes only our bridge (del-br) and our links
        except Exception as e:
            log("mininet stop failed (%s: %s); removing our bridge and hosts directly"
                % (type(e).__name__, e))
        finally:
            run(["ovs-vsctl", "--if-exists", "del-br", self.bridge], check=False)
            for node in nodes:
                try:
                    node.terminate()  # the host's shell: its namespace goes with it
                except Exception:
                    pass
            for name in [self.bridge] + ["%s-eth%d" % (self.bridge, i) for i in range(1, len(ROLES) + 1)]:
                if os.path.exists("/sys/class/net/%s" % name):
                    run(["ip", "link", "del", name], check=False)


# --------------------------------------------------------------- checks


class Suite:
    def __init__(self, lab, ctl, args):
        self.lab = lab
        self.ctl = ctl
        self.timeout = args.timeout
        self.br = lab.bridge
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
        same tiny-fragment SYN from the exempted relay, arrive whole."""
        lab = self.lab
        t0 = time.time()
        before = {m: counter(self.br, 30000, m) for m in ("tcp,nw_frag=yes", "tcp6,nw_frag=yes")}
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
            if arrive:
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
            out = run(["ovs-appctl", "ofproto/trace", self.br, fl], check=False)
            lines = [l for l in out.splitlines() if l.startswith("Datapath actions:")]
            chk.control(len(lines) == 1, "ofproto/trace %s gave no 'Datapath actions': %s" % (fl, out[-300:]))
            actions = lines[0].split(":", 1)[1].strip()
            is_drop = actions == "drop"
            msg = "trace %s: Datapath actions: %s, want %s" % (desc, actions, "drop" if want_drop else "not drop")
            if is_control:
                chk.control(is_drop == want_drop, msg)
            chk.expect(is_drop == want_drop, msg)

    def expected_keys(self):
        keys = base_keys()
        for subnet in self.active.values():
            keys += exemption_keys(subnet)
        return sorted(keys, key=repr)

    def check_flows_exact(self, chk, when):
        flows = dump_flows(self.br)
        ours = sorted((f.key for f in flows if f.ours), key=repr)
        want = self.expected_keys()
        missing = [k for k in want if k not in ours]
        extra = [k for k in ours if k not in want]
        dups = [k for k in set(ours) if ours.count(k) > 1]
        fmt = lambda ks: "; ".join("priority=%d,%s actions=%s" % (p, ",".join(sorted(m)), a) for p, m, a in ks)
        chk.expect(not missing, "%s: missing flows: %s" % (when, fmt(missing)))
        chk.expect(not extra, "%s: unexpected flows of ours: %s" % (when, fmt(extra)))
        chk.expect(not dups, "%s: duplicated flows: %s" % (when, fmt(dups)))
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
        for role, fam in (("sub2", 4), ("relay", 4), ("sub2", 6), ("relay", 6)):
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
        for fam in (4, 6):
            a = self.addrs(fam)
            leaked = [e for e in events if e["k"] == "syn" and e["src"] == a["sub2"] and e["dport"] == 25]
            chk.expect(not leaked, "v%d: %d SYNs from sub2 reached mail:25 across the restart "
                       "(first %+.2fs after SIGTERM)" % (fam, len(leaked), leaked[0]["t"] - t_term if leaked else 0))

    def check_persisted(self, chk):
        got = self.ctl.exemptions()
        want = sorted(self.active.values())
        chk.expect(got == want, "after restart GET /v1/exemptions = %s, want %s" % (got, want))


def diagnostics(lab, ctl):
    print("---- port25d log tail ----", file=sys.stderr)
    print(ctl.log_tail() if ctl else "(none)", file=sys.stderr, end="")
    if lab and lab.net is not None:
        print("---- ovs-ofctl dump-flows %s ----" % lab.bridge, file=sys.stderr)
        print(run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", lab.bridge], check=False),
              file=sys.stderr, end="")
        print("---- controller ----", file=sys.stderr)
        print(run(["ovs-vsctl", "--columns=target,is_connected,max_backoff,status", "list", "controller",
                   lab.bridge], check=False), file=sys.stderr, end="")
    print("--------", file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port25d", help="path of the port25d binary under test")
    ap.add_argument("--emulate", action="store_true",
                    help="self-test the harness: install the documented flows with ovs-ofctl")
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
    if args.port25d and not os.access(args.port25d, os.X_OK):
        ap.error("%s is not an executable" % args.port25d)
    if os.geteuid() != 0:
        ap.error("must run as root (Mininet)")

    # Turn SIGTERM/SIGHUP into KeyboardInterrupt so the finally block cleans up.
    def on_signal(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_signal)

    t_start = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="p25e2e-")
    report = Report()
    lab = ctl = None
    aborted = None
    try:
        lab = Lab(pick_n(), workdir)
        real = not args.emulate
        ctl = Port25d(args.port25d, workdir, lab.dpid) if real else Emulated(lab.bridge, args.omit, args.fault)
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
            for role in ("relay",):
                suite.grant(V4[role] + "/32", "ISP relay v4")
                suite.grant(V6[role] + "/128", "ISP relay v6")

        if not report.run("switch_in_sync_and_relay_exempted", attach):
            raise RuntimeError("controller never synced the switch; skipping traffic checks")
        lab.add_foreign(*FOREIGN_FLOWS[1])  # after the first sync, before the restart
        report.run("flows_initial", suite.check_flows_exact, "initial")
        if not report.run("network_warmup_ping", suite.check_warmup):
            raise RuntimeError("hosts cannot ping each other; skipping traffic checks")
        for fam in (4, 6):
            v = "v%d" % fam
            report.run(v + "_dst25_blocked_587_80_open", suite.check_dst25_blocked, fam)
            report.run(v + "_drop_counter_dst25", suite.check_counter, fam)
            report.run(v + "_exemption_grant_opens_only_sub1", suite.check_exempt_grant, fam)
            report.run(v + "_exemption_revoke_blocks_again", suite.check_exempt_revoke, fam)
            report.run(v + "_src25_to_subscriber_blocked", suite.check_src25_blocked, fam)
            report.run(v + "_relay_exempt_both_directions", suite.check_relay, fam)
        report.run("fragmented_syn_blocked", suite.check_frag)
        report.run("ofproto_trace", suite.check_trace)
        report.run("flows_after_grants_revokes", suite.check_flows_exact, "after grants/revokes")
        report.run("controller_restart_no_gap", suite.check_restart, real)
        report.run("flows_after_restart", suite.check_flows_exact, "after restart")
        report.run("exemptions_persisted", suite.check_persisted)
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
        if args.keep or report.failed:
            log("work dir kept: %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    log("total %.1fs" % (time.monotonic() - t_start))
    print("%d passed, %d failed" % (report.passed, report.failed), flush=True)
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
