"""Listen-backlog experiment against the running kernel; prints one JSON object.

  python3 backlog.py '{"scenario": "overflow"|"synflood", "backlog": B, "sysctls": {...},
                       "clients": C, "gap_ms": 1, "accept_after": false,   # overflow
                       "syns": N, "rate": null,                            # synflood
                       "duration": SECONDS}'

Run as root in the host namespace. The server netns S (and for overflow the client netns C) are
anonymous namespaces made with unshare(2) and entered with setns(2) by this one thread, so they
and their devices die with the process, even on SIGKILL, and parallel runs cannot collide.
overflow: veth S 10.98.0.1 <-> C 10.98.0.2 (static ARP); C non-blocking kernel clients connect()
at t0 + i*gap_ms to a listener on 10.98.0.1:8080; SYN-ACKs counted by an AF_PACKET socket on the
S side (outgoing frames). synflood: TUN in S (10.98.0.1/24, 10.99.0.0/16 routed out of it); N
crafted SYNs from distinct 10.99.x.y sources written into it (all at t0, or `rate` per second);
the SYN-ACKs are read back from it and never answered. At t0 + duration: listener queues
(TCP_INFO), SYN-RECV rows of port 8080 (/proc/net/tcp), S's MIB deltas and the client states;
then, if accept_after, accept() until EAGAIN. Clients/SYNs due at or after `duration` are never
started (and not counted). `lag` is how far (seconds) the latest connect(), SYN write or the
snapshot fell behind its schedule: the caller trusts a run only if it stayed small.
Embedded in synq-verify (crates/synq-verify/src/kernel.rs) and run from a temporary copy.
"""
import ctypes, errno, os, random, select, socket, struct, time

from netns import (check, csum, enter, ip, libc, main, mibs, new_netns, open_tun,
                   set_sysctls, syn_recv_rows, tcp_info, wait_links)

SERVER, CLIENT, PORT = "10.98.0.1", "10.98.0.2", 8080
COUNTERS = ["TcpPassiveOpens", "TcpAttemptFails", "TcpRetransSegs", "TcpOutSegs",
            "TcpExtListenOverflows", "TcpExtListenDrops", "TcpExtTCPReqQFullDrop",
            "TcpExtTCPReqQFullDoCookies", "TcpExtSyncookiesSent", "TcpExtSyncookiesRecv",
            "TcpExtSyncookiesFailed", "TcpExtTCPSynRetrans", "TcpExtTCPTimeouts",
            "TcpExtEmbryonicRsts", "TcpExtTCPDeferAcceptDrop"]

def tcp_flags(ip4):
    """TCP flags of an IPv4 TCP packet with source port PORT, else None."""
    if len(ip4) < 20 or ip4[0] >> 4 != 4 or ip4[9] != 6:
        return None
    t = ip4[(ip4[0] & 15) * 4:]
    if len(t) < 14 or struct.unpack("!H", t[:2])[0] != PORT:
        return None
    return t[13]

def make_syn(i):
    """SYN i: source 10.99.x.y:10000+i, shaped like a Linux client's (MSS, SACKOK, TS, NOP, WS)."""
    src, dst = socket.inet_aton("10.99.%d.%d" % (1 + i // 250, 1 + i % 250)), socket.inet_aton(SERVER)
    opts = struct.pack("!BBHBBBBIIBBBB", 2, 4, 1460, 4, 2, 8, 10, random.getrandbits(32), 0, 1, 3, 3, 7)
    tcp = struct.pack("!HHIIBBHHH", 10000 + i, PORT, random.getrandbits(32), 0, 10 << 4, 0x02,
                      64240, 0, 0) + opts
    tcp = tcp[:16] + struct.pack("!H", csum(src + dst + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)) + tcp[18:]
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), random.getrandbits(16), 0x4000, 64, 6, 0,
                      src, dst)
    return hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:] + tcp

class Capture:
    """Counts SYN-ACKs (and RSTs) the server sends: from an AF_PACKET socket or a TUN fd."""
    def __init__(self, fd, read):
        self.fd, self.read, self.synacks, self.rsts, self.counting = fd, read, 0, 0, False

    def drain(self, timeout=0.0):
        if timeout > 0:
            select.select([self.fd], [], [], timeout)
        while True:
            try:
                ip4 = self.read()
            except BlockingIOError:
                return
            flags = None if ip4 is None else tcp_flags(ip4)
            if self.counting and flags is not None:
                self.synacks += flags & 0x16 == 0x12
                self.rsts += bool(flags & 0x04)

def wait_until(t, cap):
    while True:
        left = t - time.monotonic()
        if left <= 0:
            return
        if left > 0.002:
            cap.drain(min(left - 0.0015, 0.05))
        else:
            cap.drain()

def listen(sock, backlog):
    check(libc.listen(sock.fileno(), ctypes.c_int(backlog)), "listen")

