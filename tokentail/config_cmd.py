"""`tokentail config`: print the effective configuration of every command, secrets masked."""

from __future__ import annotations

import importlib
import json
import os

from . import settings as st

SUMMARY = "print the effective configuration (flags aside: environment > config file > default), secrets masked"
DESCRIPTION = SUMMARY + "\n\nexample: TOKENTAIL_PROXY_PORT=9000 tokentail config --config tokentail.toml"
OPTIONS = [
    st.Option("format", "output format", "toml", choices=("toml", "json")),
]


def effective(file_config: dict, env) -> dict[str, dict]:
    from .cli import COMMANDS

    out: dict[str, dict] = {}
    for name, path in COMMANDS.items():
        if name == "config":
            continue
        try:
            mod = importlib.import_module(path)
        except ModuleNotFoundError:
            continue
        resolved = st.resolve(name, mod.OPTIONS, {}, env, file_config)
        out[name] = {k: {"value": v, "source": resolved.source(k)} for k, v in resolved.masked().items()}
    return out


def main(settings) -> int:
    file_config, path = st.load_config_file(None, os.environ)
    data = effective(file_config, os.environ)
    if settings.format == "json":
        print(json.dumps({"config_file": path, "commands": data}, indent=2, default=str))
        return 0
    print(f"# config file: {path or '(none)'}")
    for cmd, opts in data.items():
        print(f"\n[{cmd}]")
        for k, entry in opts.items():
            v = entry["value"]
            if v is None:
                print(f"# {k} = (unset)")
            else:
                print(f"{k} = {json.dumps(v, default=str)}    # {entry['source']}")
    return 0
