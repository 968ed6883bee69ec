"""``GET /api/live`` of the collector: every proxy's live events, merged, from Redis Streams.

Why here: the collector is the one process a deployment already runs once, beside many
proxies; it serves SSE (``/api/events``) with the same access policy as the rest of its
API, so the browser needs one origin for the live view, the history and the charts. A
reader holds no state of its own: Redis holds the stream, the browser holds its position.

The proxies (``--live-redis``, ``proxy/live_redis.py``) append to one stream, so Redis
orders all proxies' events; each proxy's own events stay in its order. The feed speaks the
proxy's ``/api/live`` protocol (``request.start`` / ``request.delta`` / ``request.end``
with the same data; ``snapshot`` first on a fresh connection), so the dashboard's Live page
points at it unchanged (``tokentail dashboard --live URL``). Differences:

- the SSE ``id:`` is the Redis stream id: ``Last-Event-ID`` resumes exactly after it, on
  any collector, across collector restarts;
- a fresh connection (no usable ``Last-Event-ID``, or one whose followers were trimmed away,
  ``MAXLEN ~``) gets ``snapshot`` ``{source, events}`` then the ``replay`` most recent
  events (at most ``replay_bytes``): the stream has no per-request state to summarise;
- ``status`` ``{"live_redis": "down"|"up", "message"}`` (no ``id:``) when Redis stops or
  starts answering; the stream stays open and the reader retries with backoff.

Each subscriber has its own ``XREAD BLOCK`` from its own position (a connection each, so
``max_subscribers`` bounds them): no shared fan-out that a slow browser could hold back,
and resuming needs no bookkeeping. A subscriber whose socket takes nothing for
``STALLED_WRITE_SECONDS`` is dropped (its EventSource reconnects and resumes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from aiohttp import web

from .. import access
from ..erasure import Selector, stream_entries_to_erase
from ..redis_url import DEFAULT_STREAM, display_redis_url
from ._http import POLICY, error
from .live_frames import before, frames, gap, parse_id, snapshot_frame, status_frame

__all__ = ["LIVE", "LiveReader", "live"]

log = logging.getLogger("tokentail.collector")

STALLED_WRITE_SECONDS = 30.0
_WRITE_BYTES = 64 * 1024  # frames joined per write
_READ_COUNT = 500  # entries per XREAD
_PAGE = 200  # entries per XREVRANGE page when replaying


class LiveReader:
    """The Redis side of the merged feed: one client (a connection per subscriber) and its state."""

    def __init__(
        self,
        url: str,
        *,
        key: str = DEFAULT_STREAM,
        max_subscribers: int = 64,
        replay: int = 1000,
        replay_bytes: int = 8 << 20,
        heartbeat: float = 15.0,
        timeout: float = 2.0,
        max_backoff: float = 5.0,
    ) -> None:
        self.url = url
        self.display = display_redis_url(url)
        self.key = key
        self.max_subscribers = max(0, max_subscribers)
        self.replay = max(0, replay)
        self.replay_bytes = replay_bytes
        self.heartbeat = heartbeat
        self.timeout = timeout
        self.max_backoff = max_backoff
        self.up: bool | None = None
        self.refused = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._client: Any = None

    @property
    def subscribers(self) -> int:
        return len(self._tasks)

    def client(self) -> Any:
        if self._client is None:
            from redis.asyncio import Redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            # A blocking XREAD holds its connection: one per subscriber, a few for the rest.
            # Reads are not retried inside the client: the handler's backoff and status do it.
            self._client = Redis.from_url(
                self.url,
                socket_connect_timeout=self.timeout,
                socket_timeout=self.heartbeat + self.timeout,
                retry=Retry(NoBackoff(), 0),
                max_connections=self.max_subscribers + 4,
            )
        return self._client

    async def ctx(self, app: web.Application) -> AsyncIterator[None]:
        yield
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    @contextlib.contextmanager
    def listening(self) -> Iterator[None]:
        """Count the current handler as a listener (and end it on shutdown) while inside."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def end_streams(self, app: web.Application) -> None:
        """On shutdown: live streams end now (they would hold the graceful window open)."""
        for task in list(self._tasks):
            task.cancel()

    def state(self, up: bool, exc: BaseException | None = None) -> None:
        """Log once per change of Redis's state."""
        if self.up is up:
            return
        self.up = up
        if up:
            log.info("live plane: reading %s (stream %s)", self.display, self.key)
        else:
            log.warning(
                "live plane: Redis at %s unavailable (%s); /api/live says so and retries", self.display, _why(exc)
            )

    # --- Redis reads ----------------------------------------------------------------------

    async def trimmed_after(self, cursor: str) -> bool:
        """Whether ``MAXLEN ~`` may have trimmed entries after ``cursor`` (its client must start over)."""
        from redis.exceptions import ResponseError

        try:
            info = await self.client().xinfo_stream(self.key)
        except ResponseError:  # no such key: nothing trimmed (an empty or recreated stream)
            return False
        first = info.get("first-entry") or info.get(b"first-entry")
        added = info.get("entries-added", info.get(b"entries-added")) or 0
        length = info.get("length", info.get(b"length")) or 0
        return gap(cursor, first[0] if first else None, trimmed=added > length)

    async def recent(self) -> tuple[list[tuple[Any, dict[Any, Any]]], str]:
        """The most recent entries (at most ``replay``, about ``replay_bytes``), oldest first,
        and the id a resume from just before them takes."""
        out: list[tuple[Any, dict[Any, Any]]] = []
        size = 0
        top = "+"
        client = self.client()
        while len(out) < self.replay and size < self.replay_bytes:
            page = await client.xrevrange(self.key, max=top, min="-", count=min(_PAGE, self.replay - len(out)))
            if not page:
                break
            for entry_id, fields in page:
                out.append((entry_id, fields))
                size += sum(len(v) for v in fields.values() if isinstance(v, bytes))
                if len(out) >= self.replay or size >= self.replay_bytes:
                    break
            top = "(" + _text(page[-1][0])
        out.reverse()
        if out:
            return out, before(_text(out[0][0]))
        last = await self._last_id()
        return out, last

    async def _last_id(self) -> str:
        page = await self.client().xrevrange(self.key, max="+", min="-", count=1)
        return _text(page[0][0]) if page else "0-0"

    async def erase(self, sel: Selector) -> int:
        """Delete from the stream every event of the requests ``sel`` selects (``erasure.
        stream_entries_to_erase``), page by page (the stream is bounded by the proxies'
        ``MAXLEN``); how many entries went. A browser that already received them keeps them;
        nothing replays them again."""
        client = self.client()
        erased: set[str] = set()
        deleted = 0
        low = "-"
        while True:
            page = await client.xrange(self.key, min=low, max="+", count=_PAGE)
            if not page:
                return deleted
            rows = []
            for entry_id, fields in page:
                data = _json_fields(fields)
                if data is not None:
                    rows.append((_text(entry_id), data[0], data[1]))
            doomed = stream_entries_to_erase(rows, sel, erased)
            if doomed:
                deleted += await client.xdel(self.key, *doomed)
            if len(page) < _PAGE:
                return deleted
            low = "(" + _text(page[-1][0])

    async def read(self, cursor: str) -> list[tuple[Any, dict[Any, Any]]]:
        """Entries after ``cursor``, waiting up to a heartbeat for some."""
        reply = await self.client().xread({self.key: cursor}, count=_READ_COUNT, block=int(self.heartbeat * 1000))
        return list(reply[0][1]) if reply else []


