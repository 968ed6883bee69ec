"""Full-telemetry benchmark (issue 13): direct vs proxy (telemetry off) vs proxy (full telemetry), one run.

Processes, each its own (so /proc gives the proxy's CPU and RSS alone): the simulator
(`tokentail simulate`), a loopback OTLP/HTTP sink (`bench/_otlp_sink.py`, accepts and
discards), proxy OFF (no exporter) and proxy FULL (spans over OTLP/HTTP to the sink, with
`/metrics` scraped every 5 s and one `/api/live` subscriber reading, both from this process),
and a bare aiohttp relay (`bench/_bare_relay.py`: the floor any aiohttp/uvloop proxy pays,
tokentail's work taken away). Rounds interleave them all so all see the same machine state;
every proxy figure is printed as a ratio or a difference against direct *in the same run*.

Scenarios (default): 1. latency, 40-token streams at 10 ms/token, concurrency 8: added TTFT
p50/p99; 2. throughput, 40-token streams with no delay, concurrency 32: req/s (x direct) and
proxy CPU per request; 3. per token: tokens paced 10 ms apart (one per read), streams of 1 and
of 100 tokens: proxy CPU per relayed token (the slope) and the fixed cost per request (the
intercept). Optional: `--scale` 1,000 concurrent 50-token streams at 10 tok/s (added TTFT
p99, errors, peak RSS); `--max-streams` the largest number of concurrent 50 tok/s streams
relayed with added TTFT p99 <= 50 ms (a short doubling search, then one bisection step);
`--peers` installs llm-observe-proxy and litellm[proxy] each into its own venv under
`--cache` (never the project's environment) and measures them in the same table; skipped
with a message when they cannot be installed or started. `--py-spy DIR` records py-spy's
collapsed stacks of each proxy (summed up by `bench/profile_summary.py`) (py-spy must be installed in the running environment).

Usage: python bench/full_telemetry_bench.py [--quick] [--scale] [--max-streams] [--peers] [--baseline PY]
                                           [--py-spy DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import aiohttp
from _peers import PEERS, peer_command, peer_venv  # bench/ is on sys.path
from _procfs import free_port, tree_cpu_seconds, tree_rss_mb
from proxy_bench import BODY, pct

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable
SLOW = {"x-sim-tps": "100"}
# py-spy installed into the running environment (its bin/), else on PATH.
_PY_SPY = next(
    (p for p in (os.path.join(os.path.dirname(PY), "py-spy"),) if os.path.exists(p)), "py-spy"
)  # 10 ms between tokens: one token per read


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not start within {timeout:.0f}s")


@contextmanager
def spawn(
    cmd: list[str], port: int, what: str, env: dict | None = None, timeout: float = 30.0, cwd: str | None = None
) -> Iterator:
    proc = subprocess.Popen(
        cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd
    )
    try:
        _wait_port(port, proc, what, timeout)
        yield proc
    finally:
        proc.send_signal(signal.SIGINT if cmd[0].endswith("py-spy") else signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tokentail(args: list[str], port: int, py: str = PY) -> list[str]:
    return [py, "-m", "tokentail", *args, "--port", str(port), "--log-level", "warning"]


@dataclass
class Target:
    name: str
    url: str  # chat completions URL
    pid: int | None = None  # the process whose CPU/RSS is measured (None: direct)
    rss_idle: float = 0.0
    rss_peak: float = 0.0
    res: dict = field(default_factory=dict)


# --- load ------------------------------------------------------------------------------------


async def one_stream(session: aiohttp.ClientSession, url: str, headers: dict) -> tuple[float, float, bool]:
    """(ttft, total, ok) of one streamed chat completion read to the end."""
    t0 = time.perf_counter()
    ttft = None
    ok = False
    try:
        async with session.post(url, data=BODY, headers=headers) as r:
            async for chunk in r.content.iter_any():
                if ttft is None and b"content" in chunk:
                    ttft = time.perf_counter() - t0
                if b"[DONE]" in chunk:
                    ok = r.status == 200
    except (aiohttp.ClientError, TimeoutError):
        ok = False
    total = time.perf_counter() - t0
    return (ttft if ttft is not None else total), total, ok


async def run_load(url: str, n: int, concurrency: int, headers: dict) -> tuple[list[float], float, int]:
    """n streams at a concurrency: (ttfts, wall seconds, errors)."""
    ttfts: list[float] = []
    errors = 0
    queue = iter(range(n))
    conn = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal errors
            for _ in queue:
                a, _, ok = await one_stream(session, url, headers)
                ttfts.append(a)
                errors += not ok

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return ttfts, wall, errors


async def sustained(url: str, streams: int, seconds: float, headers: dict) -> tuple[list[float], int, int]:
    """``streams`` concurrent streams, each worker starting a new one as the last ends, for ``seconds``;
    starts are spread over the first stream's length so they do not all arrive in one instant."""
    ttfts: list[float] = []
    errors = done = 0
    conn = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    stop_at = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:

        async def worker(i: int) -> None:
            nonlocal errors, done
            await asyncio.sleep(i / streams)  # a one-second ramp
            while time.perf_counter() < stop_at:
                a, _, ok = await one_stream(session, url, headers)
                ttfts.append(a)
                errors += not ok
                done += 1

        await asyncio.gather(*(worker(i) for i in range(streams)))
    return ttfts, errors, done


