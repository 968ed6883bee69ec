"""The collector's loops: scrape rounds (fetch -> parse -> derive -> write -> publish) and upkeep.

One round scrapes every target concurrently at a tick aligned on the interval (so
5s rows fall one per 5s bucket), parses and derives on a worker thread, writes all
targets' rows in one transaction, then publishes a snapshot to SSE subscribers. A
target that fails is marked down with its reason and the round goes on; a write that
fails (disk full) is logged once and the next round tries again; live values keep
flowing from memory in the meantime. The upkeep loop rolls 5s rows up into 1m rows
and applies retention in bounded batches.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import duckdb

from .config import CollectorConfig, Target
from .derive import Deriver
from .events import Broadcaster
from .formulas import INTERVAL, UP, Agg, compute, counts, role_of, usable_bounds
from .parse import COUNTER, GAUGE, ParseError, parse_exposition
from .scrape import FetchResult, TargetHealth, fetch
from .store import Point, Store

log = logging.getLogger("tokentail.collector")


@dataclass(slots=True)
class _VariantRound:
    agg: Agg = field(default_factory=Agg)
    interval: float | None = None  # max over the variant's targets
    in_flight: float = 0.0
    up: int = 0
    targets: int = 0


class LiveWindow:
    """The last ``seconds`` of rounds, per variant, for 'current' values without the database."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._rounds: deque[tuple[float, dict[str, _VariantRound]]] = deque()

    def add(self, ts: float, parts: dict[str, _VariantRound]) -> None:
        self._rounds.append((ts, parts))
        while self._rounds and self._rounds[0][0] <= ts - self.seconds:
            self._rounds.popleft()

    def current(self) -> dict[str, dict[str, Any]]:
        if not self._rounds:
            return {}
        latest = self._rounds[-1][1]
        out = {}
        for variant, last in latest.items():
            agg, covered = Agg(), 0.0
            for _, parts in self._rounds:
                p = parts.get(variant)
                if p is not None:
                    agg.merge(p.agg)
                    covered += p.interval or 0.0
            values = compute(
                agg,
                coverage=covered or None,
                in_flight=last.in_flight if last.up else None,
                up=last.up / last.targets if last.targets else None,
                # Every bound of the proxy's bucket set, not only those with increases: the
                # lowest stored bucket then interpolates from its real lower bound, not 0.
                bounds={r: sorted(usable_bounds(r, [set(b)])) for r, b in agg.buckets.items()},
            )
            out[variant] = {
                "name": variant,
                "up": last.up > 0,
                "targets_up": last.up,
                "targets": last.targets,
                "current": values,
                "counts": counts(agg),
            }
        return out


