#!/usr/bin/env python3
"""Code footprint of a callgrind run: the 64-byte lines of machine code it executed.

Usage: code_footprint.py CALLGRIND_OUT FUNC [TIMES]

CALLGRIND_OUT comes from `valgrind --tool=callgrind --dump-instr=yes ...`. The unit of
work is one call of a function whose name ends with FUNC, TIMES units a call (default 1):
for synq's handshakes `Stack::connect`, for smoltcp's `smol::handshakes::{{closure}}` 16.

Prints the instructions per unit, the code lines executed at all, and the lines that run
at least half an instruction per unit: the code a unit of work keeps coming back to, to
set against the first-level instruction cache (32 KiB, 512 lines, on the machines here).
"""
import collections
import re
import sys

POS = re.compile(r"^(0x[0-9a-f]+|\+\d+|-\d+|\*)\s+\S+\s+(\d+)")
NAME = re.compile(r"^(c?fn)=\((\d+)\)(?: (.*))?")


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.strip().splitlines()[2])
    path, func = sys.argv[1], sys.argv[2]
    times = float(sys.argv[3]) if len(sys.argv) == 4 else 1.0
    names, callee, calls, total = {}, None, 0, 0
    runs = collections.Counter()  # instructions executed per 64-byte line
    last, after_call = 0, False
    with open(path) as f:
        for line in f:
            m = NAME.match(line)
            if m:
                kind, ident, name = m.groups()
                if name:
                    names[ident] = name
                if kind == "cfn":
                    callee = names.get(ident)
                continue
            if line.startswith("calls="):
                if callee and callee.endswith(func):
                    calls += int(line.split()[0][6:])
                # The next cost line is the call site with the callee's inclusive cost.
                after_call = True
                continue
            m = POS.match(line)
            if not m:
                continue
            tok = m.group(1)
            if tok.startswith("0x"):
                last = int(tok, 16)
            elif tok[0] in "+-":
                last += int(tok)
            runs[last >> 6] += 0  # executed, if only as a call site
            if after_call:
                after_call = False
                continue
            runs[last >> 6] += int(m.group(2))
            total += int(m.group(2))
    if calls == 0:
        sys.exit(f"no call of a function ending with {func!r} in {path}")
    units = calls * times
    hot = sum(1 for n in runs.values() if n / units >= 0.5)
    print(f"{units:.0f} units, {total / units:.0f} instructions each")
    print(f"code lines executed: {len(runs)} ({len(runs) * 64 / 1024:.1f} KiB)")
    print(f"lines run at least every other unit: {hot} ({hot * 64 / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
