"""`tokentail simulate`: a built-in OpenAI-compatible upstream for demos, tests and benchmarks."""

from __future__ import annotations

import logging
from collections.abc import Callable

from .. import serving
from .. import settings as st
from ..settings import Option

log = logging.getLogger("tokentail.simulator")

SUMMARY = "run a built-in OpenAI-compatible upstream that streams plausible completions"
DESCRIPTION = """\
Serve a fake OpenAI-compatible API for demos, tests and benchmarks on a machine with no LLM:
/v1/chat/completions (with tool calls), /v1/completions, /v1/embeddings, /v1/responses,
/v1/messages (Anthropic) and /v1/models, streamed or not, at a configurable pace.

Per-request overrides (request headers): x-sim-tps, x-sim-ttft-ms, x-sim-tokens,
x-sim-error (status to return, with Retry-After), x-sim-disconnect-after (drop the
stream after N tokens), x-sim-no-usage: 1, x-sim-hang: 1 (never answer),
x-sim-cached-tokens. Test hooks: GET /_sim/stats, GET /_sim/last, POST /_sim/reset.
"""


def fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"must be between 0 and 1, got {text}")
    return value


def _at_least(low: int, parse: Callable[[str], float]) -> Callable[[str], float]:
    """A setting parser that rejects values below ``low``."""

    def check(text: str) -> float:
        value = parse(text)
        if value < low:
            raise ValueError(f"must be >= {low}, got {text}")
        return value

    return check


non_negative = _at_least(0, float)
duration = _at_least(0, st.parse_duration)  # "200ms", "1.5s", ...
positive_int = _at_least(1, int)


OPTIONS: list[Option] = [
    Option("port", "TCP port to listen on", 8799, st.port),
    Option("host", "address to bind (loopback by default)", "127.0.0.1"),
    Option(
        "tokens_per_second",
        "output pace of each stream; 0 sends tokens without delay",
        50.0,
        non_negative,
        metavar="TPS",
    ),
    Option("ttft", "time to first token, e.g. 200ms or 1.5s", 0.2, duration, metavar="DURATION"),
    Option(
        "length", "completion tokens per answer (a request's max tokens caps it)", 60, positive_int, metavar="TOKENS"
    ),
    Option(
        "error_rate",
        "fraction of requests answered with 429 (Retry-After: 1) or 500, alternately",
        0.0,
        fraction,
        metavar="FRACTION",
    ),
    Option(
        "disconnect_rate", "fraction of streams dropped mid-stream without [DONE]", 0.0, fraction, metavar="FRACTION"
    ),
    Option("seed", "random seed: the same seed and request give the same text", 0, int),
]


def main(settings: st.Settings) -> int:
    from .app import SimConfig, create_app

    config = SimConfig(
        host=settings.host,
        port=settings.port,
        tokens_per_second=float(settings.tokens_per_second),
        ttft=float(settings.ttft),
        length=int(settings.length),
        error_rate=float(settings.error_rate),
        disconnect_rate=float(settings.disconnect_rate),
        seed=int(settings.seed),
        whole_sentences=True,  # answers end their sentence, as a model's do
    )
    log.info(
        "simulator: %g tokens/s, first token after %gs, %d tokens per answer, seed %d",
        config.tokens_per_second,
        config.ttft,
        config.length,
        config.seed,
    )
    return serving.run(serving.serve_until_signal(create_app(config), config.host, config.port, "simulator"))
