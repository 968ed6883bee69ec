"""Span rows as the collector's store holds them, written straight into a test app's store."""

from __future__ import annotations

from tokentail.collector.app import STORE

__all__ = ["add_spans", "span"]


def span(
    rid,
    t,
    *,
    model="m-cheap",
    status="ok",
    tin=100,
    tout=50,
    cost=0.0002,
    tps=25.0,
    endpoint="/chat/completions",
    http=200,
    error=None,
    cached=None,
    **extra,
):
    return {
        "request_id": rid,
        "start_time": t,
        "end_time": t + 2,
        "model": model,
        "endpoint": endpoint,
        "status": status,
        "http_status": http,
        "error_type": error,
        "input_tokens": tin,
        "output_tokens": tout,
        "cached_input_tokens": cached,
        "cost_usd": cost,
        "output_tps": tps,
        "latency_ms": 2000.0,
        **extra,
    }


async def add_spans(client, rows):
    store = client.app[STORE]
    return await store.write(store.insert_spans, rows)
