"""Many concurrent kernel TCP clients against an echo server, each checking what comes back.

Usage: echo_clients.py HOST PORT CLIENTS BYTES TIMEOUT_S

Client k sends BYTES bytes of its own pattern (a 4093-byte block from random.Random(k),
repeated), half-closes, and reads until EOF, comparing every byte against what it sent as it
arrives; sending and receiving run at once so neither side's buffers fill up and stall.
Everything is bounded by TIMEOUT_S. Prints one JSON line:
{"clients": N, "intact": K, "sent": B, "received": B, "seconds": S, "errors": [...]}.
"""

import asyncio
import json
import random
import sys
import time

PERIOD = 4093  # prime, so no client's stream lines up with 2^k-sized chunks
CHUNK = 65536


def pattern(k):
    block = random.Random(1_000_003 * k + 17).randbytes(PERIOD)
    reps = CHUNK // PERIOD + 2
    return block * reps  # any CHUNK-long window starting below PERIOD fits


async def client(k, host, port, size, stats):
    big = pattern(k)
    reader, writer = await asyncio.open_connection(host, port)

    async def send():
        off = 0
        while off < size:
            n = min(CHUNK, size - off)
            start = off % PERIOD
            writer.write(big[start:start + n])
            await writer.drain()
            off += n
            stats["sent"] += n
        writer.write_eof()

    async def receive():
        off = 0
        while True:
            chunk = await reader.read(CHUNK)
            if not chunk:
                break
            if off + len(chunk) > size:
                raise AssertionError("client %d: %d bytes back, more than the %d sent"
                                     % (k, off + len(chunk), size))
            start = off % PERIOD
            if chunk != big[start:start + len(chunk)]:
                exp = big[start:start + len(chunk)]
                i = next(i for i in range(len(chunk)) if chunk[i] != exp[i])
                raise AssertionError("client %d: byte %d is %d, sent %d"
                                     % (k, off + i, chunk[i], exp[i]))
            off += len(chunk)
            stats["received"] += len(chunk)
        if off != size:
            raise AssertionError("client %d: EOF after %d of %d bytes" % (k, off, size))

    try:
        await asyncio.gather(send(), receive())
    finally:
        writer.close()


async def main():
    host, port = sys.argv[1], int(sys.argv[2])
    clients, size, limit = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    stats = {"sent": 0, "received": 0}
    t0 = time.monotonic()
    tasks = [asyncio.ensure_future(client(k, host, port, size, stats)) for k in range(clients)]
    done, pending = await asyncio.wait(tasks, timeout=limit)
    for t in pending:
        t.cancel()
    errors = []
    intact = 0
    for k, t in enumerate(tasks):
        if t in pending:
            errors.append("client %d: not done after %.0f s" % (k, limit))
        elif t.exception() is not None:
            errors.append("client %d: %r" % (k, t.exception()))
        else:
            intact += 1
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    print(json.dumps({
        "clients": clients,
        "intact": intact,
        "sent": stats["sent"],
        "received": stats["received"],
        "seconds": round(time.monotonic() - t0, 3),
        "errors": errors[:10],
    }))


asyncio.run(main())