class Sampler:
    """Peak RSS of some processes, sampled every 0.2 s while a scenario runs."""

    def __init__(self, targets: list[Target]) -> None:
        self.targets = [t for t in targets if t.pid]
        self.task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            for t in self.targets:
                try:
                    t.rss_peak = max(t.rss_peak, tree_rss_mb(t.pid))
                except OSError:
                    pass
            await asyncio.sleep(0.2)

    def __enter__(self) -> Sampler:
        self.task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self.task:
            self.task.cancel()


async def scraper(url: str, every: float, stop: asyncio.Event, stats: dict) -> None:
    async with aiohttp.ClientSession() as s:
        while not stop.is_set():
            try:
                async with s.get(url) as r:
                    await r.read()
                    stats["scrapes"] += 1
            except aiohttp.ClientError:
                stats["scrape_errors"] += 1
            try:
                await asyncio.wait_for(stop.wait(), every)
            except TimeoutError:
                pass


async def live_reader(url: str, stop: asyncio.Event, stats: dict) -> None:
    """One /api/live subscriber reading everything (reconnecting if the hub drops it)."""
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        while not stop.is_set():
            try:
                async with s.get(url, params={"snapshot": "0"}) as r:
                    async for chunk in r.content.iter_any():
                        stats["live_bytes"] += len(chunk)
                        if stop.is_set():
                            return
                stats["live_reconnects"] += 1
            except aiohttp.ClientError:
                stats["live_reconnects"] += 1
                await asyncio.sleep(0.2)


# --- scenarios --------------------------------------------------------------------------------


def cpu(t: Target) -> float:
    return tree_cpu_seconds(t.pid) if t.pid else 0.0


