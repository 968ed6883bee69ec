"""Running an aiohttp app as a process: event loop choice, binding errors, graceful stop."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

log = logging.getLogger("tokentail")
access_log = logging.getLogger("tokentail.access")


class SafeAccessLogger(AbstractAccessLogger):
    """Access log lines without query strings (URLs may carry `?key=`), at DEBUG level
    so a busy proxy pays nothing for them unless asked (`--log-level debug`)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.debug("%s %s %s %.1fms", request.method, request.path, response.status, time * 1000)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.DEBUG)


class ServeError(RuntimeError):
    """A start-up failure worth one clear line (port taken, bad address)."""


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where installed (faster I/O for the proxy and simulator), else asyncio's."""
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return asyncio.new_event_loop()


async def start_site(runner: web.AppRunner, host: str, port: int, what: str) -> web.TCPSite:
    site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(f"{what}: port {port} on {host} is already in use (choose another with --port)") from None
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EACCES):
            raise ServeError(f"{what}: cannot bind {host}:{port}: {exc.strerror}") from None
        raise ServeError(f"{what}: cannot listen on {host}:{port}: {exc}") from None
    return site


def settle_heap() -> None:
    """Take what start-up left alive (modules, the app, its settings) out of the garbage
    collector's view: each full collection then walks only what serving made since.
    A full collection stops the event loop, and with it every stream (a proxy under 100
    streams, four runs of ``bench/gc_pause_bench.py``: the longest 76-96 ms before, 20-60 after)."""
    gc.collect()
    gc.freeze()


def bound_port(runner: web.AppRunner) -> int:
    """The port actually bound (useful with --port 0)."""
    for addr in runner.addresses:
        if isinstance(addr, tuple) and len(addr) >= 2:
            return int(addr[1])
    raise RuntimeError("server not bound")


async def serve_until_signal(
    app: web.Application,
    host: str,
    port: int,
    what: str,
    *,
    grace: float = 30.0,
    on_started: Callable[[int], Awaitable[None] | None] | None = None,
) -> None:
    """Serve ``app`` until SIGTERM/SIGINT, then stop accepting and give in-flight
    requests up to ``grace`` seconds to finish before cancelling them."""
    # handler_cancellation: a client that goes away cancels its handler at once, so a
    # proxied request still waiting for its first token cancels the upstream call too.
    runner = web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=grace,
        handler_cancellation=True,
        access_log_class=SafeAccessLogger,
        access_log=access_log,
    )
    await runner.setup()
    try:
        await start_site(runner, host, port, what)
        actual = bound_port(runner)
        log.info("%s listening on http://%s:%d", what, host, actual)
        if on_started is not None:
            res = on_started(actual)
            if asyncio.iscoroutine(res):
                await res
        settle_heap()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("%s stopping: no new connections; waiting up to %.0fs for in-flight requests", what, grace)
    finally:
        await runner.cleanup()
        log.info("%s stopped", what)


def run(main_coro: Awaitable[None]) -> int:
    """Run a server coroutine on a fresh loop; start-up errors print one line, exit 1."""
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main_coro)
        return 0
    except ServeError as exc:
        print(f"tokentail: error: {exc}", file=sys.stderr)
        return 1
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
