#!/usr/bin/python3
"""Support for test_e2e.py: the Mininet lab, the controller under test (real
port25d or an ovs-ofctl emulation), flow-table reading and check reporting.

# Layout
- reporting: `Check` (expect / control) and `Report` (one line per check).
- flows: `Flow` parses `ovs-ofctl dump-flows`; keys compare flows as
  (priority, match set, actions), so field order and masks do not matter.
- controllers: `Port25d` (CLI + REST API) and `Emulated` (same interface,
  flows written with ovs-ofctl; --omit/--fault make it wrong on purpose).
- lab: `Lab` builds one secure userspace-datapath OVS bridge (OpenFlow 1.3
  or 1.0) and four hosts, runs the p25probe.py servers and wire logs in
  them, and removes exactly what it created.
- TLS: `Pki` (certificates made with ovs-pki in the run's work dir) and
  `SharedSsl` (OVS's daemon-wide SSL record: taken under a lock, restored).
- `of10_flow_mod`: a hand-built OpenFlow 1.0 flow-mod, for showing what a
  careless 1.0 port match does (ovs-ofctl refuses to express it).

Runs under Debian's /usr/bin/python3 (mininet is imported lazily, in
Lab.start, so the pure parts can be imported anywhere).
"""

import fcntl
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
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
# ovs-ofctl negotiates the highest of these the bridge allows, so the same
# commands work on an OpenFlow 1.3 bridge and on a 1.0-only one.
OFCTL = ["ovs-ofctl", "-O", "OpenFlow10,OpenFlow13"]
FOREIGN_FLOWS = (
    # (cookie, flow) added with ovs-ofctl; port25d must never touch them.
    ("0x1234", "priority=100,udp,tp_dst=9999"),
    ("0x1235", "priority=100,udp,tp_dst=9998"),
)

# Base flows as (name, priority, match, action); the flows port25d installs.
# The position is the rule number in the flow's cookie (README "Flow layout":
# 0x2525 | kind 1 | rule number), e.g. dst25 is 0x2525010000000001.
EMULATED_BASE = (
    ("dst25", 30000, "tcp,tp_dst=25", "drop"),
    ("src25", 30000, "tcp,tp_src=25", "drop"),
    ("frag", 30000, "tcp,nw_frag=yes", "drop"),
    ("dst25_6", 30000, "tcp6,tp_dst=25", "drop"),
    ("src25_6", 30000, "tcp6,tp_src=25", "drop"),
    ("frag6", 30000, "tcp6,nw_frag=yes", "drop"),
    ("normal", 0, "", "NORMAL"),
    # Frames the switch cannot read into: more VLAN tags than it parses,
    # an IPv6 header chain it cannot parse.
    ("vlan8100", 30000, "dl_type=0x8100", "drop"),
    ("vlan88a8", 30000, "dl_type=0x88a8", "drop"),
    ("v6unparsed", 30000, "ipv6,nw_proto=0", "drop"),
    ("v6fragnonext", 30000, "ipv6,nw_proto=59,nw_frag=first", "drop"),
)
# What an OpenFlow 1.0 switch gets: the IPv4 policy only (no IPv6, no
# nw_frag matches in OpenFlow 1.0), and the stacked-VLAN drops.
OF10_BASE = ("dst25", "src25", "normal", "vlan8100", "vlan88a8")
EXEMPT_PRIORITY = 40000
# --emulate --fault: controller bugs the harness must catch.  The of10-*
# ones need --openflow 10: "of10-careless" installs the tp_dst=25 drop as a
# raw OpenFlow 1.0 flow-mod without nw_proto (the errata trap: the switch
# then ignores the port and drops all IPv4); "of10-extras" also installs
# IPv6 and fragment drops (through Nicira extensions) while reporting them
# as not enforced, so the status flags no longer tell the truth.
FAULTS = ("no-grant", "no-revoke", "restart-wipe", "restart-open", "of10-careless", "of10-extras")


def log(msg):
    print("# " + msg, file=sys.stderr, flush=True)


