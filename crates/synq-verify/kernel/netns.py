"""Shared by the kernel-side scripts (backlog.py here; synq-sim's tests/kernel/requests.py and
synq-cli's tests/real/backlog_clients.py find it by path): anonymous network namespaces entered
with setns(2) by the one thread, iproute2 inside them, sysctls, the netns's Tcp/TcpExt counters
as nstat names them, SYN-RECV rows, a TUN device and checksums.
"""
import ctypes, fcntl, json, os, signal, socket, struct, subprocess, sys, time

NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)

def check(ret, what):
    if ret != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")

def enter(nsfd):
    check(libc.setns(nsfd, NEWNET), "setns")

def new_netns(home):
    """A fresh anonymous netns: returns an fd for it; the thread goes back to `home`."""
    check(libc.unshare(NEWNET), "unshare")
    fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    enter(home)
    return fd

def ip(cmds):
    """iproute2 commands in the current thread's netns (the child inherits it)."""
    subprocess.run(["ip", "-batch", "-"], input="\n".join(cmds) + "\n", text=True, check=True)

def wait_links(names):
    deadline = time.monotonic() + 5
    while True:
        out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
        rows = [l for l in out.splitlines() if l.split(":")[1].strip().split("@")[0] in names]
        if len(rows) == len(names) and all("LOWER_UP" in r and "qdisc noop" not in r for r in rows):
            return
        if time.monotonic() > deadline:
            raise RuntimeError("links not up: " + out)
        time.sleep(0.005)

def set_sysctls(values):
    for name, value in values.items():
        with open("/proc/sys/" + name.replace(".", "/"), "w") as f:
            f.write(str(value))

def mibs():
    """Tcp*/TcpExt* counters of the current thread's netns, named as nstat names them."""
    out = {}
    for fname, prefix in (("snmp", "Tcp"), ("netstat", "TcpExt")):
        with open("/proc/thread-self/net/" + fname) as f:
            lines = f.read().splitlines()
        for head, vals in zip(lines[::2], lines[1::2]):
            kind, _, names = head.partition(":")
            if kind == prefix:
                out.update({prefix + n: int(v) for n, v in zip(names.split(), vals.split()[1:])})
    return out

def syn_recv_rows(port):
    n = 0
    with open("/proc/thread-self/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            n += p[1].endswith(":%04X" % port) and p[3] == "03"
    return n

def tcp_info(sock):
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF

def main(run):
    cfg = json.loads(sys.argv[1])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    fds, socks = [], []
    try:
        out = run(cfg, home, fds, socks)
    finally:
        for s in socks:
            s.close()
        for fd in fds:
            os.close(fd)
        enter(home)
        os.close(home)
    print(json.dumps(out))

def open_tun(dev, server):
    """A TUN device `dev` in the current netns owning `server`/24, with 10.99.0.0/16 routed
    out of it (the spoofed peers), a long queue and no reverse-path filter."""
    tun = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(tun, 0x400454CA, struct.pack("16sH22x", dev.encode(), 0x1001))  # TUNSETIFF TUN|NO_PI
    set_sysctls({"net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.default.rp_filter": 0,
                 f"net.ipv4.conf.{dev}.rp_filter": 0})
    ip([f"link set {dev} txqueuelen 65536", f"addr add {server}/24 dev {dev}",
        f"link set {dev} up", "link set lo up", f"route add 10.99.0.0/16 dev {dev}"])
    wait_links([dev])
    return tun
