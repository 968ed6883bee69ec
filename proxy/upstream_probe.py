"""The optional active probe: ``GET {upstream}/models`` every ``--probe-interval`` seconds.

Off by default (paid APIs count the calls). When on, it probes ``--upstream`` and every route
with ``probe = true``, with the route's key when it injects one, and reports each outcome to
``UpstreamHealth.record`` (a connect error, a timeout or a 5xx is a failure). It runs as a
background task from the app's ``cleanup_ctx``, never on the request path; each probe has a
bounded timeout, and the task is cancelled at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from yarl import URL

from .routes import RouteTable
from .upstream_health import UpstreamHealth
from .upstreams_state import UPSTREAMS

__all__ = ["ProbeTarget", "probe_ctx", "probe_once", "targets"]

log = logging.getLogger("tokentail.proxy")


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    label: str  # the route's name, or the upstream's host for --upstream
    url: URL
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # may hold the route's key


def targets(default: URL, table: RouteTable) -> list[ProbeTarget]:
    """What to probe: ``--upstream`` and the routes that ask for it (``probe = true``)."""
    out = [ProbeTarget(default.host or str(default), default / "models")]
    for route in table.routes:
        if route.probe:
            auth = route.auth()
            out.append(ProbeTarget(route.name, route.upstream / "models", (auth,) if auth else ()))
    return out


async def probe_once(session: aiohttp.ClientSession, target: ProbeTarget, timeout: float) -> str | None:
    """One probe: None when the upstream answered below 500, else why not."""
    try:
        async with session.get(
            target.url,
            headers=dict(target.headers),
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as resp:
            await resp.read()
            if resp.status >= 500:
                return f"probe: HTTP {resp.status}"
            return None
    except (TimeoutError, aiohttp.ServerTimeoutError):
        return f"probe: no answer within {timeout:g}s"
    except aiohttp.ClientConnectorError as exc:
        return f"probe: cannot connect to {target.url.host}:{target.url.port} ({exc.os_error.strerror or 'error'})"
    except aiohttp.ClientError as exc:
        return f"probe: {type(exc).__name__}"


async def _loop(
    session: aiohttp.ClientSession,
    health: UpstreamHealth,
    what: Callable[[], list[ProbeTarget]],
    interval: float,
    timeout: float,
) -> None:
    while True:
        for target in what():
            health.see(target.label, target.url.host)
            health.record(target.label, await probe_once(session, target, timeout))
        await asyncio.sleep(interval)


def probe_ctx(
    interval: float, timeout: float, what: Callable[[web.Application], list[ProbeTarget]]
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A ``cleanup_ctx`` entry running the probe loop (nothing when ``interval`` is 0)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if interval <= 0:
            yield
            return
        # A session of its own: probes never take connections from the request path's pool.
        async with aiohttp.ClientSession(trust_env=False) as session:
            task = asyncio.create_task(_loop(session, app[UPSTREAMS], lambda: what(app), interval, timeout))
            yield
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    return ctx