async def latency(targets: list[Target], n: int, rounds: int) -> None:
    got: dict[str, list[float]] = {t.name: [] for t in targets}
    for _ in range(rounds):
        for t in targets:
            a, _, err = await run_load(t.url, n // rounds, 8, SLOW)
            got[t.name] += a
            t.res["lat_errors"] = t.res.get("lat_errors", 0) + err
    for t in targets:
        t.res["ttft_p50"], t.res["ttft_p99"] = pct(got[t.name], 50) * 1000, pct(got[t.name], 99) * 1000


async def throughput(targets: list[Target], n: int, rounds: int) -> None:
    rps: dict[str, list[float]] = {t.name: [] for t in targets}
    per: dict[str, list[float]] = {t.name: [] for t in targets}
    for _ in range(rounds):
        for t in targets:
            c0 = cpu(t)
            _, wall, err = await run_load(t.url, n, 32, {})
            rps[t.name].append(n / wall)
            per[t.name].append((cpu(t) - c0) / n)
            t.res["tp_errors"] = t.res.get("tp_errors", 0) + err
    for t in targets:
        t.res["rps"] = statistics.median(rps[t.name])
        t.res["cpu_ms_req"] = statistics.median(per[t.name]) * 1000


async def per_token(targets: list[Target], quick: bool) -> None:
    """CPU per request at 1 and at L paced tokens: the slope is the cost per relayed token, the
    intercept the fixed cost per request. Paced 10 ms apart, each token arrives in its own read."""
    length = 100
    n_short, n_long = (128, 64) if quick else (512, 192)
    for t in targets:
        if not t.pid:
            continue
        c0 = cpu(t)
        await run_load(t.url, n_short, 32, {**SLOW, "x-sim-tokens": "1"})
        c1 = (cpu(t) - c0) / n_short
        c0 = cpu(t)
        await run_load(t.url, n_long, 64, {**SLOW, "x-sim-tokens": str(length)})
        cl = (cpu(t) - c0) / n_long
        slope = (cl - c1) / (length - 1)
        t.res["us_token"] = slope * 1e6
        t.res["ms_fixed"] = (c1 - slope) * 1000
        t.res["us_token_all"] = cl / length * 1e6


async def scale(targets: list[Target], streams: int, seconds: float) -> None:
    """``streams`` concurrent 50-token streams at 10 tok/s, each target in turn."""
    headers = {"x-sim-tps": "10", "x-sim-tokens": "50"}
    for t in targets:
        c0 = cpu(t) if t.pid else 0.0
        with Sampler([t]):
            ttfts, errors, done = await sustained(t.url, streams, seconds, headers)
        t.res["scale_p50"], t.res["scale_p99"] = pct(ttfts, 50) * 1000, pct(ttfts, 99) * 1000
        t.res["scale_errors"], t.res["scale_done"] = errors, done
        # The relay's CPU per token at this scale (is one core enough?), over the completed streams
        # (the ones still in flight at the end are not counted: a slight overestimate).
        if t.pid and done:
            t.res["scale_cpu_s"] = cpu(t) - c0
            t.res["scale_us_token"] = t.res["scale_cpu_s"] / (done * 50) * 1e6


async def max_streams(direct: Target, proxy: Target, budget_ms: float, quick: bool) -> list[tuple[int, float, float]]:
    """Largest N of concurrent 50 tok/s streams with added TTFT p99 <= budget: double, then bisect once."""
    headers = {"x-sim-tps": "50", "x-sim-tokens": "50"}
    seconds = 3.0 if quick else 5.0
    steps: list[tuple[int, float, float]] = []

    async def added(n: int) -> float:
        d, _, _ = await sustained(direct.url, n, seconds, headers)
        p, errs, _ = await sustained(proxy.url, n, seconds, headers)
        a = (pct(p, 99) - pct(d, 99)) * 1000 if errs == 0 else float("inf")
        steps.append((n, pct(d, 99) * 1000, a))
        return a

    n, good = 100, 0
    while n <= 3200:
        if await added(n) > budget_ms:
            break
        good, n = n, n * 2
    if good and n <= 3200:
        mid = (good + n) // 2
        if await added(mid) <= budget_ms:
            good = mid
    proxy.res["max_streams"] = good
    return steps


# --- report -----------------------------------------------------------------------------------


def report(targets: list[Target], args: argparse.Namespace, extra: dict) -> None:
    d = targets[0]
    load = os.getloadavg()
    print(
        f"\ntokentail full-telemetry benchmark ({'quick' if args.quick else 'full'}; {os.cpu_count()} cores; "
        f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})"
    )
    print(
        f"FULL = spans over OTLP/HTTP to a loopback sink ({extra['exports']} export calls, "
        f"{extra['export_mb']:.1f} MB), /metrics every 5 s ({extra['scrapes']} scrapes), "
        f"one /api/live subscriber ({extra['live_mb']:.1f} MB read, {extra['live_reconnects']} reconnects)\n"
    )
    head = (
        f"{'':24} {'TTFT p50':>9} {'added':>7} {'TTFT p99':>9} {'added':>7} {'req/s c32':>10} {'x direct':>9}"
        f" {'CPU/req':>8} {'us/token':>9} {'fixed ms':>9} {'RSS idle->after':>16} {'errors':>7}"
    )
    print(head)
    for t in targets:
        r = t.res
        if "rps" not in r or "ttft_p50" not in r or "rps" not in d.res:
            print(f"{t.name:24} {r}")
            continue
        direct = t is d
        a50 = "" if direct else f"{r['ttft_p50'] - d.res['ttft_p50']:+7.2f}"
        a99 = "" if direct else f"{r['ttft_p99'] - d.res['ttft_p99']:+7.2f}"
        row = (
            f"{t.name:24} {r['ttft_p50']:7.2f}ms {a50:>7} {r['ttft_p99']:7.2f}ms {a99:>7}"
            f" {r['rps']:10.0f} {r['rps'] / d.res['rps']:8.2f}x"
        )
        if not direct:
            row += f" {r['cpu_ms_req']:6.2f}ms"
            if "us_token" in r:
                row += f" {r['us_token']:9.1f} {r['ms_fixed']:9.3f}"
            else:
                row += f" {'':9} {'':9}"
            row += f" {t.rss_idle:6.0f} -> {t.rss_peak:4.0f} MB"
        print(f"{row} {r.get('lat_errors', 0) + r.get('tp_errors', 0):7}")
    full = next((t for t in targets if t.name == "tokentail FULL"), None)
    off = next((t for t in targets if t.name == "tokentail OFF"), None)
    if full and off and "rps" in full.res:
        print(f"\ntelemetry FULL / OFF throughput: {full.res['rps'] / off.res['rps']:.2f}x")
    if full and off:
        errs = sum(t.res.get("lat_errors", 0) + t.res.get("tp_errors", 0) for t in targets)
        print(f"errors in the latency and throughput runs: {errs}")
        if "us_token_all" in full.res:
            for t in [x for x in targets if "us_token_all" in x.res]:
                print(
                    f"{t.name}: {t.res['us_token']:.1f} us per relayed token (slope), fixed "
                    f"{t.res['ms_fixed']:.3f} ms per request, {t.res['us_token_all']:.1f} us per token all in "
                    "(100-token streams, one token per read)"
                )
    if "scale" in extra:
        s = extra["scale"]
        print(f"\nscale: {s['streams']} concurrent 50-token streams at 10 tok/s for {s['seconds']:.0f} s:")
        for t in s["targets"]:
            r = t.res
            added = "" if t is d else f"  added p99 {r['scale_p99'] - d.res['scale_p99']:+.1f} ms"
            rss = f"  peak RSS {t.rss_peak:.0f} MB" if t.pid else ""
            if "scale_cpu_s" in r:
                rss += f"  CPU {r['scale_cpu_s']:.1f} s ({r['scale_us_token']:.0f} us/token)"
            print(
                f"  {t.name:18} TTFT p50 {r['scale_p50']:7.1f} ms  p99 {r['scale_p99']:7.1f} ms{added}"
                f"  streams {r['scale_done']}  errors {r['scale_errors']}{rss}"
            )
    if "max" in extra:
        print("\nmax concurrent 50 tok/s streams with added TTFT p99 <= 50 ms (FULL telemetry):")
        for n, dp99, added in extra["max"]:
            print(f"  {n:5} streams: direct p99 {dp99:7.1f} ms, added {added:+8.1f} ms")
        print(f"  -> {full.res.get('max_streams', 0) if full else 0} streams")


