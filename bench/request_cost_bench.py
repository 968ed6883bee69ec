"""The proxy's fixed cost per streamed request, measured on the proxy process alone (issue 13).

A simulator (its own process) streams short completions; this script's client sends
``--requests`` streamed chat completions through a proxy process (telemetry off, as
``full_telemetry_bench.py``'s OFF) at ``--concurrency``, after a warm-up. Two measures
that a loaded machine distorts less than wall-clock throughput:

- the proxy process's CPU time (user + system, from /proc) per request;
- ``--callgrind``: the proxy runs under ``valgrind --tool=callgrind``; its counters are
  zeroed after the warm-up and dumped after the measured requests (``callgrind_control``),
  so the figure is the instructions of exactly those requests (the idle loop's few
  included). ``--keep DIR`` keeps the callgrind output for ``callgrind_annotate``.

``--full`` measures the proxy with full telemetry, as ``full_telemetry_bench.py``'s FULL:
spans over OTLP/HTTP to a loopback sink (``_otlp_sink.py``) and one ``/api/live`` subscriber
reading through the measured requests (``/metrics`` scrapes, one per 5 s there, are left out).
The span export child is a process of its own: its CPU is printed apart.

``--py-spy FILE`` records the proxy's collapsed stacks instead (``profile_summary.py``),
``--cprofile FILE`` runs it under cProfile (its whole life: start-up included). ``--bare``
measures ``_bare_relay.py`` (or ``--bare-script``) in the proxy's place: the floor.
``--python PY`` runs the proxy (only) with another interpreter, ``--pythonpath`` with
another PYTHONPATH: before/after on the same client and simulator.

Usage: python bench/request_cost_bench.py [--requests 400] [--tokens 1] [--callgrind] [--bare] [--full]
                                        [--python PY --pythonpath PATH] [--py-spy FILE] [--cprofile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import aiohttp
from _procfs import cpu_seconds, free_port, tree_cpu_seconds  # bench/ is on sys.path
from full_telemetry_bench import _PY_SPY, live_reader, one_stream, spawn, tokentail

HERE = os.path.dirname(os.path.abspath(__file__))


async def load(url: str, n: int, concurrency: int, tokens: int, live: str | None = None, tps: int = 0) -> int:
    """``n`` streams at ``concurrency`` (with ``live``, one subscriber reading it meanwhile);
    the number that failed."""
    errors = 0
    queue = iter(range(n))
    stop = asyncio.Event()
    reader = None
    if live:
        stats = {"live_bytes": 0, "live_reconnects": 0}
        reader = asyncio.create_task(live_reader(live, stop, stats))
        await asyncio.sleep(0.3)  # subscribed before the first request
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def worker() -> None:
            nonlocal errors
            for _ in queue:
                headers = {"x-sim-tokens": str(tokens), **({"x-sim-tps": str(tps)} if tps else {})}
                _, _, ok = await one_stream(session, url, headers)
                errors += not ok

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    if reader is not None:
        stop.set()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    return errors


def _callgrind_total(path: str) -> int:
    with open(path) as f:
        m = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.M)
    assert m, f"no callgrind totals in {path}"
    return int(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=1, help="completion tokens per stream")
    ap.add_argument("--tps", type=int, default=0, help="tokens per second per stream (0: as fast as it can)")
    ap.add_argument("--callgrind", action="store_true", help="count instructions (valgrind; slow)")
    ap.add_argument("--keep", metavar="DIR", help="with --callgrind: keep the callgrind output here")
    ap.add_argument("--py-spy", metavar="FILE", help="record py-spy collapsed stacks of the proxy")
    ap.add_argument("--cprofile", metavar="FILE", help="run the proxy under cProfile (its whole life), stats to FILE")
    ap.add_argument("--python", default=sys.executable, help="the proxy's interpreter")
    ap.add_argument("--pythonpath", help="the proxy's PYTHONPATH (default: this process's)")
    ap.add_argument("--bare", action="store_true", help="measure bench/_bare_relay.py instead (the floor)")
    ap.add_argument("--bare-script", help="with --bare: another relay script taking PORT UPSTREAM_BASE")
    ap.add_argument("--full", action="store_true", help="spans to a loopback OTLP sink and one /api/live subscriber")
    args = ap.parse_args()

    sim_port, proxy_port = free_port(), free_port()
    sim = ["simulate", "--tokens-per-second", "0", "--ttft", "0", "--length", str(args.tokens), "--seed", "1"]
    env = {"PYTHONPATH": args.pythonpath} if args.pythonpath else {}
    sink_port = free_port()
    if args.full:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{sink_port}"
        env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
    cmd = tokentail(["proxy", "--upstream", f"http://127.0.0.1:{sim_port}/v1"], proxy_port, args.python)
    if args.bare:
        here = os.path.dirname(os.path.abspath(__file__))
        script = args.bare_script or os.path.join(here, "_bare_relay.py")
        cmd = [args.python, script, str(proxy_port), f"http://127.0.0.1:{sim_port}/v1"]
    tmp = tempfile.mkdtemp(prefix="tokentail-cg-")
    out = os.path.join(tmp, "cg.out")
    if args.callgrind:
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *cmd]
    elif args.cprofile:
        cmd = [cmd[0], "-m", "cProfile", "-o", args.cprofile, *cmd[1:]]
    elif args.py_spy:
        cmd = [_PY_SPY, "record", "--nonblocking", "-r", "250", "-f", "raw", "-o", args.py_spy, "--", *cmd]
    url = f"http://127.0.0.1:{proxy_port}/v1/chat/completions"
    live = f"http://127.0.0.1:{proxy_port}/api/live" if args.full else None
    sink = [sys.executable, os.path.join(HERE, "_otlp_sink.py"), str(sink_port)]
    try:
        with (
            spawn(tokentail(sim, sim_port), sim_port, "simulator"),
            spawn(sink, sink_port, "OTLP sink") if args.full else contextlib.nullcontext(),
            spawn(cmd, proxy_port, "proxy", env, timeout=300) as proxy,
        ):
            pid = proxy.pid
            if args.py_spy:  # py-spy's child is the proxy
                time.sleep(0.5)
                with open(f"/proc/{proxy.pid}/task/{proxy.pid}/children") as fh:
                    pid = int(fh.read().split()[0])
            errors = asyncio.run(load(url, args.warmup, args.concurrency, args.tokens))
            if args.callgrind:
                subprocess.run(["callgrind_control", "--zero", str(pid)], check=True, stdout=subprocess.DEVNULL)
            cpu0, tree0, t0 = cpu_seconds(pid), tree_cpu_seconds(pid), time.perf_counter()
            errors += asyncio.run(load(url, args.requests, args.concurrency, args.tokens, live, args.tps))
            cpu, wall = cpu_seconds(pid) - cpu0, time.perf_counter() - t0
            children = tree_cpu_seconds(pid) - tree0 - cpu
            if args.callgrind:
                subprocess.run(["callgrind_control", "--dump", str(pid)], check=True, stdout=subprocess.DEVNULL)
        n = args.requests
        what = "bare relay" if args.bare else "proxy FULL" if args.full else "proxy"
        print(
            f"{what} {args.python} ({args.pythonpath or os.environ.get('PYTHONPATH', '')}), {n} requests of "
            f"{args.tokens} token(s){f' at {args.tps}/s' if args.tps else ''}, concurrency {args.concurrency}, "
            f"{errors} errors"
        )
        print(f"  CPU {cpu / n * 1e6:8.0f} us per request   wall {wall / n * 1e3:6.2f} ms per request")
        if children > 0:
            print(f"  its child processes (the span export child): {children / n * 1e6:8.0f} us per request")
        if args.callgrind:
            # --zero, then --dump: cg.out.1 holds the measured requests only (cg.out, written
            # at exit, the rest)
            total = _callgrind_total(os.path.join(tmp, "cg.out.1"))
            print(f"  instructions {total / n / 1e3:10.1f} k per request")
            if args.keep:
                os.makedirs(args.keep, exist_ok=True)
                for f in os.listdir(tmp):
                    shutil.copy(os.path.join(tmp, f), args.keep)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
