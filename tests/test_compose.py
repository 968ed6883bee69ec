"""compose.yaml, Dockerfile and .dockerignore, validated without a container engine.

compose.yaml is read the way Compose reads it (YAML merge keys, then ``${VAR}``
interpolation) and checked against the Compose Specification schema, then against our
own contracts: every environment name is one the CLI reads and resolves to valid
settings, ports and URLs between services line up, health checks run as written against
the real servers, and the Dockerfile copies what the package needs.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from aiohttp.test_utils import TestServer

from tests.helpers import SERVER_KWARGS, free_port
from tests.helpers.compose import (
    COMPOSE,
    HEALTH_PATHS,
    NO_SHELL_IMAGES,
    OTEL_COMMANDS,
    OTEL_SDK_ENV,
    PROMETHEUS_CONFIG,
    ROOT,
    SCHEMA,
    SHARED_ENV,
    TEST_ENV,
    MissingVariable,
    browser_target,
    command_module,
    compose,
    copies,
    dockerignored,
    effective_env,
    environment,
    exec_form,
    image_env,
    internal_target,
    listening_ports,
    load_compose,
    netns_owner,
    profiles_of,
    public_host,
    published,
    raw_compose,
    services,
    settings_of,
    stages,
    tokentail_services,
    variant_of,
)
from tests.helpers.proxies import start_proxy_server
from tokentail import cli

# === compose.yaml ============================================================================


def test_compose_follows_the_compose_specification():
    assert SCHEMA.is_file(), f"the Compose Specification schema is missing at {SCHEMA} (TOKENTAIL_COMPOSE_SCHEMA)"
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)
    # and the check bites: an unknown service key is refused
    broken = json.loads(json.dumps(compose()))
    broken["services"]["collector"]["ports_typo"] = []
    assert list(validator.iter_errors(broken))


SCALE_PROXIES = ("proxy-scale-1", "proxy-scale-2", "proxy-scale-3")


def in_profile(profile: str | None) -> dict[str, str]:
    """tokentail services `docker compose up` starts (None) or that a profile adds."""
    want = () if profile is None else (profile,)
    return {n: c for n, c in tokentail_services().items() if profiles_of(n) == want}


def test_the_stack_has_every_part():
    assert in_profile(None) == {
        "simulator": "simulate",
        "proxy-production": "proxy",
        "proxy-canary": "proxy",
        "collector": "collector",
        "dashboard": "dashboard",
    }
    # --profile scale: the shape of deploy/kubernetes (replicas, Redis, one live feed)
    assert in_profile("scale") == {
        **dict.fromkeys(SCALE_PROXIES, "proxy"),
        "collector-scale": "collector",
        "dashboard-scale": "dashboard",
    }
    assert services()["redis"]["image"].startswith("redis:") and profiles_of("redis") == ("scale",)
    assert {n for n in services() if profiles_of(n)} == {*in_profile("scale"), "redis"}
    images = {
        name: svc.get("image", "")
        for name, svc in services().items()
        if name not in tokentail_services() and not profiles_of(name)
    }
    assert images["prometheus"].startswith("prom/prometheus:")
    assert images["grafana"].startswith("grafana/grafana:")
    assert images["otel-collector"].startswith("otel/opentelemetry-collector")
    assert {variant_of("proxy-production"), variant_of("proxy-canary")} == {"production", "canary"}


def test_secrets_are_required_and_never_written_down():
    raw = raw_compose()
    for name in TEST_ENV:
        env = {k: v for k, v in TEST_ENV.items() if k != name}
        with pytest.raises(MissingVariable) as err:
            load_compose(env)
        assert err.value.args[0] == name
    # every token or password in compose.yaml is a required variable, never a literal
    secretish = re.compile(r"(^|_)(TOKEN|PASSWORD|SECRET|KEY)(_|$)")
    found = 0
    for name, svc in raw["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if secretish.search(key):
                found += 1
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), f"{name}.{key}={value!r}"
    assert found >= 6


def test_every_interpolated_variable_is_documented_at_the_top():
    text = COMPOSE.read_text()
    header = text.split("\nname:", 1)[0]
    names = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    assert {"TOKENTAIL_READ_TOKEN", "TOKENTAIL_UPSTREAM", "TOKENTAIL_PUBLISH_ADDR"} <= names
    missing = sorted(n for n in names if n not in header)
    assert not missing, f"explain these in compose.yaml's header comment: {missing}"


def test_images_are_pinned_and_builds_exist():
    for name, svc in services().items():
        assert "image" in svc or "build" in svc, name
        if "build" in svc:
            context = (COMPOSE.parent / svc["build"]["context"]).resolve()
            assert (context / svc["build"].get("dockerfile", "Dockerfile")).is_file(), name
            assert context == ROOT, name
        else:
            image = svc["image"]
            assert re.fullmatch(r"[a-z0-9./-]+:[A-Za-z0-9._-]+", image), f"{name}: pin {image!r} to a tag"
            assert not image.endswith(":latest"), name
    # one image for every tokentail service
    assert len({services()[n]["image"] for n in tokentail_services()}) == 1


def test_environment_names_are_ones_the_cli_reads():
    def read_by(command: str) -> set[str]:
        options = command_module(command).OPTIONS
        return {o.env_name(command) for o in options} | {a for o in options for a in o.env_aliases} | SHARED_ENV

    from tokentail.proxy import telemetry

    otel = set(telemetry.ENV_READ) | OTEL_SDK_ENV
    for name, command in tokentail_services().items():
        assert command in cli.COMMANDS, f"{name}: no command {command!r}"
        for key in environment(services()[name]):
            known = read_by(command) | (otel if command in OTEL_COMMANDS else set())
            assert key in known, f"{name} ({command}): {key} is not read by `tokentail {command}`"
    # the image's defaults are each read by some command
    every = set().union(*(read_by(c) for c in ("proxy", "collector", "dashboard", "simulate", "up")))
    for key in image_env():
        if key.startswith("TOKENTAIL_"):
            assert key in every, f"Dockerfile: ENV {key} is read by no command"
    # other services may carry tokentail's variables only for their mounted configuration
    for name, svc in services().items():
        if name in tokentail_services():
            continue
        for key in environment(svc):
            if key.startswith("TOKENTAIL_"):
                mounted = [COMPOSE.parent / v.split(":", 1)[0] for v in svc.get("volumes", []) if v.startswith("./")]
                assert any(f"${{env:{key}}}" in p.read_text() for p in mounted if p.is_file()), (name, key)


def test_settings_resolve_as_the_cli_would():
    from tokentail.collector.config import CollectorConfig
    from tokentail.dashboard.config import DashboardConfig
    from tokentail.proxy.command import validate_upstream

    for name, command in tokentail_services().items():
        s = settings_of(name)
        assert s.host == "0.0.0.0", f"{name} must listen on every interface of its container"
        assert not s.get("insecure"), f"{name}: never --insecure; the tokens protect captured content"
        if command in ("proxy", "collector", "dashboard"):
            assert s.read_token == TEST_ENV["TOKENTAIL_READ_TOKEN"], name
        if command == "proxy":
            assert validate_upstream(s.upstream)
            assert s.admin_token == TEST_ENV["TOKENTAIL_ADMIN_TOKEN"]  # the dashboard cancels requests
        proxies = [n for n, c in in_profile(*profiles_of(name) or (None,)).items() if c == "proxy"]
        if command == "collector":
            assert s.admin_token == TEST_ENV["TOKENTAIL_ADMIN_TOKEN"]
            config = CollectorConfig.from_settings(s)
            assert {t.variant for t in config.targets} == {variant_of(p) for p in proxies}
            assert len(config.targets) == len(proxies), f"{name} scrapes each proxy of its profile"
        if command == "dashboard":
            config = DashboardConfig.from_settings(s)
            assert not config.open_access and config.collector
            # one live feed per proxy, or (scale) the collector's one merged feed (--live)
            assert len(config.proxies) == (0 if profiles_of(name) else len(proxies))


def test_published_ports_reach_a_listening_port():
    hosts = []
    for name, svc in services().items():
        if "network_mode" in svc:
            assert not svc.get("ports"), f"{name}: publish its ports on {netns_owner(name)}"
        for ip, host, container in published(name):
            assert ip == "127.0.0.1", f"{name}: publish on the host's loopback by default (TOKENTAIL_PUBLISH_ADDR)"
            assert container in listening_ports(name), f"{name}: nothing listens on {container}"
            hosts.append(host)
    assert len(hosts) == len(set(hosts)), f"host ports published twice: {hosts}"
    # what people open in a browser or point clients at is published
    for name in ("proxy-production", "proxy-canary", "collector", "dashboard", *SCALE_PROXIES, "dashboard-scale"):
        assert settings_of(name).port in {c for _, _, c in published(netns_owner(name))}, name
    for name in ("grafana", "prometheus"):
        assert listening_ports(name) & {c for _, _, c in published(name)}, name
    assert not published("simulator")  # reached by the proxies only
    assert not published("redis")  # reached by the proxies and collector-scale only


def test_depends_on_is_consistent():
    graph: dict[str, set[str]] = {}
    for name, svc in services().items():
        deps = svc.get("depends_on") or {}
        deps = {d: {"condition": "service_started"} for d in deps} if isinstance(deps, list) else deps
        graph[name] = set(deps)
        for dep, spec in deps.items():
            assert dep in services() and dep != name, f"{name} depends on {dep!r}"
            if spec["condition"] == "service_healthy":
                hc = services()[dep].get("healthcheck") or {}
                assert hc.get("test") and not hc.get("disable"), (
                    f"{name} waits for {dep} to be healthy, which has no health check"
                )
        if netns_owner(name) != name:
            owner = netns_owner(name)
            assert owner in deps and deps[owner].get("restart") is True, (
                f"{name} shares {owner}'s network: it must start after it and restart with it"
            )
    # proxies start after their upstream; the request path waits on no telemetry service
    for proxy in ("proxy-production", "proxy-canary", *SCALE_PROXIES):
        assert graph[proxy] == {"simulator"}
    for name in services():  # a profile's service starts only what `up` or its profile starts
        for dep in graph[name]:
            assert profiles_of(dep) in ((), profiles_of(name)), (name, dep)
    seen: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, f"dependency cycle: {' -> '.join(path + (node,))}"
        if node in seen:
            return
        for dep in graph[node]:
            visit(dep, path + (node,))
        seen.add(node)

    for node in graph:
        visit(node, ())


def test_urls_between_services_point_at_listening_ports():
    # upstream, scrape targets and OTLP endpoint: container to container
    for proxy in ("proxy-production", "proxy-canary"):
        env = effective_env(proxy)
        assert internal_target(env["TOKENTAIL_PROXY_UPSTREAM"]) == ("simulator", 8799)
        service, port = internal_target(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert services()[service]["image"].startswith("otel/opentelemetry-collector")
        assert env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf") == "http/protobuf"
    for target in settings_of("collector").target:
        variant, url = target.split("=", 1)
        service, port = internal_target(url)
        assert tokentail_services()[service] == "proxy" and variant_of(service) == variant, target
    # what the dashboard's page opens in the browser
    dash = settings_of("dashboard")
    (dash_host_port,) = [h for _, h, c in published(netns_owner("dashboard")) if c == dash.port]
    origin = f"http://{public_host()}:{dash_host_port}"
    assert browser_target(dash.collector) == ("collector", settings_of("collector").port)
    # ...and what its own server reads: the same URL, inside the collector's network namespace
    assert netns_owner("dashboard") == "collector"
    assert urlsplit(dash.collector).hostname == "localhost" and urlsplit(dash.collector).port in listening_ports(
        "collector"
    )
    for item in dash.proxy:
        variant, url = item.split("=", 1)
        service, port = browser_target(url)
        assert tokentail_services()[service] == "proxy" and variant_of(service) == variant, item
        assert port == settings_of(service).port
    # the page's origin is the one the proxies and the collector let read cross-origin
    for name in ("proxy-production", "proxy-canary", "collector"):
        assert settings_of(name).allowed_origin == [origin], name


def test_the_scale_profile_has_one_live_plane():
    redis = f"redis://redis:{settings_port_of_redis()}/0"
    for proxy in SCALE_PROXIES:
        env = effective_env(proxy)
        assert env["TOKENTAIL_PROXY_LIVE_REDIS"] == redis
        assert internal_target(env["TOKENTAIL_PROXY_LIVE_REDIS"]) == ("redis", settings_port_of_redis())
        assert "TOKENTAIL_PROXY_ALLOWED_ORIGIN" not in env, "browsers never connect to a replica"
        service, port = internal_target(env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])
        assert (service, port) == ("collector-scale", settings_of("collector-scale").port)
        assert env["OTEL_EXPORTER_OTLP_HEADERS"] == f"Authorization=Bearer%20{TEST_ENV['TOKENTAIL_ADMIN_TOKEN']}"
        assert variant_of(proxy) == "scale"
    assert effective_env("collector-scale")["TOKENTAIL_COLLECTOR_LIVE_REDIS"] == redis
    # collector-scale scrapes every replica by its own name
    scraped = {internal_target(t.split("=", 1)[1])[0] for t in settings_of("collector-scale").target}
    assert scraped == set(SCALE_PROXIES)
    # the page talks to collector-scale only, by the URL that works inside its netns too
    dash = settings_of("dashboard-scale")
    assert netns_owner("dashboard-scale") == "collector-scale"
    assert not dash.proxy
    live = effective_env("dashboard-scale")["TOKENTAIL_DASHBOARD_LIVE"]
    assert live == dash.collector and (dash.get("live") in (None, live))
    assert browser_target(dash.collector) == ("collector-scale", settings_of("collector-scale").port)
    assert urlsplit(dash.collector).port == settings_of("collector-scale").port, "same port inside and outside"
    (dash_host_port,) = [h for _, h, c in published("collector-scale") if c == dash.port]
    origin = f"http://{public_host()}:{dash_host_port}"
    assert settings_of("collector-scale").allowed_origin == [origin]
    # Redis: a bounded buffer that refuses writes when full, never persisted
    command = services()["redis"]["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert command[command.index("--save") + 1] == "" and services()["redis"]["read_only"] is True


def settings_port_of_redis() -> int:
    (port,) = listening_ports("redis")
    return port


def test_prometheus_scrapes_every_proxy_with_its_variant():
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    mounts = [v for v in services()["prometheus"]["volumes"] if v.startswith("./")]
    assert any(
        Path(COMPOSE.parent / m.split(":")[0]).resolve() == PROMETHEUS_CONFIG
        and m.split(":")[1] == "/etc/prometheus/prometheus.yml"
        for m in mounts
    )
    scraped = {}
    for job in config["scrape_configs"]:
        for sc in job["static_configs"]:
            for target in sc["targets"]:
                service, _port = internal_target(f"http://{target}")
                scraped[service] = sc["labels"]["variant"]
    # the default stack's proxies; the scale profile's are collector-scale's (and can be added here)
    proxies = {n for n, c in in_profile(None).items() if c == "proxy"}
    assert scraped == {p: variant_of(p) for p in proxies}


@pytest.mark.prometheus
def test_prometheus_config_passes_promtool(tmp_path):
    from tests.helpers.prom import promtool

    result = subprocess.run(
        [promtool(), "check", "config", str(PROMETHEUS_CONFIG)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
    bad = tmp_path / "prometheus.yml"
    bad.write_text(PROMETHEUS_CONFIG.read_text().replace("scrape_configs:", "scrape_config:"))
    assert subprocess.run([promtool(), "check", "config", str(bad)], capture_output=True, timeout=30).returncode


def test_volumes_exist_and_configuration_is_read_only():
    declared = set(compose().get("volumes") or {})
    used = set()
    for name, svc in services().items():
        for volume in svc.get("volumes") or []:
            source, _target, *mode = volume.split(":")
            if source.startswith((".", "/")):
                assert (COMPOSE.parent / source).exists(), f"{name}: {source} does not exist"
                assert mode == ["ro"], f"{name}: mount configuration read-only ({volume})"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
    assert used == declared
    db = Path(settings_of("collector").db)
    assert "collector-data:" + str(db.parent) in services()["collector"]["volumes"], "the DuckDB file is on a volume"


def test_proxies_get_the_time_to_drain_their_streams():
    for name, command in tokentail_services().items():
        if command != "proxy":
            continue
        grace = services()[name].get("stop_grace_period", "10s")
        assert re.fullmatch(r"\d+s", grace) and int(grace[:-1]) > settings_of(name).grace, name
    for name in tokentail_services():
        assert services()[name].get("init") is True, f"{name}: tini forwards SIGTERM to our process"


# --- health checks ----------------------------------------------------------------------------


def healthcheck(name: str) -> dict:
    return services()[name].get("healthcheck") or {}


def test_every_service_checks_its_health_on_its_own_port():
    for name, svc in services().items():
        hc = healthcheck(name)
        if svc.get("image", "").startswith(NO_SHELL_IMAGES) and "build" not in svc:
            assert hc == {"disable": True}, f"{name}: say explicitly that it cannot be checked"
            continue
        if svc.get("image", "").startswith("redis:"):
            test = hc["test"]
            assert test[:2] == ["CMD", "redis-cli"] and test[-1] == "ping", test
            assert test[test.index("-h") + 1] == "127.0.0.1" and {int(test[test.index("-p") + 1])} == listening_ports(
                name
            )
            continue
        assert hc.get("test", [None])[0] == "CMD" and not hc.get("disable"), name
        urls = re.findall(r"https?://[^'\" ]+", " ".join(hc["test"]))
        assert len(urls) == 1, (name, hc["test"])
        parts = urlsplit(urls[0])
        assert parts.hostname == "127.0.0.1" and parts.port in listening_ports(name), (name, urls[0])
        if name in tokentail_services():
            assert parts.port == settings_of(name).port and parts.path == HEALTH_PATHS[tokentail_services()[name]]
    assert urlsplit(re.findall(r"http://\S+", " ".join(healthcheck("prometheus")["test"]))[0]).path == "/-/ready"
    assert urlsplit(re.findall(r"http://\S+", " ".join(healthcheck("grafana")["test"]))[0]).path == "/api/health"


def _run_healthcheck(name: str, port: int, env: dict[str, str]) -> int:
    """Run the service's health check command as written, with only the port rewritten."""
    test = healthcheck(name)["test"]
    assert test[:2] == ["CMD", "python"], test
    own = settings_of(name).port
    args = [a.replace(f"127.0.0.1:{own}", f"127.0.0.1:{port}") for a in test[2:]]
    proc = subprocess.run(
        [sys.executable, *args], env={"PATH": os.environ.get("PATH", ""), **env}, capture_output=True, timeout=20
    )
    return proc.returncode


