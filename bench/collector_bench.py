"""Collector benchmark: query latency on a synthetic 7-day database, scrape CPU, disk, kill -9.

1. Builds a synthetic database: 3 variants (one proxy each, 3 models, ~200 series),
   24 h of 5 s rows and 7 d of 1 m rows, traffic on every series, ending now.
2. Starts `tokentail collector` on it (a separate process, no targets) and times
   `GET /api/metrics?range=...` over HTTP: median of 20 after 2 warm-ups, every range.
   Targets: range=1h <= 50 ms, range=7d <= 300 ms.
3. Disk per target per day, at 5 s and at 1 m resolution, from the file sizes.
4. Scrape cost: 50 fake proxies of ~200 series (another process), scraped every 5 s
   by a collector process; its CPU time from /proc over the measured window.
   Target: <= 10% of one core.
5. kill -9 at random moments (while scraping, rolling up a backlog, deleting,
   checkpointing), then reopen: --kills times (default 60; CI does 20).

Usage: python bench/collector_bench.py [--quick] [--kills N] [--scrape-seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from _procfs import cpu_seconds, free_port  # bench/ is on sys.path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
PY = sys.executable
RANGES = ("5m", "15m", "1h", "6h", "24h", "7d")
MODELS = ("gpt-4o", "gpt-4o-mini", "llama-3.1-8b")
DUR = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TPS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
CLASSES = (("2xx", 0.9), ("4xx", 0.03), ("5xx", 0.02), ("cancelled", 0.03), ("upstream_error", 0.02))


def lognorm_cdf(x: float, median: float, sigma: float = 0.8) -> float:
    return 0.5 * (1 + math.erf(math.log(x / median) / (sigma * math.sqrt(2))))


# --- 1. the synthetic database ----------------------------------------------------------


def _round_values(rng: random.Random, scale: float) -> list[tuple[str, tuple, str, float]]:
    """One 5 s interval of a busy proxy: (name, labels, kind, value) for ~200 series."""
    out = []
    for model in MODELS:
        n = max(0, int(rng.gauss(40, 8) * scale))
        for sc, share in CLASSES:
            for stream in ("true", "false"):
                out.append(
                    (
                        "tokentail_requests_total",
                        (("endpoint", "/chat/completions"), ("model", model), ("status_class", sc), ("stream", stream)),
                        "counter",
                        float(round(n * share / 2 + rng.random())),
                    )
                )
        out.append(("tokentail_tokens_total", (("model", model), ("type", "input")), "counter", float(n * 900)))
        out.append(("tokentail_tokens_total", (("model", model), ("type", "output")), "counter", float(n * 250)))
        out.append(("tokentail_cached_input_tokens_total", (("model", model),), "counter", float(n * 300)))
        for name, bounds, median, extra in (
            ("tokentail_request_duration_seconds", DUR, 2.0, (("endpoint", "/chat/completions"),)),
            ("tokentail_time_to_first_token_seconds", DUR, 0.3, ()),
            ("tokentail_output_tokens_per_second", TPS, 45.0, ()),
        ):
            for le in bounds:
                labels = tuple(sorted((*extra, ("le", repr(float(le))), ("model", model))))
                out.append((name + "_bucket", labels, "counter", float(round(n * lognorm_cdf(le, median)))))
            out.append(
                (name + "_bucket", tuple(sorted((*extra, ("le", "+Inf"), ("model", model)))), "counter", float(n))
            )
            out.append((name + "_count", tuple(sorted((*extra, ("model", model)))), "counter", float(n)))
            out.append((name + "_sum", tuple(sorted((*extra, ("model", model)))), "counter", n * median * 1.1))
    out.append(("tokentail_in_flight_requests", (), "gauge", float(rng.randint(0, 12))))
    for reason in ("connect", "timeout", "disconnect", "status"):
        out.append(("tokentail_upstream_errors_total", (("reason", reason),), "counter", float(rng.random() < 0.1)))
    out.append(("tokentail_collector_up", (), "gauge", 1.0))
    out.append(("tokentail_collector_interval_seconds", (), "counter", 5.0))
    return out


def build_database(path: Path, now: float, variants: int = 3) -> dict:
    """24 h of 5 s rows and 7 d of 1 m rows for ``variants`` proxies, ending at ``now``."""
    import pyarrow as pa

    from tokentail.collector.store import Store

    rng = random.Random(7)
    store = Store.open(path)
    names = ("production", "canary", "experiment")[:variants]
    start5 = math.floor((now - 86400) / 5) * 5
    start1 = math.floor((now - 7 * 86400) / 60) * 60
    wm = math.floor((now - 120) / 60) * 60  # the rollup is ~2 minutes behind, as in life
    ids = []
    for v in names:  # one real append per variant creates the series catalog (non-zero: zeros are not stored)
        store.append_metrics(
            start5, [(v, f"http://{v}:8787/metrics", n, lab, kind, 1.0) for n, lab, kind, _ in _round_values(rng, 1.0)]
        )
    cat = store.catalog()
    key = {(s.variant, s.name, tuple(sorted(s.labels.items()))): sid for sid, s in cat.items()}
    for v in names:
        ids.append([key[(v, n, lab)] for n, lab, _, _ in _round_values(rng, 1.0)])
    con = store._con

    def bulk(table: str, times: list[float], per: float, minute: bool) -> None:
        for i in range(0, len(times), 720):
            ts_col, sid_col, val_col = [], [], []
            for t in times[i : i + 720]:
                diurnal = 0.6 + 0.4 * math.sin(2 * math.pi * (t % 86400) / 86400)
                for vi, _v in enumerate(names):
                    vals = _round_values(rng, diurnal * (1.0 if vi == 0 else 0.3))
                    for (_n, _lab, kind, val), sid in zip(vals, ids[vi]):
                        val = val if kind == "gauge" else val * per
                        if kind != "gauge" and val == 0:
                            continue  # as the collector writes them
                        ts_col.append(t)
                        sid_col.append(sid)
                        val_col.append(val)
            batch = pa.table(
                {
                    "ts": pa.array(ts_col, pa.float64()),
                    "series_id": pa.array(sid_col, pa.int32()),
                    "value": pa.array(val_col, pa.float64()),
                }
            )
            con.register("b", batch)
            con.execute(f"INSERT INTO {table} SELECT * FROM b")
            con.unregister("b")

    t0 = time.perf_counter()
    bulk("metrics_5s", [start5 + 5 * i for i in range(1, int((now - start5) // 5))], 1.0, False)
    store.checkpoint()
    size5 = store.size_bytes()
    bulk("metrics_1m", [start1 + 60 * i for i in range(int((wm - start1) // 60))], 12.0, True)
    con.execute("INSERT OR REPLACE INTO meta VALUES ('rollup_watermark', ?)", [repr(float(wm))])
    store.checkpoint()
    size_all = store.size_bytes()
    rows = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in ("metrics_5s", "metrics_1m")}
    store.close()
    return {
        "seconds": time.perf_counter() - t0,
        "size5": size5,
        "size_all": size_all,
        "rows": rows,
        "series_per_target": len(ids[0]),
        "variants": len(names),
    }


# --- processes ------------------------------------------------------------------------------


def start_collector(db: Path, *args: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [PY, "-m", "tokentail", "collector", "--port", str(port), "--db", str(db), "--log-level", "warning", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"collector exited: {proc.stderr.read().decode()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("collector did not start")


def wait_for_upkeep(port: int, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if asyncio.run(_get(port, "/api/status"))["store"]["maintenance"]["last_run"] is not None:
            return
        time.sleep(0.2)
    raise RuntimeError("the collector's first upkeep pass did not finish")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


async def time_queries(port: int, n: int = 20) -> dict[str, tuple[float, float]]:
    out = {}
    async with aiohttp.ClientSession() as s:
        for rng in RANGES:
            url = f"http://127.0.0.1:{port}/api/metrics?range={rng}"
            times = []
            for i in range(n + 2):
                t = time.perf_counter()
                async with s.get(url) as r:
                    body = await r.json()
                    assert r.status == 200 and body["groups"], body
                if i >= 2:
                    times.append((time.perf_counter() - t) * 1000)
            out[rng] = (statistics.median(times), sorted(times)[int(0.9 * len(times)) - 1])
    return out


# --- 4. scrape cost ---------------------------------------------------------------------------


async def serve_targets(n: int, ports_file: Path) -> None:
    """Child mode: ``n`` fake proxies (~200 series each) whose counters keep moving."""
    from aiohttp import web
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

    regs, bumps = [], []
    for _ in range(n):
        r = CollectorRegistry()
        req = Counter("tokentail_requests", "r", ["model", "endpoint", "status_class", "stream"], registry=r)
        tok = Counter("tokentail_tokens", "t", ["model", "type"], registry=r)
        cached = Counter("tokentail_cached_input_tokens", "c", ["model"], registry=r)
        dur = Histogram("tokentail_request_duration_seconds", "d", ["model", "endpoint"], buckets=DUR, registry=r)
        ttft = Histogram("tokentail_time_to_first_token_seconds", "f", ["model"], buckets=DUR, registry=r)
        tps = Histogram("tokentail_output_tokens_per_second", "s", ["model"], buckets=TPS, registry=r)
        fl = Gauge("tokentail_in_flight_requests", "i", registry=r)
        up = Counter("tokentail_upstream_errors", "u", ["reason"], registry=r)
        for reason in ("connect", "timeout", "disconnect", "status"):
            up.labels(reason)
        rng = random.Random(len(regs))

        def bump(req=req, tok=tok, cached=cached, dur=dur, ttft=ttft, tps=tps, fl=fl, rng=rng):
            for model in MODELS:
                for _ in range(rng.randint(1, 6)):
                    sc = rng.choices([c for c, _ in CLASSES], [w for _, w in CLASSES])[0]
                    req.labels(model, "/chat/completions", sc, rng.choice(("true", "false"))).inc()
                    tok.labels(model, "input").inc(rng.randint(100, 2000))
                    tok.labels(model, "output").inc(rng.randint(10, 500))
                    cached.labels(model).inc(rng.randint(0, 500))
                    dur.labels(model, "/chat/completions").observe(rng.lognormvariate(0.7, 0.8))
                    ttft.labels(model).observe(rng.lognormvariate(-1.2, 0.8))
                    tps.labels(model).observe(rng.lognormvariate(3.8, 0.5))
            fl.set(rng.randint(0, 10))

        for _ in range(10):  # every label set exists from the start: ~200 series
            bump()
        for model in MODELS:
            for sc, _ in CLASSES:
                for stream in ("true", "false"):
                    req.labels(model, "/chat/completions", sc, stream)
        regs.append(r)
        bumps.append(bump)

    runners, ports = [], []
    for r in regs:
        app = web.Application()

        async def handler(request, r=r):
            return web.Response(body=generate_latest(r), content_type="text/plain")

        app.router.add_get("/metrics", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        ports.append(runner.addresses[0][1])
    ports_file.write_text("\n".join(map(str, ports)))
    while True:
        for b in bumps:
            b()
        await asyncio.sleep(1.0)


def scrape_cost(n_targets: int, seconds: float, tmp: Path) -> dict:
    ports_file = tmp / "ports.txt"
    targets = subprocess.Popen([PY, __file__, "--serve-targets", str(n_targets), "--ports-file", str(ports_file)])
    try:
        for _ in range(300):
            if ports_file.exists() and len(ports_file.read_text().split()) == n_targets:
                break
            time.sleep(0.1)
        ports = ports_file.read_text().split()
        sample = __import__("urllib.request").request.urlopen(f"http://127.0.0.1:{ports[0]}/metrics").read()
        series = sum(1 for ln in sample.decode().splitlines() if ln.startswith("tokentail_") and "_created" not in ln)
        args = [a for i, p in enumerate(ports) for a in ("--target", f"v{i % 3}=http://127.0.0.1:{p}")]
        db = tmp / "scrape.duckdb"
        proc, port = start_collector(db, *args, "--scrape-interval", "5s", "--scrape-timeout", "2s")
        try:
            time.sleep(12)  # warm-up: two rounds create the series
            c0, t0, _s0 = cpu_seconds(proc.pid), time.time(), os.path.getsize(db)
            time.sleep(seconds)
            c1, t1 = cpu_seconds(proc.pid), time.time()
            status = asyncio.run(_get(port, "/api/status"))
        finally:
            stop(proc)
        return {
            "cpu_share": (c1 - c0) / (t1 - t0),
            "rounds": status["rounds"],
            "series_per_target": series,
            "targets_up": sum(1 for t in status["targets"] if t["up"]),
            "seconds": t1 - t0,
            "rows_5s": status["store"]["rows"]["metrics_5s"],
        }
    finally:
        targets.kill()
        targets.wait()


async def _get(port: int, path: str) -> dict:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{port}{path}") as r:
            return await r.json()


# --- 5. kill -9 -----------------------------------------------------------------------------


def kill_loop(db: Path, kills: int) -> dict:
    """Kill -9 a collector on a copy of the synthetic database at random moments, reopen each time."""
    import duckdb

    rng = random.Random(9)
    failures, starts = 0, []
    for i in range(kills):
        t = time.perf_counter()
        try:
            proc, _port = start_collector(
                db,
                "--target",
                "http://127.0.0.1:9/metrics",
                "--scrape-interval",
                "0.2",
                "--scrape-timeout",
                "0.1",
                "--rollup-interval",
                "0.2",
                "--retention-5s",
                "6h",
                "--checkpoint-threshold",
                "1MiB",
            )
        except RuntimeError as exc:
            failures += 1
            print(f"  start {i} failed: {exc}")
            continue
        starts.append(time.perf_counter() - t)
        time.sleep(rng.uniform(0.0, 1.5))
        proc.kill()
        proc.wait()
    con = duckdb.connect(str(db), read_only=True)
    dupes = con.execute(
        "SELECT count(*) FROM (SELECT ts, series_id FROM metrics_1m GROUP BY ALL HAVING count(*) > 1)"
    ).fetchall()[0][0]
    con.close()
    return {
        "kills": kills,
        "failed_starts": failures,
        "duplicate_1m_rows": dupes,
        "start_median_s": statistics.median(starts) if starts else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 variant, fewer targets and seconds, 10 kills")
    ap.add_argument("--kills", type=int, default=60)
    ap.add_argument("--scrape-seconds", type=float, default=60.0)
    ap.add_argument("--serve-targets", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--ports-file", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_targets:
        asyncio.run(serve_targets(args.serve_targets, args.ports_file))
        return
    tmp = Path(tempfile.mkdtemp(prefix="tokentail-bench-"))
    try:
        print(f"tokentail collector benchmark ({os.cpu_count()} cores)")
        db = tmp / "week.duckdb"
        built = build_database(db, time.time(), variants=1 if args.quick else 3)
        v, days = built["variants"], 7
        print(
            f"\nsynthetic database: {v} variants x {built['series_per_target']} series, "
            f"{built['rows']['metrics_5s']:,} rows at 5s (24 h), {built['rows']['metrics_1m']:,} at 1m (7 d); "
            f"built in {built['seconds']:.1f} s; file {built['size_all'] / 2**20:.1f} MiB"
        )
        print(
            f"disk per target per day: 5s resolution {built['size5'] / v / 2**20:.1f} MiB, "
            f"1m resolution {(built['size_all'] - built['size5']) / v / days / 2**20:.2f} MiB; "
            f"steady state per target (24 h of 5s + 7 d of 1m) {built['size_all'] / v / 2**20:.1f} MiB"
        )
        proc, port = start_collector(db)
        try:
            wait_for_upkeep(port)  # steady state: the first rollup/retention pass is done
            times = asyncio.run(time_queries(port))
        finally:
            stop(proc)
        print("\nGET /api/metrics over HTTP, median / p90 of 20 (targets: 1h <= 50 ms, 7d <= 300 ms):")
        for rng in RANGES:
            med, p90 = times[rng]
            goal = {"1h": 50, "7d": 300}.get(rng)
            verdict = "" if goal is None else ("  ok" if med <= goal else f"  OVER {goal} ms")
            print(f"  range={rng:4} {med:7.1f} ms / {p90:7.1f} ms{verdict}")
        n_targets = 10 if args.quick else 50
        sc = scrape_cost(n_targets, 20.0 if args.quick else args.scrape_seconds, tmp)
        print(
            f"\nscraping {n_targets} targets x {sc['series_per_target']} series every 5 s "
            f"({sc['targets_up']} up, {sc['rounds']} rounds, {sc['seconds']:.0f} s measured): "
            f"collector CPU {100 * sc['cpu_share']:.1f}% of one core (target <= 10%)"
        )
        kills = 10 if args.quick else args.kills
        if kills:
            copy = tmp / "kill.duckdb"
            shutil.copy(db, copy)
            k = kill_loop(copy, kills)
            print(
                f"\nkill -9 at random moments, then reopen: {k['kills']} kills, {k['failed_starts']} failed "
                f"starts, {k['duplicate_1m_rows']} duplicated 1m rows, median start {k['start_median_s']:.2f} s"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
