"""The simulator: a fake OpenAI-compatible upstream (``tokentail simulate``).

- ``text`` (pure): deterministic English-like completions and tool arguments from a seed.
- ``shapes`` (pure): the JSON bodies and SSE event streams of each API, per-token
  events rendered from pre-serialised templates.
- ``endpoints`` (pure): one builder per API (request JSON -> body or event stream),
  listed with its path in ``API``.
- ``app``: the aiohttp app (``create_app(SimConfig)``): wraps each builder into a
  handler; pacing, fault injection, disconnect detection, and the ``/_sim/*`` test hooks.
- ``command``: the CLI command.
"""
