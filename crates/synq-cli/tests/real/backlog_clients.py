"""Kernel clients against a listener that never accepts, for tests/real_backlog.rs.

One client program drives both sides of the comparison. Both modes speak the same line
protocol on stdout/stdin: once set up they print {"ready": true} and wait for a line on stdin
(the test lets one point at a time through its connect phase); they print {"connected": true}
when the last client has started, and the result (one JSON line) at t0 + T.

  python3 backlog_clients.py synq '{"addr": "10.71.0.2", "port": P, "clients": C,
                                    "gap_ms": 1, "duration": T, "defer_ack": [i, ...]}'
      Run inside the namespace of a `synq serve --app hold` (ip netns exec). The clients
      connect from this namespace to addr:port. Result: {"clients": {...}, "timing": {...}}.
      Then it keeps every socket open until another line arrives on stdin (the test reads
      `synq stat` meanwhile) and prints {"released": seconds after t0} before closing them.

  python3 backlog_clients.py kernel '{"addr": ..., "peer": ..., "port": P, "backlog": B,
                                      "sysctls": {...}, "clients": C, "gap_ms": 1,
                                      "duration": T, "defer_ack": [...]}'
      A Linux listener on addr:port with listen(B) in an anonymous namespace S with the
      listener sysctls, the same clients in a second namespace K (default sysctls, like the
      namespace of a synq server) with address peer, a veth pair between (static ARP), as
      crates/synq-verify/kernel/backlog.py builds it. Result: {"clients", "timing",
      "listener": {"recv_q", "send_q", "syn_recv"}, "counters"}, the listener read as
      `ss -lnt` does (TCP_INFO tcpi_unacked / tcpi_sacked), SYN-RECV rows from /proc/net/tcp
      and S's MIB deltas under their nstat names.

Clients: C non-blocking sockets; client i connects at t0 + i*gap_ms, and never less than
gap_ms after client i-1 (a late start does not bunch the rest up). Clients whose connect()
would fall at or after T are not started. States at T come from TCP_INFO tcpi_state
(ESTABLISHED, SYN_SENT, anything else counts as failed). A client in `defer_ack` sets
TCP_DEFER_ACCEPT before connect(), which makes Linux delay the handshake's final ACK by the
delayed-ACK timer (TCP_DELACK_MAX, 200 ms): its SYN-ACK still arrives at once, the listener
sees the ACK later.

"timing" says whether the run met the experiment's premise, that the server answered (or
dropped) each SYN before the next client's SYN left: "overlaps" lists clients whose
connect() resolved (SYN-ACK or RST, seen as EPOLLOUT) only after the next client had started;
"resolve_ms" says how long each client's connect() took to resolve (null: not by T),
"max_resolve_ms" is the slowest; "last_connect_ms" when the last client started.
"""
import errno, json, os, select, socket, struct, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "synq-verify", "kernel"))
from netns import enter, ip, mibs, new_netns, set_sysctls, syn_recv_rows, tcp_info, wait_links  # noqa: E402

TCP_DEFER_ACCEPT = 9
COUNTERS = ["TcpPassiveOpens", "TcpAttemptFails", "TcpRetransSegs",
            "TcpExtListenOverflows", "TcpExtListenDrops", "TcpExtTCPReqQFullDrop",
            "TcpExtTCPReqQFullDoCookies", "TcpExtSyncookiesSent", "TcpExtSyncookiesRecv",
            "TcpExtSyncookiesFailed", "TcpExtTCPSynRetrans", "TcpExtTCPTimeouts",
            "TcpExtEmbryonicRsts"]


