"""Running ``python -m tokentail collector`` as a real process on a loopback port."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from ._fakes import free_port


class CollectorProcess:
    """A collector subprocess; output goes to files (a full pipe must never stall it)."""

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
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENTAIL_")}
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [*args, *extra], stdout=out, stderr=err, env=env, cwd=str(Path(__file__).resolve().parents[2])
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    async def wait_healthy(self, timeout: float = 20.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with aiohttp.ClientSession() as s:
            while loop.time() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"collector exited with {self.proc.returncode}:\n{self.stderr}")
                try:
                    async with s.get(self.url + "/healthz", timeout=aiohttp.ClientTimeout(total=1)) as r:
                        if r.status == 200:
                            return
                except (TimeoutError, aiohttp.ClientError):
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"collector not healthy after {timeout}s:\n{self.stderr}")

    async def get_json(self, path: str) -> dict:
        async with aiohttp.ClientSession() as s:
            async with s.get(self.url + path, timeout=aiohttp.ClientTimeout(total=10)) as r:
                return await r.json()

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    async def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        for _ in range(int(timeout / 0.05)):
            if self.proc.poll() is not None:
                return self.proc.returncode
            await asyncio.sleep(0.05)
        self.kill9()
        raise AssertionError(f"collector did not stop on SIGTERM:\n{self.stderr}")

    async def exit_code(self, timeout: float = 20.0) -> int:
        for _ in range(int(timeout / 0.05)):
            if self.proc.poll() is not None:
                return self.proc.returncode
            await asyncio.sleep(0.05)
        self.kill9()
        raise AssertionError("collector did not exit")


def run_cli(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENTAIL_")}
    return subprocess.run(
        [sys.executable, "-m", "tokentail", "collector", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
