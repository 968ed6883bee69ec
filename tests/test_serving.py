"""tokentail.serving: what every `tokentail` server does once it listens."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import weakref

from tokentail.serving import settle_heap

# A server run as the commands run it (serving.run + serve_until_signal); a moment after it
# listens it prints the collector's frozen object count and stops itself with SIGTERM.
SERVER = textwrap.dedent(
    """
    import asyncio, gc, os, signal
    from aiohttp import web
    from tokentail import serving

    def started(port):
        def report():
            print("frozen", gc.get_freeze_count(), flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
        asyncio.get_running_loop().call_later(0.2, report)

    raise SystemExit(serving.run(serving.serve_until_signal(
        web.Application(), "127.0.0.1", 0, "test server", grace=1.0, on_started=started)))
    """
)


class _Node:
    pass


def test_settle_heap_freezes_what_is_alive_and_collects_first():
    before = gc.get_freeze_count()
    garbage = _Node()
    garbage.me = garbage  # a cycle: only the collector frees it
    gone = weakref.ref(garbage)
    del garbage
    try:
        settle_heap()
        assert gc.get_freeze_count() > before + 1000  # this process's modules at least
        # Collected before the freeze, not kept for good in the permanent generation.
        assert gone() is None
    finally:
        gc.unfreeze()


def test_a_server_settles_its_heap_once_it_listens():
    done = subprocess.run([sys.executable, "-c", SERVER], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    frozen = int(done.stdout.split("frozen")[1].split()[0])
    assert frozen > 10_000, done.stdout  # aiohttp and tokentail's modules, frozen before serving