class Collector:
    """Owns the scrape state (health, counters' last values, live window) of one collector."""

    def __init__(
        self,
        config: CollectorConfig,
        store: Store,
        events: Broadcaster,
        *,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.events = events
        self.clock = clock
        self.deriver = Deriver()
        self.health = {t.url: TargetHealth(t) for t in config.targets}
        self.live = LiveWindow(config.live_window)
        self.rounds = 0
        self.last_round: float | None = None
        self.store_error: str | None = None
        self.store_error_since: float | None = None
        self.maintenance: dict[str, Any] = {
            "last_run": None,
            "rolled_chunks": 0,
            "deleted_rows": 0,
            "content_erased": 0,
            "error": None,
        }
        self._session = session
        self._own_session = session is None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=60),
                auto_decompress=True,
                headers={"User-Agent": "tokentail-collector"},
            )

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()

    # --- scraping -------------------------------------------------------------

    async def run_round(self, ts: float) -> None:
        """Scrape every target once, as of tick ``ts``, and store and publish the result."""
        cfg = self.config
        assert self._session is not None, "start() first"
        results = await asyncio.gather(
            *(fetch(self._session, t, timeout=cfg.scrape_timeout, max_bytes=cfg.max_scrape_bytes) for t in cfg.targets)
        )
        loop = asyncio.get_running_loop()
        points, outcomes, parts = await loop.run_in_executor(None, self._derive, ts, results)
        for target, error, res, samples in outcomes:
            h = self.health[target.url]
            if h.update(ts, error, duration=res.duration, samples=samples, size=res.size):
                self.events.publish("target", {"ts": ts, **target.as_dict(), "up": error is None, "error": error})
        await self._write(ts, points)
        self.live.add(ts, parts)
        self.rounds += 1
        self.last_round = ts
        self.events.publish("snapshot", self.snapshot())

    def _derive(self, ts: float, results: list[FetchResult]) -> tuple[list[Point], list, dict[str, _VariantRound]]:
        """Parse and derive every target's body (pure CPU work, off the event loop)."""
        points: list[Point] = []
        outcomes: list[tuple[Target, str | None, FetchResult, int]] = []
        parts: dict[str, _VariantRound] = {}
        for res in results:
            t = res.target
            part = parts.setdefault(t.variant, _VariantRound())
            part.targets += 1
            error, exp = res.error, None
            if error is None and not (res.text or "").strip():
                error = "empty response"
            if error is None:
                try:
                    exp = parse_exposition(
                        res.text or "", openmetrics=res.openmetrics, max_series=self.config.max_series_per_target
                    )
                except ParseError as exc:
                    error = str(exc)
            if exp is None:
                points.append((t.variant, t.display, UP, (), GAUGE, 0.0))
                outcomes.append((t, error, res, 0))
                continue
            derived = self.deriver.observe(t.url, exp, ts)
            outcomes.append((t, None, res, len(exp.samples)))
            part.up += 1
            points.append((t.variant, t.display, UP, (), GAUGE, 1.0))
            if derived.interval is not None:
                points.append((t.variant, t.display, INTERVAL, (), COUNTER, derived.interval))
                part.interval = max(part.interval or 0.0, derived.interval)
            for name, labels, kind, value in derived.values:
                points.append((t.variant, t.display, name, labels, kind, value))
                lab = dict(labels)
                role = role_of(name, lab)
                if role == "in_flight":
                    part.in_flight += value
                elif role is not None and kind == COUNTER and derived.interval is not None:
                    le = lab.get("le")
                    part.agg.add(role, value, float(le) if le is not None else None)
        return points, outcomes, parts

    async def _write(self, ts: float, points: list[Point]) -> None:
        try:
            await self.store.write(self.store.append_metrics, ts, points)
        except (duckdb.Error, OSError) as exc:
            self._store_failed(ts, exc, "scrape results of this interval are not stored")
            await self._reopen_if_fatal(exc)
            return
        if self.store_error is not None:
            log.info("database writes work again (failing since %s)", _when(self.store_error_since))
            self.store_error = self.store_error_since = None

    async def _reopen_if_fatal(self, exc: BaseException) -> None:
        if not (isinstance(exc, duckdb.FatalException) or "invalidated" in str(exc)):
            return  # ordinary failures (a full disk) leave the connection usable
        try:
            await self.store.write(self.store.reopen)
        except Exception as again:  # still failing: the next round tries again
            log.error("could not reopen the database: %s", str(again).splitlines()[0] if str(again) else again)

    def _store_failed(self, ts: float, exc: BaseException, consequence: str) -> None:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if msg != self.store_error:
            log.error("database write failed: %s; %s, scraping goes on", msg, consequence)
            self.store_error_since = ts
        self.store_error = msg

    async def run(self) -> None:
        """Scrape forever at ticks aligned on the interval; a tick missed while busy is skipped."""
        interval = self.config.scrape_interval
        if not self.config.targets:
            log.warning("no --target given: the collector only receives spans (POST /v1/traces)")
            return
        while True:
            now = self.clock()
            tick = math.floor(now / interval) * interval + interval
            await asyncio.sleep(max(tick - now, 0.0))
            try:
                await self.run_round(round(tick, 6))
            except Exception:  # one bad round must not end collection
                log.exception("scrape round failed")

    # --- upkeep ---------------------------------------------------------------

    async def maintain(self, now: float | None = None, *, max_batches: int = 1000) -> dict[str, Any]:
        """Roll up complete minutes, then delete expired rows in bounded batches."""
        now = self.clock() if now is None else now
        st, rolled, deleted, erased = self.store, 0, 0, 0
        ref = now
        if self.last_round is not None:
            # Rounds are written in order: a minute before the last written round is complete,
            # even when a slow round outlasted the settle time.
            ref = min(now, self.last_round + self.config.settle)
        try:
            while True:
                more = await st.write(st.rollup_step, ref, self.config.settle)
                rolled += 1
                if not more:
                    break
            for _ in range(max_batches):
                n = await st.write(st.retention_step, now, self.config.retention)
                if not n:
                    break
                deleted += n
            erased = await self._content_retention(now, max_batches)
            policy = self.config.retention
            if st.compact_pending and st.compact_due(now, policy.compact_interval):
                await st.write(st.compact, now)  # erased text leaves the disk too (see collector.erase)
            elif deleted or erased:
                await st.write(st.checkpoint)
            self.maintenance["error"] = None
        except (duckdb.Error, OSError) as exc:
            self.maintenance["error"] = str(exc).splitlines()[0]
            self._store_failed(now, exc, "rollup/retention will be retried")
            await self._reopen_if_fatal(exc)
        self.maintenance.update(
            last_run=now,
            rolled_chunks=self.maintenance["rolled_chunks"] + rolled,
            deleted_rows=self.maintenance["deleted_rows"] + deleted,
            content_erased=self.maintenance["content_erased"] + erased,
        )
        return {"rolled_chunks": rolled, "deleted_rows": deleted, "content_erased": erased}

    async def _content_retention(self, now: float, max_batches: int) -> int:
        """``--content-retention``: erase expired content in bounded batches (one transaction each)."""
        st, erased = self.store, 0
        for _ in range(max_batches):
            n = await st.write(st.content_retention_step, now, self.config.retention)
            if not n:
                break
            erased += n
        if erased:
            log.info("content retention: erased the captured content of %d spans", erased)
        return erased

    async def maintain_forever(self) -> None:
        # Soon after start: a backlog (the collector was down) is caught up early.
        await asyncio.sleep(min(1.0, self.config.rollup_interval))
        while True:
            try:
                await self.maintain()
            except Exception:
                log.exception("upkeep failed")
            await asyncio.sleep(self.config.rollup_interval)

    # --- state ----------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Live state: per-variant current values (last ``live_window`` s) and target health."""
        current = self.live.current()
        for t in self.config.targets:
            current.setdefault(
                t.variant,
                {"name": t.variant, "up": False, "targets_up": 0, "targets": 0, "current": None, "counts": None},
            )
        return {
            "ts": self.last_round,
            "rounds": self.rounds,
            "window_seconds": self.config.live_window,
            "variants": [current[v] for v in sorted(current)],
            "targets": [h.as_dict() for h in self.health.values()],
            "store": {"ok": self.store_error is None, "error": self.store_error, "since": self.store_error_since},
        }


def _when(ts: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) if ts else "?"
