"""System calls for synq pktdrill's kernel host, run inside the script's network namespace.

One JSON request per line on standard input, one JSON answer per line on standard output.
Sockets are kept per script fd (the number the script expects, not the real descriptor) and
are always non-blocking here: the runner decides what "would block" means for the script.

Answers: {"ok": value, ...} or {"err": "ENAME"}; {"fatal": text} for a request this server
does not understand (a bug in the runner, not a result of the call).
"""

import errno
import json
import os
import select
import socket
import struct
import subprocess
import sys

socks = {}
# The runner's temporary directory (argv[1]): a `congestion` file there says "when the
# namespace's default congestion control is A, use B" (the host does not let namespaces
# default to B, but root may set it per socket).
STATE_DIR = sys.argv[1] if len(sys.argv) > 1 else None
TCP_CONGESTION = 13

# struct tcp_info (include/uapi/linux/tcp.h): (name, offset, format); fields past the end of
# what this kernel returns are left out.
TCP_INFO_FIELDS = [
    ("tcpi_state", 0, "B"),
    ("tcpi_ca_state", 1, "B"),
    ("tcpi_retransmits", 2, "B"),
    ("tcpi_probes", 3, "B"),
    ("tcpi_backoff", 4, "B"),
    ("tcpi_options", 5, "B"),
    ("tcpi_rto", 8, "I"),
    ("tcpi_ato", 12, "I"),
    ("tcpi_snd_mss", 16, "I"),
    ("tcpi_rcv_mss", 20, "I"),
    ("tcpi_unacked", 24, "I"),
    ("tcpi_sacked", 28, "I"),
    ("tcpi_lost", 32, "I"),
    ("tcpi_retrans", 36, "I"),
    ("tcpi_fackets", 40, "I"),
    ("tcpi_last_data_sent", 44, "I"),
    ("tcpi_last_ack_sent", 48, "I"),
    ("tcpi_last_data_recv", 52, "I"),
    ("tcpi_last_ack_recv", 56, "I"),
    ("tcpi_pmtu", 60, "I"),
    ("tcpi_rcv_ssthresh", 64, "I"),
    ("tcpi_rtt", 68, "I"),
    ("tcpi_rttvar", 72, "I"),
    ("tcpi_snd_ssthresh", 76, "I"),
    ("tcpi_snd_cwnd", 80, "I"),
    ("tcpi_advmss", 84, "I"),
    ("tcpi_reordering", 88, "I"),
    ("tcpi_rcv_rtt", 92, "I"),
    ("tcpi_rcv_space", 96, "I"),
    ("tcpi_total_retrans", 100, "I"),
    ("tcpi_pacing_rate", 104, "Q"),
    ("tcpi_max_pacing_rate", 112, "Q"),
    ("tcpi_bytes_acked", 120, "Q"),
    ("tcpi_bytes_received", 128, "Q"),
    ("tcpi_segs_out", 136, "I"),
    ("tcpi_segs_in", 140, "I"),
    ("tcpi_notsent_bytes", 144, "I"),
    ("tcpi_min_rtt", 148, "I"),
    ("tcpi_data_segs_in", 152, "I"),
    ("tcpi_data_segs_out", 156, "I"),
    ("tcpi_delivery_rate", 160, "Q"),
    ("tcpi_busy_time", 168, "Q"),
    ("tcpi_rwnd_limited", 176, "Q"),
    ("tcpi_sndbuf_limited", 184, "Q"),
    ("tcpi_delivered", 192, "I"),
    ("tcpi_delivered_ce", 196, "I"),
    ("tcpi_bytes_sent", 200, "Q"),
    ("tcpi_bytes_retrans", 208, "Q"),
    ("tcpi_dsack_dups", 216, "I"),
    ("tcpi_reord_seen", 220, "I"),
    ("tcpi_rcv_ooopack", 224, "I"),
    ("tcpi_snd_wnd", 228, "I"),
    ("tcpi_rcv_wnd", 232, "I"),
    ("tcpi_rehash", 236, "I"),
    ("tcpi_total_rto", 240, "H"),
    ("tcpi_total_rto_recoveries", 242, "H"),
    ("tcpi_total_rto_time", 244, "I"),
]
TCP_INFO = 11
SO_MEMINFO = 55
SK_MEMINFO = [
    "SK_MEMINFO_RMEM_ALLOC",
    "SK_MEMINFO_RCVBUF",
    "SK_MEMINFO_WMEM_ALLOC",
    "SK_MEMINFO_SNDBUF",
    "SK_MEMINFO_FWD_ALLOC",
    "SK_MEMINFO_WMEM_QUEUED",
    "SK_MEMINFO_OPTMEM",
    "SK_MEMINFO_BACKLOG",
    "SK_MEMINFO_DROPS",
]


class Fatal(Exception):
    pass


def get(fd):
    s = socks.get(fd)
    if s is None:
        raise OSError(errno.EBADF, "no such script fd")
    return s


def addr(s, host, port):
    # An AF_INET6 socket reaches IPv4 peers through mapped addresses.
    if s.family == socket.AF_INET6 and ":" not in host:
        host = "::ffff:" + host
    return (host, port)


def port_of(f):
    try:
        return f()[1]
    except OSError:
        return None


def ports(s):
    return [port_of(s.getsockname), port_of(s.getpeername)]


def replace(fd, s):
    old = socks.pop(fd, None)
    if old is not None:
        old.close()
    socks[fd] = s


def opt_bytes(req):
    if "linger" in req:
        return struct.pack("ii", req["linger"][0], req["linger"][1])
    if "str" in req:
        return req["str"].encode()
    return struct.pack("i", req["int"])


