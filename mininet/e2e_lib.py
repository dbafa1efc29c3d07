#!/usr/bin/python3
"""Support for test_e2e.py: the Mininet lab, the controller under test (real
port25d or an ovs-ofctl emulation), flow-table reading and check reporting.

# Layout
- reporting: `Check` (expect / control) and `Report` (one line per check).
- flows: `Flow` parses `ovs-ofctl dump-flows`; keys compare flows as
  (priority, match set, actions), so field order and masks do not matter.
- controllers: `Port25d` (CLI + REST API) and `Emulated` (same interface,
  flows written with ovs-ofctl; --omit/--fault make it wrong on purpose).
- lab: `Lab` builds one secure userspace-datapath OVS bridge and four hosts,
  runs the p25probe.py servers and wire logs in them, and removes exactly
  what it created.

Runs under Debian's /usr/bin/python3 (mininet is imported lazily, in
Lab.start, so the pure parts can be imported anywhere).
"""

import json
import os
import re
import signal
import socket
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