def run(cfg, home, fds, socks):
    scenario, sysctls = cfg["scenario"], dict(cfg.get("sysctls") or {})
    if scenario not in ("overflow", "synflood"):
        raise ValueError("scenario must be overflow or synflood")
    duration, pid = float(cfg["duration"]), os.getpid()
    dev_s, dev_c = f"bl{pid}s", f"bl{pid}c"
    S = new_netns(home)
    fds.append(S)
    clients = []
    if scenario == "overflow":
        C = new_netns(home)
        fds.append(C)
        enter(S)
        ip([f"link add {dev_s} address 02:00:00:00:00:01 type veth peer name {dev_c} "
            f"address 02:00:00:00:00:02 netns /proc/{pid}/fd/{C}",
            f"addr add {SERVER}/24 dev {dev_s}", f"link set {dev_s} up", "link set lo up",
            f"neigh replace {CLIENT} lladdr 02:00:00:00:00:02 dev {dev_s} nud permanent"])
        enter(C)
        ip([f"addr add {CLIENT}/24 dev {dev_c}", f"link set {dev_c} up", "link set lo up",
            f"neigh replace {SERVER} lladdr 02:00:00:00:00:01 dev {dev_c} nud permanent"])
        set_sysctls(sysctls)
        wait_links([dev_c])
        for _ in range(int(cfg["clients"])):
            c = socket.socket()
            socks.append(c)
            c.setblocking(False)
            clients.append(c)
        enter(S)
        wait_links([dev_s])
        set_sysctls(sysctls)
        pk = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
        socks.append(pk)
        pk.setsockopt(socket.SOL_SOCKET, 33, 1 << 23)  # SO_RCVBUFFORCE
        pk.bind((dev_s, 0))
        pk.setblocking(False)

        def read_packet():
            data, addr = pk.recvfrom(65535)
            ok = addr[2] == socket.PACKET_OUTGOING and data[12:14] == b"\x08\x00"
            return data[14:] if ok else None
        cap = Capture(pk, read_packet)
    else:
        enter(S)
        tun = open_tun(dev_s, SERVER)
        fds.append(tun)
        set_sysctls(sysctls)
        cap = Capture(tun, lambda: os.read(tun, 65535))
        syns = [make_syn(i) for i in range(int(cfg["syns"]))]
        if len(syns) > 55000:
            raise ValueError("at most 55000 syns")
    # The thread stays in S from here on: /proc/thread-self/net/* is S's view.
    lsock = socket.socket()
    socks.append(lsock)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((SERVER, PORT))
    listen(lsock, int(cfg["backlog"]))
    cap.drain()
    base = mibs()
    cap.counting = True
    started = []  # clients whose connect() was due before the snapshot
    lag = 0.0
    t0 = time.monotonic()
    if scenario == "overflow":
        gap = float(cfg.get("gap_ms", 1)) / 1000
        for i, c in enumerate(clients):
            if i * gap >= duration:
                break
            wait_until(t0 + i * gap, cap)
            started.append(c)
            e = c.connect_ex((SERVER, PORT))
            if e != errno.EINPROGRESS:
                raise OSError(e, "connect")
            lag = max(lag, time.monotonic() - (t0 + i * gap))
    else:
        rate = cfg.get("rate")
        for i, pkt in enumerate(syns):
            if rate:
                if i / float(rate) >= duration:
                    break
                wait_until(t0 + i / float(rate), cap)
            os.write(tun, pkt)
            lag = max(lag, time.monotonic() - (t0 + (i / float(rate) if rate else 0)))
    wait_until(t0 + duration, cap)
    # Snapshot.
    t_snap = time.monotonic() - t0
    cap.drain()
    now = mibs()
    rq, sq = struct.unpack_from("=II", tcp_info(lsock), 24)  # tcpi_unacked, tcpi_sacked
    rows = syn_recv_rows(PORT)
    states = [tcp_info(c)[0] for c in started]
    accepted = 0
    if cfg.get("accept_after"):
        lsock.setblocking(False)
        while True:
            try:
                a, _ = lsock.accept()
            except BlockingIOError:
                break
            a.close()
            accepted += 1
    if scenario == "overflow":
        pk_stats = struct.unpack("=II", pk.getsockopt(263, 6, 8))  # PACKET_STATISTICS
        if pk_stats[1]:
            raise RuntimeError(f"capture dropped {pk_stats[1]} frames")
    else:
        with open("/proc/thread-self/net/dev") as f:
            row = next(l for l in f if l.strip().startswith(dev_s + ":"))
        if int(row.split(":", 1)[1].split()[11]):
            raise RuntimeError("tun dropped outgoing packets")
    return {
        "listener": {"recv_q": rq, "send_q": sq, "syn_recv": rows},
        "clients": {"established": states.count(1), "syn_sent": states.count(2),
                    "failed": sum(s not in (1, 2) for s in states)},
        "accepted_after": accepted,
        "synacks_sent": cap.synacks,
        "counters": {k: now.get(k, 0) - base.get(k, 0) for k in COUNTERS},
        "t_snapshot": round(t_snap, 6),
        "lag": round(max(lag, t_snap - duration), 6),
    }

main(run)
