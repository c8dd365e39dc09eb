"""The kernel's ends of a synq-lossy transfer, run inside a namespace with
`ip netns exec NS python3 - COMMAND ...` (this script on standard input). Each prints one JSON line when done (the sink
first prints `ready` once it listens). Every loop ends by a deadline on CLOCK_MONOTONIC, which
is one clock for all namespaces, so the harness and both peers share it.

  sink ADDR PORT DEADLINE           accept one connection, read to EOF: bytes, sha256, eof_at
  send ADDR PORT BYTES SEED CC DEADLINE
                                    connect with congestion control CC, send BYTES seeded
                                    bytes, shut down writing, wait for the sink's close: t0
                                    (before connect), sha256, and the kernel's smoothed RTT
                                    sampled (TCP_INFO) while sending
  listen ADDR PORT DEADLINE         accept and close connections until DEADLINE
  probe ADDR PORT COUNT DEADLINE    COUNT connects, each timed: connect_us
"""
import hashlib, json, random, socket, struct, sys, time

CHUNK = 1 << 16


def mono():
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def left(deadline):
    """Seconds until the deadline, at least 1 ms so a timeout of 0 never means non-blocking."""
    return max(0.001, deadline - mono())


def tcp_info_rtt_us(s):
    # struct tcp_info: tcpi_rtt is the u32 at offset 68 (include/uapi/linux/tcp.h).
    raw = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return struct.unpack_from("I", raw, 68)[0]


def listener(addr, port):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(16)
    return ls


def sink(addr, port, deadline):
    ls = listener(addr, port)
    print("ready", flush=True)
    out = {"bytes": 0, "eof": False, "eof_at": None, "sha256": None, "error": None}
    h = hashlib.sha256()
    try:
        ls.settimeout(left(deadline))
        c, _ = ls.accept()
        buf = bytearray(1 << 18)
        while mono() < deadline:
            c.settimeout(left(deadline))
            try:
                k = c.recv_into(buf)
            except socket.timeout:
                break
            if k == 0:
                out["eof"], out["eof_at"] = True, mono()
                break
            out["bytes"] += k
            h.update(memoryview(buf)[:k])
        c.close()
    except OSError as e:
        out["error"] = f"{type(e).__name__}: {e}"
    out["sha256"] = h.hexdigest()
    print(json.dumps(out), flush=True)


def send(addr, port, nbytes, seed, cc, deadline):
    data = random.Random(seed).randbytes(nbytes)
    out = {"t0": None, "sent": 0, "sha256": hashlib.sha256(data).hexdigest(), "cc": None,
           "srtt_us": [], "peer_closed": False, "error": None}
    s = socket.socket()
    try:
        # Per socket: a namespace may only pick from the root namespace's allowed list, but
        # CAP_NET_ADMIN may set any loaded algorithm on its own socket.
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
        out["cc"] = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b"\0").decode()
        out["t0"] = mono()
        s.settimeout(left(deadline))
        s.connect((addr, port))
        view = memoryview(data)
        while out["sent"] < nbytes and mono() < deadline:
            s.settimeout(left(deadline))
            out["sent"] += s.send(view[out["sent"]:out["sent"] + CHUNK])
            out["srtt_us"].append(tcp_info_rtt_us(s))
        s.shutdown(socket.SHUT_WR)
        # The sink closes after EOF: wait for it, so the last data and the FIN were acked
        # (and counted) before the harness reads the counters.
        while mono() < deadline:
            s.settimeout(left(deadline))
            if not s.recv(CHUNK):
                out["peer_closed"] = True
                break
    except OSError as e:
        # At the deadline the sink closes (a reset, with data unread): that is no error.
        if mono() < deadline - 1.0:
            out["error"] = f"{type(e).__name__}: {e}"
    s.close()
    print(json.dumps(out), flush=True)


def listen(addr, port, deadline):
    ls = listener(addr, port)
    print("ready", flush=True)
    while mono() < deadline:
        ls.settimeout(left(deadline))
        try:
            c, _ = ls.accept()
            c.close()
        except socket.timeout:
            break


def probe(addr, port, count, deadline):
    out = {"connect_us": [], "error": None}
    for _ in range(count):
        if mono() >= deadline:
            break
        s = socket.socket()
        try:
            s.settimeout(left(deadline))
            t = mono()
            s.connect((addr, port))
            out["connect_us"].append((mono() - t) * 1e6)
        except OSError as e:
            out["error"] = f"{type(e).__name__}: {e}"
        s.close()
        # Let the previous connection's FIN exchange pass before the next SYN.
        time.sleep(0.002)
    print(json.dumps(out), flush=True)


def main(argv):
    cmd, addr, port = argv[0], argv[1], int(argv[2])
    if cmd == "sink":
        sink(addr, port, float(argv[3]))
    elif cmd == "send":
        send(addr, port, int(argv[3]), int(argv[4]), argv[5], float(argv[6]))
    elif cmd == "listen":
        listen(addr, port, float(argv[3]))
    elif cmd == "probe":
        probe(addr, port, int(argv[3]), float(argv[4]))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv[1:])
