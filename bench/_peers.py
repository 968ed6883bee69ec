"""The peers of ``full_telemetry_bench.py --peers``: each installed into its own virtualenv under a
cache directory (never the project's environment), and the command that runs it in front of the
simulator."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

PEERS = {
    # name: (pip requirement, module or console script, args given (port, upstream base URL))
    "llm-observe-proxy": ("llm-observe-proxy", "llm-observe-proxy"),
    "litellm": ("litellm[proxy]", "litellm"),
}


def peer_venv(cache: str, name: str, requirement: str) -> str | None:
    """The venv's bin dir with ``requirement`` installed (once, cached), or None with a message."""
    venv = os.path.join(cache, name)
    stamp = os.path.join(venv, ".installed")
    if os.path.exists(stamp):
        return os.path.join(venv, "bin")
    shutil.rmtree(venv, ignore_errors=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", venv], check=True, capture_output=True)
        pip = os.path.join(venv, "bin", "pip")
        subprocess.run([pip, "install", "-q", requirement], check=True, capture_output=True, timeout=900)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        tail = getattr(exc, "stderr", b"") or b""
        print(f"  {name}: skipped, could not install {requirement}: {tail.decode(errors='replace')[-300:]}")
        return None
    open(stamp, "w").close()
    return os.path.join(venv, "bin")


def peer_command(name: str, bindir: str, port: int, upstream: str, workdir: str) -> tuple[list[str], dict, str]:
    """(command, env, chat completions URL) to run a peer in front of the simulator."""
    if name == "litellm":
        cfg = os.path.join(workdir, "litellm.yaml")
        with open(cfg, "w") as fh:
            fh.write(
                "model_list:\n  - model_name: sim-gpt-4o\n    litellm_params:\n"
                f"      model: openai/sim-gpt-4o\n      api_base: {upstream}\n      api_key: sk-bench\n"
            )
        cmd = [os.path.join(bindir, "litellm"), "--config", cfg, "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--num_workers", "1"]
        # No master key on a loopback benchmark: LiteLLM refuses to start unless told this is local.
        env = {"LITELLM_LOG": "ERROR", "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true"}
        return cmd, env, f"http://127.0.0.1:{port}/v1/chat/completions"
    # Its SQLite file lands in the working directory (the cache dir, see _start_peers).
    cmd = [os.path.join(bindir, "llm-observe-proxy"), "--port", str(port), "--upstream-url", upstream]
    return cmd, {}, f"http://127.0.0.1:{port}/v1/chat/completions"
