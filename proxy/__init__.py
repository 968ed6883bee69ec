"""The tokentail proxy: forwards OpenAI-compatible traffic and watches it stream.

Layers, from the socket inward:

- ``app``: the aiohttp application factory. It wires what ``services`` built from the
  settings (metrics, observers, request hooks, ...) under the typed ``web.AppKey`` s of
  ``state``, a leaf module the handlers import; shared resources (upstream session,
  background tasks) live in ``cleanup_ctx``.
- ``forward``: the thin request handler. It reads the body, runs the request hooks,
  opens the upstream call and relays: read a chunk, write it to the client, feed the tap.
- ``hooks`` (pure): the request side, mirroring the tap: parse, attribute, route,
  session, usage injection, trace context, in one ordered list (``default_hooks``),
  each returning its change; ``upstream`` (pure) builds the upstream request from them.
- ``tap`` (pure): turns the response bytes into deltas, usage, finish reason;
  built on ``sse`` (an incremental SSE decoder) and ``usage`` (the registry of
  per-provider interpreters, in ``_usage_openai``, ``_usage_responses``, ``_usage_anthropic``).
- ``record``: the ``RequestRecord`` a request builds as it goes, and the
  ``Observer`` hooks (``on_start``/``on_delta``/``on_end``) that the live hub and
  the telemetry sinks implement. Observers must never block or raise into the
  request path.
- ``redact`` (pure): secrets and personal data out of what is captured.
- ``routes`` (pure, plus a config-file re-read): which upstream a request's model goes
  to, with an optional model rewrite and an injected key; swapped whole on reload
  (SIGHUP, ``POST /api/routes/reload``).
- ``attribution`` (pure): key fingerprint, end user, tags.
- ``sessions`` (pure, bounded memory): the conversation a request belongs to; assigned
  before the upstream call, keyed for the next turn at ``on_end`` (an observer).
- cost: ``tokentail.pricing`` (pure) prices the finished record before the observers see it.
- ``live``: in-memory ring of recent requests and the pub/sub behind ``/api/live``
  (entries and event payloads: the pure ``live_entry``; SSE encoding: ``live_sse``).
- ``api``: ``/api/*`` handlers, including cancel (the app keeps a registry of in-flight
  handler tasks by request id) and routes; state changes follow ``tokentail.access``.
"""
