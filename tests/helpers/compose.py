"""compose.yaml, the Dockerfile and .dockerignore as Compose and Docker read them, without
a container engine: interpolation, services, environments, the settings each service
resolves, who listens where. Shared by the compose, Grafana and OTel Collector tests."""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from tests.helpers import ROOT
from tokentail import cli
from tokentail.settings import resolve

__all__ = [
    "COMPOSE",
    "DOCKERFILE",
    "DOCKERIGNORE",
    "GRAFANA_PORT",
    "HEALTH_PATHS",
    "NO_SHELL_IMAGES",
    "OTEL_COMMANDS",
    "OTEL_SDK_ENV",
    "PROMETHEUS_CONFIG",
    "PROMETHEUS_PORT",
    "REDIS_PORT",
    "ROOT",
    "SCHEMA",
    "SHARED_ENV",
    "TEST_ENV",
    "MissingVariable",
    "browser_target",
    "command_module",
    "compose",
    "copies",
    "dockerfile_instructions",
    "dockerignored",
    "effective_env",
    "environment",
    "exec_form",
    "image_env",
    "internal_target",
    "interpolate",
    "listening_ports",
    "load_compose",
    "netns_owner",
    "profiles_of",
    "public_host",
    "published",
    "published_by_host_port",
    "raw_compose",
    "services",
    "settings_of",
    "stages",
    "tokentail_services",
    "variant_of",
]

COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus.yml"
# The Compose Specification's JSON schema (compose-spec/compose-spec, Apache-2.0), copied
# into tests/data; TOKENTAIL_COMPOSE_SCHEMA points elsewhere (e.g. a newer schema).
SCHEMA = Path(os.environ.get("TOKENTAIL_COMPOSE_SCHEMA", ROOT / "tests" / "data" / "compose-spec.json"))

# What a `.env` file provides (compose.yaml requires these three).
TEST_ENV = {
    "TOKENTAIL_READ_TOKEN": "test-read-token",
    "TOKENTAIL_ADMIN_TOKEN": "test-admin-token",
    "GRAFANA_ADMIN_PASSWORD": "test-grafana-password",
}
# Read by every command besides its own TOKENTAIL_<COMMAND>_<OPTION> names (tokentail/cli.py).
SHARED_ENV = {"TOKENTAIL_READ_TOKEN", "TOKENTAIL_ADMIN_TOKEN", "TOKENTAIL_CONFIG", "TOKENTAIL_LOG_LEVEL"}
# Commands that export spans, and so read the standard OTEL_* variables.
OTEL_COMMANDS = {"proxy", "up"}
# Standard variables the OpenTelemetry SDK reads itself (beyond proxy/telemetry.py's ENV_READ).
OTEL_SDK_ENV = {
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    "OTEL_BSP_EXPORT_TIMEOUT",
}
# The route each command's health check must hit.
HEALTH_PATHS = {"proxy": "/healthz", "collector": "/healthz", "simulate": "/v1/models", "dashboard": "/_tt/healthz"}
# Images without a shell or HTTP client, whose health cannot be checked from inside.
NO_SHELL_IMAGES = ("otel/opentelemetry-collector",)
# Ports the third-party services listen on, as configured in compose.yaml / their images.
PROMETHEUS_PORT = 9090
GRAFANA_PORT = 3000
REDIS_PORT = 6379


# --- Compose's interpolation ----------------------------------------------------------------


class MissingVariable(KeyError):
    """A ``${VAR:?message}`` whose variable is unset: Compose refuses to start."""


