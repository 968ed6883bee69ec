"""``python -m tokentail <command>`` as a real process on a loopback port, for tests that
need what only a separate process shows (signals, RSS, open files, a crash and a restart).
Output goes to files: a full pipe would stall the child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp

from tests.helpers import ROOT, free_port, until, wait_port

__all__ = ["ROOT", "CollectorProcess", "TokentailProcess", "clean_env", "run_cli"]


def clean_env(extra: dict[str, str] | None = None, prefixes: tuple[str, ...] = ("TOKENTAIL_", "OTEL_")) -> dict:
    """This environment without tokentail's and OTel's variables: the test decides every option."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith(prefixes)}, **(extra or {})}


class TokentailProcess:
    """One tokentail command, listening on a free port once constructed."""

    def __init__(self, command: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix=f"tokentail-{command}-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tokentail", command, "--port", str(self.port), *args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=clean_env(env),
            cwd=ROOT,
        )
        self.wait_listening()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def wait_listening(self, timeout: float = 20.0) -> None:
        wait_port(self.port, self.proc, timeout, output=self.output)

    def rss_mb(self) -> float:
        with open(f"/proc/{self.pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class CollectorProcess:
    """A collector subprocess (``python -m tokentail collector``) on a free port."""

    def __init__(self, db: Path, targets: list[str] = (), *extra: str, log_dir: Path | None = None) -> None:
        self.port = free_port()
        self.db = db
        log_dir = log_dir or db.parent
        n = len(list(log_dir.glob("collector-*.err")))
        self.out_path = log_dir / f"collector-{n}.out"
        self.err_path = log_dir / f"collector-{n}.err"
        args = [sys.executable, "-m", "tokentail", "collector", "--port", str(self.port), "--db", str(db)]
        for t in targets:
            args += ["--target", t]
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [*args, *extra], stdout=out, stderr=err, env=clean_env(prefixes=("TOKENTAIL_",)), cwd=str(ROOT)
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    async def wait_healthy(self, timeout: float = 20.0) -> None:
        async with aiohttp.ClientSession() as s:

            async def healthy() -> bool:
                if self.proc.poll() is not None:
                    raise AssertionError(f"collector exited with {self.proc.returncode}:\n{self.stderr}")
                try:
                    async with s.get(self.url + "/healthz", timeout=aiohttp.ClientTimeout(total=1)) as r:
                        return r.status == 200
                except (TimeoutError, aiohttp.ClientError):
                    return False

            try:
                await until(healthy, timeout=timeout, step=0.05)
            except AssertionError as exc:
                if "exited" in str(exc):
                    raise
                raise AssertionError(f"collector not healthy after {timeout}s:\n{self.stderr}") from None

    async def get_json(self, path: str) -> dict:
        async with aiohttp.ClientSession() as s:
            async with s.get(self.url + path, timeout=aiohttp.ClientTimeout(total=10)) as r:
                return await r.json()

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    async def _exited(self, timeout: float) -> bool:
        try:
            await until(lambda: self.proc.poll() is not None, timeout=timeout, step=0.05)
            return True
        except AssertionError:
            return False

    async def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        if await self._exited(timeout):
            return self.proc.returncode
        self.kill9()
        raise AssertionError(f"collector did not stop on SIGTERM:\n{self.stderr}")

    async def exit_code(self, timeout: float = 20.0) -> int:
        if await self._exited(timeout):
            return self.proc.returncode
        self.kill9()
        raise AssertionError("collector did not exit")


def run_cli(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """``python -m tokentail collector ARGS`` to completion, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "tokentail", "collector", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(prefixes=("TOKENTAIL_",)),
    )
