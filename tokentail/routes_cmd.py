"""`tokentail routes check MODEL`: which route, upstream and upstream model a request for
MODEL would take through the proxy, and why (exact, prefix, default). Offline: nothing is
sent; the routes load the way the proxy loads them (``TOKENTAIL_PROXY_ROUTES``, else the
config file's ``[[proxy.routes]]``), so a config the proxy would refuse is refused here too
(one line, exit 2)."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping

from . import settings as st

SUMMARY = "check which route and upstream a model's requests would take (nothing is sent)"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("routes", help=SUMMARY, description=SUMMARY)
    p.add_argument("--config", metavar="PATH", help=f"TOML config file [env: {st.CONFIG_ENV}]")
    actions = p.add_subparsers(dest="routes_command", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="where a request for MODEL would go, and why")
    check.add_argument("model", metavar="MODEL")
    check.add_argument(
        "--upstream", metavar="URL", help="the proxy's --upstream [env: TOKENTAIL_PROXY_UPSTREAM; file: [proxy]]"
    )
    check.add_argument("--json", action="store_true", help="print the answer as JSON")
    # Also after the action (``routes check MODEL --config PATH``); its own dest, since a
    # subparser's default would overwrite the one given before the action.
    check.add_argument("--config", dest="check_config", metavar="PATH", help=f"TOML config file [env: {st.CONFIG_ENV}]")


def run(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    from tokentail.proxy.routes import load_routes, parse_upstream

    env = dict(os.environ if environ is None else environ)
    config = getattr(args, "check_config", None) or args.config
    if config:
        env[st.CONFIG_ENV] = config
    file_config, _ = st.load_config_file(None, env)
    table, path = load_routes(env)
    proxy_table = file_config.get("proxy", {})
    default = (
        args.upstream
        or env.get("TOKENTAIL_PROXY_UPSTREAM")
        or (proxy_table.get("upstream") if isinstance(proxy_table, Mapping) else None)
    )
    if not default:
        raise st.SettingsError("no default upstream: give --upstream (or TOKENTAIL_PROXY_UPSTREAM, [proxy] upstream)")
    answer = table.explain(args.model or None, parse_upstream(default, "--upstream")).describe()
    if args.json:
        print(json.dumps({"model": args.model, **answer, "routes_from": path or "environment or none"}))
        return 0
    where = f"route {answer['route']!r}" if answer["route"] else "the default upstream (--upstream)"
    print(f"{args.model} -> {where}: {answer['why']}")
    print(f"  upstream:       {answer['upstream']}")
    print(f"  upstream model: {answer['upstream_model']}")
    if answer["injects_key"]:
        print("  key:            the route injects its own key (the client's is dropped)")
    print(f"  routes from:    {path or ('TOKENTAIL_PROXY_ROUTES' if env.get('TOKENTAIL_PROXY_ROUTES') else 'none')}")
    return 0
