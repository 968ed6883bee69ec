"""What the OTLP receiver (``POST /v1/traces``) refuses: counted by reason, logged once per interval.

An exporter whose batch is refused does not retry a 400 or a 413 (the OTel SDK retries
only 429, 502, 503 and 504), so each refusal may be spans lost at the source: the
counts are on ``/api/status`` under ``otlp.refused``, and the log says it at most once
a minute (a misconfigured exporter refused every five seconds must not flood the log).

The body limit (``--max-otlp-bytes``, 16 MiB by default) and the proxy's export batch
agree: the proxy caps prompt and completion on a span (64 KiB each by default) and a span
carries each twice (attribute and event); with system instructions capped alike that is
384 KiB of content, and under 448 KiB with everything else on the span. 32 spans a batch
(the proxy's ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` default) is then at most 14 MiB, under the
limit with room to spare. A 413 names the limit so an exporter's operator can size the batch.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ._http import error

log = logging.getLogger("tokentail.collector")

REASONS = ("too_large", "invalid", "too_deep", "unsupported_media_type", "unavailable")
# The arithmetic above, checked by the receiver's tests with real exporter batches.
DEFAULT_MAX_BYTES = 16 << 20
WORST_SPAN_BYTES = 448 << 10  # 6 x 64 KiB of content + 64 KiB for the rest
EXPORT_BATCH = 32


class RefusalLog:
    """Counts refusals into ``stats`` and logs a summary at most once per ``interval`` seconds."""

    def __init__(
        self, stats: dict[str, Any], *, interval: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stats = stats
        self.interval = interval
        self._clock = clock
        self._pending: Counter[str] = Counter()
        self._last: float | None = None
        stats["refused"] = dict.fromkeys(REASONS, 0)

    def refused(self, reason: str, message: str) -> None:
        self.stats["refused"][reason] = self.stats["refused"].get(reason, 0) + 1
        self.stats["errors"] += 1
        self._pending[reason] += 1
        now = self._clock()
        if self._last is not None and now - self._last < self.interval:
            return  # counted; said in the next summary
        summary = ", ".join(f"{n} {r}" for r, n in sorted(self._pending.items()))
        since = "since start" if self._last is None else f"in the last {now - self._last:.0f}s"
        log.warning("OTLP receiver refused requests (%s) %s; latest: %s", summary, since, message)
        self._pending.clear()
        self._last = now


REFUSALS = web.AppKey("otlp_refusals", RefusalLog)


def too_large(limit: int, size: int | None) -> web.Response:
    """413 that tells the exporter's side what the limit is."""
    got = f"of {size} bytes " if size is not None else ""
    return error(
        413,
        f"OTLP request body {got}is over this collector's limit of {limit} bytes (--max-otlp-bytes): "
        "export smaller batches (OTEL_BSP_MAX_EXPORT_BATCH_SIZE) or raise the limit",
        "request_too_large",
        max_bytes=limit,
    )
