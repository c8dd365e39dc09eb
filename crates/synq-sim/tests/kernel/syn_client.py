"""Linux's own TCP client against a silent server, inside a private network namespace.

Run as `unshare -n python3 syn_client.py NAME=VALUE...`: sets the sysctls, routes
10.99.0.0/16 out of lo (looped-back packets to a non-local address are discarded, so the
SYNs vanish without an RST), connects, and timestamps every SYN leaving lo with an
AF_PACKET socket. Prints one JSON object: SYN times and when connect() failed.
"""
import errno, json, select, socket, subprocess, sys, time

def main():
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "route", "add", "10.99.0.0/16", "dev", "lo"], check=True)
    for kv in sys.argv[1:]:
        name, value = kv.split("=", 1)
        with open("/proc/sys/" + name.replace(".", "/"), "w") as f:
            f.write(value)
    cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    cap.bind(("lo", 0))
    cap.setblocking(False)
    c = socket.socket()
    c.setblocking(False)
    t0 = time.monotonic()
    try:
        c.connect(("10.99.0.5", 80))
    except BlockingIOError:
        pass
    syns, fail, err = [], None, None
    deadline = t0 + 300
    while time.monotonic() < deadline:
        r, w, _ = select.select([cap], [c], [], 0.5)
        now = time.monotonic()
        while cap in r:
            try:
                data, addr = cap.recvfrom(65535)
            except BlockingIOError:
                break
            if addr[2] != socket.PACKET_OUTGOING:
                continue
            ip = data[14:]
            if len(ip) < 40 or ip[0] >> 4 != 4 or ip[9] != 6:
                continue
            tcp = ip[(ip[0] & 15) * 4:]
            if ip[16:20] == socket.inet_aton("10.99.0.5") and tcp[13] & 0x12 == 0x02:
                syns.append(now - t0)
        if c in w:
            e = c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            fail, err = now - t0, errno.errorcode.get(e, str(e))
            break
    print(json.dumps({"syns": syns, "fail": fail, "errno": err}))

main()