def run(cmd, check=True, timeout=20, cwd=None):
    """Run a root-namespace command; returns stdout."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout, cwd=cwd)
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
                # The last field is "priority=P,match,...", after any
                # flags ("send_flow_rem priority=...": space-separated).
                for tok in f.replace(" ", ",").split(","):
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
    out = run(OFCTL + ["dump-flows", bridge])
    return [Flow(l) for l in out.splitlines() if "actions=" in l]


def exemption_keys(subnet):
    """The two flows port25d installs for one exemption."""
    addr = subnet.split("/")[0]
    if ":" in addr:
        return [flow_key(EXEMPT_PRIORITY, "tcp6,ipv6_src=" + addr, "NORMAL"),
                flow_key(EXEMPT_PRIORITY, "tcp6,ipv6_dst=" + addr, "NORMAL")]
    return [flow_key(EXEMPT_PRIORITY, "tcp,nw_src=" + addr, "NORMAL"),
            flow_key(EXEMPT_PRIORITY, "tcp,nw_dst=" + addr, "NORMAL")]


def base_keys(names=None):
    return [flow_key(p, m, a) for n, p, m, a in EMULATED_BASE if names is None or n in names]


def base_cookie(name):
    """The cookie of a base flow: kind 1, value = its rule number."""
    rule = [b[0] for b in EMULATED_BASE].index(name) + 1
    return 0x2525010000000000 | rule


def exemption_cookie(ident):
    return 0x2525020000000000 | ident


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
    """The real daemon, driven over its CLI and REST API.

    With `tls` (a dict of cert, key, client_ca paths) it serves switches
    only over TLS (`--openflow-listen none`), and target() is `ssl:`."""

    def __init__(self, path, workdir, dpid, tls=None):
        self.path = os.path.abspath(path)
        self.data_dir = os.path.join(workdir, "data")
        self.log_path = os.path.join(workdir, "port25d.log")
        self.dpid = int(dpid, 16)
        self.tls = tls
        self.of_port = free_port()
        self.api_port = free_port()
        self.proc = None

    def target(self):
        return "%s:127.0.0.1:%d" % ("ssl" if self.tls else "tcp", self.of_port)

    def openflow_args(self):
        listen = "127.0.0.1:%d" % self.of_port
        if not self.tls:
            return ["--openflow-listen", listen]
        return ["--openflow-listen", "none", "--openflow-tls-listen", listen,
                "--tls-cert", self.tls["cert"], "--tls-key", self.tls["key"],
                "--tls-client-ca", self.tls["client_ca"]]

    def start(self, timeout=15.0):
        os.makedirs(self.data_dir, exist_ok=True)
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("NO_COLOR", "1")  # the log is a file, read by people
        logf = open(self.log_path, "a")
        logf.write("==== start %s ====\n" % time.strftime("%H:%M:%S"))
        logf.flush()
        self.proc = subprocess.Popen(
            [self.path] + self.openflow_args() +
            ["--api-listen", "127.0.0.1:%d" % self.api_port, "--data-dir", self.data_dir],
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

    def switches(self):
        """GET /v1/switches: every entry, including sessions that have not
        said their datapath id yet (dpid null)."""
        return self.api("GET", "/v1/switches").get("switches", [])

    @staticmethod
    def dpid_of(sw):
        try:
            return int(str(sw.get("dpid")).replace(":", "").replace("0x", ""), 16)
        except ValueError:
            return None

    def switch_state(self):
        for sw in self.switches():
            if self.dpid_of(sw) == self.dpid:
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
        """The last n lines, without the harness's own successful polls."""
        try:
            with open(self.log_path, errors="replace") as f:
                lines = [l for l in f if "port25_api: answered status=200" not in l]
                return re.sub(r"\x1b\[[0-9;]*m", "", "".join(lines[-n:]))
        except OSError:
            return "(no log)"

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_since(self, offset):
        """The log's lines written after `offset` (a log_size() value)."""
        with open(self.log_path, errors="replace") as f:
            f.seek(offset)
            return re.sub(r"\x1b\[[0-9;]*m", "", f.read()).splitlines()


