"""The tests' shared helpers: waiting for a condition, free ports, binaries a test needs,
bounded readers, and the servers' test options. Fakes live in the submodules
(``upstreams``, ``proxies``, ``procs``, ``prom``, ``otel``, ``fakes``, ``compose``,
``rows``, ``stack``, ``browser``, ``dashboard``, ``secrets``).

Tests wait for what they expect with ``until`` (async) or ``wait_until`` (sync): a poll
with a deadline, never a fixed sleep, so a loaded machine makes a test slower, not red.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tokentail.serving import SafeAccessLogger, access_log

__all__ = [
    "ROOT",
    "SERVER_KWARGS",
    "closed_port_url",
    "free_port",
    "listening",
    "poll_in_thread",
    "read_events",
    "reading",
    "require",
    "require_binary",
    "serve",
    "until",
    "wait_port",
    "wait_until",
]

ROOT = Path(__file__).resolve().parents[2]
# Our servers log accesses the way `tokentail` runs them (no query strings).
SERVER_KWARGS = {"access_log_class": SafeAccessLogger, "access_log": access_log}


async def until(
    predicate: Callable[[], Any | Awaitable[Any]], timeout: float = 3.0, step: float = 0.02, what: str = ""
) -> None:
    """Wait until ``predicate()`` (sync or async) is true, or fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        ok = predicate()
        if inspect.isawaitable(ok):
            ok = await ok
        if ok:
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached in {timeout}s{': ' + what if what else ''}")
        await asyncio.sleep(step)


async def poll_in_thread(
    predicate: Callable[[], tuple[bool, Any]], timeout: float, step: float = 0.5
) -> tuple[bool, Any]:
    """Poll a blocking ``predicate() -> (ok, detail)`` in a thread, so the servers on this
    event loop keep serving meanwhile, until ``ok`` or ``timeout``: the last (ok, detail)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        ok, detail = await asyncio.to_thread(predicate)
        if ok or loop.time() > deadline:
            return ok, detail
        await asyncio.sleep(step)


def wait_until(predicate: Callable[[], Any], timeout: float = 3.0, step: float = 0.02, what: str = "") -> Any:
    """Blocking ``until``: the first true value of ``predicate()``, or AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        ok = predicate()
        if ok:
            return ok
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in {timeout}s{': ' + what if what else ''}")
        time.sleep(step)


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"


def listening(port: int) -> bool:
    """Something accepts connections on loopback ``port`` now."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def wait_port(
    port: int, proc: subprocess.Popen | None = None, timeout: float = 30.0, output: Callable[[], str] = str
) -> None:
    """Wait until something accepts on ``port``; fail early when ``proc`` exits first
    (``output()`` adds the process's log to the failure)."""

    def ready() -> bool:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} before listening on {port}\n{output()}")
        return listening(port)

    try:
        wait_until(ready, timeout=timeout, step=0.05)
    except AssertionError as exc:
        if "exited" in str(exc):
            raise
        raise AssertionError(f"nothing listens on {port} after {timeout}s\n{output()}") from None


def require(env_var: str, what: str, available: bool) -> None:
    """Skip when ``what`` is missing, unless ``env_var``=1 (CI sets it) makes that a failure."""
    if available:
        return
    if os.environ.get(env_var) == "1":
        pytest.fail(f"{what} is required here ({env_var}=1) but missing")
    pytest.skip(f"{what} not installed (set {env_var}=1 to make this a failure)")


def require_binary(name: str, env_var: str) -> str:
    path = shutil.which(name)
    require(env_var, f"the `{name}` binary", path is not None)
    return path  # type: ignore[return-value]


async def read_events(
    resp: aiohttp.ClientResponse, out: list, stop_on: str | None = None, count: int = 1, meta: bool = False
) -> None:
    """Parse an SSE response into (event, data) pairs, or with ``meta`` (id, event, data,
    arrival ``perf_counter``) tuples, until ``count`` events named ``stop_on`` (or the end of
    the body): bounded by what the server sends, so callers bound it in time."""
    ev: dict = {}
    seen = 0
    async for raw in resp.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if "data" in ev:
                data = json.loads(ev["data"])
                out.append(
                    (ev.get("id"), ev.get("event"), data, time.perf_counter()) if meta else (ev.get("event"), data)
                )
                if stop_on and ev.get("event") == stop_on:
                    seen += 1
                    if seen >= count:
                        return
            ev = {}
        elif not line.startswith(":"):
            k, _, v = line.partition(": ")
            ev[k] = v


async def reading(reader: Coroutine[Any, Any, None], out: list, timeout: float = 5.0) -> asyncio.Task:
    """Run ``reader`` (filling ``out``) in a task, returned once its first event arrived. A live
    feed's first event is its snapshot: from then on the subscriber sees every new event."""
    task = asyncio.ensure_future(reader)
    await until(lambda: out or task.done(), timeout=timeout, what="the reader's first event")
    return task


async def serve(app: web.Application) -> TestServer:
    """``app`` on a loopback port, logging accesses as tokentail does; the caller closes it."""
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(**SERVER_KWARGS)
    return server
