"""`tokentail dashboard`: the Dash app as a process."""

from __future__ import annotations

import logging

from tokentail.access import allowed_host
from tokentail.settings import Option, parse_bool, parse_duration, port

log = logging.getLogger("tokentail.dashboard")

SUMMARY = "run the dashboard: overview charts, live tail, request detail, sessions, runs, playground"
DESCRIPTION = """\
Serve the dashboard. The Live page follows every --proxy's live feed straight from
the browser (EventSource on {proxy}/api/live): start each proxy with
--allowed-origin set to this dashboard's origin (http://HOST:PORT). The Overview
reads the collector's history and updates when its /api/events announces a scrape;
the collector needs the same --allowed-origin. With --metrics-source prometheus=URL the
Overview reads any Prometheus-compatible API instead (this server queries it; the page
never sees its URL or credentials).

Many proxies (replicas behind a load balancer): start them and a collector with the same
--live-redis redis://..., and give the dashboard --live COLLECTOR_URL: the Live page then
follows the collector's one merged /api/live instead of each proxy's, so the browser needs
one origin whatever the number of proxies, and a banner says when Redis is unreachable.

State changes (start/pause/resume/end a run, cancel a request, send from the Playground)
go through this server, which calls the collector or the proxy with the admin token
(TOKENTAIL_ADMIN_TOKEN) when one is set; the page never sees it. Once set, the page's
users present it once (an HttpOnly cookie keeps it); unset, only loopback clients may.
Pages answer only to localhost, the bind address, IP literals and --allowed-host names;
the read token is never written into the HTML (SECURITY.md).

example:
  tokentail dashboard --collector http://127.0.0.1:8788 \\
      --proxy production=http://127.0.0.1:8787 --proxy canary=http://127.0.0.1:8789
"""

OPTIONS = [
    Option("port", "port to listen on", 8050, port),
    Option(
        "host",
        "address to bind; anything but loopback requires the read token (or --insecure): "
        "open the page once with ?token=<token>",
        "127.0.0.1",
    ),
    Option("collector", "collector base URL, e.g. http://127.0.0.1:8788 (history and charts)", None, metavar="URL"),
    Option(
        "proxy",
        "proxy to follow live, [VARIANT=]URL as the browser reaches it, e.g. canary=http://127.0.0.1:8789 (repeatable)",
        [],
        multiple=True,
        metavar="[VARIANT=]URL",
    ),
    Option(
        "live",
        "merged live feed the Live page follows instead of each --proxy's: the URL of a collector "
        "started with --live-redis (it serves /api/live for every proxy writing to that Redis)",
        None,
        metavar="URL",
    ),
    Option(
        "read_token",
        "token for reading the proxies' and the collector's /api/* (passed on, never shown); "
        "also needed to open the dashboard when it is bound off loopback",
        None,
        secret=True,
        env_aliases=("TOKENTAIL_READ_TOKEN",),
    ),
    Option(
        "admin_token",
        "token for state changes (runs, cancel): sent by this server to the collector and the "
        "proxies, never to the page; once set, the page's users must present it too (unset: loopback only)",
        None,
        secret=True,
        env_aliases=("TOKENTAIL_ADMIN_TOKEN",),
    ),
    Option(
        "playground_key",
        "API key the Playground sends through the proxy (default: a placeholder, enough for "
        "the simulator and local servers)",
        None,
        secret=True,
    ),
    Option(
        "metrics_source",
        "where the Overview's charts come from: collector (its /api/metrics) or prometheus=URL, any "
        "Prometheus-compatible HTTP API scraping the proxies (PromQL; variants from the `variant` target "
        "label); called by this server only, so the URL may carry user:password@",
        "collector",
        secret=True,  # the URL may carry a password: `tokentail config` masks it
        metavar="collector|prometheus=URL",
    ),
    Option(
        "metrics_source_token",
        "bearer token for --metrics-source prometheus=URL (sent by this server, never shown)",
        None,
        secret=True,
    ),
    Option(
        "metrics_source_interval",
        "the Prometheus scrape interval of the proxies (the charts' smallest step; e.g. 5s); "
        "default: read from the samples of the last 10 minutes",
        None,
        parse_duration,
        metavar="DURATION",
    ),
    Option("insecure", "serve off loopback without asking for the read token", False, parse_bool),
    Option(
        "allowed_host",
        "host name the dashboard answers to besides localhost, the bind address and IP literals "
        "(repeatable; NAME or NAME:PORT, e.g. a name behind a load balancer)",
        [],
        allowed_host,
        multiple=True,
        metavar="HOST",
    ),
]


def main(settings) -> int:
    from tokentail.settings import SettingsError

    from .app import create_app
    from .config import DashboardConfig, display_url

    config = DashboardConfig.from_settings(settings)
    if not config.open_access and not config.read_token:
        raise SettingsError(
            f"--host {config.host} is not loopback: set TOKENTAIL_READ_TOKEN (or --read-token) "
            "so that only its holders can read captured content, or pass --insecure"
        )
    if not _bindable(config.host, config.port):
        return 1
    app = create_app(config)
    log.info(
        "dashboard on http://%s:%d/  (collector: %s; proxies: %s)",
        config.host,
        config.port,
        config.collector or "none",
        ", ".join(f"{p.name}={p.url}" for p in config.proxies) or "none",
    )
    if config.live:
        log.info("live feed: %s/api/live (merged, from the collector's --live-redis)", config.live.url)
    if config.prometheus is not None:
        interval = config.prometheus.scrape_interval
        log.info(
            "overview from Prometheus at %s (scrape interval %s)",
            display_url(config.prometheus.url),
            f"{interval:g}s" if interval else "read from the data",
        )
    if config.proxies:
        log.info("the proxies (and the collector) must allow this origin: --allowed-origin %s", config.origin)
    return serve(app, config.host, config.port)


def _bindable(host: str, port: int) -> bool:
    """One clear line for a taken port, before anything else is said or werkzeug gives advice."""
    import errno
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as exc:
        what = (
            "is already in use (choose another with --port)"
            if exc.errno == errno.EADDRINUSE
            else f"cannot be bound: {exc.strerror}"
        )
        print(f"tokentail: error: dashboard: port {port} on {host} {what}", flush=True)
        return False
    return True


def serve(app, host: str, port: int) -> int:
    """Run Dash's threaded Flask server (debug off: no traceback ever reaches a page).

    The browser's long-lived connections (live feeds, collector events) go to the proxies'
    and the collector's async servers, not here: this server only answers short requests.
    """
    # werkzeug logs every request at INFO; keep the process log about the dashboard.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        app.run(host=host, port=port, debug=False, threaded=True)
    except SystemExit as exc:  # werkzeug exits 1 when it cannot listen after all
        if exc.code not in (0, None):
            return 1
        raise
    return 0
