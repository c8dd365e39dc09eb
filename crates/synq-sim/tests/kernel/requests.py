"""Scripted segment exchange between spoofed peers and one kernel listener; prints one JSON line.

  python3 requests.py '{"sysctls": {...}, "backlog": B, "defer_accept": SECS,
                        "steps": [{"t": SECONDS, "op": ...}, ...], "end": SECONDS}'

Run as root in the host namespace. The server lives in an anonymous netns made with unshare(2)
(dies with the process, even on SIGKILL; parallel runs cannot collide) holding a TUN device
(10.98.0.1/24, 10.99.0.0/16 routed out of it) and a listener on 10.98.0.1:8080. Peer k is
10.99.0.k:40000+k with ISN 1000000*k+7; its segments are written into the TUN and everything
the server sends to 10.99.0.k is read back from it. Ops (t relative to t0, increasing):
  syn   {"peer", "ts": true, "mss": 1460, "wscale": 7, "sack": true}  (defaults shown; null omits)
  ack   {"peer", "ack": "good"|"bad"|"stray", "data": 0, "win": 502, "ts": <whether the peer's
        last SYN-ACK had TS; false for stray>}  good/bad: seq ISN+1, ack ISS+1 / ISS+5 (ISS of
        the peer's last SYN-ACK); stray: seq 123456, ack 654321. TS option: TSval 6000+k,
        TSecr = that SYN-ACK's TSval. "win" is the raw 16-bit window field.
  rst   {"peer"}: RST, seq ISN+1, no ACK.     accept: non-blocking accept() until EAGAIN.
  close_listener: close the listening socket.
Reply "seq" is relative to the first SYN-ACK ISS seen for that peer (raw before one), "ack" to
the peer's ISN (null when the ACK flag is clear); both as signed 32-bit differences.
Its helpers (netns.py) are synq-verify's: crates/synq-verify/kernel on PYTHONPATH.
"""
import ctypes, os, select, socket, struct, time

from netns import (check, csum, enter, libc, main, mibs, new_netns, open_tun, set_sysctls,
                   syn_recv_rows, tcp_info)

SERVER, PORT = "10.98.0.1", 8080
TCP_DEFER_ACCEPT = 9

def isn(k):
    return 1000000 * k + 7

def rel(x, base):
    """x - base as a signed 32-bit difference."""
    return (x - base + (1 << 31)) % (1 << 32) - (1 << 31)

def peer_addr(k):
    if not 1 <= int(k) <= 254:
        raise ValueError(f"peer {k}: must be 1..254")
    return "10.99.0.%d" % int(k)

def segment(k, flags, seq, ack, win, opts=b"", payload=b""):
    """IPv4 packet from peer k to the listener."""
    opts += b"\x01" * (-len(opts) % 4)
    src, dst = socket.inet_aton(peer_addr(k)), socket.inet_aton(SERVER)
    tcp = struct.pack("!HHIIBBHHH", 40000 + k, PORT, seq % (1 << 32), ack % (1 << 32),
                      (5 + len(opts) // 4) << 4, flags, win, 0, 0) + opts + payload
    tcp = tcp[:16] + struct.pack("!H", csum(src + dst + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)) + tcp[18:]
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), k, 0x4000, 64, 6, 0, src, dst)
    return hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:] + tcp

def syn_options(k, ts, mss, wscale, sack):
    """Linux's order: MSS, SACKOK+TS | NOP NOP TS | NOP NOP SACKOK, NOP WS."""
    o = b"" if mss is None else struct.pack("!BBH", 2, 4, mss)
    tso = struct.pack("!BBII", 8, 10, 5000 + k, 0)
    if ts:
        o += (b"\x04\x02" if sack else b"\x01\x01") + tso
    elif sack:
        o += b"\x01\x01\x04\x02"
    if wscale is not None:
        o += struct.pack("!BBBB", 1, 3, 3, wscale)
    return o

def flag_str(f):
    return "".join(c for c, bit in zip("SARFPUEC", (2, 16, 4, 1, 8, 32, 64, 128)) if f & bit)

