"""A real ``redis-server`` on a free loopback port for the live plane's tests: no persistence
(``--save ''``), its files in a temporary folder, stopped and started again on the same port
to play an outage. Without the binary a test skips, unless ``TOKENTAIL_REQUIRE_REDIS=1``
(CI) makes that a failure."""

from __future__ import annotations

import signal
import subprocess
import tempfile
from pathlib import Path

from tests.helpers import free_port, listening, require_binary, wait_port, wait_until

__all__ = ["REQUIRE_REDIS", "RedisServer", "raw_entries", "redis_binary", "stream_events", "texts_by_request"]

REQUIRE_REDIS = "TOKENTAIL_REQUIRE_REDIS"


def redis_binary() -> str:
    """The ``redis-server`` path (skip, or fail under TOKENTAIL_REQUIRE_REDIS=1, without it)."""
    return require_binary("redis-server", REQUIRE_REDIS)


class RedisServer:
    """``redis-server`` on loopback; ``stop``/``start`` keep the port (an outage, then recovery)."""

    def __init__(self, binary: str, port: int | None = None) -> None:
        self.binary = binary
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="tokentail-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.dir / "redis.log"

    def start(self) -> RedisServer:
        cmd = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.dir),
            "--logfile",
            str(self.log),
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_port(
            self.port, self.proc, 20.0, output=lambda: self.log.read_text(errors="replace") if self.log.exists() else ""
        )
        return self

    def stop(self) -> None:
        """Kill it at once (SIGKILL: an outage, not a clean shutdown) and wait until the port is free."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None
        wait_until(lambda: not listening(self.port), timeout=10.0, what="redis-server gone")


def raw_entries(url: str, key: str = "tokentail:live") -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Every entry of the live stream as Redis holds it (bytes), oldest first."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        return list(client.xrange(key))
    finally:
        client.close()


def stream_events(url: str, key: str = "tokentail:live") -> list[tuple[str, str, dict, str]]:
    """The live stream's entries as ``(stream id, event, data, proxy boot id)``."""
    import json

    return [(eid.decode(), f[b"e"].decode(), json.loads(f[b"d"]), f[b"p"].decode()) for eid, f in raw_entries(url, key)]


def texts_by_request(events: list[tuple[str, str, dict, str]]) -> dict[str, str]:
    """Each request's text as its deltas built it (a ``request.end`` with ``text`` replaces it)."""
    out: dict[str, str] = {}
    for _, name, data, _ in events:
        rid = data.get("id")
        if name == "request.delta":
            out[rid] = out.get(rid, "") + (data.get("text") or "")
        elif name == "request.end" and isinstance(data.get("text"), str):
            out[rid] = data["text"]
    return out
