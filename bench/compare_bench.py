"""Compare benchmark: the Mann–Whitney U test alone, and ``GET /api/compare`` on a DuckDB file.

1. ``mann_whitney_samples`` on N log-normal values a side (10k and 100k): ms.
2. ``/api/compare?a=variant:production&b=variant:canary`` with 50k stored spans a side (canary
   TTFT and latency ~5% slower, 2% errors on both): ms per request (best of 3), and the verdicts
   (TTFT and latency should read ``worse``, the rest ``no_difference``).

Usage: python bench/compare_bench.py [--spans N]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from tokentail.collector import compare as st
from tokentail.collector.app import STORE, create_app
from tokentail.collector.config import CollectorConfig

NOW = 1_700_000_000.0


def bench_mwu(rng: random.Random) -> None:
    for n in (10_000, 100_000):
        a = [rng.lognormvariate(5, 0.5) for _ in range(n)]
        b = [rng.lognormvariate(5.05, 0.5) for _ in range(n)]
        t = time.perf_counter()
        r = st.mann_whitney_samples(a, b)
        print(f"mann_whitney_samples, {n} a side: {(time.perf_counter() - t) * 1000:.0f} ms (p={r.p_value:.3g})")


async def bench_api(rng: random.Random, n: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    config = CollectorConfig(db=tmp / "bench.duckdb", targets=(), scrape_interval=5.0, scrape_timeout=1.0)
    app = create_app(config, scrape=False, maintain=False, clock=lambda: NOW)
    async with TestClient(TestServer(app)) as c:
        store = app[STORE]
        for v, mu in (("production", 5.0), ("canary", 5.05)):
            rows = [
                {
                    "request_id": f"{v}-{i}",
                    "start_time": NOW - 3000 + i * 3000 / n,
                    "variant": v,
                    "model": "m",
                    "status": "error" if rng.random() < 0.02 else "ok",
                    "ttft_ms": rng.lognormvariate(mu, 0.5),
                    "latency_ms": rng.lognormvariate(mu + 1, 0.4),
                    "output_tps": rng.gauss(50, 5),
                    "output_tokens": rng.randint(10, 500),
                    "input_tokens": rng.randint(10, 500),
                    "cost_usd": 0.001,
                }
                for i in range(n)
            ]
            for k in range(0, n, 10_000):
                await store.write(store.insert_spans, rows[k : k + 10_000])
        best = float("inf")
        body: dict = {}
        for _ in range(3):
            t = time.perf_counter()
            r = await c.get("/api/compare?a=variant:production&b=variant:canary&range=1h")
            body = await r.json()
            best = min(best, time.perf_counter() - t)
        print(f"/api/compare, {n} spans a side: {best * 1000:.0f} ms")
        for m in body["metrics"]:
            print(f"  {m['metric']:<14} {m['verdict']:<16} {m.get('summary', '')}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spans", type=int, default=50_000)
    args = ap.parse_args()
    rng = random.Random(1)
    bench_mwu(rng)
    asyncio.run(bench_api(rng, args.spans))


if __name__ == "__main__":
    main()
