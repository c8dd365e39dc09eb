"""Facts from the running kernel, inside a private network namespace (run under unshare -n).

  facts.py sysctls NAME...   -> {"NAME": "value" or null, ...} as a fresh namespace has them
  facts.py shape TS          -> the SYN and SYN-ACK Linux sends on a 1500-byte-MTU loopback
                                with net.ipv4.tcp_timestamps=TS: window and option bytes
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

def shape(ts):
    subprocess.run(["ip", "link", "set", "lo", "up", "mtu", "1500"], check=True)
    with open("/proc/sys/net/ipv4/tcp_timestamps", "w") as f:
        f.write(ts)
    cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    cap.bind(("lo", 0))
    cap.settimeout(5)
    l = socket.socket()
    l.bind(("127.0.0.1", 5000))
    l.listen(5)
    c = socket.socket()
    c.connect(("127.0.0.1", 5000))
    got = {}
    while len(got) < 2:
        d, a = cap.recvfrom(65535)
        if a[2] != socket.PACKET_OUTGOING:
            continue
        ip = d[14:]
        t = ip[(ip[0] & 15) * 4:]
        if ip[9] != 6 or not t[13] & 0x02:
            continue
        kind = "synack" if t[13] & 0x10 else "syn"
        off = (t[12] >> 4) * 4
        got[kind] = {"window": struct.unpack("!H", t[14:16])[0], "options": t[20:off].hex()}
    got.update(sysctls(["net.ipv4.tcp_rmem", "net.core.rmem_max"]))
    return got

if sys.argv[1] == "sysctls":
    print(json.dumps(sysctls(sys.argv[2:])))
else:
    print(json.dumps(shape(sys.argv[2])))
