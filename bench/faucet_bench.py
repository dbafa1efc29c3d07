#!/usr/bin/env python3
"""port25d against Faucet on the same port-25 policy, in the same run.

Driven by bench/faucet.sh, which creates the virtualenv, builds port25d,
registers cleanup and passes the paths. Python standard library only: the
Faucet side runs Faucet's own executable from its virtualenv, this script
only writes its YAML, signals it and reads the bridge.

Both controllers are measured the same way: `ovs-ofctl -O OpenFlow13
dump-flows` of the bridge, every --poll-ms (20 ms by default), from the
moment the change is made (set-controller on a fresh bridge; SIGHUP to
Faucet after rewriting faucet.yaml; the POST to port25d) until the bridge
holds every flow expected. Everything started here is registered in
--work/{pids,bridges} so faucet.sh's trap removes it even if this script
is killed; it also cleans up after itself.
"""

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

ARGS = None
STARTED = []  # Popen objects still to stop
BRIDGES = []  # bridge names still to delete
BRIDGE_SEQ = [0]


def log(msg):
    print(f"faucet-bench: {msg}", file=sys.stderr, flush=True)


def register(kind, what):
    with open(os.path.join(ARGS.work, kind), "a", encoding="utf-8") as f:
        f.write(f"{what}\n")


def sh(*cmd, check=True):
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    return p.stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subscriber(i):
    """The i-th benchmark subscriber (i >= 1), a /32 in 10.0.0.0/8 (as p25bench)."""
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def new_subscriber(k):
    """The k-th subscriber added by a one-rule change, outside the bulk range."""
    return f"10.250.{(k >> 8) & 255}.{k & 255}"


# ---------------------------------------------------------------------------
# Bridges


class Bridge:
    """A fresh userspace OVS bridge, OpenFlow 1.3, fail_mode=secure, with two
    patch ports (OpenFlow ports 1 and 2, looped to each other) so that both
    are up without kernel devices. Named <prefix>x<n>; only such names are
    ever created or deleted."""

    def __init__(self, dpid):
        n = BRIDGE_SEQ[0]
        BRIDGE_SEQ[0] += 1
        self.name = f"{ARGS.prefix}x{n}"
        if not re.fullmatch(r"p25fb\d+x\d+", self.name) or len(self.name) > 15:
            raise RuntimeError(f"refusing bridge name {self.name!r}")
        self.dpid = dpid
        register("bridges", self.name)
        BRIDGES.append(self.name)
        a, b = self.name + "a", self.name + "b"
        sh(
            "ovs-vsctl", "--timeout=20", "add-br", self.name,
            "--", "set", "bridge", self.name, "datapath_type=netdev", "protocols=OpenFlow13",
            "fail_mode=secure", f"other-config:datapath-id={dpid:016x}", "other-config:disable-in-band=true",
            "--", "add-port", self.name, a, "--", "set", "interface", a, "type=patch", f"options:peer={b}",
            "ofport_request=1",
            "--", "add-port", self.name, b, "--", "set", "interface", b, "type=patch", f"options:peer={a}",
            "ofport_request=2",
        )  # fmt: skip

    def attach(self, port):
        sh("ovs-vsctl", "--timeout=20", "set-controller", self.name, f"tcp:127.0.0.1:{port}")

    def delete(self):
        sh("ovs-vsctl", "--timeout=20", "--if-exists", "del-br", self.name, check=False)
        if self.name in BRIDGES:
            BRIDGES.remove(self.name)

    def dump(self):
        out = sh("ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "--no-names", "dump-flows", self.name)
        return [ln for ln in out.splitlines() if "priority=" in ln]


DUMP_SECS = []  # duration of every dump-flows poll: the polling resolution


def poll(br, done, t0, timeout):
    """Dump the bridge every --poll-ms until done(lines); seconds since t0."""
    every = ARGS.poll_ms / 1000.0
    polls = 0
    while True:
        t = time.monotonic()
        lines = br.dump()
        DUMP_SECS.append(time.monotonic() - t)
        polls += 1
        if done(lines):
            return time.monotonic() - t0, polls
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"{br.name}: not done within {timeout} s ({len(lines)} flows)")
        time.sleep(every)


def has_src(lines, ip):
    pat = re.compile(rf"nw_src={re.escape(ip)}(?=[, ]|$)")
    return any(pat.search(ln) for ln in lines)


