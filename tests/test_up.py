"""`tokentail up --demo` as a user runs it: everything serves, and Ctrl-C stops everything."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import openai
import pytest

from tests.helpers import wait_until
from tokentail.settings import resolve
from tokentail.up import OPTIONS, plan


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def children_of(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=2) as r:
        return json.loads(r.read())


def test_plan_without_upstream_starts_the_simulator_and_wires_variants():
    s = resolve("up", OPTIONS, {"demo": True}, env={}, file_config={})
    names = [c.name for c in plan(s)]
    assert names[:3] == ["simulator", "proxy", "proxy-canary"]
    by = {c.name: c for c in plan(s)}
    assert "canary" in by["proxy-canary"].args and "http://127.0.0.1:8799/v1" in by["proxy"].args
    assert by["proxy"].env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] == "http://127.0.0.1:8788/v1/traces"
    coll = by["collector"].args
    assert "production=http://127.0.0.1:8787" in coll and "canary=http://127.0.0.1:8789" in coll
    for child in (by["proxy"], by["proxy-canary"], by["collector"]):
        origins = [child.args[i + 1] for i, a in enumerate(child.args) if a == "--allowed-origin"]
        assert origins == ["http://127.0.0.1:8050", "http://localhost:8050"], child.name
    s = resolve("up", OPTIONS, {"upstream": "https://api.openai.com/v1"}, env={}, file_config={})
    assert "simulator" not in [c.name for c in plan(s)]


def test_a_taken_port_is_one_clear_error(tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        r = subprocess.run(
            [sys.executable, "-m", "tokentail", "up", "--proxy-port", str(port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        holder.close()
    assert r.returncode == 1
    assert f"proxy port {port}" in r.stderr and "already in use" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_up_demo_serves_everything_and_stops_cleanly(tmp_path):
    sim, prod, canary, coll, dash = free_ports(5)
    log = open(tmp_path / "up.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tokentail",
            "up",
            "--demo",
            "--simulator-port",
            str(sim),
            "--proxy-port",
            str(prod),
            "--canary-port",
            str(canary),
            "--collector-port",
            str(coll),
            "--dashboard-port",
            str(dash),
            "--traffic-rps",
            "4",
        ],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # a file: a full pipe would block `up`
    kids: list[int] = []
    try:
        deadline = time.monotonic() + 30  # for the whole start-up: steps 1 and 3

        # 1. the dashboard serves
        def dashboard_serves() -> bool:
            assert proc.poll() is None, "up exited"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{dash}/", timeout=2) as r:
                    assert r.status == 200 and b"tokentail" in r.read()
                return True
            except OSError:
                return False

        wait_until(dashboard_serves, timeout=30, step=0.3, what="dashboard did not come up")
        kids = children_of(proc.pid)
        assert len(kids) == 5  # simulator, two proxies, collector, dashboard
        # 2. the proxy relays a real SDK request
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{prod}/v1", api_key="sk-test", max_retries=0)
        reply = client.chat.completions.create(model="sim-gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content
        # 3. the collector reports data for both variants
        rates: dict = {}

        def both_variants() -> bool:
            m = get_json(f"http://127.0.0.1:{coll}/api/metrics?range=5m&by=variant")
            rates.update({g["name"]: [v for v in g["metrics"]["request_rate"] if v] for g in m["groups"]})
            return bool(rates.get("production") and rates.get("canary"))

        wait_until(
            both_variants, timeout=max(deadline - time.monotonic(), 0.5), step=0.5, what="data for both variants"
        )
    finally:
        t0 = time.time()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        stopped_in = time.time() - t0
        log.close()
    out = (tmp_path / "up.log").read_text()
    assert proc.returncode == 0, out[-3000:]
    assert stopped_in < 10, f"took {stopped_in:.1f}s to stop"
    assert "all stopped" in out and "Traceback" not in out
    alive = [k for k in kids if os.path.exists(f"/proc/{k}") and open(f"/proc/{k}/stat").read().split()[2] != "Z"]
    assert alive == [], f"left behind: {alive}"