def parse_opts(o):
    r = {"mss": None, "wscale": None, "sack": False, "ts": False, "tsval": None}
    i = 0
    while i < len(o):
        kind = o[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(o) or o[i + 1] < 2:
            break
        body = o[i + 2:i + o[i + 1]]
        if kind == 2 and len(body) == 2:
            r["mss"] = struct.unpack("!H", body)[0]
        elif kind == 3 and len(body) == 1:
            r["wscale"] = body[0]
        elif kind == 4:
            r["sack"] = True
        elif kind == 8 and len(body) == 8:
            r["ts"], r["tsval"] = True, struct.unpack("!I", body[:4])[0]
        i += o[i + 1]
    return r

class Capture:
    """Every TCP segment the server sends to a 10.99.0.k peer, read from the TUN fd."""
    def __init__(self, fd):
        self.fd, self.t0, self.replies = fd, None, []
        self.first_iss, self.last_sa = {}, {}  # peer -> ISS; peer -> (ISS, TSval)

    def handle(self, ip4, now):
        if len(ip4) < 20 or ip4[0] >> 4 != 4 or ip4[9] != 6 or ip4[16:19] != bytes([10, 99, 0]):
            return
        k, t = ip4[19], ip4[(ip4[0] & 15) * 4:]
        seq, ack, off, f = struct.unpack_from("!IIBB", t, 4)
        o = parse_opts(t[20:(off >> 4) * 4])
        if f & 0x12 == 0x12:
            self.first_iss.setdefault(k, seq)
            self.last_sa[k] = (seq, o["tsval"])
        if self.t0 is None:
            return
        self.replies.append(dict(
            t=round(now - self.t0, 4), peer=k, flags=flag_str(f),
            seq=rel(seq, self.first_iss[k]) if k in self.first_iss else seq,
            ack=rel(ack, isn(k)) if f & 0x10 else None, **o, len=len(t) - (off >> 4) * 4))

    def drain(self, timeout=0.0):
        if timeout > 0:
            select.select([self.fd], [], [], timeout)
        while True:
            try:
                ip4 = os.read(self.fd, 65535)
            except BlockingIOError:
                return
            self.handle(ip4, time.monotonic())

def wait_until(t, cap):
    while True:
        left = t - time.monotonic()
        if left <= 0:
            cap.drain()
            return
        cap.drain(min(left - 0.0015, 0.05) if left > 0.002 else 0)

def do_ack(step, cap, tun):
    k, kind = int(step["peer"]), step.get("ack", "good")
    if kind == "stray":
        seq, ack, tsecr = 123456, 654321, 0
        ts = step.get("ts", False)
    elif kind in ("good", "bad"):
        if k not in cap.last_sa:
            raise ValueError(f"ack {kind} for peer {k}: no SYN-ACK received yet")
        iss, tsecr = cap.last_sa[k]
        seq, ack = isn(k) + 1, iss + (1 if kind == "good" else 5)
        ts = step.get("ts", tsecr is not None)
    else:
        raise ValueError(f"ack must be good, bad or stray, not {kind!r}")
    opts = struct.pack("!BBBBII", 1, 1, 8, 10, 6000 + k, tsecr or 0) if ts else b""
    n = int(step.get("data", 0))
    os.write(tun, segment(k, 0x18 if n else 0x10, seq, ack, int(step.get("win", 502)), opts,
                          b"x" * n))

def do_accept(lsock, keep, t):
    out = []
    while True:
        try:
            c, addr = lsock.accept()
        except BlockingIOError:
            return out
        keep.append(c)  # children stay open until the end
        info = tcp_info(c)
        o, w = info[5], info[6]
        out.append({"t": round(t, 4), "peer": int(addr[0].split(".")[3]),
                    "snd_mss": struct.unpack_from("=I", info, 16)[0],
                    "snd_wscale": w & 15, "rcv_wscale": w >> 4,
                    "ts": bool(o & 1), "sack": bool(o & 2), "wscale": bool(o & 4)})

def run(cfg, home, fds, socks):
    steps, end = cfg.get("steps", []), float(cfg["end"])
    last = 0.0
    for s in steps:
        if float(s["t"]) < last or float(s["t"]) > end:
            raise ValueError("step times must increase and not exceed end")
        last = float(s["t"])
        if s["op"] not in ("syn", "ack", "rst", "accept", "close_listener"):
            raise ValueError(f"unknown op {s['op']!r}")
        if "peer" in s:
            peer_addr(s["peer"])
    dev = f"rq{os.getpid()}"
    S = new_netns(home)
    fds.append(S)
    enter(S)
    # The thread stays in S from here on: /proc/thread-self/net/* is S's view.
    if os.path.exists("/proc/sys/net/ipv6"):
        set_sysctls({"net.ipv6.conf.default.disable_ipv6": 1})
    tun = open_tun(dev, SERVER)
    fds.append(tun)
    set_sysctls(dict(cfg.get("sysctls") or {}))
    cap = Capture(tun)
    lsock = socket.socket()
    socks.append(lsock)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((SERVER, PORT))
    defer_read = None
    if float(cfg.get("defer_accept") or 0) > 0:
        lsock.setsockopt(socket.IPPROTO_TCP, TCP_DEFER_ACCEPT, int(cfg["defer_accept"]))
        defer_read = lsock.getsockopt(socket.IPPROTO_TCP, TCP_DEFER_ACCEPT)
    check(libc.listen(lsock.fileno(), ctypes.c_int(int(cfg["backlog"]))), "listen")
    lsock.setblocking(False)
    accepted = []
    cap.drain()
    base = mibs()
    t0 = cap.t0 = time.monotonic()
    for s in steps:
        wait_until(t0 + float(s["t"]), cap)
        op, k = s["op"], int(s.get("peer", 0))
        if op == "syn":
            opts = syn_options(k, s.get("ts", True), s.get("mss", 1460), s.get("wscale", 7),
                               s.get("sack", True))
            os.write(tun, segment(k, 0x02, isn(k), 0, 64240, opts))
        elif op == "ack":
            do_ack(s, cap, tun)
        elif op == "rst":
            os.write(tun, segment(k, 0x04, isn(k) + 1, 0, 0))
        elif op == "accept":
            if lsock.fileno() < 0:
                raise ValueError("accept after close_listener")
            accepted += do_accept(lsock, socks, time.monotonic() - t0)
        else:
            lsock.close()
    wait_until(t0 + end, cap)
    # Snapshot.
    now = mibs()
    rows = syn_recv_rows(PORT)
    rq = sq = None
    if lsock.fileno() >= 0:
        rq, sq = struct.unpack_from("=II", tcp_info(lsock), 24)  # tcpi_unacked, tcpi_sacked
    cap.t0 = None  # nothing after `end` is reported
    with open("/proc/thread-self/net/dev") as f:
        row = next(l for l in f if l.strip().startswith(dev + ":"))
    if int(row.split(":", 1)[1].split()[11]):
        raise RuntimeError("tun dropped outgoing packets")
    return {"replies": cap.replies, "accepted": accepted, "syn_recv": rows,
            "recv_q": rq, "send_q": sq, "defer_accept_read": defer_read,
            "counters": {k: now[k] - base.get(k, 0) for k in sorted(now)}}

main(run)