# ---------------------------------------------------------------------------
# Processes


def start(cmd, env, logfile):
    f = open(logfile, "w", encoding="utf-8")  # pylint: disable=consider-using-with
    # Own session: Ctrl-C reaches this script, which then stops the child.
    p = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    register("pids", p.pid)
    STARTED.append(p)
    return p


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in STARTED:
        STARTED.remove(p)


def wait_listening(port, p, what, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if p.poll() is not None:
            raise RuntimeError(f"{what} exited with {p.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{what} not listening on 127.0.0.1:{port} within {timeout} s")


def http(port, method, path, body=None, timeout=60):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


# ---------------------------------------------------------------------------
# Faucet


def faucet_rule(match, allow):
    fields = ", ".join(f"{k}: {v}" for k, v in match)
    return f"    - rule: {{{fields}{', ' if fields else ''}actions: {{allow: {allow}}}}}"


def exemption_rules(ip):
    """The ACL rules of one exemption: as port25d's two flows (all TCP from
    and to the subscriber) or, with --match smtp, only port-25 TCP."""
    if ARGS.match == "smtp":
        return [
            faucet_rule([("eth_type", "0x0800"), ("ip_proto", 6), ("ipv4_src", f"'{ip}'"), ("tcp_dst", 25)], 1),
            faucet_rule([("eth_type", "0x0800"), ("ip_proto", 6), ("ipv4_dst", f"'{ip}'"), ("tcp_src", 25)], 1),
        ]
    return [
        faucet_rule([("eth_type", "0x0800"), ("ip_proto", 6), ("ipv4_src", f"'{ip}'")], 1),
        faucet_rule([("eth_type", "0x0800"), ("ip_proto", 6), ("ipv4_dst", f"'{ip}'")], 1),
    ]


def faucet_yaml(path, exemptions, added, dpid):
    """exemptions: bulk subscribers (2 rules each); added: the one-rule
    changes so far (1 rule each, allow TCP from the new subscriber), appended
    after the exemptions and before the drops."""
    out = ["vlans:", "  p25:", "    vid: 100", "acls:", "  port25:"]
    for i in range(1, exemptions + 1):
        out.extend(exemption_rules(subscriber(i)))
    for k in range(1, added + 1):
        m = [("eth_type", "0x0800"), ("ip_proto", 6), ("ipv4_src", f"'{new_subscriber(k)}'")]
        if ARGS.match == "smtp":
            m.append(("tcp_dst", 25))
        out.append(faucet_rule(m, 1))
    for eth_type in ("0x0800", "0x86dd"):
        for port_field in ("tcp_dst", "tcp_src"):
            out.append(faucet_rule([("eth_type", eth_type), ("ip_proto", 6), (port_field, 25)], 0))
    out.append(faucet_rule([], 1))
    out += [
        "dps:",
        "  p25fb:",
        f"    dp_id: 0x{dpid:x}",
        '    hardware: "Open vSwitch"',
        "    interfaces:",
        "      1:",
        "        native_vlan: p25",
        "        acls_in: [port25]",
        "      2:",
        "        native_vlan: p25",
    ]
    if ARGS.acl_ports == 2:
        out.append("        acls_in: [port25]")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    os.replace(tmp, path)
    return 2 * exemptions + added + 5  # ACL rules


ACL_FLOW = re.compile(r"^(?!.*\btable=)(?=.*\bin_port=(\d+)[, ])")


def faucet_acl_flows(lines):
    """Faucet's port-ACL flows: table 0 (port_acl), with an in_port match on
    a port that carries the ACL."""
    ports = {"1", "2"} if ARGS.acl_ports == 2 else {"1"}
    return sum(1 for ln in lines if (m := ACL_FLOW.search(ln)) and m.group(1) in ports)


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def start_faucet(work, cfg, tag):
    """Start Faucet on fresh loopback ports; wait until it listens and has
    loaded its config. Returns (process, OpenFlow port, seconds to ready)."""
    of_port, prom_port = free_port(), free_port()
    flog = os.path.join(work, f"faucet-{tag}.log")
    env = dict(os.environ)
    env.update(
        PATH=os.path.dirname(ARGS.faucet) + os.pathsep + env.get("PATH", ""),
        FAUCET_CONFIG=cfg,
        FAUCET_LOG=flog,
        FAUCET_EXCEPTION_LOG=os.path.join(work, f"faucet-{tag}.exception.log"),
        FAUCET_PROMETHEUS_ADDR="127.0.0.1",
        FAUCET_PROMETHEUS_PORT=str(prom_port),
        FAUCET_EVENT_SOCK="",
        FAUCET_CONFIG_STAT_RELOAD="0",
    )
    # faucet execs osken-manager (same pid), passing --ofp-listen-host and
    # --ofp-tcp-listen-port; there is no TLS listener without a certificate.
    # Our own os-ken config (Faucet's shipped ryu.conf: echo every 3 s, down
    # after 5 unanswered) instead of whatever /etc/faucet/ryu.conf holds.
    ryu_conf = os.path.join(work, "ryu.conf")
    with open(ryu_conf, "w", encoding="utf-8") as f:
        f.write("[DEFAULT]\necho_request_interval=3\nmaximum_unreplied_echo_requests=5\n")
    cmd = [ARGS.faucet, f"--ryu-config-file={ryu_conf}", "--ryu-ofp-listen-host=127.0.0.1",
           f"--ryu-ofp-tcp-listen-port={of_port}"]  # fmt: skip
    t = time.monotonic()
    p = start(cmd, env, os.path.join(work, f"faucet-{tag}.stderr"))
    # Faucet parses and checks its whole config before it listens: minutes at 10,000 rules.
    wait_listening(of_port, p, "faucet", ARGS.timeout)
    end = time.monotonic() + ARGS.timeout
    while "Add new datapath" not in read(flog):
        if p.poll() is not None or time.monotonic() > end:
            raise RuntimeError(f"faucet did not load {cfg} (see {flog})")
        time.sleep(0.02)
    return p, of_port, time.monotonic() - t


def faucet_phase(n_rules):
    e = n_rules // 2
    work = os.path.join(ARGS.work, f"faucet-{n_rules}")
    os.makedirs(work, exist_ok=True)
    cfg = os.path.join(work, "faucet.yaml")
    dpid = 0x00FB_0000_0000_0000 | (os.getpid() << 8)
    added = 0
    rules = faucet_yaml(cfg, e, added, dpid)
    p, of_port, started = start_faucet(work, cfg, "0")
    log(f"faucet up in {started:.2f} s, {rules} ACL rules on {'ports 1 and 2' if ARGS.acl_ports == 2 else 'port 1'}")
    fresh, change, restart = [], [], []
    try:
        for r in range(ARGS.runs):
            br = Bridge(dpid)
            want = rules * ARGS.acl_ports
            t0 = time.monotonic()
            br.attach(of_port)
            secs, _ = poll(br, lambda ls, want=want: faucet_acl_flows(ls) >= want, t0, ARGS.timeout)
            got = faucet_acl_flows(br.dump())
            if got != want:
                raise RuntimeError(f"faucet left {got} ACL flows on {br.name}, expected {want}")
            fresh.append(secs)
            time.sleep(ARGS.settle)
            # One-rule change: append a rule, SIGHUP, until its flow is in.
            added += 1
            ip = new_subscriber(added)
            rules = faucet_yaml(cfg, e, added, dpid)
            want = rules * ARGS.acl_ports
            t0 = time.monotonic()
            p.send_signal(signal.SIGHUP)
            secs, _ = poll(br, lambda ls, ip=ip, want=want: has_src(ls, ip) and faucet_acl_flows(ls) == want, t0,
                           ARGS.timeout)  # fmt: skip
            change.append(secs)
            log(f"faucet run {r + 1}: fresh bridge {fresh[-1]:.3f} s, one-rule change {secs:.3f} s")
            br.delete()
            time.sleep(ARGS.settle)
        if p.poll() is not None:
            raise RuntimeError("faucet exited during the run")
        rss = rss_kib(p.pid)
        # Restart: the controller from exec, config on disk, to a fresh bridge programmed.
        for r in range(ARGS.runs):
            stop(p)
            t0 = time.monotonic()
            p, of_port, _ = start_faucet(work, cfg, str(r + 1))
            br = Bridge(dpid)
            want = rules * ARGS.acl_ports
            br.attach(of_port)
            secs, _ = poll(br, lambda ls, want=want: faucet_acl_flows(ls) >= want, t0, ARGS.timeout)
            restart.append(secs)
            log(f"faucet restart {r + 1}: exec to fresh bridge programmed {secs:.3f} s")
            br.delete()
            time.sleep(ARGS.settle)
    finally:
        stop(p)
    return {"rules": rules - added, "exemptions": e, "fresh": fresh, "change": change, "restart": restart,
            "start": started, "rss_kib": rss}  # fmt: skip


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            for ln in f:
                if ln.startswith("VmHWM:"):
                    return int(ln.split()[1])
    except OSError:
        pass
    return 0


# ---------------------------------------------------------------------------
# port25d


def start_port25d(work, tag):
    """Start port25d on fresh loopback ports with its store in work/data;
    wait until /healthz answers. Returns (process, OpenFlow port, API port)."""
    of_port, api_port = free_port(), free_port()
    env = dict(os.environ, PORT25_LOG="warn")
    cmd = [ARGS.port25d, "--openflow-listen", f"127.0.0.1:{of_port}", "--api-listen", f"127.0.0.1:{api_port}",
           "--data-dir", os.path.join(work, "data")]  # fmt: skip
    p = start(cmd, env, os.path.join(work, f"port25d-{tag}.log"))
    end = time.monotonic() + 120
    while True:
        try:
            if http(api_port, "GET", "/healthz", timeout=2)[0] == 200:
                return p, of_port, api_port
        except OSError:
            pass
        if p.poll() is not None or time.monotonic() > end:
            raise RuntimeError(f"port25d did not answer /healthz (see {work})")
        time.sleep(0.02)


def port25d_phase(n_rules):
    e = n_rules // 2
    work = os.path.join(ARGS.work, f"port25d-{n_rules}")
    os.makedirs(work, exist_ok=True)
    p, of_port, api_port = start_port25d(work, "0")
    try:
        t = time.monotonic()
        status, v = http(api_port, "POST", "/v1/exemptions/bulk",
                         {"exemptions": [{"subscriber": f"{subscriber(i)}/32"} for i in range(1, e + 1)]})  # fmt: skip
        bulk = time.monotonic() - t
        if status != 200 or len(v.get("created", [])) != e:
            raise RuntimeError(f"bulk grant answered {status}: {str(v)[:300]}")
        log(f"port25d: {e} exemptions bulk-granted in {bulk:.3f} s")
        grants = 0
        fresh, change, waited, in_sync, rounds, restart = [], [], [], [], [], []
        for r in range(ARGS.runs):
            dpid = 0x00B1_0000_0000_0000 | (os.getpid() << 8) | BRIDGE_SEQ[0]
            br = Bridge(dpid)
            want = 2 * (e + grants) + 7
            t0 = time.monotonic()
            br.attach(of_port)
            secs, _ = poll(br, lambda ls, want=want: len(ls) >= want, t0, 600)
            got = len(br.dump())
            if got != want:
                raise RuntimeError(f"port25d left {got} flows on {br.name}, expected {want}")
            fresh.append(secs)
            # port25d's own view: confirmed in sync (barrier reply), and its round time.
            pv = http(api_port, "GET", "/healthz")[1]["policy_version"]
            sw = None
            end = time.monotonic() + 60
            while time.monotonic() < end:
                sw = next((s for s in http(api_port, "GET", "/v1/switches")[1]["switches"]
                           if s["dpid"] == f"{dpid:016x}"), None)  # fmt: skip
                if sw and sw["in_sync"] and sw["policy_version"] >= pv:
                    break
                time.sleep(0.005)
            in_sync.append(time.monotonic() - t0)
            rounds.append((sw or {}).get("last_round", {}).get("elapsed_ms"))
            time.sleep(ARGS.settle)
            # One grant, polled exactly as Faucet's change.
            grants += 1
            ip = new_subscriber(grants)
            t0 = time.monotonic()
            status, v = http(api_port, "POST", "/v1/exemptions", {"subscriber": f"{ip}/32", "note": "bench"})
            if status != 201:
                raise RuntimeError(f"grant answered {status}: {v}")
            want = 2 * (e + grants) + 7
            secs, _ = poll(br, lambda ls, ip=ip, want=want: has_src(ls, ip) and len(ls) == want, t0, 60)
            change.append(secs)
            # One more grant with ?wait=applied: the reply comes once the switch confirmed it.
            time.sleep(ARGS.settle)
            grants += 1
            ip = new_subscriber(grants)
            t0 = time.monotonic()
            status, v = http(api_port, "POST", "/v1/exemptions?wait=applied&wait_timeout_ms=10000",
                             {"subscriber": f"{ip}/32", "note": "bench"})  # fmt: skip
            waited.append(time.monotonic() - t0)
            if status != 201 or not v.get("applied", {}).get("complete"):
                raise RuntimeError(f"grant with wait=applied answered {status}: {v}")
            if not has_src(br.dump(), ip):
                raise RuntimeError("wait=applied replied before the flow was in the bridge")
            log(f"port25d run {r + 1}: fresh bridge {fresh[-1]:.3f} s, one grant {change[-1]:.3f} s, "
                f"wait=applied {waited[-1]:.3f} s")  # fmt: skip
            br.delete()
            time.sleep(ARGS.settle)
        if p.poll() is not None:
            raise RuntimeError("port25d exited during the run")
        rss = rss_kib(p.pid)
        # Restart: the controller from exec, exemptions in its store, to a fresh bridge programmed.
        want = 2 * (e + grants) + 7
        for r in range(ARGS.runs):
            stop(p)
            t0 = time.monotonic()
            p, of_port, api_port = start_port25d(work, str(r + 1))
            br = Bridge(0x00B1_0000_0000_0000 | (os.getpid() << 8) | BRIDGE_SEQ[0])
            br.attach(of_port)
            secs, _ = poll(br, lambda ls: len(ls) >= want, t0, 600)
            restart.append(secs)
            log(f"port25d restart {r + 1}: exec to fresh bridge programmed {secs:.3f} s")
            br.delete()
            time.sleep(ARGS.settle)
    finally:
        stop(p)
    return {"exemptions": e, "flows": 2 * e + 7, "fresh": fresh, "change": change, "waited": waited,
            "in_sync": in_sync, "rounds": rounds, "bulk": bulk, "restart": restart, "rss_kib": rss}  # fmt: skip


# ---------------------------------------------------------------------------
# Table


def ms(s):
    if s is None or s != s:
        return "–"
    return f"{s * 1000:.0f} ms" if s < 10 else f"{s:.1f} s"


def spread(xs):
    if not xs:
        return "–"
    if len(xs) == 1:
        return ms(xs[0])
    return f"{ms(statistics.median(xs))} ({ms(min(xs))}–{ms(max(xs))})"


def ratio(a, b):
    if not a or not b:
        return "–"
    r = statistics.median(a) / statistics.median(b)
    return f"{r:.2f}" if r >= 0.1 else f"{r:.2g}"


def main():
    global ARGS  # pylint: disable=global-statement
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True)
    ap.add_argument("--prefix", required=True, help="bridge name prefix, p25fb<pid>")
    ap.add_argument("--faucet", default="", help="the faucet executable in its virtualenv; empty: skip Faucet")
    ap.add_argument("--faucet-version", default="?")
    ap.add_argument("--port25d", default="", help="port25d binary; empty: skip port25d")
    ap.add_argument("--rules", default="1000", help="exemption rules per size, comma separated (2 per exemption)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--poll-ms", type=float, default=20.0)
    ap.add_argument("--settle", type=float, default=1.0, help="seconds of quiet between steps")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed for any one step")
    ap.add_argument("--match", choices=("port25", "smtp"), default="port25")
    ap.add_argument("--acl-ports", type=int, choices=(1, 2), default=1)
    ARGS = ap.parse_args()
    if not ARGS.prefix.startswith("p25fb"):
        sys.exit("bridge prefix must start with p25fb")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = [int(x) for x in ARGS.rules.split(",") if x.strip()]
    load0 = open("/proc/loadavg", encoding="utf-8").read().split()[:3]
    results = []
    failed = []

    def phase(fn, n, who):
        try:
            return fn(n)
        except Exception as e:  # pylint: disable=broad-except
            # One side failing still prints the other's figures.
            log(f"{who} at {n} rules failed: {e}")
            failed.append(f"{who} at {n} rules failed: {e}")
            for p in list(STARTED):
                stop(p)
            return None

    try:
        for n in sizes:
            p25 = phase(port25d_phase, n, "port25d") if ARGS.port25d else None
            fct = phase(faucet_phase, n, "faucet") if ARGS.faucet else None
            results.append((n, p25, fct))
            print(json.dumps({"rules": n, "port25d": p25, "faucet": fct}), file=sys.stderr, flush=True)
    finally:
        for p in list(STARTED):
            stop(p)
        for name in list(BRIDGES):
            sh("ovs-vsctl", "--timeout=20", "--if-exists", "del-br", name, check=False)
    load1 = open("/proc/loadavg", encoding="utf-8").read().split()[:3]

    rows = []
    for n, p25, fct in results:
        e = n // 2

        def row(figure, key, p25=p25, fct=fct):
            rows.append((figure, spread(p25[key]) if p25 else "–", spread(fct[key]) if fct else "–",
                         ratio(p25 and p25[key], fct and fct[key])))  # fmt: skip

        row(f"(g1) fresh bridge attached → all {n} exemption rules ({e} exemptions) in dump-flows", "fresh")
        row(f"(g2) one-rule change at {n} rules → new flow in dump-flows (port25d: POST a grant; "
            f"Faucet: append to faucet.yaml + SIGHUP)", "change")  # fmt: skip
        if p25:
            rows.append(("(g2) port25d: one grant with ?wait=applied, POST until the reply (barrier-confirmed)",
                         spread(p25["waited"]), "–", "–"))  # fmt: skip
        row(f"(g3) controller exec'd (policy already on disk) → fresh bridge with all {n} rules in dump-flows",
            "restart")  # fmt: skip
    print("| figure | port25d | faucet | ratio (port25d/faucet) |")
    print("|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print()
    print(f"- load average {' '.join(load0)} at the start, {' '.join(load1)} at the end; {os.cpu_count()} CPUs; "
          f"other jobs share the machine.")  # fmt: skip
    print(f"- {f'medians of {ARGS.runs} runs (min–max in brackets)' if ARGS.runs > 1 else 'one run'}; every figure on a fresh bridge (userspace "
          f"datapath, OpenFlow 1.3, fail_mode=secure, two patch ports as OpenFlow ports 1 and 2); both "
          f"controllers on 127.0.0.1.")  # fmt: skip
    if DUMP_SECS:
        print(f"- polling, the same for both: `ovs-ofctl -O OpenFlow13 --no-stats dump-flows`, then {ARGS.poll_ms:.0f} "
              f"ms sleep, from just before the change (set-controller, SIGHUP, POST, exec); one dump took "
              f"{ms(statistics.median(DUMP_SECS))} median, {ms(max(DUMP_SECS))} max, so a figure is late by at "
              f"most one sleep plus one dump.")  # fmt: skip
    for n, p25, fct in results:
        e = n // 2
        if p25:
            print(f"- port25d at {n}: {2 * e + 7} flows ({e} exemptions × 2: all TCP from and to the subscriber; "
                  f"+ 6 drops: v4/v6 tcp_dst=25, tcp_src=25, TCP fragments; + catch-all NORMAL), on every port. "
                  f"Bulk grant of {e}: {ms(p25['bulk'])}. Confirmed in sync in /v1/switches (polled after g1) at "
                  f"{spread(p25['in_sync'])}; its own round {', '.join(str(x) for x in p25['rounds'])} ms. Each "
                  f"g2 grant adds 2 flows. VmHWM {p25['rss_kib'] // 1024} MiB.")  # fmt: skip
        if fct:
            on = "ports 1 and 2" if ARGS.acl_ports == 2 else "port 1 only (acls_in; port 2 has no ACL)"
            what = "port-25 TCP only" if ARGS.match == "smtp" else "all TCP from and to the subscriber, as port25d"
            print(f"- Faucet {ARGS.faucet_version} at {n}: one ACL of {fct['rules']} rules ({e} exemptions × 2: "
                  f"{what}; + 4 drops: v4/v6 tcp_dst=25, tcp_src=25 — no fragment rule, Faucet's ACLs cannot match "
                  f"nw_frag; + allow all) on {on}; counted as its table-0 flows with that in_port. Faucet also "
                  f"installs its own pipeline (tables 1-4), not counted. Each g2 change appends one allow rule "
                  f"before the drops; Faucet reloads the whole ACL on the port (delete + re-add). Start to config "
                  f"loaded: {ms(fct['start'])}. VmHWM {fct['rss_kib'] // 1024} MiB.")  # fmt: skip
    for f in failed:
        print(f"- **{f}**")
    if ARGS.faucet:
        print("- issue 4 quotes Faucet 1.10 at about 2 s for a one-rule ACL change at 1,000 rules (compare g2) "
              "and 2 to 3 s to program a fresh switch with them (compare g3; g1 is a switch connecting to a "
              "Faucet that has its config loaded already).")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
