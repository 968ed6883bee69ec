"""Fetching targets' /metrics (the only network I/O of the scrape pipeline), and their health.

``fetch`` never raises: a target that is down, slow, answers 500, sends a body over
the cap or something that is not text comes back as a ``FetchResult`` with a short
``error`` (no URL query string in it), so one bad target never stops the others.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass

import aiohttp

from .config import Target

log = logging.getLogger("tokentail.collector.scrape")

# Ask for the classic text format; OpenMetrics is parsed too when a target insists.
ACCEPT = "text/plain;version=0.0.4;q=1.0,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1"


@dataclass(slots=True)
class FetchResult:
    target: Target
    text: str | None = None
    error: str | None = None
    openmetrics: bool = False
    duration: float = 0.0  # seconds
    size: int = 0  # bytes read


async def fetch(session: aiohttp.ClientSession, target: Target, *, timeout: float, max_bytes: int) -> FetchResult:
    """GET ``target.url`` within ``timeout`` seconds, reading at most ``max_bytes``."""
    res = FetchResult(target)
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            async with session.get(target.url, headers={"Accept": ACCEPT}, max_redirects=3) as resp:
                if resp.status != 200:
                    res.error = f"HTTP {resp.status}"
                    return res
                if resp.content_length is not None and resp.content_length > max_bytes:
                    res.error = f"body of {resp.content_length} bytes exceeds the {max_bytes}-byte cap"
                    return res
                buf = bytearray()
                async for chunk in resp.content.iter_chunked(1 << 16):
                    buf += chunk
                    if len(buf) > max_bytes:
                        res.error = f"body exceeds the {max_bytes}-byte cap"
                        return res
                res.size = len(buf)
                res.openmetrics = resp.headers.get("Content-Type", "").startswith("application/openmetrics-text")
        try:
            res.text = buf.decode("utf-8")
        except UnicodeDecodeError:
            res.error = "body is not UTF-8 text"
    except TimeoutError:
        res.error = f"timeout after {timeout:g}s"
    except aiohttp.ClientConnectorError as exc:
        err = exc.os_error
        # errno says it best ("Connection refused"); asyncio's strerror is "Connect call failed (...)".
        if err is None:
            reason = ""
        elif err.errno and err.errno > 0:
            reason = os.strerror(err.errno)
        else:  # resolver errors (negative EAI_* codes) carry their own text
            reason = f"cannot resolve host ({err.strerror or err})"
        res.error = f"connection failed: {reason}" if reason else "connection failed"
    except aiohttp.TooManyRedirects:
        res.error = "too many redirects"
    except aiohttp.ClientPayloadError:
        res.error = "body cut short or badly encoded"
    except aiohttp.ServerDisconnectedError:
        res.error = "server disconnected"
    except aiohttp.ClientResponseError as exc:
        res.error = f"bad response: {exc.message}"
    except aiohttp.ClientError as exc:
        res.error = f"request failed: {type(exc).__name__}"
    except OSError as exc:
        res.error = f"request failed: {exc.strerror or type(exc).__name__}"
    finally:
        res.duration = time.perf_counter() - t0
    return res


@dataclass(slots=True)
class TargetHealth:
    """A target's state as /api/status shows it; ``update`` logs once per state change."""

    target: Target
    up: bool | None = None  # None until the first scrape
    error: str | None = None
    since: float | None = None  # when the current state began
    last_scrape: float | None = None
    last_success: float | None = None
    duration_ms: float | None = None
    samples: int = 0
    bytes: int = 0
    failures: int = 0  # consecutive

    def update(self, ts: float, error: str | None, *, duration: float = 0.0, samples: int = 0, size: int = 0) -> bool:
        """Record one scrape's outcome; True when the state (up/down, or the reason) changed."""
        up = error is None
        changed = up != self.up or (not up and error != self.error)
        if changed:
            self.since = ts
            name = f"{self.target.variant} {self.target.display}"
            if up:
                log.info("target %s is up%s", name, "" if self.up is None else " again")
            else:
                log.warning("target %s is DOWN: %s", name, error)
        self.up, self.error, self.last_scrape = up, error, ts
        self.duration_ms = round(duration * 1000.0, 2)
        if up:
            self.last_success, self.samples, self.bytes, self.failures = ts, samples, size, 0
        else:
            self.failures += 1
        return changed

    def as_dict(self) -> dict:
        return {
            "variant": self.target.variant,
            "url": self.target.display,
            "up": self.up,
            "error": self.error,
            "since": self.since,
            "last_scrape": self.last_scrape,
            "last_success": self.last_success,
            "duration_ms": self.duration_ms,
            "samples": self.samples,
            "bytes": self.bytes,
            "consecutive_failures": self.failures,
        }