def tcp_info(s):
    out = {}
    try:
        b = s.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 256)
    except OSError:
        return out
    for name, off, fmt in TCP_INFO_FIELDS:
        size = struct.calcsize(fmt)
        if off + size <= len(b):
            out[name] = struct.unpack_from(fmt, b, off)[0]
    if len(b) > 6:
        out["tcpi_snd_wscale"] = b[6] & 15
        out["tcpi_rcv_wscale"] = b[6] >> 4
    try:
        m = s.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 4 * len(SK_MEMINFO))
        for i, name in enumerate(SK_MEMINFO):
            if 4 * i + 4 <= len(m):
                out[name] = struct.unpack_from("I", m, 4 * i)[0]
    except OSError:
        pass
    return out


def congestion(s):
    if STATE_DIR is None:
        return
    try:
        with open(STATE_DIR + "/congestion") as f:
            have, want = f.read().split()
        with open("/proc/sys/net/ipv4/tcp_congestion_control") as f:
            cur = f.read().strip()
    except (OSError, ValueError):
        return
    if cur == have:
        try:
            s.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, want.encode())
        except OSError:
            pass


def handle(req):
    op = req["op"]
    if op == "socket":
        s = socket.socket(req["family"], socket.SOCK_STREAM, req.get("proto", 0))
        s.setblocking(False)
        congestion(s)
        replace(req["fd"], s)
        return {"ok": req["fd"]}
    if op == "poll":
        p = select.poll()
        revents = []
        regs = {}
        for fd, events in req["items"]:
            s = socks.get(fd)
            if s is None:
                continue
            regs[s.fileno()] = regs.get(s.fileno(), 0) | events
        for real, events in regs.items():
            p.register(real, events)
        ready = dict(p.poll(0))
        for fd, events in req["items"]:
            s = socks.get(fd)
            if fd < 0:
                revents.append(0)  # poll(2) skips negative fds
            elif s is None:
                revents.append(select.POLLNVAL)
            else:
                r = ready.get(s.fileno(), 0)
                revents.append(r & (events | select.POLLERR | select.POLLHUP | select.POLLNVAL))
        return {"ok": 0, "revents": revents}
    if op == "sh":
        # A backtick command; it runs in this namespace like everything here.
        env = dict(os.environ)
        env.update(req["env"])
        try:
            p = subprocess.run(
                ["/bin/sh", "-c", req["cmd"]],
                cwd=req["cwd"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                timeout=req["timeout"],
            )
        except subprocess.TimeoutExpired:
            return {"err": "ETIMEDOUT"}
        out = (p.stdout + p.stderr).decode(errors="replace")
        return {"ok": p.returncode if p.returncode >= 0 else 128 - p.returncode, "out": out}
    if op == "exit":
        for s in socks.values():
            s.close()
        socks.clear()
        return {"ok": 0}
    s = get(req["fd"])
    if op == "bind":
        s.bind(addr(s, req["addr"], req["port"]))
        return {"ok": 0}
    if op == "listen":
        # Python turns a negative backlog into 0; the kernel reads it as unsigned, so
        # above somaxconn (capped to it), as INT_MAX is.
        backlog = req["backlog"]
        s.listen(backlog if backlog >= 0 else 0x7FFFFFFF)
        return {"ok": 0, "ports": ports(s)}
    if op == "accept":
        c, _ = s.accept()
        c.setblocking(False)
        replace(req["newfd"], c)
        return {"ok": req["newfd"], "ports": ports(c)}
    if op == "connect":
        e = s.connect_ex(addr(s, req["addr"], req["port"]))
        res = {"ok": 0} if e == 0 else {"err": errno.errorcode.get(e, "EIO")}
        res["ports"] = [port_of(s.getsockname), req["port"]]
        return res
    if op == "connect_done":
        # A blocking connect() still in progress: done once writable (or failed).
        p = select.poll()
        p.register(s.fileno(), select.POLLOUT)
        if not p.poll(0):
            return {"pending": True}
        e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        return {"ok": 0} if e == 0 else {"err": errno.errorcode.get(e, "EIO")}
    if op == "send":
        return {"ok": s.send(bytes(req["len"]), req["flags"])}
    if op == "recv":
        return {"ok": len(s.recv(req["len"], req["flags"]))}
    if op == "close":
        del socks[req["fd"]]
        s.close()
        return {"ok": 0}
    if op == "shutdown":
        s.shutdown(req["how"])
        return {"ok": 0}
    if op == "setsockopt":
        s.setsockopt(req["level"], req["name"], opt_bytes(req))
        return {"ok": 0}
    if op == "getsockopt":
        kind = req["kind"]
        if kind == "linger":
            on, secs = struct.unpack("ii", s.getsockopt(req["level"], req["name"], 8))
            return {"ok": 0, "linger": [on, secs]}
        if kind == "str":
            b = s.getsockopt(req["level"], req["name"], 64)
            return {"ok": 0, "str": b.split(b"\0")[0].decode(errors="replace")}
        b = s.getsockopt(req["level"], req["name"], 4)
        return {"ok": 0, "int": struct.unpack("i", b.ljust(4, b"\0")[:4])[0]}
    if op == "info":
        return {"ok": 0, "info": tcp_info(s)}
    raise Fatal("unknown request " + op)


def main():
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        req = {}
        try:
            req = json.loads(line)
            res = handle(req)
        except OSError as e:
            res = {"err": errno.errorcode.get(e.errno, "EIO")}
        except (Fatal, KeyError, TypeError, ValueError, OverflowError) as e:
            res = {"fatal": repr(e)}
        print(json.dumps(res), flush=True)
        if req.get("op") == "exit":
            break


main()
