"""Helpers for tests that need the Prometheus binaries (``@pytest.mark.prometheus``).

A missing ``promtool``/``prometheus`` skips the test, unless ``TOKENTAIL_REQUIRE_PROMETHEUS=1``
(CI) turns that into a failure.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

from tests.helpers import free_port, require_binary, wait_until

__all__ = ["REQUIRE_ENV", "PrometheusServer", "free_port", "prometheus_bin", "promtool", "promtool_check"]

REQUIRE_ENV = "TOKENTAIL_REQUIRE_PROMETHEUS"


def promtool() -> str:
    return require_binary("promtool", REQUIRE_ENV)


def prometheus_bin() -> str:
    return require_binary("prometheus", REQUIRE_ENV)


def promtool_check(exposition: bytes) -> subprocess.CompletedProcess:
    """``promtool check metrics`` on an exposition read from stdin."""
    return subprocess.run([promtool(), "check", "metrics"], input=exposition, capture_output=True, timeout=30)


class PrometheusServer:
    """A real Prometheus on a loopback port with a temp config and data dir; ``stop`` kills it."""

    def __init__(self, tmp: Path, target: str = "", scrape_interval: str = "1s", *, config: str | None = None) -> None:
        """Scrape ``target`` every ``scrape_interval``, or run ``config`` (a whole prometheus.yml)."""
        self.port = free_port()
        self.tmp = tmp
        path = tmp / "prometheus.yml"
        path.write_text(
            config
            if config is not None
            else "global:\n"
            f"  scrape_interval: {scrape_interval}\n"
            f"  evaluation_interval: {scrape_interval}\n"
            "scrape_configs:\n"
            "  - job_name: tokentail\n"
            f"    scrape_interval: {scrape_interval}\n"
            f"    scrape_timeout: {scrape_interval}\n"
            f"    static_configs: [{{targets: ['{target}']}}]\n"
        )
        self.log = open(tmp / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [
                prometheus_bin(),
                f"--config.file={path}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **params: str) -> dict:
        q = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{q}", timeout=5) as r:
            return json.loads(r.read())

    def query(self, promql: str) -> list[dict]:
        body = self.get("/api/v1/query", query=promql)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait_ready(self, timeout: float = 20.0) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.logs()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False

        try:
            wait_until(ready, timeout=timeout, step=0.1)
        except AssertionError:
            raise TimeoutError(f"prometheus not ready: {self.logs()}") from None

    def logs(self) -> str:
        self.log.flush()
        return (self.tmp / "prometheus.log").read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()