_VAR = re.compile(r"\$(?:(?P<dollar>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.S)


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?err}``, ``${VAR:+alt}``, ``$$``."""

    def sub(m: re.Match) -> str:
        if m.group("dollar"):
            return "$"
        if m.group("named"):
            return env.get(m.group("named"), "")
        b = _BRACED.fullmatch(m.group("braced"))
        assert b, f"unsupported interpolation ${{{m.group('braced')}}}"
        name, op, arg = b.group("name"), b.group("op"), b.group("arg")
        value = env.get(name)
        assert "$" not in (arg or ""), f"nested interpolation in ${{{m.group('braced')}}}"
        if op in (":-", "-"):
            return value if (value if op == ":-" else value is not None) else arg
        if op in (":?", "?"):
            if not (value if op == ":?" else value is not None):
                raise MissingVariable(name, arg)
            return value
        if op in (":+", "+"):
            return arg if (value if op == ":+" else value is not None) else ""
        return value or ""

    return _VAR.sub(sub, text)


def _interpolate_tree(node, env):
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_interpolate_tree(v, env) for v in node]
    if isinstance(node, dict):
        return {k: _interpolate_tree(v, env) for k, v in node.items()}
    return node


def raw_compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())  # merge keys (<<: *anchor) resolved here


def load_compose(env: dict[str, str] | None = None) -> dict:
    """compose.yaml as Compose sees it with ``env`` (default: TEST_ENV) as its `.env` file."""
    return _interpolate_tree(raw_compose(), TEST_ENV if env is None else env)


@cache
def compose() -> dict:
    return load_compose()


def services() -> dict[str, dict]:
    return compose()["services"]


def environment(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


# --- the Dockerfile -------------------------------------------------------------------------


def dockerfile_instructions(text: str | None = None) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out, buf = [], ""
    for raw in (DOCKERFILE.read_text() if text is None else text).splitlines():
        s = raw.strip()
        if s.startswith("#") or (not s and not buf):
            continue
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        line = (buf + s).strip()
        buf = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[dict]:
    """Each build stage: its base image (ARGs substituted), name and instructions."""
    global_args: dict[str, str] = {}
    result: list[dict] = []
    for word, rest in dockerfile_instructions():
        if word == "ARG" and not result:
            name, _, default = rest.partition("=")
            global_args[name] = default
        elif word == "FROM":
            parts = rest.split()
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            result.append({"image": image, "name": name, "instructions": []})
        else:
            result[-1]["instructions"].append((word, rest))
    return result


def exec_form(rest: str) -> list[str]:
    value = json.loads(rest)
    assert isinstance(value, list), rest
    return value


def copies(stage: dict) -> list[tuple[list[str], str]]:
    """(sources, destination) of the stage's COPY/ADD from the build context."""
    out = []
    for word, rest in stage["instructions"]:
        if word in ("COPY", "ADD"):
            args = exec_form(rest) if rest.startswith("[") else shlex.split(rest)
            flags = [a for a in args if a.startswith("--")]
            if any(f.startswith("--from") for f in flags):
                continue
            paths = [a for a in args if not a.startswith("--")]
            out.append((paths[:-1], paths[-1]))
    return out


def image_env() -> dict[str, str]:
    """ENV of the final stage (KEY=VALUE form), what every container starts with."""
    env: dict[str, str] = {}
    for word, rest in stages()[-1]["instructions"]:
        if word == "ENV":
            for item in shlex.split(rest):
                assert "=" in item, f"ENV {rest!r}: use the KEY=VALUE form"
                key, _, value = item.partition("=")
                env[key] = value
    return env


def _glob(pattern: str) -> re.Pattern:
    rx, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            rx, i = rx + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            rx, i = rx + ".*", i + 2
        elif pattern[i] == "*":
            rx, i = rx + "[^/]*", i + 1
        elif pattern[i] == "?":
            rx, i = rx + "[^/]", i + 1
        else:
            rx, i = rx + re.escape(pattern[i]), i + 1
    return re.compile(rx)


def dockerignored(path: str) -> bool:
    """Whether Docker leaves ``path`` out of the build context: the last matching pattern
    wins, ``!`` re-includes, and a pattern matching a parent directory matches its files."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for line in DOCKERIGNORE.read_text().splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        negate = s.startswith("!")
        rx = _glob(s.lstrip("!").strip().strip("/"))
        if any(rx.fullmatch(p) for p in prefixes):
            excluded = not negate
    return excluded


# --- what each service runs -----------------------------------------------------------------


def tokentail_services() -> dict[str, str]:
    """Service name -> the tokentail command it runs (services built from our Dockerfile)."""
    out = {}
    for name, svc in services().items():
        if "build" in svc:
            out[name] = svc["command"][0]
    return out


def command_module(command: str):
    return importlib.import_module(cli.COMMANDS[command])


def effective_env(name: str) -> dict[str, str]:
    """A container's environment: the image's ENV, overridden by compose's."""
    return {**image_env(), **environment(services()[name])}


