"""A whole tokentail stack on loopback for the browser tests.

The simulator and two proxies (production, canary) run in this process, on an event
loop in a background thread, so the production proxy can carry an extra observer:
``DeltaClock`` stamps the wall-clock time at which the proxy relayed each delta (the
proxy writes a chunk to its client, then notifies observers; see proxy/forward.py).
The collector and the dashboard run as real ``python -m tokentail ...`` processes.

``Stack(tmp, processes=True)`` (``bench/dashboard_bench.py --processes``) runs the simulator and
the proxies as processes too, as ``tokentail up`` does; the loop thread then carries only
the clients, and ``clock`` holds the time each delta reached its client (``stream_chat``
with ``clock=``), the relay's stamp as the client's application sees it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.helpers import free_port, wait_port, wait_until
from tests.helpers.proxies import proxy_settings
from tokentail.simulator.app import SimConfig
from tokentail.simulator.app import create_app as create_sim_app

PRICING = """
[models."sim-gpt-4o"]
input = 2.5
output = 10.0
source = "test"
date = "2025-01-01"

[models."sim-gpt-4o-mini"]
input = 0.15
output = 0.6
source = "test"
date = "2025-01-01"

[models."sim-claude"]
input = 3.0
output = 15.0
source = "test"
date = "2025-01-01"
"""


__all__ = [
    "PRICING",
    "DeltaClock",
    "LoopThread",
    "Proc",
    "Stack",
    "Stream",
    "free_port",
    "stream_chat",
    "wait_port",
    "watch_loop",
]


class LoopThread:
    """An asyncio loop in a daemon thread; ``run`` a coroutine on it from test code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="stack-loop", daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def submit(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def close(self, runners: list[web.AppRunner], timeout: float = 15.0) -> None:
        """Clean up ``runners`` on this loop (the last started first), then stop the loop."""

        async def cleanup() -> None:
            for r in reversed(runners):
                await r.cleanup()

        try:
            self.run(cleanup(), timeout=timeout)
        finally:
            self.stop()


async def watch_loop(lags: list[tuple[float, float]], over: float = 0.025) -> None:
    """Append (epoch seconds, ms) for each wake-up of this loop more than ``over`` s late: the
    in-process proxies relay on it, so a timing test can tell their stalls from the page's."""
    last = time.perf_counter()
    while True:
        await asyncio.sleep(0.005)
        now = time.perf_counter()
        if now - last > over:
            lags.append((time.time(), round((now - last) * 1000, 1)))
        last = now


class DeltaClock:
    """Observer: (request id, delta text, epoch seconds) of every delta the proxy relayed."""

    def __init__(self) -> None:
        self.deltas: dict[str, list[tuple[str, float]]] = {}

    def on_start(self, rec) -> None:
        pass

    def on_delta(self, rec, delta) -> None:
        if delta.text:
            self.deltas.setdefault(rec.id, []).append((delta.text, time.time()))

    def on_end(self, rec) -> None:
        pass


@dataclass
class Proc:
    name: str
    args: list[str]
    port: int
    log: Path
    proc: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for k in list(env):
            if k.startswith(("TOKENTAIL_", "OTEL_")):
                env.pop(k)  # the test decides every option
        env.update(self.env)
        fh = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tokentail", *self.args],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        fh.close()

    def wait(self, timeout: float = 30.0) -> None:
        wait_port(self.port, self.proc, timeout)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@dataclass
class Stack:
    tmp: Path
    loop: LoopThread = field(default_factory=LoopThread)
    clock: DeltaClock = field(default_factory=DeltaClock)
    ports: dict[str, int] = field(default_factory=dict)
    runners: list[web.AppRunner] = field(default_factory=list)
    providers: list[Any] = field(default_factory=list)
    collector: Proc | None = None
    dashboard: Proc | None = None
    processes: bool = False  # simulator and proxies as processes (see the module docstring)
    procs: list[Proc] = field(default_factory=list)

    def url(self, name: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[name]}{path}"

    @property
    def origin(self) -> str:
        return self.url("dashboard")

    @property
    def pricing(self) -> Path:
        """Prices for two of the simulator's models; sim-llama-3-8b has none (its cost is unknown)."""
        return self.tmp / "pricing.toml"

    def start(self) -> None:
        for name in ("sim", "production", "canary", "collector", "dashboard"):
            self.ports[name] = free_port()
        self.pricing.write_text(PRICING)
        if self.processes:
            self._start_processes()
        else:
            self.loop.run(self._start_in_process())
        c = self.ports["collector"]
        self.collector = Proc(
            "collector",
            [
                "collector",
                "--port",
                str(c),
                "--db",
                str(self.tmp / "tokentail.duckdb"),
                "--target",
                f"production={self.url('production')}",
                "--target",
                f"canary={self.url('canary')}",
                "--scrape-interval",
                "1s",
                "--scrape-timeout",
                "1s",
                "--allowed-origin",
                self.origin,
                "--pricing",
                str(self.pricing),
            ],
            c,
            self.tmp / "collector.log",
        )
        self.dashboard = Proc(
            "dashboard",
            [
                "dashboard",
                "--port",
                str(self.ports["dashboard"]),
                "--collector",
                self.url("collector"),
                "--proxy",
                f"production={self.url('production')}",
                "--proxy",
                f"canary={self.url('canary')}",
            ],
            self.ports["dashboard"],
            self.tmp / "dashboard.log",
        )
        self.collector.start()
        self.dashboard.start()
        self.collector.wait()
        self.dashboard.wait()
        if not self.processes:
            # As every tokentail server does once it listens (serving.settle_heap): the proxies
            # here share this process, and its full collections would hold their loop.
            from tokentail.serving import settle_heap

            settle_heap()

    def otel_env(self) -> dict[str, str]:
        """The proxies' span export: to this stack's collector, batches every 200 ms."""
        return {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": self.url("collector", "/v1/traces"),
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
        }

    def _start_processes(self) -> None:
        sim = Proc(
            "sim",
            ["simulate", "--port", str(self.ports["sim"]), "--tokens-per-second", "50", "--ttft", "50ms"]
            + ["--length", "40", "--seed", "3"],
            self.ports["sim"],
            self.tmp / "sim.log",
        )
        otel = self.otel_env()
        proxies = [
            Proc(
                variant,
                ["proxy", "--upstream", self.url("sim", "/v1"), "--port", str(self.ports[variant])]
                + ["--variant", variant, "--allowed-origin", self.origin, "--pricing", str(self.pricing)],
                self.ports[variant],
                self.tmp / f"{variant}.log",
                env=otel,
            )
            for variant in ("production", "canary")
        ]
        for p in (sim, *proxies):
            p.start()
            self.procs.append(p)
        for p in self.procs:
            p.wait()

    async def _start_in_process(self) -> None:
        from tokentail.proxy.app import app_from_settings
        from tokentail.proxy.telemetry import build_tracer_provider

        sim = create_sim_app(SimConfig(tokens_per_second=50, ttft=0.05, length=40, seed=3))
        await self._serve(sim, self.ports["sim"])
        upstream = self.url("sim", "/v1")
        otel = self.otel_env()
        for variant in ("production", "canary"):
            provider = build_tracer_provider(otel, lambda sink, n=1: None)
            self.providers.append(provider)
            settings = proxy_settings(
                upstream,
                variant=variant,
                port=self.ports[variant],
                allowed_origin=[self.origin],
                pricing=str(self.pricing),
            )
            extra = [self.clock] if variant == "production" else []
            app = app_from_settings(settings, tracer_provider=provider, extra_observers=extra)
            await self._serve(app, self.ports[variant])

    async def _serve(self, app: web.Application, port: int) -> None:
        runner = web.AppRunner(
            app, handle_signals=False, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, reuse_address=True).start()
        self.runners.append(runner)

    def stop(self) -> None:
        for p in (self.dashboard, self.collector, *self.procs):
            if p is not None:
                p.stop()
        from tokentail.proxy.telemetry import shutdown_bounded

        for provider in self.providers:
            shutdown_bounded(provider, 2.0)

        self.loop.close(self.runners)

    # --- traffic ---------------------------------------------------------------------

    def stream(
        self,
        variant: str,
        prompt: str,
        *,
        model: str = "sim-gpt-4o",
        tps: float | None = None,
        ttft_ms: int | None = None,
        tokens: int | None = None,
        headers: dict | None = None,
        body: dict | None = None,
        history: list | None = None,
    ):
        """Start a streamed chat completion through a proxy: its ``Stream`` (filled in as it
        arrives) and a Future that is done when it ended. ``body`` adds request fields (``user``),
        ``history`` earlier messages (a conversation's previous turns)."""
        out = Stream()
        fut = self.loop.submit(
            stream_chat(
                self.url(variant, "/v1"),
                prompt,
                out,
                model=model,
                tps=tps,
                ttft_ms=ttft_ms,
                tokens=tokens,
                headers=headers,
                body=body,
                history=history,
            )
        )
        return out, fut

    def get_json(self, name: str, path: str):
        """GET one of the stack's JSON endpoints (``name``: sim, production, canary, collector)."""
        import urllib.request

        with urllib.request.urlopen(self.url(name, path), timeout=5) as resp:
            return json.loads(resp.read())

    def wait_json(self, name: str, path: str, until, timeout: float = 15.0):
        """Poll ``path`` until ``until(body)`` is true; the last body (AssertionError on timeout)."""
        last: list[Any] = [None]

        def satisfied() -> bool:
            import urllib.error

            try:
                last[0] = self.get_json(name, path)
            except urllib.error.HTTPError as exc:
                if exc.code != 404:  # not there yet (a span still on its way): poll again
                    raise
                last[0] = None
                return False
            return bool(until(last[0]))

        try:
            wait_until(satisfied, timeout=timeout, step=0.2)
        except AssertionError:
            raise AssertionError(f"{name} {path} never satisfied the condition: {last[0]!r}"[:2000]) from None
        return last[0]

    def background_traffic(self, rps: float) -> None:
        """Steady synthetic traffic on both proxies until ``stop``: the charts get a history."""
        self._traffic = self.loop.submit(_background(self, rps))

    def stop_traffic(self) -> None:
        t = getattr(self, "_traffic", None)
        if t is not None:
            self.loop.loop.call_soon_threadsafe(t.cancel)


@dataclass
class Stream:
    request_id: str | None = None
    status: int | None = None
    text: str = ""
    first_token_at: float | None = None
    done_at: float | None = None


async def _quiet(coro) -> None:
    try:
        await coro
    except (TimeoutError, aiohttp.ClientError, OSError):
        pass  # the stack is going down


async def _background(stack: Stack, rps: float) -> None:
    models = ("sim-gpt-4o", "sim-gpt-4o-mini", "sim-llama-3-8b")
    prompts = (
        "Summarise the plot of Hamlet in three sentences.",
        "Write a haiku about observability.",
        "Explain backpressure in streaming proxies.",
        "List three uses of a ring buffer.",
    )
    tasks: set[asyncio.Task] = set()
    i = 0
    try:
        while True:
            variant = ("production", "canary")[i % 2]
            headers = {"x-sim-error": "500"} if i % 13 == 5 else None
            t = asyncio.ensure_future(
                _quiet(
                    stream_chat(
                        stack.url(variant, "/v1"),
                        prompts[i % len(prompts)],
                        Stream(),
                        model=models[i % 3],
                        tps=(30, 60, 45)[i % 3],
                        ttft_ms=120,
                        tokens=(24, 40, 60)[i % 3],
                        headers=headers,
                    )
                )
            )
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            i += 1
            await asyncio.sleep(1 / rps)  # pacing the load generator: rps requests a second
    finally:
        for t in tasks:
            t.cancel()


async def stream_chat(
    base: str,
    prompt: str,
    out: Stream,
    *,
    model: str,
    tps: float | None,
    ttft_ms: int | None,
    tokens: int | None,
    headers: dict | None = None,
    body: dict | None = None,
    history: list | None = None,
    clock: DeltaClock | None = None,
) -> Stream:
    h = {"Content-Type": "application/json", "Authorization": "Bearer sk-test-not-a-key"}
    if tps is not None:
        h["x-sim-tps"] = str(tps)
    if ttft_ms is not None:
        h["x-sim-ttft-ms"] = str(ttft_ms)
    if tokens is not None:
        h["x-sim-tokens"] = str(tokens)
    h.update(headers or {})
    req = {
        "model": model,
        "stream": True,
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            *(history or []),
            {"role": "user", "content": prompt},
        ],
        **(body or {}),
    }
    async with aiohttp.ClientSession() as s:
        async with s.post(base + "/chat/completions", data=json.dumps(req), headers=h) as r:
            out.request_id = r.headers.get("x-tokentail-request-id")
            out.status = r.status
            buf = b""
            async for chunk in r.content.iter_any():
                buf += chunk
                while b"\n\n" in buf:
                    event, buf = buf.split(b"\n\n", 1)
                    for line in event.split(b"\n"):
                        if not line.startswith(b"data: ") or line == b"data: [DONE]":
                            continue
                        try:
                            obj = json.loads(line[6:])
                        except ValueError:
                            continue
                        for choice in obj.get("choices") or []:
                            piece = (choice.get("delta") or {}).get("content")
                            if piece:
                                now = time.time()
                                if out.first_token_at is None:
                                    out.first_token_at = now
                                out.text += piece
                                if clock is not None and out.request_id:
                                    clock.deltas.setdefault(out.request_id, []).append((piece, now))
    out.done_at = time.time()
    return out