class Emulated:
    """Stand-in for port25d: the documented flows, installed with ovs-ofctl.

    For self-testing the harness only (before the daemon exists, and to show
    that each check fails when the flow it is about is missing).  With
    of10, it does what port25d documents for an OpenFlow 1.0 switch: the
    IPv4 flows only, and a status saying IPv6 and fragments are not
    enforced."""

    COOKIE_MASK = "0x2525000000000000/0xffff000000000000"

    def __init__(self, bridge, omit=(), fault=None, of10=False):
        self.bridge = bridge
        self.omit = set(omit)
        self.fault = fault
        self.of10 = of10
        self.next_id = 1
        self.active = {}
        self.up = False
        self.bridge_ready = False
        self.log = []
        self.status = {"in_sync": True, "openflow_version": "1.0" if of10 else "1.3",
                       "ipv6_enforced": not of10, "fragments_enforced": not of10}

    def target(self):
        return None

    def _ofctl(self, *args):
        self.log.append("ovs-ofctl " + " ".join(args))
        run(OFCTL + list(args))

    def _add(self, cookie, priority, match, action):
        spec = "cookie=%#x,priority=%d,%s%sactions=%s" % (
            cookie, priority, match, "," if match else "", action)
        self._ofctl("add-flow", self.bridge, spec)

    def _install(self):
        base = OF10_BASE if self.of10 else [b[0] for b in EMULATED_BASE]
        if self.fault == "of10-extras":
            base = [b[0] for b in EMULATED_BASE]
        for name, p, m, a in EMULATED_BASE:
            if name not in base or name in self.omit:
                continue
            if name == "dst25" and self.fault == "of10-careless":
                # dl_type=IPv4 and tp_dst=25 but nw_proto wildcarded: what
                # a controller gets if it forgets the 1.0 prerequisites.
                self.log.append("raw OpenFlow 1.0 flow-mod: dl_type=0x0800,tp_dst=25 (nw_proto wildcarded)")
                of10_flow_mod(self.bridge, base_cookie(name), p, dl_type=0x0800, tp_dst=25)
                continue
            self._add(base_cookie(name), p, m, a)
        for ident, subnet in self.active.items():
            if self.of10 and ":" in subnet:
                continue  # OpenFlow 1.0 cannot match IPv6
            for p, m, a in exemption_keys(subnet):
                self._add(exemption_cookie(ident), p, ",".join(sorted(m, key=lambda t: "=" in t)), a)

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
            self._ofctl("del-flows", self.bridge, "cookie=%s" % self.COOKIE_MASK)
            self._add(base_cookie("normal"), 0, "", "NORMAL")
            time.sleep(1.0)
        self._install()

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        self.up = False
        return 0, 0.0

    def attached(self, bridge):
        self.bridge_ready = True
        self._install()
        return dict(self.status)

    def wait_sync(self, timeout=10.0):
        return dict(self.status)

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
        return dict(self.status)

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
    """The Mininet network: one secure OVS bridge and four hosts.

    `protocols` is the bridge's OpenFlow versions ("OpenFlow13", or
    "OpenFlow10" for a 1.0-only switch).  add_bare_bridge() makes extra
    host-less bridges (p25r<N>...), removed by stop() like the rest."""

    def __init__(self, n, workdir, protocols="OpenFlow13"):
        self.n = n
        self.workdir = workdir
        self.protocols = protocols
        self.bridge = "p25s%d" % n  # "p25s99999-eth1" is 14 chars (limit 15)
        self.dpid = "%016x" % (0x2525000000 + n)
        self.net = None
        self.h = {}
        self.procs = []
        self.ofport = {}
        self.bare = []  # extra bridges we created

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
                                protocols=self.protocols, dpid=self.dpid)
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
        run(OFCTL + ["add-flow", self.bridge,
             "cookie=%s,%s,actions=drop" % (cookie, flow)])

    def set_controller(self, target, bridge=None):
        bridge = bridge or self.bridge
        run(["ovs-vsctl", "set-controller", bridge, target,
             "--", "set", "controller", bridge, "max_backoff=1000"])

    def add_bare_bridge(self, suffix, dpid):
        """A bridge with no hosts (userspace datapath, OpenFlow13, secure),
        tagged like ours; stop() deletes it."""
        name = "p25r%d%s" % (self.n, suffix)
        self.bare.append(name)
        run(["ovs-vsctl", "add-br", name, "--", "set", "Bridge", name, "datapath_type=netdev",
             "protocols=OpenFlow13", "fail_mode=secure", "other-config:datapath-id=%016x" % dpid,
             "other-config:disable-in-band=true", "external-ids:p25e2e-pid=%d" % os.getpid()])
        return name

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
        for name in self.bare:
            run(["ovs-vsctl", "--if-exists", "del-br", name], check=False)
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


