"""The tokentail proxy: forwards OpenAI-compatible traffic and watches it stream.

Layers, from the socket inward:

- ``app``: the aiohttp application factory; shared resources (upstream session,
  background tasks) live in ``cleanup_ctx`` under typed ``web.AppKey`` s.
- ``forward``: the thin request handler. It reads the request, opens the upstream
  call and loops: read a chunk, write it to the client, feed the tap.
- ``tap`` (pure): turns the response bytes into deltas, usage, finish reason;
  built on ``sse`` (an incremental SSE decoder) and ``usage`` (per-provider shapes).
- ``record``: the ``RequestRecord`` a request builds as it goes, and the
  ``Observer`` hooks (``on_start``/``on_delta``/``on_end``) that the live hub and
  the telemetry sinks implement. Observers must never block or raise into the
  request path.
- ``redact`` (pure): secrets and personal data out of what is captured.
- ``live``: in-memory ring of recent requests and the pub/sub behind ``/api/live``.
"""
