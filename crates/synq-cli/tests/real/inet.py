"""Checksums shared by the raw-socket helpers (raw_segments.py, syn_flood.py)."""

import socket
import struct


def csum16(data):
    """The Internet checksum (RFC 1071) of `data`."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp_checksum(src, dst, segment):
    """The TCP checksum of `segment` (its checksum field zero) from `src` to `dst` (IPv4)."""
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(segment))
    return csum16(pseudo + segment)
