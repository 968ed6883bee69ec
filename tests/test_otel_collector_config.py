"""otel-collector.yaml: pipelines reference defined components, endpoints match compose.yaml.

No collector binary runs here, so the configuration is checked the way the collector
would resolve it (``type[/name]`` component ids, pipelines, ``${env:VAR}``), and the hop
it makes to tokentail's collector is replayed against the real receiver: a gzip'd
OTLP/protobuf POST with the admin token, as the ``otlphttp`` exporter sends it.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import TestServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.helpers import SERVER_KWARGS
from tests.helpers.compose import (
    ROOT,
    environment,
    internal_target,
    listening_ports,
    services,
    settings_of,
    tokentail_services,
)

CONFIG_FILE = ROOT / "otel-collector.yaml"
KINDS = ("receivers", "processors", "exporters", "connectors")
# Components of the collector distributions we document (core + contrib) that we use.
KNOWN_TYPES = {
    "receivers": {"otlp"},
    "processors": {"batch", "memory_limiter"},
    "exporters": {"otlphttp", "otlp", "debug"},
    "extensions": {"health_check"},
}


def config() -> dict:
    return yaml.safe_load(CONFIG_FILE.read_text())


def component_type(component_id: str) -> str:
    assert re.fullmatch(r"[a-z_]+(/[A-Za-z0-9_.-]+)?", component_id), component_id
    return component_id.split("/", 1)[0]


def otel_service() -> str:
    (name,) = [n for n, s in services().items() if s.get("image", "").startswith("otel/opentelemetry-collector")]
    return name


def http_receiver_port() -> int:
    return int(config()["receivers"]["otlp"]["protocols"]["http"]["endpoint"].rsplit(":", 1)[1])


def test_every_pipeline_references_defined_components():
    c = config()
    pipelines = c["service"]["pipelines"]
    assert "traces" in pipelines
    used: dict[str, set[str]] = {k: set() for k in KINDS}
    for pipeline_id, pipeline in pipelines.items():
        assert component_type(pipeline_id) in ("traces", "metrics", "logs"), pipeline_id
        assert pipeline.get("receivers") and pipeline.get("exporters"), pipeline_id
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind) or []:
                defined = c.get(kind) or {}
                assert component in defined, f"pipeline {pipeline_id}: {kind[:-1]} {component!r} is not defined"
                used[kind].add(component)
    for kind in ("receivers", "processors", "exporters"):
        assert set(c.get(kind) or {}) == used[kind], f"defined but unused {kind}: {set(c[kind]) - used[kind]}"
    assert set(c["service"].get("extensions") or []) == set(c.get("extensions") or {})
    for kind, types in KNOWN_TYPES.items():
        for component in c.get(kind) or {}:
            assert component_type(component) in types, f"{kind}: unknown component type {component!r}"


def test_memory_limiter_first_and_batch_last():
    c = config()
    for pipeline_id, pipeline in c["service"]["pipelines"].items():
        processors = [component_type(p) for p in pipeline.get("processors") or []]
        assert processors[:1] == ["memory_limiter"], pipeline_id
        assert processors[-1:] == ["batch"], pipeline_id
    limiter = c["processors"]["memory_limiter"]
    assert limiter["spike_limit_mib"] < limiter["limit_mib"]
    # the limiter must act before the container's memory limit kills the process
    mem = services()[otel_service()]["mem_limit"]
    m = re.fullmatch(r"(\d+)([mg])", mem.lower())
    assert m, mem
    limit_mib = int(m.group(1)) * (1024 if m.group(2) == "g" else 1)
    assert limiter["limit_mib"] < limit_mib


def test_receivers_listen_where_the_proxies_send():
    c = config()
    for protocol, spec in c["receivers"]["otlp"]["protocols"].items():
        host, _port = spec["endpoint"].rsplit(":", 1)
        assert host == "0.0.0.0", f"otlp/{protocol}: the default (localhost) is unreachable from other containers"
    # The proxies of the OTel Collector's profile (the `scale` profile's send to its own collector).
    profiles = services()[otel_service()].get("profiles")
    proxies = [
        n for n, cmd in tokentail_services().items() if cmd == "proxy" and services()[n].get("profiles") == profiles
    ]
    assert proxies
    for proxy in proxies:
        env = environment(services()[proxy])
        endpoint = env["OTEL_EXPORTER_OTLP_ENDPOINT"]
        assert env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf") == "http/protobuf"
        assert internal_target(endpoint) == (otel_service(), http_receiver_port()), proxy
        assert urlsplit(endpoint).path in ("", "/"), "the SDK appends /v1/traces to the generic endpoint"


def test_compose_runs_the_collector_with_this_file():
    svc = services()[otel_service()]
    (flag,) = [a for a in svc["command"] if a.startswith("--config")]
    path = flag.split("=", 1)[1]
    mounts = [v.split(":") for v in svc["volumes"]]
    assert any(Path(ROOT / src).resolve() == CONFIG_FILE and target == path for src, target, *_ in mounts)
    assert http_receiver_port() in listening_ports(otel_service())


def test_exporter_reaches_tokentail_collector_with_the_admin_token():
    c = config()
    exporters = {k: v for k, v in c["exporters"].items() if component_type(k) == "otlphttp"}
    assert len(exporters) == 1
    (exporter,) = exporters.values()
    service, port = internal_target(exporter["traces_endpoint"])
    assert tokentail_services()[service] == "collector" and port == settings_of(service).port
    assert urlsplit(exporter["traces_endpoint"]).path == "/v1/traces"
    assert exporter.get("encoding", "proto") == "proto"
    # ${env:VAR} references must be set in the collector container, to the collector's admin token
    env = environment(services()[otel_service()])
    refs = re.findall(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}", CONFIG_FILE.read_text())
    assert refs and all(r in env for r in refs), refs
    header = exporter["headers"]["Authorization"]
    assert header == "Bearer ${env:TOKENTAIL_ADMIN_TOKEN}"
    assert env["TOKENTAIL_ADMIN_TOKEN"] == settings_of(service).admin_token


def test_debug_exporter_does_not_print_captured_content():
    for component, spec in config()["exporters"].items():
        if component_type(component) == "debug":
            assert (spec or {}).get("verbosity", "basic") in ("basic", "normal"), (
                "verbosity: detailed prints every prompt and completion into the log"
            )


@pytest.fixture
async def collector_as_composed(tmp_path):
    """tokentail's collector configured from compose.yaml (bound off loopback: tokens apply)."""
    from tokentail.collector.app import create_app
    from tokentail.collector.config import CollectorConfig

    config_ = CollectorConfig.from_settings(settings_of("collector").replace(db=str(tmp_path / "t.duckdb")))
    server = TestServer(create_app(config_, scrape=False, maintain=False), host="127.0.0.1")
    await server.start_server(**SERVER_KWARGS)
    yield server
    await server.close()


async def test_the_exporters_request_is_accepted_by_the_collector(collector_as_composed):
    exporter = next(v for k, v in config()["exporters"].items() if component_type(k) == "otlphttp")
    token = settings_of("collector").admin_token
    body = ExportTraceServiceRequest().SerializeToString()
    headers = {"Content-Type": "application/x-protobuf"}
    if exporter.get("compression", "gzip") == "gzip":
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    url = collector_as_composed.make_url(urlsplit(exporter["traces_endpoint"]).path)
    async with aiohttp.ClientSession() as s:
        auth = exporter["headers"]["Authorization"].replace("${env:TOKENTAIL_ADMIN_TOKEN}", token)
        async with s.post(url, data=body, headers={**headers, "Authorization": auth}) as r:
            assert r.status == 200, await r.text()
            ExportTraceServiceResponse().ParseFromString(await r.read())
        async with s.post(url, data=body, headers=headers) as r:
            assert r.status == 401  # without the token the collector takes nothing
        read_only = {**headers, "Authorization": f"Bearer {settings_of('collector').read_token}"}
        async with s.post(url, data=body, headers=read_only) as r:
            assert r.status == 401  # the read token is not enough to write