# --------------------------------------------------------------- TLS


class Pki:
    """A throwaway OVS PKI made with ovs-pki in `dir`: a controller CA and a
    switch CA, and certificates they sign (RSA; ovs-pki's defaults)."""

    def __init__(self, dir):
        self.dir = dir
        os.makedirs(dir)
        self.log = os.path.join(dir, "ovs-pki.log")
        run(["ovs-pki", "init", "--dir", os.path.join(dir, "pki"), "-l", self.log], timeout=60)
        self.controller_ca = os.path.join(dir, "pki", "controllerca", "cacert.pem")
        self.switch_ca = os.path.join(dir, "pki", "switchca", "cacert.pem")

    def sign(self, name, kind):
        """ovs-pki req+sign NAME switch|controller; returns (cert, key)."""
        run(["ovs-pki", "req+sign", "--dir", os.path.join(self.dir, "pki"), "-l", self.log, name, kind],
            cwd=self.dir, timeout=60)
        return (os.path.join(self.dir, "%s-cert.pem" % name), os.path.join(self.dir, "%s-privkey.pem" % name))


class SharedSsl:
    """The shared OVS's SSL settings (`ovs-vsctl set-ssl`), which every
    bridge of that ovs-vswitchd uses: held under an exclusive flock for the
    whole run, and put back as found by restore() (or deleted if there were
    none).  A pre-existing record is changed in place (its other columns,
    such as ssl_protocols, are kept); a record this harness created carries
    external-ids:p25e2e-pid, so a later run can tell one left behind by a
    killed run (dead pid) and remove it."""

    LOCK = "/run/lock/port25-e2e-ssl.lock"
    COLUMNS = ("private_key", "certificate", "ca_cert")

    def __init__(self):
        self.lock_fd = None
        self.saved = None  # None: not taken; {} : there was no SSL record
        self.uuid = None

    def acquire(self, timeout=300.0):
        self.lock_fd = open(self.LOCK, "a")
        t0 = time.monotonic()
        said = False
        while True:
            try:
                fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not said:
                    log("waiting for %s (another TLS run holds OVS's SSL settings)" % self.LOCK)
                    said = True
                if time.monotonic() - t0 > timeout:
                    raise RuntimeError("%s still held after %.0fs" % (self.LOCK, timeout))
                time.sleep(0.5)
        log("ovs-vsctl get-ssl before: %s" % (" | ".join(run(["ovs-vsctl", "get-ssl"]).split("\n")).strip(" |")
                                             or "(none)"))
        uuids = run(["ovs-vsctl", "--bare", "--columns=_uuid", "list", "SSL"]).split()
        if uuids:
            uuid = uuids[0]
            pid = run(["ovs-vsctl", "--if-exists", "get", "SSL", uuid, "external-ids:p25e2e-pid"]).strip().strip('"')
            if pid and not os.path.exists("/proc/%s" % pid):
                log("removing an SSL record left by killed e2e run (pid %s)" % pid)
                run(["ovs-vsctl", "del-ssl"])
                uuids = []
        if uuids:
            self.uuid = uuids[0]
            self.saved = {c: run(["ovs-vsctl", "get", "SSL", self.uuid, c]).strip() for c in self.COLUMNS}
        else:
            self.saved = {}

    def set(self, key, cert, ca):
        assert self.saved is not None, "acquire() first"
        if self.uuid:
            run(["ovs-vsctl", "set", "SSL", self.uuid, "private_key=%s" % json.dumps(key),
                 "certificate=%s" % json.dumps(cert), "ca_cert=%s" % json.dumps(ca)])
        else:
            run(["ovs-vsctl", "set-ssl", key, cert, ca])
            uuid = run(["ovs-vsctl", "--bare", "--columns=_uuid", "list", "SSL"]).split()[0]
            run(["ovs-vsctl", "set", "SSL", uuid, "external-ids:p25e2e-pid=%d" % os.getpid()])

    def restore(self):
        if self.saved is None:
            return
        try:
            if self.uuid:
                run(["ovs-vsctl", "set", "SSL", self.uuid] + ["%s=%s" % kv for kv in self.saved.items()])
            else:
                run(["ovs-vsctl", "del-ssl"])
            log("ovs-vsctl get-ssl after: %s" % (" | ".join(run(["ovs-vsctl", "get-ssl"]).split("\n")).strip(" |")
                                                or "(none)"))
        finally:
            self.saved = None
            self.lock_fd.close()  # releases the flock