# --- main -------------------------------------------------------------------------------------


async def main_async(args: argparse.Namespace) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit: 1,000 streams need fds
    q = args.quick
    lat_n, tp_n, rounds = (96, 400, 2) if q else (400, 2000, 4)
    sim_port, sink_port, off_port, full_port = (free_port() for _ in range(4))
    sim_base = f"http://127.0.0.1:{sim_port}/v1"
    sim = ["simulate", "--tokens-per-second", "0", "--ttft", "0", "--length", "40", "--seed", "1"]
    full_env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }

    def proxy_cmd(port: int, name: str, py: str = PY) -> list[str]:
        cmd = tokentail(["proxy", "--upstream", sim_base], port, py)
        if args.py_spy:
            out = os.path.join(args.py_spy, f"{name}.txt")  # collapsed stacks: bench/profile_summary.py
            return [_PY_SPY, "record", "--nonblocking", "-t", "-r", "250", "-f", "raw", "-o", out, "--", *cmd]
        return cmd

    extra: dict = {"scrapes": 0, "scrape_errors": 0, "live_bytes": 0, "live_reconnects": 0}
    with ExitStack() as stack:
        stack.enter_context(spawn(tokentail(sim, sim_port), sim_port, "simulator"))
        stack.enter_context(spawn([PY, os.path.join(HERE, "_otlp_sink.py"), str(sink_port)], sink_port, "sink"))
        off = stack.enter_context(spawn(proxy_cmd(off_port, "off"), off_port, "proxy OFF"))
        full = stack.enter_context(spawn(proxy_cmd(full_port, "full"), full_port, "proxy FULL", full_env))
        bare_port = free_port()
        bare = stack.enter_context(
            spawn([PY, os.path.join(HERE, "_bare_relay.py"), str(bare_port), sim_base], bare_port, "bare relay")
        )
        targets = [
            Target("direct", f"{sim_base}/chat/completions"),
            Target("bare aiohttp relay", f"http://127.0.0.1:{bare_port}/v1/chat/completions", bare.pid),
            Target("tokentail OFF", f"http://127.0.0.1:{off_port}/v1/chat/completions", _pid(off, args)),
            Target("tokentail FULL", f"http://127.0.0.1:{full_port}/v1/chat/completions", _pid(full, args)),
        ]
        if args.baseline:  # another checkout's interpreter: before/after in one run
            for mode, env in (("OFF", {}), ("FULL", full_env)):
                port = free_port()
                cmd = proxy_cmd(port, f"baseline-{mode.lower()}", args.baseline)
                proc = stack.enter_context(spawn(cmd, port, f"baseline {mode}", env))
                targets.append(
                    Target(f"baseline {mode}", f"http://127.0.0.1:{port}/v1/chat/completions", _pid(proc, args))
                )
        if args.peers:
            targets += _start_peers(stack, args, sim_base)
        stop = asyncio.Event()
        bg = []
        for t in targets:  # every FULL proxy: /metrics every 5 s and one /api/live subscriber
            if t.name.endswith("FULL"):
                base = t.url.removesuffix("/v1/chat/completions")
                stats = extra if t.name == "tokentail FULL" else dict.fromkeys(extra, 0)
                bg.append(asyncio.create_task(scraper(f"{base}/metrics", 5.0, stop, stats)))
                bg.append(asyncio.create_task(live_reader(f"{base}/api/live", stop, stats)))
        for t in targets:
            await run_load(t.url, 64, 8, {})  # warm up
            if t.pid:
                t.rss_idle = t.rss_peak = tree_rss_mb(t.pid)
        with Sampler(targets):
            if "latency" in args.only:
                await latency(targets, lat_n, rounds)
            if "throughput" in args.only:
                await throughput(targets, tp_n, rounds)
            if "token" in args.only:
                await per_token([t for t in targets if t.name.startswith(("tokentail", "baseline", "bare"))], q)
        if args.scale:
            # The bare relay too: whether the floor itself keeps up at this scale on this machine.
            s_targets = [
                t for t in targets if t.name in ("direct", "bare aiohttp relay", "tokentail OFF", "tokentail FULL")
            ]
            await scale(s_targets, args.scale_streams, 8.0 if q else 20.0)
            extra["scale"] = {"streams": args.scale_streams, "seconds": 8.0 if q else 20.0, "targets": s_targets}
        if args.max_streams:
            extra["max"] = await max_streams(
                targets[0], next(t for t in targets if t.name == "tokentail FULL"), 50.0, q
            )
        stop.set()
        for task in bg:
            task.cancel()
        await asyncio.gather(*bg, return_exceptions=True)
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{sink_port}/count") as r:
            got = await r.json()
        extra["exports"], extra["export_mb"] = got["requests"], got["bytes"] / 2**20
        extra["live_mb"] = extra["live_bytes"] / 2**20
    report(targets, args, extra)


