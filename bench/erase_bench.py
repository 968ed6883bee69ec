"""Erase benchmark: how long an erase holds the collector's store, by database size.

Builds a spans table of N requests with ~4 KiB of captured content each (prompts and
completions of distinct text, so DuckDB cannot compress it away), then times, on the
store's own connection:

1. an API erase of one session (10 spans): UPDATE + ledger + compaction (the copy into a
   fresh file that takes the erased text off the disk), and the file size before/after;
2. one content-retention batch of 5000 spans (UPDATE only; compaction runs at most hourly);
3. a compaction alone.

Usage: python bench/erase_bench.py [--spans N ...]   (default: 10000 50000)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tokentail.collector.store import Retention, Store  # noqa: E402
from tokentail.erasure import Selector  # noqa: E402

T0 = 1_800_000_000.0


def _rows(n: int, start: int) -> list[dict]:
    out = []
    for i in range(start, start + n):
        text = uuid.uuid4().hex * 60  # ~2 KiB each way
        out.append(
            {
                "request_id": f"r{i:08d}",
                "start_time": T0 + i,
                "received_at": T0 + i,
                "session_id": f"s{i // 10}",
                "model": "m",
                "status": "ok",
                "input_tokens": 100,
                "output_tokens": 50,
                "cost_usd": 0.001,
                "input_messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": text}]}]),
                "output_messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": text}]}]),
                "attributes": "{}",
                "size_bytes": 4 * len(text),
            }
        )
    return out


def run(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "b.duckdb")
        for lo in range(0, n, 5000):
            store.insert_spans(_rows(min(5000, n - lo), lo))
        store.checkpoint()
        size0 = store.path.stat().st_size
        t = time.perf_counter()
        erased = store.erase(Selector(session=f"s{n // 20}"), now=T0 + 2 * n)
        api = time.perf_counter() - t
        size1 = store.path.stat().st_size
        policy = Retention(spans=1e12, content=1.0)
        t = time.perf_counter()
        batch = store.content_retention_step(T0 + 2 * n, policy)
        retention = time.perf_counter() - t
        t = time.perf_counter()
        store.compact(T0)
        compact = time.perf_counter() - t
        size2 = store.path.stat().st_size
        store.close()
    print(
        f"{n:>7} spans, file {size0 / 2**20:6.1f} MiB: erase one session ({erased} spans) + compaction "
        f"{api * 1000:7.0f} ms (file {size1 / 2**20:.1f} MiB); retention batch of {batch} "
        f"{retention * 1000:6.0f} ms; compaction after it {compact * 1000:6.0f} ms (file {size2 / 2**20:.1f} MiB)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spans", type=int, nargs="*", default=[10_000, 50_000])
    for n in ap.parse_args().spans:
        run(n)


if __name__ == "__main__":
    main()
