"""The dashboard: overview charts, the live tail and request detail, in Plotly Dash.

Two paths meet in the page:

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

Module map: ``config`` (resolved sources), ``command`` (``tokentail dashboard``),
``queries`` (HTTP reads and the pure reshaping of their JSON; prompts and completions
of every API in one shape in ``_messages``), ``figures`` (Plotly
figures and the colour of each variant and model), ``layout`` (components from data),
``callbacks`` (wiring), ``app`` (the Dash/Flask app: routes, access, page config).
"""
