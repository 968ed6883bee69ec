"""Telemetry names shared by the proxy (which emits them) and the collector (which reads them).

Span attributes follow the OpenTelemetry GenAI semantic conventions (v1.41 names);
what the conventions lack is under ``tokentail.*``. Prometheus series names are in
DESIGN.md and ``tokentail.proxy.metrics``; the ``tokentail_*`` ones never rename.
"""

# --- GenAI semantic conventions (span attributes) ---
OPERATION_NAME = "gen_ai.operation.name"  # chat | text_completion | embeddings | ...
PROVIDER_NAME = "gen_ai.provider.name"  # openai | anthropic | ...
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
CONVERSATION_ID = "gen_ai.conversation.id"
INPUT_MESSAGES = "gen_ai.input.messages"  # JSON string, parts-based
OUTPUT_MESSAGES = "gen_ai.output.messages"  # JSON string, parts-based
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
HTTP_STATUS_CODE = "http.response.status_code"
EVENT_OPERATION_DETAILS = "gen_ai.client.inference.operation.details"

# --- tokentail's own span attributes ---
TT_REQUEST_ID = "tokentail.request.id"  # the UUID shared by live feed, /api/requests, spans table
TT_VARIANT = "tokentail.variant"
TT_ENDPOINT = "tokentail.endpoint"  # path below /v1, e.g. /chat/completions
TT_STREAM = "tokentail.stream"
TT_STATUS = "tokentail.status"  # ok | error | cancelled
TT_CANCELLED = "tokentail.cancelled"
TT_TTFT_MS = "tokentail.ttft_ms"
TT_LATENCY_MS = "tokentail.latency_ms"
TT_OUTPUT_TPS = "tokentail.output_tps"
TT_USAGE_SOURCE = "tokentail.usage.source"  # reported | estimated
TT_SESSION_ID = "tokentail.session.id"
TT_TRUNCATED = "tokentail.truncated"
TT_MALFORMED = "tokentail.response.malformed"  # the tap met a response it could not parse
TT_UNPARSED = "tokentail.request.unparsed"  # the request body was not JSON (forwarded as-is)
TT_EVENT_FIRST_TOKEN = "tokentail.first_token"  # span event at the first delta
TT_USER = "tokentail.user"  # the OpenAI `user` field (redacted, capped)
TT_TAGS = "tokentail.tags"  # string array, from the X-Tokentail-Tags header
TT_KEY_FINGERPRINT = "tokentail.client.key_fingerprint"  # keyed hash of the client's API key, 12 hex
TT_REPLAY_OF = "tokentail.replay_of"  # the request this one replays (X-Tokentail-Replay-Of)
TT_ROUTE = "tokentail.route"  # name of the route taken (absent: the default upstream)
TT_UPSTREAM_MODEL = "tokentail.upstream.model"  # model sent upstream when a route rewrote it
TT_COST_USD = "tokentail.cost.usd"  # only when the model has a price and usage is known
