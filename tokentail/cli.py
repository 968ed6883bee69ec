"""`tokentail` command line: one subcommand per process.

Each subcommand lives in a module exposing ``OPTIONS`` (a list of ``Option``),
``SUMMARY``/``DESCRIPTION`` strings and ``main(settings) -> int``. Modules are
imported only when their command runs, so ``tokentail --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from types import ModuleType

from . import settings as st

# command name -> module holding OPTIONS, SUMMARY, DESCRIPTION, main(settings)
COMMANDS: dict[str, str] = {
    "proxy": "tokentail.proxy.command",
    "simulate": "tokentail.simulator.command",
    "collector": "tokentail.collector.command",
    "dashboard": "tokentail.dashboard.command",
    "up": "tokentail.up",
    "config": "tokentail.config_cmd",
    "erase": "tokentail.erase_cmd",
}

EPILOG = """\
Every option can also be set in the environment as TOKENTAIL_<COMMAND>_<OPTION>
(e.g. TOKENTAIL_PROXY_UPSTREAM) or in a TOML config file (--config, $TOKENTAIL_CONFIG
or ./tokentail.toml) with one [command] table each. Precedence: flag > environment >
file > default. Run `tokentail COMMAND --help` for a command's options.
"""


def _available() -> dict[str, ModuleType]:
    """Import the command modules that exist (later commands may not be built yet)."""
    mods: dict[str, ModuleType] = {}
    for name, path in COMMANDS.items():
        try:
            mods[name] = importlib.import_module(path)
        except ModuleNotFoundError as exc:
            if exc.name and path.startswith(exc.name):
                continue  # command not shipped in this build
            raise
    return mods


def build_parser(mods: dict[str, ModuleType]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokentail",
        description="See every LLM request as it streams: proxy, collector and dashboard for OpenAI-compatible APIs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tokentail {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in mods.items():
        p = sub.add_parser(
            name,
            help=getattr(mod, "SUMMARY", ""),
            description=getattr(mod, "DESCRIPTION", getattr(mod, "SUMMARY", "")),
            epilog=f"Environment: TOKENTAIL_{name.upper()}_<OPTION>; config file table [{name}].",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("--config", metavar="PATH", help=f"TOML config file [env: {st.CONFIG_ENV}]")
        p.add_argument(
            "--log-level",
            default=os.environ.get("TOKENTAIL_LOG_LEVEL", "info"),
            choices=["debug", "info", "warning", "error"],
            help="log verbosity [env: TOKENTAIL_LOG_LEVEL]",
        )
        st.add_options(p, name, mod.OPTIONS)
    from . import routes_cmd  # a tool command with an action and an argument, not a process

    routes_cmd.add_parser(sub)
    return parser


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("tokentail")
    except Exception:
        return "0+unknown"


def main(argv: list[str] | None = None) -> int:
    mods = _available()
    parser = build_parser(mods)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    if args.command == "routes":
        from . import routes_cmd

        try:
            return routes_cmd.run(args)
        except st.SettingsError as exc:
            print(f"tokentail routes: error: {exc}", file=sys.stderr)
            return 2
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    mod = mods[args.command]
    if args.config:  # children started by `up` and `config` read the same file
        os.environ[st.CONFIG_ENV] = args.config
    try:
        file_config, _ = st.load_config_file(args.config, os.environ)
        settings = st.resolve(args.command, mod.OPTIONS, args, os.environ, file_config)
        return int(mod.main(settings) or 0)
    except st.SettingsError as exc:
        print(f"tokentail {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