def settings_of(name: str):
    command = tokentail_services()[name]
    return resolve(command, command_module(command).OPTIONS, {}, env=effective_env(name), file_config={})


def profiles_of(name: str) -> tuple[str, ...]:
    """The profiles a service belongs to; () for the services `docker compose up` starts."""
    return tuple(services()[name].get("profiles") or ())


def netns_owner(name: str) -> str:
    mode = services()[name].get("network_mode", "")
    return mode.split(":", 1)[1] if mode.startswith("service:") else name


def listening_ports(name: str) -> set[int]:
    """Ports something listens on in this service's network namespace."""
    svc = services()[name]
    ports: set[int] = set()
    if name in tokentail_services():
        ports.add(int(settings_of(name).port))
    elif svc.get("image", "").startswith("prom/prometheus"):
        listen = [a for a in svc["command"] if a.startswith("--web.listen-address=")]
        ports.add(int(listen[0].rsplit(":", 1)[1]) if listen else PROMETHEUS_PORT)
    elif svc.get("image", "").startswith("redis:"):
        command = svc.get("command") or []
        ports.add(int(command[command.index("--port") + 1]) if "--port" in command else REDIS_PORT)
    elif svc.get("image", "").startswith("grafana/grafana"):
        ports.add(int(environment(svc).get("GF_SERVER_HTTP_PORT", GRAFANA_PORT)))
    elif svc.get("image", "").startswith("otel/opentelemetry-collector"):
        config = yaml.safe_load((ROOT / "otel-collector.yaml").read_text())
        endpoints = [p["endpoint"] for p in config["receivers"]["otlp"]["protocols"].values()]
        endpoints += [e["endpoint"] for e in config.get("extensions", {}).values() if e and "endpoint" in e]
        ports |= {int(e.rsplit(":", 1)[1]) for e in endpoints}
    for guest, gsvc in services().items():
        if guest != name and gsvc.get("network_mode") == f"service:{name}":
            ports |= listening_ports(guest)
    return ports


def published(name: str) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) of each published port."""
    out = []
    for entry in services()[name].get("ports") or []:
        assert isinstance(entry, str), f"{name}: use the short port syntax IP:HOST:CONTAINER"
        ip, host, container = entry.rsplit(":", 2)
        out.append((ip, int(host), int(container)))
    return out


def published_by_host_port() -> dict[int, tuple[str, int]]:
    return {host: (name, container) for name in services() for _, host, container in published(name)}


def public_host() -> str:
    """The host name browsers use: TOKENTAIL_PUBLIC_HOST's default in compose.yaml."""
    defaults = set(re.findall(r"\$\{TOKENTAIL_PUBLIC_HOST:-([^}]+)\}", COMPOSE.read_text()))
    assert len(defaults) == 1, f"one default for TOKENTAIL_PUBLIC_HOST, not {defaults}"
    return defaults.pop()


def browser_target(url: str) -> tuple[str, int]:
    """The (service, container port) a browser on the host reaches with ``url``."""
    parts = urlsplit(url)
    assert parts.hostname == public_host(), f"{url}: browsers reach the stack at {public_host()}"
    assert parts.port in published_by_host_port(), f"{url}: port {parts.port} is not published"
    return published_by_host_port()[parts.port]


def internal_target(url: str) -> tuple[str, int]:
    """The (service, port) a container reaches with ``url`` (service names are host names)."""
    parts = urlsplit(url)
    assert parts.hostname in services(), f"{url}: {parts.hostname} is not a compose service"
    assert "network_mode" not in services()[parts.hostname], (
        f"{url}: {parts.hostname} shares another service's network and has no host name of its own"
    )
    assert parts.port in listening_ports(parts.hostname), (
        f"{url}: nothing listens on {parts.port} in {parts.hostname} ({sorted(listening_ports(parts.hostname))})"
    )
    return parts.hostname, parts.port


def variant_of(name: str) -> str:
    return settings_of(name).variant
