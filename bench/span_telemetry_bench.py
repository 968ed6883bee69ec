"""CPU cost of the span observer per request, on the event loop's thread (issue 13).

Drives ``SpanObserver`` with realistic chat records (a 3-message prompt, a 40-delta
streamed completion, usage, cost) against the proxy's own export pipeline
(``telemetry.build_tracer_provider``: drop-counting gate, batch processor, child-process
OTLP exporter), and reports the thread CPU time (``time.thread_time``, which a loaded
machine does not inflate much) of ``on_start`` + ``on_delta`` x 40 + ``on_end`` per request,
and of the batch worker's share (what the export thread does in this process before the
child takes over: flatten + pickle of one batch). The export is held back (a long schedule
delay) while the loop side is measured, then the queued batch is measured alone.

Run it with another checkout's interpreter for a before/after in one sitting:
``python bench/span_telemetry_bench.py`` and ``/other/.venv/bin/python bench/span_telemetry_bench.py``.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import time

from tokentail.proxy import telemetry
from tokentail.proxy.record import Delta, RequestRecord, Usage
from tokentail.proxy.spans import SpanObserver

PROMPT = {
    "messages": [
        {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
        {"role": "user", "content": "What is the capital of France? " * 4},
        {"role": "assistant", "content": "Paris."},
    ]
}
DELTAS = 40


def _record(i: int) -> RequestRecord:
    rec = RequestRecord(
        id=f"req-{i}",
        variant="production",
        method="POST",
        endpoint="/chat/completions",
        model="gpt-4o-mini",
        stream=True,
        prompt=PROMPT,
        params={"temperature": 0.2, "max_tokens": 256},
        trace_headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
    )
    return rec


def _finish(rec: RequestRecord) -> None:
    rec.status = "ok"
    rec.http_status = 200
    rec.response_model = "gpt-4o-mini-2024-07-18"
    rec.response_id = "chatcmpl-1"
    rec.text = "word " * DELTAS
    rec.finish_reason = "stop"
    rec.usage = Usage(input_tokens=40, output_tokens=DELTAS)
    rec.ttft_ms = 12.0
    rec.latency_ms = 80.0
    rec.output_tps = 500.0
    rec.cost_usd = 0.0001


def run(n: int) -> tuple[float, float]:
    env = {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9/v1/traces",
        "OTEL_BSP_SCHEDULE_DELAY": "600000",  # nothing is exported while the loop side is timed
        "OTEL_BSP_MAX_QUEUE_SIZE": str(n + 1),
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": str(n + 1),
    }
    provider = telemetry.build_tracer_provider(env, lambda sink, k: None)
    assert provider is not None
    obs = SpanObserver(provider, upstream_url="https://api.openai.com/v1")
    delta = Delta(text="word ")
    recs = [_record(i) for i in range(n)]
    t0 = time.thread_time()
    for rec in recs:
        obs.on_start(rec)
        obs.span_of(rec.id)  # the trace-context hook, once per request
        for _ in range(DELTAS):
            obs.on_delta(rec, delta)
        _finish(rec)
        obs.on_end(rec)
    loop_us = (time.thread_time() - t0) / n * 1e6
    # The worker's share: what ``ProcessSpanExporter.export`` does before the child.
    gate = provider.gates[0]
    queued = list(gate._batch._batch_processor._queue)  # bench only: the batch the worker would take
    exporter = gate._batch._batch_processor._exporter._inner
    from tokentail.proxy import span_process

    flat_of = getattr(span_process, "flat_of", span_process.flatten)
    t0 = time.thread_time()
    pickle.dumps([flat_of(s) for s in queued], protocol=pickle.HIGHEST_PROTOCOL)
    worker_us = (time.thread_time() - t0) / max(1, len(queued)) * 1e6
    assert len(queued) == n, f"{len(queued)} spans queued of {n}"
    del exporter
    gate._batch._batch_processor._queue.clear()  # nothing to export at shutdown (no receiver here)
    telemetry.shutdown_bounded(provider, 0.5)
    return loop_us, worker_us


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000, help="requests per round")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    run(200)  # warm up (imports, caches)
    loops, workers = [], []
    for _ in range(args.rounds):
        lo, wo = run(args.n)
        loops.append(lo)
        workers.append(wo)
    print(
        f"span observer on the loop: {statistics.median(loops):.1f} us/request (min {min(loops):.1f}); "
        f"export worker in-process: {statistics.median(workers):.1f} us/span; "
        f"{DELTAS} deltas per request, median of {args.rounds} x {args.n}"
    )


if __name__ == "__main__":
    main()
