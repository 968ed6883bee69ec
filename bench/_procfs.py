"""Small helpers the benchmarks share: free loopback ports and a process's CPU and memory."""

from __future__ import annotations

import os
import socket

CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (from /proc)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as fh:
        return int(fh.read().split()[1]) * PAGE / 2**20


def children(pid: int) -> list[int]:
    """``pid``'s descendants (the proxy's span export process, for one)."""
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out += [int(c) for c in fh.read().split()]
    except OSError:
        return out
    return out + [g for c in out for g in children(c)]


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and of its living descendants: work moved to a child still counts."""
    total = cpu_seconds(pid)
    for c in children(pid):
        try:
            total += cpu_seconds(c)
        except OSError:
            pass
    return total


def tree_rss_mb(pid: int) -> float:
    total = rss_mb(pid)
    for c in children(pid):
        try:
            total += rss_mb(c)
        except OSError:
            pass
    return total