# --------------------------------------------------------------- raw OpenFlow 1.0

OFPFW10_ALL = (1 << 22) - 1
OFPFW10_DL_TYPE = 1 << 4
OFPFW10_NW_PROTO = 1 << 5
OFPFW10_TP_DST = 1 << 7


def of10_flow_mod(bridge, cookie, priority, dl_type=None, nw_proto=None, tp_dst=None, timeout=5.0):
    """Add one flow (no actions: drop) with an ofp_match built by hand, over
    the bridge's management socket, and wait for the barrier reply.

    ovs-ofctl will not write tp_dst without tcp's prerequisites, but a
    controller's OpenFlow 1.0 flow-mod can: this is how --fault
    of10-careless shows what such a match really does on OVS."""
    wild = OFPFW10_ALL
    if dl_type is not None:
        wild &= ~OFPFW10_DL_TYPE
    if nw_proto is not None:
        wild &= ~OFPFW10_NW_PROTO
    if tp_dst is not None:
        wild &= ~OFPFW10_TP_DST
    match = struct.pack("!IH6s6sHBxHBBxxIIHH", wild, 0, b"\0" * 6, b"\0" * 6, 0, 0,
                        dl_type or 0, 0, nw_proto or 0, 0, 0, 0, tp_dst or 0)
    body = match + struct.pack("!QHHHHIHH", cookie, 0, 0, 0, priority, 0xFFFFFFFF, 0xFFFF, 0)

    def msg(kind, xid, payload=b""):
        return struct.pack("!BBHI", 1, kind, 8 + len(payload), xid) + payload

    rundir = os.environ.get("OVS_RUNDIR", "/var/run/openvswitch")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(os.path.join(rundir, "%s.mgmt" % bridge))
        s.sendall(msg(0, 1) + msg(14, 2, body) + msg(18, 3))  # hello, flow_mod, barrier
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError("%s.mgmt closed before the barrier reply" % bridge)
            buf += chunk
            while len(buf) >= 8:
                version, kind, length, xid = struct.unpack("!BBHI", buf[:8])
                if len(buf) < length:
                    break
                m, buf = buf[:length], buf[length:]
                if kind == 1:  # error
                    etype, ecode = struct.unpack("!HH", m[8:12])
                    raise RuntimeError("OpenFlow 1.0 error type %d code %d (xid %d)" % (etype, ecode, xid))
                if kind == 0 and version != 1:
                    raise RuntimeError("%s does not speak OpenFlow 1.0 (hello version %d)" % (bridge, version))
                if kind == 19 and xid == 3:  # barrier reply
                    return
    finally:
        s.close()
