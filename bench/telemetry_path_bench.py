"""tokentail's own work per streamed request and per relayed chunk, telemetry OFF and FULL (issue 13).

The request path without the network: the tap (``StreamTap.feed``) and the observers
exactly as the forward handler calls them (``forward._on_deltas``), for OpenAI chat streams
of one token per chunk. OFF is the proxy without an exporter (metrics, live hub without a
listener, raw store, sessions); FULL adds the span observer on the proxy's own export
pipeline (``telemetry.build_tracer_provider``; nothing is sent while measuring) and one
live subscriber that takes every event. aiohttp, the kernel and the export child are not
in these figures (``full_telemetry_bench.py`` measures the whole process).

Two measures that a loaded machine does not distort much:
- thread CPU time (``time.thread_time``) per chunk and per request: a fit of runs with 1
  and with ``--tokens`` chunks per request (slope: per chunk; intercept: fixed per request);
- ``--callgrind``: the same runs under ``valgrind --tool=callgrind``, counting instructions
  (the run's total, so the interpreter's start-up cancels out of the differences).

Run it with another checkout's interpreter for before/after:
``python bench/telemetry_path_bench.py [--callgrind]`` and ``/other/.venv/bin/python bench/...``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Any

CHUNK_WORDS = ["Hello", " there", ",", " how", " are", " you", " today", "?", " I", " am", " fine"]


def _chunk(i: int) -> bytes:
    obj = {
        "id": "chatcmpl-9abcDEF",
        "object": "chat.completion.chunk",
        "created": 1733150000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_44709d6fcb",
        "choices": [
            {
                "index": 0,
                "delta": {"content": CHUNK_WORDS[i % len(CHUNK_WORDS)]},
                "logprobs": None,
                "finish_reason": None,
            }
        ],
    }
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _stream(tokens: int) -> list[bytes]:
    end = {
        "id": "chatcmpl-9abcDEF",
        "object": "chat.completion.chunk",
        "created": 1733150000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": tokens, "total_tokens": 20 + tokens},
    }
    return [*(_chunk(i) for i in range(tokens)), b"data: " + json.dumps(end).encode() + b"\n\n", b"data: [DONE]\n\n"]


BODY = {
    "model": "gpt-4o-mini",
    "stream": True,
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Say hello and ask how I am."},
    ],
}


async def run(mode: str, requests: int, tokens: int) -> float:
    """Thread CPU seconds for ``requests`` streams of ``tokens`` chunks."""
    from prometheus_client import CollectorRegistry

    from tokentail.proxy import telemetry
    from tokentail.proxy.forward import _on_deltas
    from tokentail.proxy.live import LiveHub
    from tokentail.proxy.metrics import ProxyMetrics
    from tokentail.proxy.raw_store import RawStore
    from tokentail.proxy.record import Observers, RequestRecord
    from tokentail.proxy.redact import Redactor
    from tokentail.proxy.sessions import SessionTracker
    from tokentail.proxy.spans import SpanObserver
    from tokentail.proxy.tap import StreamTap

    try:  # the live writer's encoding: shared per event where the checkout has it
        from tokentail.proxy.live_sse import item_slices as write_slices
    except ImportError:  # an older checkout: each subscriber encodes its own copy
        from tokentail.proxy.live_sse import sse_slices

        def write_slices(item: Any) -> Any:
            return sse_slices(*item)

    red = Redactor()
    metrics = ProxyMetrics(CollectorRegistry())
    hub = LiveHub(redactor=red, on_drop=metrics.dropped)
    observers: list[Any] = [metrics, hub, SessionTracker(redactor=red), RawStore(red)]
    provider = sub = None
    if mode == "full":
        env = {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9/v1/traces",
            "OTEL_BSP_SCHEDULE_DELAY": "600000",  # nothing is exported while measuring
            "OTEL_BSP_MAX_QUEUE_SIZE": str(requests + 10),
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": str(requests + 10),
        }
        provider = telemetry.build_tracer_provider(env, metrics.dropped)
        spans = SpanObserver(provider, upstream_url="https://api.openai.com/v1", redactor=red)
        observers.insert(0, spans)
        sub = hub.subscribe(snapshot=False)
    obs = Observers(observers)
    stream = _stream(tokens)
    got = 0
    t0 = time.thread_time()
    for k in range(requests):
        rec = RequestRecord(id=f"req-{k}", variant="production", method="POST", endpoint="/chat/completions")
        rec.model, rec.stream, rec.prompt = BODY["model"], True, {"messages": BODY["messages"]}
        rec.params = {}
        obs.start(rec)
        if sub is not None and (item := sub.get_nowait()) is not None:  # request.start
            got += len(b"".join(write_slices(item)))
        rec.http_status = 200
        tap = StreamTap(rec, BODY, streaming=True)
        for chunk in stream:
            _out, deltas = tap.feed(chunk)
            if deltas:
                _on_deltas(rec, deltas, obs)
                if sub is not None:
                    item = sub.get_nowait()
                    if item is not None:  # what the /api/live writer does with it
                        got += len(b"".join(write_slices(item)))
        tap.finish()
        rec.status = "ok"
        rec.latency_ms = rec.elapsed_ms()
        obs.end(rec)
        if sub is not None:
            while (item := sub.get_nowait()) is not None:
                got += len(b"".join(write_slices(item)))
        for _ in range(3):  # the raw store's redaction turns
            await asyncio.sleep(0)
    cpu = time.thread_time() - t0
    if provider is not None:
        gate = provider.gates[0]
        gate._batch._batch_processor._queue.clear()  # bench only: nothing to send at shutdown
        telemetry.shutdown_bounded(provider, 0.5)
    return cpu


def _fit(one: float, many: float, tokens: int, requests: int) -> tuple[float, float]:
    """(per chunk, fixed per request) from totals of 1-chunk and ``tokens``-chunk runs.

    A stream has its chunks plus the final usage chunk and ``[DONE]``."""
    per_chunk = (many - one) / (requests * (tokens - 1))
    fixed = one / requests - per_chunk
    return per_chunk, fixed


def _callgrind(mode: str, requests: int, tokens: int) -> int:
    """Instructions of a whole run of this script in one configuration, under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                os.path.abspath(__file__),
                "--one",
                mode,
                str(requests),
                str(tokens),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with open(out) as f:
            text = f.read()
        m = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        assert m, "no callgrind totals"
        return int(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--tokens", type=int, default=100, help="chunks per request for the slope")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--callgrind", action="store_true", help="also count instructions (valgrind; slow)")
    ap.add_argument("--one", nargs=3, metavar=("MODE", "REQUESTS", "TOKENS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    logging.disable(logging.CRITICAL)
    if args.one:
        asyncio.run(run(args.one[0], int(args.one[1]), int(args.one[2])))
        return
    asyncio.run(run("full", 50, 5))  # warm up
    print(f"tokentail's own request path ({sys.executable}), {args.requests} requests per run")
    for mode in ("off", "full"):
        fits = []
        for _ in range(args.rounds):
            one = asyncio.run(run(mode, args.requests, 1))
            many = asyncio.run(run(mode, args.requests, args.tokens))
            fits.append(_fit(one, many, args.tokens, args.requests))
        per_chunk = sorted(f[0] for f in fits)[len(fits) // 2]
        fixed = sorted(f[1] for f in fits)[len(fits) // 2]
        print(f"  {mode.upper():4}  CPU: {per_chunk * 1e6:6.1f} us per chunk, {fixed * 1e6:6.1f} us fixed per request")
    if args.callgrind:
        n = max(20, args.requests // 20)
        for mode in ("off", "full"):
            one = _callgrind(mode, n, 1)
            many = _callgrind(mode, n, args.tokens)
            two = _callgrind(mode, 2 * n, 1)
            per_chunk = (many - one) / (n * (args.tokens - 1))
            fixed = (two - one) / n - per_chunk
            print(
                f"  {mode.upper():4}  instructions: {per_chunk / 1e3:7.1f} k per chunk, "
                f"{fixed / 1e3:7.1f} k fixed per request ({n} requests per callgrind run)"
            )


if __name__ == "__main__":
    main()