async def live(request: web.Request) -> web.StreamResponse:
    """The merged live feed (see the module docstring)."""
    reader: LiveReader | None = request.app.get(LIVE)
    cors = access.cors_headers_for(request.app[POLICY], request)
    if reader is None:
        resp = error(404, "no live plane here: start the collector with --live-redis redis://…", "not_found")
        resp.headers.update(cors)
        return resp
    if reader.subscribers >= reader.max_subscribers:
        reader.refused += 1
        resp = error(
            503,
            f"the live feed has its maximum of {reader.max_subscribers} subscribers",
            "server_busy",
        )
        resp.headers.update({"Retry-After": "5", **cors})
        return resp
    with reader.listening():
        return await _serve(request, reader, cors)


async def _serve(request: web.Request, reader: LiveReader, cors: dict[str, str]) -> web.StreamResponse:
    from redis.exceptions import RedisError

    last = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    cursor = last.strip() if last and parse_id(last) is not None else None
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            **cors,
        }
    )
    await resp.prepare(request)

    async def write(data: bytes) -> None:
        async with asyncio.timeout(STALLED_WRITE_SECONDS):
            await resp.write(data)

    checked = False  # the resume position was checked against trimming
    down = False  # the client was told Redis is down
    backoff = 0.5
    try:
        await write(b"retry: 1000\n\n")
        while True:
            snapshot = None  # the snapshot's id when this round starts the feed over
            # Only Redis calls in here: a client that went away (an OSError too) is not "Redis down".
            try:
                if cursor is not None and not checked and await reader.trimmed_after(cursor):
                    cursor = None  # what followed it is gone: start over
                checked = True
                if cursor is None:
                    entries, snapshot = await reader.recent()
                else:
                    entries = await reader.read(cursor)
            except (RedisError, OSError) as exc:
                reader.state(False, exc)
                if not down:
                    await write(status_frame(False, f"Redis unavailable ({_why(exc)}); retrying"))
                    down = True
                else:
                    await write(b": redis down\n\n")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, reader.max_backoff)
                continue
            reader.state(True)
            backoff = 0.5
            if down:
                await write(status_frame(True))
                down = False
            if snapshot is not None:
                cursor = snapshot
                await write(snapshot_frame(snapshot, len(entries)))
            elif not entries:
                await write(b": heartbeat\n\n")
                continue
            for piece in frames(entries, _WRITE_BYTES):
                await write(piece)
            if entries:
                cursor = _text(entries[-1][0])
    except (TimeoutError, ConnectionResetError):
        pass  # the subscriber went away or stopped reading
    return resp


def _json_fields(fields: dict[Any, Any]) -> tuple[str, dict[str, Any]] | None:
    """An entry's event name and data, or None for one that is not ours."""
    name, data = fields.get(b"e", fields.get("e")), fields.get(b"d", fields.get("d"))
    if name is None or data is None:
        return None
    try:
        parsed = json.loads(data)
    except ValueError:
        return None
    return (_text(name), parsed) if isinstance(parsed, dict) else None


def _text(value: Any) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


def _why(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


LIVE = web.AppKey("live_redis", LiveReader)