def _closed_port() -> int:
    return free_port()


async def test_healthchecks_of_the_proxy_and_the_simulator_run_against_the_real_servers(sim_server):
    proxy = await start_proxy_server(
        str(sim_server.make_url("/v1")), **{k: settings_of("proxy-production")[k] for k in ("read_token", "variant")}
    )
    try:
        for name, port in (
            ("proxy-production", proxy.port),
            ("proxy-canary", proxy.port),
            ("proxy-scale-1", proxy.port),
            ("simulator", sim_server.port),
        ):
            env = effective_env(name)
            assert await _thread(_run_healthcheck, name, port, env) == 0, name
            assert await _thread(_run_healthcheck, name, _closed_port(), env) != 0, name
    finally:
        await proxy.close()


def _without_live_redis(settings):
    """The settings without a Redis to connect to (none runs in these tests)."""
    return settings.replace(live_redis=None) if "live_redis" in settings else settings


@pytest.mark.parametrize("name", ["collector", "collector-scale"])
async def test_collector_healthcheck_runs_against_the_real_collector(tmp_path, name):
    from tokentail.collector.app import create_app
    from tokentail.collector.config import CollectorConfig

    settings = _without_live_redis(settings_of(name)).replace(db=str(tmp_path / "t.duckdb"))
    config = CollectorConfig.from_settings(settings)
    server = TestServer(create_app(config, scrape=False, maintain=False), host="127.0.0.1")
    await server.start_server(**SERVER_KWARGS)
    try:
        env = effective_env(name)
        assert await _thread(_run_healthcheck, name, server.port, env) == 0
        assert await _thread(_run_healthcheck, name, _closed_port(), env) != 0
    finally:
        await server.close()


