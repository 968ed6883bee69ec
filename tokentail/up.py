"""`tokentail up`: the whole stack in one command.

Starts each part as its own child process (the same `tokentail <command>` a user
would run), prints where to point clients and browsers, shows each child's state,
and stops them all on Ctrl-C or when one dies. With no upstream it starts the
simulator; with ``--demo`` two proxies (production and canary) and synthetic
traffic over several models keep the dashboard alive on a machine with no LLM.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import serving
from .settings import Option, SettingsError, parse_bool, port

log = logging.getLogger("tokentail.up")

SUMMARY = "run proxy + collector + dashboard (and the simulator) in one command"
DESCRIPTION = """\
Start the whole stack on this machine with an embedded DuckDB file:

  tokentail up --demo                      # simulator, two proxies, synthetic traffic
  tokentail up --upstream https://api.openai.com/v1

Ctrl-C stops every process. Each child also logs with its name as prefix.
"""

OPTIONS = [
    Option("upstream", "upstream API base URL; without it the built-in simulator is started", metavar="URL"),
    Option("demo", "two proxies (production, canary) and synthetic traffic over several models", False, parse_bool),
    Option("host", "address every part binds to", "127.0.0.1"),
    Option("proxy_port", "port of the (production) proxy", 8787, port),
    Option("canary_port", "port of the canary proxy (--demo)", 8789, port),
    Option("collector_port", "port of the collector", 8788, port),
    Option("dashboard_port", "port of the dashboard", 8050, port),
    Option("simulator_port", "port of the simulator", 8799, port),
    Option("data_dir", "where the DuckDB file lives", "./tokentail-data", metavar="DIR"),
    Option("traffic_rps", "synthetic requests per second per proxy (--demo)", 1.0, float, metavar="RPS"),
]

STOP_TIMEOUT = 8.0


@dataclass
class Child:
    name: str
    args: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)
    proc: asyncio.subprocess.Process | None = None
    pump: asyncio.Task[None] | None = None

    def started(self) -> asyncio.subprocess.Process:
        """The process, once ``_start`` has started it."""
        assert self.proc is not None, f"{self.name} was not started"
        return self.proc


def has_command(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def port_free(host: str, p: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, p))
        except OSError:
            return False
    return True


def plan(settings) -> list[Child]:
    """Which children to start, with which arguments (pure: no processes yet)."""
    h = settings.host
    children: list[Child] = []
    upstream = settings.upstream
    if not upstream:
        children.append(
            Child(
                "simulator", ["simulate", "--host", h, "--port", str(settings.simulator_port)], settings.simulator_port
            )
        )
        upstream = f"http://{h}:{settings.simulator_port}/v1"
    with_collector = has_command("tokentail.collector.command")
    otel = (
        {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://{h}:{settings.collector_port}/v1/traces",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        }
        if with_collector
        else {}
    )
    proxies = [("proxy", "production", settings.proxy_port)]
    if settings.demo:
        proxies.append(("proxy-canary", "canary", settings.canary_port))
    # A browser may open the dashboard as localhost or as the loopback address: both are the same
    # page to the user but different origins to the proxies' and collector's CORS checks.
    dash_origins = [f"http://{h}:{settings.dashboard_port}"]
    if h in ("127.0.0.1", "::1"):
        dash_origins.append(f"http://localhost:{settings.dashboard_port}")
    origin_args = [arg for o in dash_origins for arg in ("--allowed-origin", o)]
    for name, variant, p in proxies:
        children.append(
            Child(
                name,
                [
                    "proxy",
                    "--upstream",
                    upstream,
                    "--host",
                    h,
                    "--port",
                    str(p),
                    "--variant",
                    variant,
                    *origin_args,
                ],
                p,
                dict(otel),
            )
        )
    if with_collector:
        db = str(Path(settings.data_dir) / "tokentail.duckdb")
        args = [
            "collector",
            "--host",
            h,
            "--port",
            str(settings.collector_port),
            "--db",
            db,
            *origin_args,
        ]
        for _, variant, p in proxies:
            args += ["--target", f"{variant}=http://{h}:{p}"]
        children.append(Child("collector", args, settings.collector_port))
    if has_command("tokentail.dashboard.command"):
        args = ["dashboard", "--host", h, "--port", str(settings.dashboard_port)]
        if with_collector:
            args += ["--collector", f"http://{h}:{settings.collector_port}"]
        for _, variant, p in proxies:
            args += ["--proxy", f"{variant}=http://{h}:{p}"]
        children.append(Child("dashboard", args, settings.dashboard_port))
    return children


async def _pump(child: Child) -> None:
    """Prefix each line a child prints with its name."""
    assert child.proc is not None and child.proc.stdout is not None
    async for line in child.proc.stdout:
        sys.stdout.write(f"{child.name:>13} | {line.decode(errors='replace')}")
        sys.stdout.flush()


async def _wait_listening(host: str, p: int, proc: asyncio.subprocess.Process, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if proc.returncode is not None:
            return False
        try:
            _, w = await asyncio.open_connection(host, p)
            w.close()
            return True
        except OSError:
            await asyncio.sleep(0.1)
    return False


async def _start(child: Child, host: str) -> None:
    env = {**os.environ, **child.env, "PYTHONUNBUFFERED": "1"}
    child.proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tokentail",
        *child.args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    child.pump = asyncio.create_task(_pump(child))
    if not await _wait_listening(host, child.port, child.proc, 30.0):
        raise serving.ServeError(f"{child.name} did not start (exit code {child.proc.returncode}); see its log above")


# Stop order: the dashboard first, then the proxies (their in-flight streams still need
# the simulator, their last spans still need the collector), then everything else.
_STOP_STAGES = (("dashboard",), ("proxy", "proxy-canary"))


async def _stop_all(children: list[Child]) -> None:
    staged = [[c for c in children if c.name in names] for names in _STOP_STAGES]
    rest = [c for c in children if not any(c in stage for stage in staged)]
    for stage in (*staged, rest):
        await asyncio.gather(*(_stop(c) for c in stage))
    for c in children:
        if c.pump is not None:
            await asyncio.gather(c.pump, return_exceptions=True)


async def _stop(c: Child) -> None:
    if c.proc is None or c.proc.returncode is not None:
        return
    c.proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(c.proc.wait(), STOP_TIMEOUT)
    except TimeoutError:
        log.warning("%s did not stop within %.0fs; killing it", c.name, STOP_TIMEOUT)
        c.proc.kill()
        await c.proc.wait()


def _banner(settings, children: list[Child]) -> str:
    h = settings.host
    names = {c.name for c in children}
    lines = ["", "tokentail is up:"]
    lines.append(
        f"  point OpenAI clients at   http://{h}:{settings.proxy_port}/v1   "
        f"(OPENAI_BASE_URL=http://{h}:{settings.proxy_port}/v1)"
    )
    if "proxy-canary" in names:
        lines.append(f"  canary proxy              http://{h}:{settings.canary_port}/v1")
    if "dashboard" in names:
        lines.append(f"  dashboard                 http://{h}:{settings.dashboard_port}/")
    lines.append(f"  live feed (SSE)           http://{h}:{settings.proxy_port}/api/live")
    lines.append(f"  Prometheus metrics        http://{h}:{settings.proxy_port}/metrics")
    if "collector" in names:
        lines.append(f"  collector API             http://{h}:{settings.collector_port}/api/status")
    if "simulator" in names:
        lines.append(f"  upstream: built-in simulator http://{h}:{settings.simulator_port}/v1")
    lines.append("  Ctrl-C stops everything.")
    return "\n".join(lines) + "\n"


async def run_stack(settings) -> None:
    children = plan(settings)
    taken = [f"{c.name} port {c.port}" for c in children if not port_free(settings.host, c.port)]
    if taken:
        raise serving.ServeError(
            "already in use: " + ", ".join(taken) + " (stop what uses them or pick other ports, e.g. --proxy-port)"
        )
    if any(c.name == "collector" for c in children):
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    traffic: asyncio.Task[None] | None = None
    try:
        for child in children:
            await _start(child, settings.host)
            print(f"{'up':>13} | {child.name} ready on port {child.port}", flush=True)
        print(_banner(settings, children), flush=True)
        if settings.demo:
            from .traffic import generate

            urls = [f"http://{settings.host}:{c.port}/v1" for c in children if c.name.startswith("proxy")]
            traffic = asyncio.create_task(generate(urls, settings.traffic_rps, stop))
        waiters = {asyncio.create_task(c.started().wait()): c for c in children}
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([stopper, *waiters], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task in waiters:
                c = waiters[task]
                print(
                    f"{'up':>13} | {c.name} exited with code {c.started().returncode}; stopping the stack", flush=True
                )
        stop.set()
        for t in [stopper, *waiters]:
            t.cancel()
    finally:
        stop.set()
        if traffic is not None:
            await asyncio.gather(traffic, return_exceptions=True)
        print(f"{'up':>13} | stopping...", flush=True)
        await _stop_all(children)
        print(f"{'up':>13} | all stopped", flush=True)


def main(settings) -> int:
    if settings.upstream:
        from .proxy.command import validate_upstream

        settings = settings.replace(upstream=validate_upstream(settings.upstream))
    if settings.demo and settings.upstream:
        raise SettingsError("--demo runs on the built-in simulator; drop --upstream (or --demo)")
    return serving.run(run_stack(settings))