class Clients:
    """C client sockets, made in the calling thread's current namespace."""

    def __init__(self, cfg):
        self.n = int(cfg["clients"])
        self.gap = float(cfg.get("gap_ms", 1)) / 1000
        self.duration = float(cfg["duration"])
        defer = set(cfg.get("defer_ack") or [])
        self.socks = []
        for i in range(self.n):
            s = socket.socket()
            s.setblocking(False)
            if i in defer:
                s.setsockopt(socket.IPPROTO_TCP, TCP_DEFER_ACCEPT, 1)
            self.socks.append(s)
        self.ep = select.epoll()
        self.started, self.resolved = [], {}

    def close(self):
        self.ep.close()
        for s in self.socks:
            s.close()

    def _poll_until(self, t):
        """Record when pending connects resolve, until monotonic time t."""
        while True:
            left = t - time.monotonic()
            if left <= 0:
                return
            for fd, _ in self.ep.poll(left):
                self.resolved[fd] = time.monotonic()
                self.ep.unregister(fd)

    def run(self, addr, port, connected):
        """Connect on schedule, call `connected()` once the last client started; returns the
        clients' states and timing at t0 + duration."""
        self.t0 = t0 = time.monotonic()
        last = None
        for i, s in enumerate(self.socks):
            due = t0 + i * self.gap
            if last is not None:
                due = max(due, last + self.gap)
            if due - t0 >= self.duration:
                break
            self._poll_until(due)
            last = time.monotonic()
            e = s.connect_ex((addr, port))
            if e != errno.EINPROGRESS:
                raise OSError(e, "connect")
            self.ep.register(s.fileno(), select.EPOLLOUT)
            self.started.append((s, last))
        connected()
        self._poll_until(t0 + self.duration)
        t_snap = time.monotonic() - t0
        states = [tcp_info(s)[0] for s, _ in self.started]
        overlaps, slowest, resolve_ms = [], 0.0, []
        for i, (s, at) in enumerate(self.started):
            done = self.resolved.get(s.fileno())
            resolve_ms.append(None if done is None else round((done - at) * 1000, 3))
            if done is None:
                continue
            slowest = max(slowest, done - at)
            if i + 1 < len(self.started) and done > self.started[i + 1][1]:
                overlaps.append(i)
        return {
            "clients": {"established": states.count(1), "syn_sent": states.count(2),
                        "failed": sum(st not in (1, 2) for st in states),
                        "started": len(self.started)},
            "timing": {"overlaps": overlaps, "max_resolve_ms": round(slowest * 1000, 3),
                       "resolve_ms": resolve_ms,
                       "last_connect_ms": round((self.started[-1][1] - t0) * 1000, 3)
                       if self.started else None,
                       "snapshot_s": round(t_snap, 6)},
        }


def say(obj):
    print(json.dumps(obj), flush=True)


def handshake():
    """Tell the test the clients are ready; wait for its go."""
    say({"ready": True})
    sys.stdin.readline()


def synq_side(cfg):
    clients = Clients(cfg)
    try:
        handshake()
        out = clients.run(cfg["addr"], int(cfg["port"]), lambda: say({"connected": True}))
        say(out)
        sys.stdin.readline()
        say({"released": round(time.monotonic() - clients.t0, 6)})
    finally:
        clients.close()


def kernel_side(cfg):
    addr, peer, port = cfg["addr"], cfg["peer"], int(cfg["port"])
    pid = os.getpid()
    dev_s, dev_k = f"bc{pid}s", f"bc{pid}k"
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    fds, clients, lsock = [], None, None
    try:
        S = new_netns(home)
        fds.append(S)
        K = new_netns(home)
        fds.append(K)
        enter(S)
        ip([f"link add {dev_s} address 02:00:00:00:00:01 type veth peer name {dev_k} "
            f"address 02:00:00:00:00:02 netns /proc/{pid}/fd/{K}",
            f"addr add {addr}/24 dev {dev_s}", f"link set {dev_s} up", "link set lo up",
            f"neigh replace {peer} lladdr 02:00:00:00:00:02 dev {dev_s} nud permanent"])
        enter(K)
        ip([f"addr add {peer}/24 dev {dev_k}", f"link set {dev_k} up", "link set lo up",
            f"neigh replace {addr} lladdr 02:00:00:00:00:01 dev {dev_k} nud permanent"])
        wait_links([dev_k])
        clients = Clients(cfg)  # sockets of namespace K
        enter(S)
        wait_links([dev_s])
        set_sysctls(dict(cfg.get("sysctls") or {}))
        # The thread stays in S from here on: /proc/thread-self/net/* is S's view.
        lsock = socket.socket()
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((addr, port))
        lsock.listen(int(cfg["backlog"]))
        handshake()
        base = mibs()
        out = clients.run(addr, port, lambda: say({"connected": True}))
        now = mibs()
        rq, sq = struct.unpack_from("=II", tcp_info(lsock), 24)  # tcpi_unacked, tcpi_sacked
        out["listener"] = {"recv_q": rq, "send_q": sq, "syn_recv": syn_recv_rows(port)}
        out["counters"] = {k: now.get(k, 0) - base.get(k, 0) for k in COUNTERS}
        say(out)
    finally:
        if clients is not None:
            clients.close()
        if lsock is not None:
            lsock.close()
        for fd in fds:
            os.close(fd)
        enter(home)
        os.close(home)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("synq", "kernel"):
        sys.exit("usage: backlog_clients.py synq|kernel JSON")
    cfg = json.loads(sys.argv[2])
    (synq_side if sys.argv[1] == "synq" else kernel_side)(cfg)


main()
