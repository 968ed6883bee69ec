"""``tokentail collector``: options and entry point."""

from __future__ import annotations

import logging
import sys

from .. import serving
from ..access import allowed_host
from ..redis_url import redis_url
from ..settings import Option, parse_duration, parse_size, port

SUMMARY = "scrape proxies' /metrics and receive spans into DuckDB; serve history over HTTP"
DESCRIPTION = """\
Scrapes every --target's /metrics (every 5s by default, all targets at once), keeps
per-interval increases in DuckDB (metrics_5s, rolled up into metrics_1m), receives
request spans over OTLP/HTTP (POST /v1/traces), and serves /api/metrics, /api/spans,
/api/sessions, /api/runs, /api/status, /api/config and /api/events (SSE). POST /api/erase
{"session"|"request"|"user"|"key"|"before": ...} erases captured content and keeps the
numbers (an admin action). Runs are named
recordings (POST /api/runs {"name"}, then /api/runs/ID/pause|resume|end): the requests
made while one is active belong to it. The collector is the only process that opens the
database file: dashboards read through its API.

A target is [VARIANT=]URL, where URL is a proxy's base URL or its /metrics URL. Without
a VARIANT, a URL containing "canary" or "test" is variant canary, any other production.

Bound beyond loopback, /api/* needs the read token and POST /v1/traces the admin token
(Authorization: Bearer <token>), unless --insecure. Run actions need the admin token
whenever one is set, and otherwise come from loopback only. /api/* and /v1/traces answer
only to localhost, the bind address, IP literals and --allowed-host names (DNS
rebinding); state changes from another site's page or without a JSON body are refused
(SECURITY.md).

With --live-redis (the URL the proxies were given), /api/live serves every proxy's live
events merged from the Redis stream, in the proxies' /api/live protocol, with the stream id
as the SSE id: point the dashboard's --live at this collector.
"""

OPTIONS: list[Option] = [
    Option(
        "live_redis",
        "serve /api/live: the live events the proxies append to this Redis (their --live-redis), "
        "merged; redis://HOST:PORT[/DB]",
        None,
        redis_url,
        secret=True,  # the URL may hold a password
        metavar="URL",
    ),
    Option("live_max_subscribers", "listeners of /api/live at once (beyond: 503)", 64, int, metavar="N"),
    Option(
        "live_replay",
        "most recent live events a new /api/live listener is given before the live ones",
        1000,
        int,
        metavar="N",
    ),
    Option("port", "port to listen on", 8788, port),
    Option("host", "address to bind (loopback by default)", "127.0.0.1"),
    Option("db", "DuckDB file (created if missing)", "./tokentail-data/tokentail.duckdb", metavar="PATH"),
    Option("target", "proxy to scrape, [VARIANT=]URL (repeatable)", [], multiple=True, metavar="[VARIANT=]URL"),
    Option("scrape_interval", "time between scrapes", 5.0, parse_duration, metavar="DURATION"),
    Option("scrape_timeout", "give up on a target after", 2.0, parse_duration, metavar="DURATION"),
    Option("max_scrape_bytes", "largest /metrics body read", 8 << 20, parse_size, metavar="SIZE"),
    Option("retention_5s", "keep 5s rows for", 86400.0, parse_duration, metavar="DURATION"),
    Option("retention_1m", "keep 1m rows for", 7 * 86400.0, parse_duration, metavar="DURATION"),
    Option(
        "spans_retention",
        "keep spans for (counted from their arrival, not their reported time)",
        7 * 86400.0,
        parse_duration,
        metavar="DURATION",
    ),
    Option(
        "content_retention",
        "erase captured content (prompts, completions) of spans older than this, keeping their "
        "metadata, usage and cost (default: kept as long as the spans)",
        None,
        parse_duration,
        metavar="DURATION",
    ),
    Option("spans_max_rows", "keep at most this many spans (first received go first)", 1_000_000, int, metavar="N"),
    Option("spans_max_bytes", "keep at most this much captured span content", 1 << 30, parse_size, metavar="SIZE"),
    Option("max_otlp_bytes", "largest OTLP request body accepted", 16 << 20, parse_size, metavar="SIZE"),
    Option("rollup_interval", "how often 1m rollup and retention run", 30.0, parse_duration, metavar="DURATION"),
    Option(
        "checkpoint_threshold",
        "WAL size that triggers a checkpoint into the file",
        16 << 20,
        parse_size,
        metavar="SIZE",
    ),
    Option(
        "read_token", "token for reading /api/* off loopback", None, secret=True, env_aliases=("TOKENTAIL_READ_TOKEN",)
    ),
    Option(
        "admin_token",
        "token for state changes: runs (always, once set) and POST /v1/traces off loopback (also reads)",
        None,
        secret=True,
        env_aliases=("TOKENTAIL_ADMIN_TOKEN",),
    ),
    Option("insecure", "serve without tokens even off loopback", False, bool),
    Option("pricing", "pricing TOML for the runs' what-if totals (default: the bundled table)", None, metavar="PATH"),
    Option(
        "allowed_origin",
        "browser origin allowed to call the API (CORS; repeatable)",
        [],
        multiple=True,
        metavar="ORIGIN",
    ),
    Option(
        "allowed_host",
        "host name /api/* and /v1/traces answer to besides localhost, the bind address and IP "
        "literals (repeatable; NAME or NAME:PORT, e.g. the compose service name)",
        [],
        allowed_host,
        multiple=True,
        metavar="HOST",
    ),
]

log = logging.getLogger("tokentail.collector")


def main(settings) -> int:
    """Open the database (one-line error if it cannot be), then serve until SIGTERM/SIGINT."""
    from .app import create_app  # imported here so `tokentail --help` stays quick
    from .config import CollectorConfig
    from .store import StoreError

    config = CollectorConfig.from_settings(settings)
    try:
        app = create_app(config)
    except StoreError as exc:
        print(f"tokentail collector: error: {exc}", file=sys.stderr)
        return 1
    targets = ", ".join(f"{t.variant}={t.display}" for t in config.targets) or "none"
    log.info("collector: database %s; scraping every %gs: %s", config.db, config.scrape_interval, targets)
    return serving.run(serving.serve_until_signal(app, config.host, config.port, "collector", grace=5.0))
