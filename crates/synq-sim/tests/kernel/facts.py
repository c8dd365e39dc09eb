"""Facts from the running kernel, inside a private network namespace (run under unshare -n).

  facts.py sysctls NAME...   -> {"NAME": "value" or null, ...} as a fresh namespace has them
  facts.py writes NAME=V...  -> [true or false, ...]: whether the kernel took each write, in order
  facts.py readback NAME=V... -> [value read back after each write, or null where it was
                                refused], in order
  facts.py shape TS          -> the SYN and SYN-ACK Linux sends on a 1500-byte-MTU loopback
                                with net.ipv4.tcp_timestamps=TS: window and option bytes
  facts.py tsoff             -> the TSvals of SYNs sent within milliseconds to 127.0.0.1:5000:
                                from 127.0.0.1:40001, again from it after an abort, from
                                127.0.0.1:40002 and from 127.0.0.2:40003
"""
import json, socket, struct, subprocess, sys

def sysctls(names):
    out = {}
    for n in names:
        try:
            with open("/proc/sys/" + n.replace(".", "/")) as f:
                out[n] = " ".join(f.read().split())
        except FileNotFoundError:
            out[n] = None
    return out

def writes(assignments):
    taken = []
    for a in assignments:
        name, value = a.split("=", 1)
        try:
            with open("/proc/sys/" + name.replace(".", "/"), "w") as f:
                f.write(value)
            taken.append(True)
        except OSError:
            taken.append(False)
    return taken

def readback(assignments):
    out = []
    for a in assignments:
        name, value = a.split("=", 1)
        path = "/proc/sys/" + name.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError:
            out.append(None)
            continue
        with open(path) as f:
            out.append(" ".join(f.read().split()))
    return out

def capture_lo(mtu=None):
    """Loopback up, a capture socket on it and a listener on 127.0.0.1:5000."""
    cmd = ["ip", "link", "set", "lo", "up"] + (["mtu", mtu] if mtu else [])
    subprocess.run(cmd, check=True)
    cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    cap.bind(("lo", 0))
    cap.settimeout(5)
    l = socket.socket()
    l.bind(("127.0.0.1", 5000))
    l.listen(8)
    return cap, l

def outgoing_syns(cap):
    """TCP headers (options included) of the SYNs and SYN-ACKs leaving on lo, as they come."""
    while True:
        d, a = cap.recvfrom(65535)
        if a[2] != socket.PACKET_OUTGOING:
            continue
        ip = d[14:]
        t = ip[(ip[0] & 15) * 4:]
        if ip[9] == 6 and t[13] & 0x02:
            yield t

def shape(ts):
    with open("/proc/sys/net/ipv4/tcp_timestamps", "w") as f:
        f.write(ts)
    cap, l = capture_lo("1500")
    c = socket.socket()
    c.connect(("127.0.0.1", 5000))
    got = {}
    for t in outgoing_syns(cap):
        kind = "synack" if t[13] & 0x10 else "syn"
        off = (t[12] >> 4) * 4
        got[kind] = {"window": struct.unpack("!H", t[14:16])[0], "options": t[20:off].hex()}
        if len(got) == 2:
            break
    got.update(sysctls(["net.ipv4.tcp_rmem", "net.core.rmem_max"]))
    return got

def syn_tsvals(cap, want):
    """TSvals of the next outgoing SYNs, by source port, until `want` ports are seen."""
    tsval = {}
    for t in outgoing_syns(cap):
        if t[13] & 0x10:
            continue
        sport = struct.unpack("!H", t[0:2])[0]
        off, i = (t[12] >> 4) * 4, 20
        while i < off and t[i] != 0:
            if t[i] == 1:
                i += 1
                continue
            if t[i] == 8:
                tsval[sport] = struct.unpack("!I", t[i + 2:i + 6])[0]
            i += max(t[i + 1], 2)
        if len(tsval) == want:
            return tsval

def tsoff():
    cap, l = capture_lo()
    def connect(src, port):
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.bind((src, port))
        c.connect(("127.0.0.1", 5000))
        return c
    first = connect("127.0.0.1", 40001)
    ts1 = syn_tsvals(cap, 1)[40001]
    first.close()  # linger 0: an RST, no TIME_WAIT, so the tuple can be used again
    l.accept()[0].close()
    again = connect("127.0.0.1", 40001)
    ts1b = syn_tsvals(cap, 1)[40001]
    others = [connect("127.0.0.1", 40002), connect("127.0.0.2", 40003)]
    ts = syn_tsvals(cap, 2)
    return {"tuple": [ts1, ts1b], "other_port": ts[40002], "other_host": ts[40003]}

if sys.argv[1] == "sysctls":
    print(json.dumps(sysctls(sys.argv[2:])))
elif sys.argv[1] == "writes":
    print(json.dumps(writes(sys.argv[2:])))
elif sys.argv[1] == "readback":
    print(json.dumps(readback(sys.argv[2:])))
elif sys.argv[1] == "tsoff":
    print(json.dumps(tsoff()))
else:
    print(json.dumps(shape(sys.argv[2])))
