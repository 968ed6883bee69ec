"""History search benchmark: /api/requests/search and /export over N stored spans (default 100k).

Builds a temporary DuckDB file with N spans (prompts and completions of ~0.5-2 KB of words,
a rare word in 0.1% of them), then times, on the store's reader cursor as the API does
(median of 5 after a warm-up): a page with no filter, a page with attribution filters, full
text (``q``, ILIKE over prompt, system and completion) for a rare and a common word, full
text with a filter, a latency sort, and an export of up to 100k rows encoded as CSV and JSONL.

Usage: python bench/search_bench.py [--spans N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tokentail.collector import search  # noqa: E402
from tokentail.collector.store import Store  # noqa: E402

WORDS = [
    "the",
    "model",
    "answers",
    "questions",
    "about",
    "data",
    "latency",
    "tokens",
    "stream",
    "proxy",
    "cache",
    "region",
    "user",
    "budget",
]


def _text(rng: random.Random, n: int, rare: bool) -> str:
    words = [rng.choice(WORDS) for _ in range(n)]
    if rare:
        words[rng.randrange(n)] = "zanzibar"
    return " ".join(words)


def build(store: Store, n: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    t0 = time.time() - 7 * 86400
    batch: list[dict[str, Any]] = []
    for i in range(n):
        prompt = _text(rng, rng.randint(80, 300), rng.random() < 0.001)
        completion = _text(rng, rng.randint(80, 300), False)
        batch.append(
            {
                "request_id": f"req-{i:07}",
                "start_time": t0 + i * (7 * 86400 / n),
                "end_time": t0 + i * (7 * 86400 / n) + 1,
                "variant": rng.choice(("production", "canary")),
                "model": rng.choice(("gpt-4o", "gpt-4o-mini", "llama-3")),
                "status": "error" if rng.random() < 0.03 else "ok",
                "latency_ms": rng.lognormvariate(7, 0.6),
                "ttft_ms": rng.lognormvariate(5.5, 0.5),
                "input_tokens": rng.randint(50, 2000),
                "output_tokens": rng.randint(10, 800),
                "cost_usd": rng.random() / 100,
                "session_id": f"s-{rng.randrange(n // 10)}",
                "user_id": f"u-{rng.randrange(200)}",
                "tags": [rng.choice(("exp", "demo", "batch"))],
                "input_messages": f'[{{"role": "user", "parts": [{{"type": "text", "content": "{prompt}"}}]}}]',
                "output_messages": f'[{{"role": "assistant", "parts": [{{"type": "text", "content": "{completion}"}}]}}]',
                "received_at": t0 + i,
            }
        )
        if len(batch) == 10_000:
            store.insert_spans(batch)
            batch = []
    if batch:
        store.insert_spans(batch)
    store.checkpoint()


def timed(fn: Any, runs: int = 5) -> tuple[float, Any]:
    fn()
    times, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "search.duckdb")
        t = time.perf_counter()
        build(store, args.spans)
        print(f"built {args.spans} spans in {time.perf_counter() - t:.1f} s, file {store.size_bytes() / 1e6:.0f} MB")
        cur = store._con.cursor()
        cases = {
            "page, no filter": {},
            "page, user + status": {"user": "u-7", "status": "ok"},
            "q rare word (0.1%)": {"q": "zanzibar"},
            "q common word": {"q": "latency"},
            "q rare + model": {"q": "zanzibar", "model": "gpt-4o"},
            "sort latency desc": {"sort": "latency"},
            "min_latency_ms=3000": {"min_latency_ms": "3000"},
        }
        for name, query in cases.items():
            plan = search.plan_search(query)
            ms, body = timed(lambda plan=plan: search.fetch_page(cur, plan))
            print(f"{name:24} {ms:8.1f} ms  total {body['total']}")
        for fmt in search.FORMATS:
            plan, _ = search.plan_export({"format": fmt})
            cols = search.export_columns(fmt)
            encode = search.csv_rows if fmt == "csv" else search.jsonl_rows

            def export(plan: search.SearchPlan = plan, cols: tuple[str, ...] = cols, encode: Any = encode) -> int:
                ids = search.export_ids(cur, plan)
                size = 0
                for start in range(0, len(ids), search.EXPORT_PAGE):
                    size += len(encode(search.fetch_by_ids(cur, cols, ids[start : start + search.EXPORT_PAGE])))
                return size

            ms, size = timed(export, runs=1)
            print(f"export {fmt:5} (<=100k rows) {ms:8.1f} ms  {size / 1e6:.1f} MB")
        store.close()


if __name__ == "__main__":
    main()
