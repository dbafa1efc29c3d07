#!/usr/bin/python3
"""Traffic tools that test_e2e.py runs *inside* Mininet hosts.

Stdlib only (no scapy), so it runs under Debian's /usr/bin/python3 in any
host namespace. Every subcommand is bounded in time and talks only to the
addresses it is given (the test's own namespaces).

Subcommands:

  serve PORT[,PORT...] --ready FILE
      Dual-stack TCP listeners (IPv4 and IPv6) that accept and close.
      Sockets set SO_REUSEPORT so a client in the same host can bind the
      same port as its *source* port (the "from port 25" checks).

  connect DST PORT [--sport P] [--timeout S]
      One TCP connect; prints exactly one word: connected | refused |
      timeout | unreachable | error:<errno-name>.

  loop DST PORT --out FILE --stop-file FILE [--interval S] [--timeout S]
      Starts a connect every INTERVAL seconds (each in its own thread, so a
      dropped SYN does not slow the cadence) until STOP-FILE exists (or
      --max-duration); writes one JSON object per attempt to OUT.

  frag --iface IF --src-mac M --dst-mac M --src IP --dst IP --proto tcp|udp
       --dport P --sport P --ident N [--payload BYTES] [--first-frag BYTES]
      Crafts one IPv4 or IPv6 datagram (TCP SYN or UDP), fragments it and
      sends the fragments as raw Ethernet frames (AF_PACKET), bypassing the
      kernel's own stack.  --first-frag is the L4 bytes in the first
      fragment; the default 8 is the classic "tiny fragment" that carries
      only the ports, so a switch that parses ports only from complete
      headers cannot see tp_dst=25.

  wirelog --iface IF --out FILE --ready FILE
      Appends one JSON line per event seen on the host's interface:
      incoming TCP SYNs, incoming IP fragments (source, ident, offset) and
      outgoing TCP segments from port 25.  The harness reads it to tell
      "dropped by the switch" (the SYN never arrived) from "the handshake
      failed for some other reason".
"""

import argparse
import errno
import json
import os
import selectors
import socket
import struct
import sys
import threading
import time

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
PACKET_OUTGOING = 4
IPPROTO_FRAGMENT = 44


def _family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


# ---------------------------------------------------------------- serve


def cmd_serve(args):
    sel = selectors.DefaultSelector()
    for port in (int(p) for p in args.ports.split(",")):
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", port))
        s.listen(128)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    with open(args.ready, "w") as f:
        f.write("ready\n")
    deadline = time.monotonic() + args.max_duration
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1.0):
            try:
                conn, _peer = key.fileobj.accept()
                conn.close()
            except OSError:
                pass
    return 0


# ---------------------------------------------------------------- connect


def tcp_connect(dst, port, sport=None, timeout=1.0):
    """One TCP connect attempt; returns an outcome word."""
    fam = _family(dst)
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        if sport is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", sport))
        s.settimeout(timeout)
        s.connect((dst, port))
        return "connected"
    except socket.timeout:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        if e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "unreachable"
        return "error:%s" % errno.errorcode.get(e.errno, e.errno)
    finally:
        s.close()


def cmd_connect(args):
    print(tcp_connect(args.dst, args.port, args.sport, args.timeout))
    return 0


# ---------------------------------------------------------------- loop


def cmd_loop(args):
    results = []
    lock = threading.Lock()
    threads = []

    def attempt():
        t0 = time.time()
        m0 = time.monotonic()
        out = tcp_connect(args.dst, args.port, None, args.timeout)
        rec = {"t": t0, "outcome": out, "ms": round((time.monotonic() - m0) * 1000, 1)}
        with lock:
            results.append(rec)

    start = time.monotonic()
    nxt = start
    while not os.path.exists(args.stop_file) and time.monotonic() - start < args.max_duration:
        th = threading.Thread(target=attempt, daemon=True)
        th.start()
        threads.append(th)
        nxt += args.interval
        time.sleep(max(0.0, nxt - time.monotonic()))
    for th in threads:
        th.join(args.timeout + 1.0)
    with lock:
        results.sort(key=lambda r: r["t"])
        with open(args.out + ".tmp", "w") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")
    os.rename(args.out + ".tmp", args.out)
    return 0


# ---------------------------------------------------------------- frag


