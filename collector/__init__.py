"""The collector: scraped metrics and request spans in one DuckDB file, with a query API.

The embedded history store for teams without a Prometheus: one process, one file,
nothing to administer. It is a pipeline of small steps, I/O at the ends only::

    proxies' /metrics ──► scrape.fetch ──► parse.parse_exposition ──► derive.Deriver
       (I/O, every 5s,       (text)          (prometheus_client's        (increases across
        all targets at once)                  parser; pure)               resets; pure)
                                                                               │
    POST /v1/traces ──► otlp.decode/spans_to_rows (pure) ──┐                   ▼
                                                           └──────────► store.Store (DuckDB, I/O)
                                                                        metrics_5s ─rollup─► metrics_1m
                                                                        spans, series, meta
    GET /api/metrics ◄── query.assemble (pure) ◄── query.run_metrics (SQL) ◄──┘
    GET /api/events  ◄── events.Broadcaster ◄── pipeline.Collector (snapshot after each round)

- ``config``: targets (``[VARIANT=]URL``), intervals, retention, access.
- ``scrape``: GET with timeout and a body cap; never raises; target health, logged per change.
- ``parse``: exposition text -> samples, counters vs gauges, ``_created`` for reset detection.
- ``derive``: per-interval increases (reset-aware), ``histogram_quantile`` as Prometheus does it.
- ``formulas``: the roles of the series and the /api/metrics values computed from them.
- ``store``: schema + migrations, Arrow batch writes, idempotent 1m rollup, bounded retention
  (spans by receive time); ``_open``: opening the file, files set aside only on DuckDB's own
  corruption errors, everything else retried and then one line.
- ``query``: /api/metrics, /api/spans (filters by session, user, tag, key, run), /api/sessions,
  /api/facets; ``otlp``: OTLP/HTTP bodies -> span rows (cost and attribution as columns);
  ``receiver``: what POST /v1/traces refuses (413 with the limit, 400), counted and logged.
- ``runs`` (SQL) and ``run_stats`` (pure: life cycle, stats from grouped rows, what-if,
  compare): named recordings; a request belongs to a run when its span starts in one of
  the run's intervals. ``run_api``: their routes.
- ``pipeline``: the scrape and upkeep loops; ``events``: SSE; ``app``: routes (``_http``: the
  app keys they share); ``command``: CLI.

Storing increases (not raw counter values) is the central choice: a 1m row is the plain
sum of its 5s rows, histogram buckets included, so percentiles over any range are exactly
what ``histogram_quantile`` would give on the raw data, and a proxy restart costs nothing.
"""
