"""Send one malformed TCP/IPv4 packet through a raw socket (hand-built IPv4 header).

Usage: raw_segments.py SRC DST PORT CASE, CASE one of:
  csum     a 20-byte SYN whose checksum is wrong
  trunc    an IP payload of 8 bytes: less than a TCP header
  offset   a 20-byte SYN with data offset 2 (below the minimum 5), checksum right
  garbage  48 fixed pseudo-random bytes as protocol 6 (data offset 9 fits, checksum wrong)

Prints one JSON line: {"case": ..., "ip_payload": N}. The kernel fills in the IP total
length and header checksum (IPPROTO_RAW implies IP_HDRINCL).
"""

import json
import socket
import struct
import sys

from inet import tcp_checksum


def tcp_header(sport, dport, offset_words, checksum=0):
    # seq 1000, ack 0, flags SYN, window 65535, urgent 0
    return struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, offset_words << 4, 0x02, 65535, checksum, 0)


def with_checksum(src, dst, seg, wrong=False):
    c = tcp_checksum(src, dst, seg[:16] + b"\0\0" + seg[18:])
    if wrong:
        c ^= 0x0001  # never maps 0x0000 to 0xffff, its ones'-complement equal
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def payload(case, src, dst, port):
    if case == "csum":
        return with_checksum(src, dst, tcp_header(40001, port, 5), wrong=True)
    if case == "trunc":
        return tcp_header(40002, port, 5)[:8]
    if case == "offset":
        return with_checksum(src, dst, tcp_header(40003, port, 2))
    if case == "garbage":
        g = bytes((i * 73 + 41) % 256 for i in range(48))
        assert g[12] >> 4 == 9 and 9 * 4 <= len(g)
        assert tcp_checksum(src, dst, g) != 0, "the garbage happens to carry a valid checksum"
        return g
    raise SystemExit("unknown case %r" % case)


def main():
    src, dst, port, case = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    body = payload(case, src, dst, port)
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45, 0, 20 + len(body), 0x1234, 0x4000, 64, 6, 0,
        socket.inet_aton(src), socket.inet_aton(dst),
    )
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.sendto(ip + body, (dst, 0))
    s.close()
    print(json.dumps({"case": case, "ip_payload": len(body)}))


main()
