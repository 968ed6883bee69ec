"""The dashboard: overview charts, the live tail, request detail, sessions, runs and a
playground, in Plotly Dash.

Three paths meet in the page:

- **The live path is browser-side.** ``assets/tokentail.js`` opens one ``EventSource``
  per proxy (``{proxy}/api/live``, cross-origin; the proxies list the dashboard's origin
  with ``--allowed-origin``) and keeps the live list in the DOM itself: a ``Map`` by
  request id, and a text node per row that each ``request.delta`` appends to. No Dash
  callback, no server round trip and no timer sits between a token and the screen.
  History rows come from the collector's ``/api/spans`` through this server
  (``/_tt/spans``, so the browser needs no CORS for them) and merge into the same map
  by request id: a request streamed live and later stored is one row.
- **Everything else is ordinary Dash.** The collector's ``/api/events`` (an
  ``EventSource`` too) sets a ``dcc.Store`` through ``dash_clientside.set_props`` after
  each scrape; a server-side callback then reads ``/api/metrics`` and ``/api/status``
  (``queries``) and builds figures (``figures``, pure) and cards (``layout``, pure).
  ``callbacks`` only connects the two.
- **State changes go through this server.** Run start/pause/resume/end, cancelling a
  request and the Playground's send are same-origin JSON POSTs to ``/_tt/...``
  (``actions``), which checks the caller (admin token once configured, else loopback)
  and calls the collector or the proxy with the admin token; the page never holds it.
  The Playground's request, like any other, is then followed on the live feed.

Module map: ``config`` (resolved sources), ``command`` (``tokentail dashboard``),
``queries`` (HTTP reads and the pure reshaping of their JSON; prompts and completions
of every API in one shape in ``_messages``), ``figures`` (Plotly
figures and the colour of each variant and model), ``layout`` (the frame, Overview,
Live, request detail), ``sessions_page``, ``runs_page``, ``playground_page`` (components
from data), ``callbacks`` (wiring), ``actions`` (state-changing routes), ``app`` (the
Dash/Flask app: routes, access, page config). In the browser: ``assets/tokentail.js``
(the live path, routing) and ``assets/tokentail_pages.js`` (actions, a session's turns in
flight, the Playground).
"""
