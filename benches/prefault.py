#!/usr/bin/env python3
"""Writes and releases MIB mebibytes of memory, at most the free memory less 512 MiB (so a warm corpus stays in
the page cache). On a virtual machine that hands freed memory back to its host, the next process to touch it
pays the host's page faults in its own time; the benchmark scripts run this before every measured command so
every tool and phase starts alike (benches/README.md). Usage: prefault.py MIB"""
import sys


def free_mib():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemFree:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def main():
    want = int(sys.argv[1], 10)
    free = free_mib()
    mib = min(want, free - 512)
    if mib < want:
        print(f"(prefaulting only {max(mib, 0)} MiB: {free} MiB of memory free)", file=sys.stderr)
    if mib > 0:
        block = b"\x01" * (mib << 20)
        del block


if __name__ == "__main__":
    main()
