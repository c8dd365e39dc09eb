"""Send spoofed SYNs through a raw socket: the kernel routes them into synq's TUN device.

Usage: syn_flood.py PREFIX DST PORT COUNT SECONDS
  PREFIX   the first three octets of the spoofed sources, e.g. 10.71.0 (hosts 10-250)
  COUNT    SYNs to send at most; SECONDS bounds the run whatever COUNT is

Sources and ports come from a fixed-seed generator; nobody answers the SYN-ACKs (the kernel
drops them: the sources are not its own). Prints one JSON line: {"sent": N, "secs": T}.
"""

import json
import random
import socket
import struct
import sys
import time

from inet import tcp_checksum


def syn(src, dst, sport, dport, seq):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x02, 64240, 0, 0)
    tcp = tcp[:16] + struct.pack("!H", tcp_checksum(src, dst, tcp)) + tcp[18:]
    # IPv4 header: the kernel fills in the total length, id and checksum (IP_HDRINCL).
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 0, 0, 0, 64, 6, 0, socket.inet_aton(src), socket.inet_aton(dst)
    )
    return ip + tcp


def main():
    prefix, dst, port, count, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    rng = random.Random(7)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    start = time.monotonic()
    sent = 0
    while sent < count and time.monotonic() - start < secs:
        src = "%s.%d" % (prefix, rng.randint(10, 250))
        pkt = syn(src, dst, rng.randint(1024, 65535), port, rng.getrandbits(32))
        try:
            s.sendto(pkt, (dst, 0))
            sent += 1
        except BlockingIOError:
            time.sleep(0.001)
    print(json.dumps({"sent": sent, "secs": round(time.monotonic() - start, 3)}))


main()