def _pid(proc: subprocess.Popen, args: argparse.Namespace) -> int:
    """The proxy's pid (py-spy's child when profiling)."""
    if not args.py_spy:
        return proc.pid
    with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as fh:
        kids = fh.read().split()
    return int(kids[0]) if kids else proc.pid


def _start_peers(stack: ExitStack, args: argparse.Namespace, sim_base: str) -> list[Target]:
    out = []
    os.makedirs(args.cache, exist_ok=True)
    for name, (req, _) in PEERS.items():
        bindir = peer_venv(args.cache, name, req)
        if bindir is None:
            out.append(Target(name, "", res={"skipped": "not installed"}))
            continue
        port = free_port()
        cmd, env, url = peer_command(name, bindir, port, sim_base, args.cache)
        try:
            workdir = os.path.join(args.cache, f"{name}-run")
            os.makedirs(workdir, exist_ok=True)
            proc = stack.enter_context(spawn(cmd, port, name, env, timeout=90, cwd=workdir))
        except RuntimeError as exc:
            print(f"  {name}: skipped, {exc}")
            continue
        out.append(Target(name, url, proc.pid))
    return [t for t in out if t.url]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run, noisier figures)")
    parser.add_argument(
        "--only", default="latency,throughput,token", help="scenarios to run (default: latency,throughput,token)"
    )
    parser.add_argument("--scale", action="store_true", help="also 1,000 concurrent streams at 10 tok/s")
    parser.add_argument("--scale-streams", type=int, default=1000, help="streams for --scale (default 1000)")
    parser.add_argument("--max-streams", action="store_true", help="search the most 50 tok/s streams in budget")
    parser.add_argument("--peers", action="store_true", help="also llm-observe-proxy and the LiteLLM proxy")
    parser.add_argument(
        "--cache",
        default=os.path.join(os.path.expanduser("~"), ".cache", "tokentail-bench", "peers"),
        help="where --peers keeps its virtualenvs",
    )
    parser.add_argument(
        "--baseline", metavar="PYTHON", help="also run proxies from this interpreter (e.g. main's venv): before/after"
    )
    parser.add_argument("--py-spy", metavar="DIR", help="record py-spy collapsed stacks of each proxy into DIR")
    args = parser.parse_args()
    if args.py_spy:
        os.makedirs(args.py_spy, exist_ok=True)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
