"""The proxy's side of the live plane on Redis Streams (``--live-redis``): ``LiveRedisSink``.

The live hub (``live.py``) hands every event it publishes (``request.start`` /
``request.delta`` / ``request.end``, released text only, within the capture caps) to
``push``, on the event loop, synchronously. ``push`` appends to a bounded buffer and never
waits: the request path does not know Redis exists. A task (``run``, in the app's
``cleanup_ctx``) wakes on the first buffered event, lets a few milliseconds of deltas
gather (``batch_wait``), folds each request's consecutive deltas into one
(``live_batch.coalesce``) and appends the batch with one pipelined round trip of
``XADD key MAXLEN ~ maxlen``: a token costs no round trip, and the stream stays bounded.

Redis down, slow or full: the buffer keeps at most ``max_events`` events and ``max_bytes``
approximate bytes, dropping the oldest first (a live view wants the newest); a batch whose
write fails or exceeds ``write_timeout`` is dropped, never retried (a retry could write it
twice). Every dropped event counts in ``tokentail_telemetry_dropped_total{sink="live_redis"}``.
After a failure the task waits (backoff doubling from ``min_backoff`` to ``max_backoff``)
before the next write, and the client reconnects on it. The state (connected or not) is
logged once per change, the URL without credentials.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from tokentail.redis_url import DEFAULT_STREAM, display_redis_url

from .live_batch import coalesce, entry_fields
from .live_entry import Event

__all__ = ["DROP_SINK", "LiveRedisSink"]

log = logging.getLogger("tokentail.proxy")

DROP_SINK = "live_redis"
_BATCH_EVENTS = 1000  # events per pipelined write (the rest goes in the next round trip)
_IDLE_PING = 1.0  # seconds without a write after which the connection is checked first


class LiveRedisSink:
    """Buffers the hub's events and appends them to a Redis stream (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        boot_id: str,
        maxlen: int = 100_000,
        key: str = DEFAULT_STREAM,
        on_drop: Callable[[str, int], None] | None = None,
        max_events: int = 10_000,
        max_bytes: int = 16 << 20,
        batch_wait: float = 0.005,
        write_timeout: float = 2.0,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
    ) -> None:
        self.url = url
        self.display = display_redis_url(url)
        self.boot_id = boot_id
        self.maxlen = max(1, maxlen)
        self.key = key
        self.max_events = max(1, max_events)
        self.max_bytes = max(1, max_bytes)
        self.batch_wait = batch_wait
        self.write_timeout = write_timeout
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.connected: bool | None = None  # None until the first write
        self.written = 0  # events appended (after coalescing: stream entries)
        self.dropped = 0
        self._on_drop = on_drop
        self._buf: deque[Event] = deque()
        self._bytes = 0
        self._wake: asyncio.Event | None = None
        self._client: Any = None
        self._last_ok = 0.0  # loop time of the last successful write

    # --- the hub's side: synchronous, never waits -------------------------------------

    def push(self, ev: Event) -> None:
        """Buffer one hub event (``(seq, name, data, approx bytes)``); drop the oldest beyond the bounds."""
        self._buf.append(ev)
        self._bytes += ev[3]
        over = 0
        while len(self._buf) > 1 and (len(self._buf) > self.max_events or self._bytes > self.max_bytes):
            self._bytes -= self._buf.popleft()[3]
            over += 1
        if over:
            self._drop(over)
        if self._wake is not None:
            self._wake.set()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    # --- the writer task ----------------------------------------------------------------

    async def ctx(self, app: web.Application) -> AsyncIterator[None]:
        """``cleanup_ctx`` of the proxy app: the writer runs while the app does; on cleanup
        what is buffered gets one last bounded write."""
        task = asyncio.create_task(self.run(), name="tokentail-live-redis")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if self._buf and self.connected is not False:
            try:
                await self._write_batch()
            except Exception:
                pass
        await self.close()

    async def run(self) -> None:
        """Write batches until cancelled (see the module docstring)."""
        from redis.exceptions import RedisError

        self._wake = asyncio.Event()
        backoff = self.min_backoff
        while True:
            if not self._buf:
                self._wake.clear()
                await self._wake.wait()
            await asyncio.sleep(self.batch_wait)  # let a few ms of deltas gather into one write
            while self._buf:
                try:
                    await self._write_batch()
                except (RedisError, OSError, TimeoutError) as exc:
                    self._state(False, exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
                    break
                self._state(True)
                backoff = self.min_backoff

    async def _write_batch(self) -> None:
        """Take up to ``_BATCH_EVENTS`` buffered events and XADD them in one pipeline; on
        failure they are counted as dropped and the error is raised."""
        client = self._get_client()
        loop = asyncio.get_running_loop()
        if self.connected is not True or loop.time() - self._last_ok > _IDLE_PING:
            try:
                await self._ping(client)
            except BaseException:
                self._drop(len(self._buf))  # down: what waited is dropped, as a failed write's
                self._buf.clear()
                self._bytes = 0
                raise
        n = min(len(self._buf), _BATCH_EVENTS)
        taken = [self._buf.popleft() for _ in range(n)]
        self._bytes -= sum(ev[3] for ev in taken)
        try:
            entries = coalesce((ev[1], ev[2]) for ev in taken)
            pipe = client.pipeline(transaction=False)
            for name, data in entries:
                pipe.xadd(self.key, entry_fields(name, data, self.boot_id), maxlen=self.maxlen, approximate=True)
            async with asyncio.timeout(self.write_timeout):
                await pipe.execute()
        except BaseException:
            self._drop(n)
            raise
        self.written += len(entries)
        self._last_ok = loop.time()

    async def _ping(self, client: Any) -> None:
        """PING before a write after a failure or a pause: a connection Redis dropped meanwhile
        (a restart) fails here, where a second try on a new connection is safe, and not in the
        pipeline, whose retry could append its entries twice; and a batch is not encoded for a
        Redis that is still down."""
        from redis.exceptions import ConnectionError as RedisConnectionError

        for attempt in (1, 2):
            try:
                async with asyncio.timeout(self.write_timeout):
                    await client.ping()
                return
            except (RedisConnectionError, OSError):
                if attempt == 2:
                    raise

    def _get_client(self) -> Any:
        if self._client is None:
            from redis.asyncio import Redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            # No retries inside the client: a failed write is dropped and counted here, and
            # the backoff is ours (a retried pipeline could append its entries twice).
            self._client = Redis.from_url(
                self.url,
                socket_connect_timeout=self.write_timeout,
                socket_timeout=self.write_timeout,
                retry=Retry(NoBackoff(), 0),
                max_connections=2,
            )
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except Exception:
                pass

    def _drop(self, n: int) -> None:
        self.dropped += n
        if self._on_drop is not None:
            try:
                self._on_drop(DROP_SINK, n)
            except Exception:
                pass

    def _state(self, up: bool, exc: BaseException | None = None) -> None:
        if self.connected is up:
            return
        self.connected = up
        if up:
            log.info("live plane: appending live events to %s (stream %s)", self.display, self.key)
        else:
            reason = f"{type(exc).__name__}: {exc}" if exc is not None and str(exc) else type(exc).__name__
            log.warning(
                "live plane: Redis at %s unavailable (%s); live events are dropped and counted "
                "until it is back, proxied requests are not affected",
                self.display,
                reason,
            )