def _csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def _mac(text):
    return bytes(int(x, 16) for x in text.split(":"))


def build_l4(proto, src, dst, sport, dport, payload_len):
    """A TCP SYN or a UDP datagram with a correct checksum."""
    fam = _family(src)
    s = socket.inet_pton(fam, src)
    d = socket.inet_pton(fam, dst)
    payload = bytes((i * 7) & 0xFF for i in range(payload_len))
    if proto == "tcp":
        num = 6
        hdr = struct.pack("!HHIIBBHHH", sport, dport, 0x25252525, 0, 5 << 4, 0x02, 64240, 0, 0)
    else:
        num = 17
        hdr = struct.pack("!HHHH", sport, dport, 8 + payload_len, 0)
    seg = hdr + payload
    if fam == socket.AF_INET:
        pseudo = s + d + struct.pack("!BBH", 0, num, len(seg))
    else:
        pseudo = s + d + struct.pack("!IxxxB", len(seg), num)
    c = _csum(pseudo + seg)
    if proto == "udp" and c == 0:
        c = 0xFFFF
    off = 16 if proto == "tcp" else 6
    seg = seg[:off] + struct.pack("!H", c) + seg[off + 2:]
    return num, seg


def fragments(proto_num, src, dst, seg, ident, first, rest):
    """Split seg into IP fragments: `first` L4 bytes, then `rest`-byte chunks."""
    fam = _family(src)
    s = socket.inet_pton(fam, src)
    d = socket.inet_pton(fam, dst)
    chunks = []
    pos = 0
    size = first
    while pos < len(seg):
        chunks.append((pos, seg[pos:pos + size]))
        pos += size
        size = rest
    out = []
    for i, (offset, data) in enumerate(chunks):
        assert offset % 8 == 0
        more = 1 if i < len(chunks) - 1 else 0
        if fam == socket.AF_INET:
            flags_off = (more << 13) | (offset // 8)
            hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(data), ident & 0xFFFF,
                              flags_off, 64, proto_num, 0, s, d)
            hdr = hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]
            out.append((ETH_P_IP, hdr + data))
        else:
            fh = struct.pack("!BBHI", proto_num, 0, (offset // 8) << 3 | more, ident)
            hdr = struct.pack("!IHBB16s16s", 6 << 28, len(fh) + len(data), IPPROTO_FRAGMENT, 64, s, d)
            out.append((ETH_P_IPV6, hdr + fh + data))
    return out


def cmd_frag(args):
    num, seg = build_l4(args.proto, args.src, args.dst, args.sport, args.dport, args.payload)
    frags = fragments(num, args.src, args.dst, seg, args.ident, args.first_frag, args.rest_frag)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((args.iface, 0))
    for ethertype, pkt in frags:
        s.send(_mac(args.dst_mac) + _mac(args.src_mac) + struct.pack("!H", ethertype) + pkt)
    s.close()
    print("sent %d" % len(frags))
    return 0


# ---------------------------------------------------------------- sniff


def parse_fragment(frame):
    """(src, ident, offset) if frame is an IPv4/IPv6 fragment, else None."""
    if len(frame) < 14:
        return None
    (ethertype,) = struct.unpack("!H", frame[12:14])
    ip = frame[14:]
    if ethertype == ETH_P_IP and len(ip) >= 20:
        ident, flags_off = struct.unpack("!HH", ip[4:8])
        if flags_off & 0x3FFF:  # MF or a non-zero offset
            return socket.inet_ntop(socket.AF_INET, ip[12:16]), ident, (flags_off & 0x1FFF) * 8
    elif ethertype == ETH_P_IPV6 and len(ip) >= 48 and ip[6] == IPPROTO_FRAGMENT:
        ident, = struct.unpack("!I", ip[44:48])
        offlg, = struct.unpack("!H", ip[42:44])
        return socket.inet_ntop(socket.AF_INET6, ip[8:24]), ident, offlg & 0xFFF8
    return None


def parse_tcp(frame):
    """(src, dst, sport, dport, flags) of an unfragmented TCP segment, else None."""
    if len(frame) < 14:
        return None
    (ethertype,) = struct.unpack("!H", frame[12:14])
    ip = frame[14:]
    if ethertype == ETH_P_IP and len(ip) >= 40 and ip[9] == 6:
        (flags_off,) = struct.unpack("!H", ip[6:8])
        if flags_off & 0x3FFF:
            return None
        ihl = (ip[0] & 0x0F) * 4
        l4 = ip[ihl:]
        src = socket.inet_ntop(socket.AF_INET, ip[12:16])
        dst = socket.inet_ntop(socket.AF_INET, ip[16:20])
    elif ethertype == ETH_P_IPV6 and len(ip) >= 60 and ip[6] == 6:
        l4 = ip[40:]
        src = socket.inet_ntop(socket.AF_INET6, ip[8:24])
        dst = socket.inet_ntop(socket.AF_INET6, ip[24:40])
    else:
        return None
    if len(l4) < 14:
        return None
    sport, dport = struct.unpack("!HH", l4[0:4])
    return src, dst, sport, dport, l4[13]


def cmd_wirelog(args):
    """Log, one JSON line each as it happens, what the host's wire shows:
    incoming TCP SYNs ("syn"), incoming IP fragments ("frag") and outgoing
    TCP segments from port 25 ("out25": a SYN-ACK or RST, i.e. evidence that
    a SYN reached this host's TCP stack)."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((args.iface, 0))
    s.settimeout(0.2)
    out = open(args.out, "a", buffering=1)
    with open(args.ready, "w") as f:
        f.write("ready\n")
    deadline = time.monotonic() + args.max_duration
    while time.monotonic() < deadline:
        try:
            frame, addr = s.recvfrom(65535)
        except socket.timeout:
            continue
        now = time.time()
        ev = None
        if addr[2] == PACKET_OUTGOING:
            seg = parse_tcp(frame)
            if seg and seg[2] == 25:
                ev = {"k": "out25", "dst": seg[1], "dport": seg[3], "flags": seg[4]}
        else:
            frag = parse_fragment(frame)
            seg = None if frag else parse_tcp(frame)
            if frag:
                ev = {"k": "frag", "src": frag[0], "id": frag[1], "off": frag[2]}
            elif seg and seg[4] & 0x12 == 0x02:  # SYN without ACK
                ev = {"k": "syn", "src": seg[0], "dst": seg[1], "sport": seg[2], "dport": seg[3]}
        if ev:
            ev["t"] = now
            out.write(json.dumps(ev) + "\n")
    return 0


# ---------------------------------------------------------------- main


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    sp = sub.add_parser("serve")
    sp.add_argument("ports")
    sp.add_argument("--ready", required=True)
    sp.add_argument("--max-duration", type=float, default=600.0)
    sp.set_defaults(fn=cmd_serve)

    sp = sub.add_parser("connect")
    sp.add_argument("dst")
    sp.add_argument("port", type=int)
    sp.add_argument("--sport", type=int)
    sp.add_argument("--timeout", type=float, default=1.0)
    sp.set_defaults(fn=cmd_connect)

    sp = sub.add_parser("loop")
    sp.add_argument("dst")
    sp.add_argument("port", type=int)
    sp.add_argument("--out", required=True)
    sp.add_argument("--stop-file", required=True)
    sp.add_argument("--interval", type=float, default=0.1)
    sp.add_argument("--timeout", type=float, default=0.5)
    sp.add_argument("--max-duration", type=float, default=60.0)
    sp.set_defaults(fn=cmd_loop)

    sp = sub.add_parser("frag")
    sp.add_argument("--iface", required=True)
    sp.add_argument("--src-mac", required=True)
    sp.add_argument("--dst-mac", required=True)
    sp.add_argument("--src", required=True)
    sp.add_argument("--dst", required=True)
    sp.add_argument("--proto", choices=("tcp", "udp"), required=True)
    sp.add_argument("--sport", type=int, required=True)
    sp.add_argument("--dport", type=int, required=True)
    sp.add_argument("--ident", type=int, required=True)
    sp.add_argument("--payload", type=int, default=0)
    sp.add_argument("--first-frag", type=int, default=8)
    sp.add_argument("--rest-frag", type=int, default=1024)
    sp.set_defaults(fn=cmd_frag)

    sp = sub.add_parser("wirelog")
    sp.add_argument("--iface", required=True)
    sp.add_argument("--out", required=True)
    sp.add_argument("--ready", required=True)
    sp.add_argument("--max-duration", type=float, default=600.0)
    sp.set_defaults(fn=cmd_wirelog)

    args = p.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