@pytest.mark.parametrize("name", ["dashboard", "dashboard-scale"])
def test_dashboard_healthcheck_passes_with_the_token_only(name):
    from werkzeug.serving import make_server

    from tokentail.dashboard.app import create_app
    from tokentail.dashboard.config import DashboardConfig

    config = DashboardConfig.from_settings(settings_of(name))
    assert not config.open_access  # bound off loopback: the health route wants the token too
    server = make_server("127.0.0.1", 0, create_app(config).server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = effective_env(name)
        assert _run_healthcheck(name, server.server_port, env) == 0
        assert _run_healthcheck(name, server.server_port, {**env, "TOKENTAIL_READ_TOKEN": "wrong"}) != 0
    finally:
        server.shutdown()
        thread.join(5)


async def _thread(fn, *args):
    return await asyncio.to_thread(fn, *args)


# === Dockerfile and .dockerignore =============================================================


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_base_images_are_pinned_python_311_slim():
    all_stages = stages()
    assert len(all_stages) >= 1
    for stage in all_stages:
        image = stage["image"]
        if stage["image"] in {s["name"] for s in all_stages if s["name"]}:
            continue
        assert re.fullmatch(r"[a-z0-9./-]+:[A-Za-z0-9._-]+(@sha256:[0-9a-f]{64})?", image), image
        assert not image.endswith(":latest"), image
    assert all_stages[-1]["image"].startswith("python:3.11-slim")


def test_entrypoint_is_our_console_script():
    scripts = pyproject()["project"]["scripts"]
    final = {w: r for w, r in stages()[-1]["instructions"] if w in ("ENTRYPOINT",)}
    assert exec_form(final["ENTRYPOINT"]) == ["tokentail"] and "tokentail" in scripts


def test_runs_as_an_unprivileged_user():
    instructions = stages()[-1]["instructions"]
    users = [r for w, r in instructions if w == "USER"]
    assert users, "the image must not run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    last_user = max(i for i, (w, _) in enumerate(instructions) if w == "USER")
    assert all(w != "RUN" for w, _ in instructions[last_user:]), "RUN after USER would run unprivileged by accident"
    created = " ".join(r for w, r in instructions if w == "RUN")
    assert re.search(rf"useradd\b.*--uid {re.escape(user)}\b", created) or f"useradd {user}" in created


def test_exposes_the_default_ports_of_every_server():
    exposed = {int(p.split("/")[0]) for w, r in stages()[-1]["instructions"] if w == "EXPOSE" for p in r.split()}
    defaults = {
        next(o.default for o in command_module(c).OPTIONS if o.name == "port")
        for c in ("proxy", "collector", "dashboard", "simulate")
    }
    assert defaults == exposed


def test_installs_with_the_pinned_constraints():
    runs = " ".join(r for s in stages() for w, r in s["instructions"] if w == "RUN")
    assert re.search(r"pip install\b[^&;]*-c constraints\.txt[^&;]* \.(\s|$)", runs), runs
    assert "-e " not in runs, "an editable install would point at build-stage sources"


def test_copies_everything_the_package_is_built_from():
    build = stages()[0]
    sources = {src.rstrip("/") for srcs, _ in copies(build) for src in srcs}
    tool = pyproject()["tool"]["setuptools"]
    needed = set(tool["package-dir"].values()) | {"pyproject.toml", "constraints.txt", pyproject()["project"]["readme"]}
    assert needed <= sources, f"not copied: {sorted(needed - sources)}"
    for srcs, dest in copies(build):
        for src in srcs:
            assert (ROOT / src).exists(), f"COPY {src}: no such file"
            assert not dockerignored(src.rstrip("/")), f"COPY {src}: excluded by .dockerignore"
            if len(srcs) == 1 and src.endswith("/"):
                assert dest.rstrip("/") == src.rstrip("/"), "keep the repository layout (package-dir paths)"


def test_dockerignore_keeps_secrets_and_bulk_out():
    for path in (
        ".env",
        "proxy/.env",
        ".git/config",
        ".venv/bin/python",
        "tokentail-data/tokentail.duckdb",
        "x.duckdb",
        "tests/conftest.py",
        "bench/proxy_bench.py",
        "tokentail/__pycache__/cli.cpython-311.pyc",
        "tokentail.egg-info/PKG-INFO",
        "compose.yaml",
    ):
        assert dockerignored(path), path
    for path in ("pyproject.toml", "README.md", "tokentail/cli.py", "dashboard/assets/tokentail.js"):
        assert not dockerignored(path), path


def test_the_copied_files_build_a_working_wheel(tmp_path):
    """What the build stage copies (after .dockerignore) is enough to build the wheel."""
    src = tmp_path / "src"
    for srcs, _dest in copies(stages()[0]):
        for item in srcs:
            path = ROOT / item
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            for f in files:
                rel = f.relative_to(ROOT).as_posix()
                if dockerignored(rel):
                    continue
                (src / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, src / rel)
    out = tmp_path / "wheel"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "--no-cache-dir",
            "-w",
            str(out),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = out.glob("tokentail-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for package in (
        "tokentail/cli.py",
        "tokentail/proxy/app.py",
        "tokentail/collector/app.py",
        "tokentail/dashboard/app.py",
        "tokentail/simulator/app.py",
    ):
        assert package in names, package
    assets = [n for n in names if n.startswith("tokentail/dashboard/assets/")]
    assert assets, "the dashboard's assets are package data"
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert re.search(r"^tokentail = tokentail\.cli:main$", entry_points, re.M)
    assert not any("__pycache__" in n or n.endswith(".duckdb") for n in names)


def test_redis_runs_with_its_arguments_and_passes_its_health_check(tmp_path):
    from tests.helpers.kubernetes import redis_server

    command = services()["redis"]["command"]
    own = str(listening_ports("redis").pop())
    with redis_server(command, tmp_path) as port:
        test = [a if a != own else str(port) for a in healthcheck("redis")["test"][1:]]
        ok = subprocess.run(test, capture_output=True, text=True, timeout=20)
        assert ok.returncode == 0 and ok.stdout.strip() == "PONG", ok
        config = subprocess.run(
            ["redis-cli", "-p", str(port), "config", "get", "maxmemory-policy"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert config.stdout.split() == ["maxmemory-policy", "noeviction"]
    test = [a if a != own else str(free_port()) for a in healthcheck("redis")["test"][1:]]
    assert subprocess.run(test, capture_output=True, timeout=20).returncode != 0
