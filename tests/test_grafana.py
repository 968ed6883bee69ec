"""grafana/: provisioning files and dashboards.

The structural tests read the JSON the way Grafana imports it (unique ids, a grid that
fits, datasource and template variables, metric names the proxy really exports). The
Prometheus test runs every panel's PromQL, Grafana's variables substituted, against a
real Prometheus that scraped two proxies (production and canary, labelled by the
scrape config in deploy/prometheus.yml) carrying traffic that moves every series.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import urllib.error
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from tests.helpers import SERVER_KWARGS, free_port, poll_in_thread
from tests.helpers.compose import PROMETHEUS_CONFIG, ROOT, environment, internal_target, services
from tests.helpers.prom import PrometheusServer, prometheus_bin
from tests.helpers.proxies import proxy_settings, start_proxy_server

GRAFANA = ROOT / "grafana"
DASHBOARD_DIR = GRAFANA / "dashboards"
DASHBOARDS = sorted(DASHBOARD_DIR.glob("*.json"))
DATASOURCES = sorted((GRAFANA / "provisioning" / "datasources").glob("*.yaml"))
PROVIDERS = sorted((GRAFANA / "provisioning" / "dashboards").glob("*.yaml"))

# Grafana's global variables the dashboards may use, and what the test puts in their place.
# $__rate_interval: Grafana takes max(4 x scrape interval, $__interval + scrape interval), so
# any window of 4 s or more is one Grafana could use with 1 s scrapes. 60 s keeps all of the
# test's traffic inside the window for longer than the test waits for data (POLL_TIMEOUT):
# a panel that fails, fails for its own reason, not because the traffic aged out.
GLOBALS = {"__rate_interval": "60s", "__interval": "1s", "__range": "5m"}
POLL_TIMEOUT = 20.0
PANEL_TYPES = {"row", "timeseries", "stat", "gauge", "bargauge", "table", "text", "heatmap", "piechart"}
VAR_REF = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def all_panels(dashboard: dict) -> list[dict]:
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels") or [])  # a collapsed row keeps its panels inside
    return out


def queries(dashboard: dict) -> list[tuple[str, str, str]]:
    """(panel title, refId, expr) of every target."""
    return [
        (p["title"], t["refId"], t["expr"]) for p in all_panels(dashboard) if p["type"] != "row" for t in p["targets"]
    ]


def variables(dashboard: dict) -> dict[str, dict]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def variable_query(var: dict) -> str:
    q = var["query"]
    return q["query"] if isinstance(q, dict) else q


def substitute(expr: str, values: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        assert name in values, f"unknown variable ${name} in {expr}"
        return values[name]

    return VAR_REF.sub(sub, expr)


def proxy_metric_names() -> set[str]:
    """Every series name the proxy's /metrics can carry (default GenAI conventions)."""
    from tokentail.proxy.metrics import ProxyMetrics

    registry = CollectorRegistry()
    ProxyMetrics(registry, upstream_url="http://127.0.0.1:8799/v1")
    names = set()
    for family in registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}[family.type]
        names |= {family.name + s for s in suffixes}
    return names


METRIC = re.compile(r"\b((?:tokentail|gen_ai)_[a-z0-9_]+)\b")


def metric_names(text: str) -> list[str]:
    """Series names in a PromQL expression (or label_values() query), label names left out."""
    text = re.sub(r"label_values\(([^,]+),\s*\w+\)", r"\1", text)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    return METRIC.findall(text)


# === provisioning ===========================================================================


def test_datasource_is_the_composed_prometheus():
    (path,) = DATASOURCES
    config = yaml.safe_load(path.read_text())
    assert config["apiVersion"] == 1
    (ds,) = config["datasources"]
    assert ds["type"] == "prometheus" and ds["access"] == "proxy" and ds["isDefault"] is True
    service, port = internal_target(ds["url"])
    assert services()[service]["image"].startswith("prom/prometheus:") and port == 9090
    # $__rate_interval is only right when Grafana knows the scrape interval
    prom = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    intervals = {prom["global"]["scrape_interval"]} | {
        j["scrape_interval"] for j in prom["scrape_configs"] if "scrape_interval" in j
    }
    assert intervals == {ds["jsonData"]["timeInterval"]}
    # the dashboards preselect it by uid
    for path in DASHBOARDS:
        current = variables(load(path))["datasource"]["current"]
        assert current["value"] == ds["uid"], path.name


def test_dashboards_are_provisioned_from_the_mounted_folder():
    (path,) = PROVIDERS
    config = yaml.safe_load(path.read_text())
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    grafana = services()["grafana"]
    mounts = {src: target for src, target, *_ in (v.split(":") for v in grafana["volumes"])}
    assert (ROOT / "grafana" / "dashboards").resolve() in {(ROOT / s).resolve() for s in mounts if s.startswith(".")}
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert (
        Path(ROOT / "grafana" / "provisioning").is_dir()
        and mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    )
    home = environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    folder = provider["options"]["path"].rstrip("/") + "/"
    assert home.startswith(folder) and (DASHBOARD_DIR / home[len(folder) :]).is_file()


# === dashboards =============================================================================


def test_there_is_an_overview_and_a_genai_dashboard():
    uids = [load(p)["uid"] for p in DASHBOARDS]
    assert sorted(uids) == ["tokentail-genai", "tokentail-overview"]
    titles = [load(p)["title"] for p in DASHBOARDS]
    assert len(set(titles)) == len(titles)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_importable(path):
    d = load(path)
    for key in ("title", "uid", "schemaVersion", "panels", "templating", "time", "annotations"):
        assert key in d, key
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", d["uid"])
    assert 36 <= d["schemaVersion"] <= 41
    assert d.get("id") is None, "an id is Grafana's own: imported dashboards must not carry one"
    ids = [p["id"] for p in all_panels(d)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: dict[tuple[int, int], str] = {}
    for p in all_panels(d):
        assert p["type"] in PANEL_TYPES, p["type"]
        assert p.get("title"), p["id"]
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] >= 1 and g["x"] + g["w"] <= 24 and g["h"] >= 1, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["expr"].strip() and t["datasource"] == p["datasource"], (p["title"], t["refId"])
    # the overview opens with the "now" summary: stat panels
    if d["uid"] == "tokentail-overview":
        top = min(p["gridPos"]["y"] for p in all_panels(d) if p["type"] != "row")
        assert {p["type"] for p in all_panels(d) if p["gridPos"]["y"] == top and p["type"] != "row"} == {"stat"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_template_variables(path):
    d = load(path)
    v = variables(d)
    assert v["datasource"]["type"] == "datasource" and v["datasource"]["query"] == "prometheus"
    for name in ("variant", "model"):
        var = v[name]
        assert var["type"] == "query" and var["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert re.fullmatch(r"label_values\(\w+(\{[^}]*\})?, *\w+\)", variable_query(var)), variable_query(var)
        assert var["multi"] and var["includeAll"] and var["allValue"] == ".*"
    assert re.search(r", *variant\)$", variable_query(v["variant"]))
    defined = set(v) | set(GLOBALS)
    texts = [e for _, _, e in queries(d)] + [variable_query(x) for x in v.values() if x["type"] == "query"]
    for text in texts:
        for m in VAR_REF.finditer(text):
            name = m.group(1) or m.group(2) or m.group(3)
            assert name in defined, f"${name} is not defined: {text}"
    # every panel follows the variant selection; regex matchers, since variables are multi-value
    for title, ref, expr in queries(d):
        assert 'variant=~"$variant"' in expr, f"{title} {ref} ignores $variant"
        assert not re.search(r'=\s*"\$\w+"', expr), f"{title} {ref}: use =~ with a multi-value variable"


def test_metric_names_are_what_the_proxy_exports():
    exported = proxy_metric_names()
    for path in DASHBOARDS:
        d = load(path)
        texts = [e for _, _, e in queries(d)] + [
            variable_query(x) for x in variables(d).values() if x["type"] == "query"
        ]
        for text in texts:
            for name in metric_names(text):
                assert name in exported, f"{path.name}: {name} is not a series the proxy exports"


def test_the_dashboards_cover_every_series():
    overview = " ".join(e for _, _, e in queries(load(DASHBOARD_DIR / "tokentail-overview.json")))
    for series in (
        "tokentail_requests_total",
        "tokentail_tokens_total",
        "tokentail_cached_input_tokens_total",
        "tokentail_request_duration_seconds_bucket",
        "tokentail_time_to_first_token_seconds_bucket",
        "tokentail_output_tokens_per_second_bucket",
        "tokentail_in_flight_requests",
        "tokentail_upstream_errors_total",
        "tokentail_telemetry_dropped_total",
    ):
        assert series in overview, series
    for q in ("0.5", "0.95", "0.99"):
        assert (
            f"histogram_quantile({q}, sum by (le, variant) (rate(tokentail_request_duration_seconds_bucket" in overview
        ), q
    for q in ("0.5", "0.95"):
        assert (
            f"histogram_quantile({q}, sum by (le, variant) (rate(tokentail_time_to_first_token_seconds_bucket"
            in overview
        ), q
    for by in ("variant", "model"):
        assert f"sum by ({by}) (rate(tokentail_requests_total" in overview, by
    assert 'status_class=~"4xx|5xx|upstream_error"' in overview and 'status_class="cancelled"' in overview
    genai = " ".join(e for _, _, e in queries(load(DASHBOARD_DIR / "tokentail-genai.json")))
    for series in (
        "gen_ai_client_operation_duration_seconds",
        "gen_ai_client_token_usage",
        "gen_ai_client_operation_time_to_first_chunk_seconds",
        "gen_ai_client_operation_time_per_output_chunk_seconds",
    ):
        assert series in genai, series
    assert "gen_ai_token_type" in genai


# === against a real Prometheus ==============================================================


class DeployedPrometheus(PrometheusServer):
    """The helper's server, running deploy/prometheus.yml with its targets moved to loopback
    (so the `variant` labels come from the real scrape configuration) and 1 s scrapes."""

    def __init__(self, tmp: Path, ports: dict[str, int]) -> None:
        config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
        config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
        for job in config["scrape_configs"]:
            job.pop("scrape_interval", None)
            job.pop("scrape_timeout", None)
            for sc in job["static_configs"]:
                sc["targets"] = [f"127.0.0.1:{ports.pop(sc['labels']['variant'])}"]
        assert not ports, f"no scrape target for variants {sorted(ports)}"
        super().__init__(tmp, config=yaml.safe_dump(config))

    def instant(self, promql: str) -> dict:
        """/api/v1/query's body, errors included (Prometheus answers a bad query with 400 + JSON)."""
        try:
            return self.get("/api/v1/query", query=promql)
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read())

    def label_values(self, label: str, match: str) -> list[str]:
        body = self.get(f"/api/v1/label/{label}/values", **{"match[]": match})
        assert body["status"] == "success", body
        return body["data"]


@pytest.fixture
def sim_config():
    from tokentail.simulator.app import SimConfig

    return SimConfig(tokens_per_second=0, ttft=0.0, length=8, seed=11)


async def _proxy_dropping_spans(upstream: str, variant: str) -> tuple[TestServer, object]:
    """A proxy whose spans go to an OTLP endpoint nobody listens on: each is dropped, and counted."""
    from tokentail.proxy import telemetry
    from tokentail.proxy.app import app_from_settings
    from tokentail.proxy.state import METRICS

    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
    }
    box = []
    provider = telemetry.build_tracer_provider(env, lambda sink, n: box[0][METRICS].dropped(sink, n))
    app = app_from_settings(
        proxy_settings(upstream, variant=variant), registry=CollectorRegistry(), tracer_provider=provider, env=env
    )
    box.append(app)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(**SERVER_KWARGS)
    return server, provider


def _chat(model: str, stream: bool) -> dict:
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": "how fast is this?"}]}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


async def _send(session: aiohttp.ClientSession, url: str, body: dict, headers: dict, expect: int) -> None:
    async with session.post(url, json=body, headers=headers) as r:
        assert r.status == expect, await r.text()
        await r.read()


async def _abandon(session: aiohttp.ClientSession, url: str) -> None:
    """A streamed request the client gives up on before the first token: `cancelled`."""
    try:
        async with asyncio.timeout(0.3):
            async with session.post(url, json=_chat("m-alpha", True), headers={"x-sim-hang": "1"}) as r:
                await r.read()
    except TimeoutError:
        return
    raise AssertionError("the simulator answered a hanging request")


async def _round(session: aiohttp.ClientSession, proxy: TestServer) -> int:
    """Traffic that moves every series: streamed with cached input, non-streamed, a 500, an
    upstream that drops mid-stream, a client that leaves. Returns the request count."""
    url = str(proxy.make_url("/v1/chat/completions"))
    streamed = {"x-sim-tps": "400", "x-sim-cached-tokens": "5"}
    for _ in range(3):
        await _send(session, url, _chat("m-alpha", True), streamed, 200)
    await _send(session, url, _chat("m-beta", False), {"x-sim-cached-tokens": "5"}, 200)
    await _send(session, url, _chat("m-beta", False), {"x-sim-error": "500"}, 500)
    await _send(session, url, _chat("m-alpha", True), {"x-sim-tps": "400", "x-sim-disconnect-after": "3"}, 200)
    await _abandon(session, url)
    return 7


async def _hang(session: aiohttp.ClientSession, proxy: TestServer) -> None:
    """A request kept in flight while the dashboards are queried."""
    url = str(proxy.make_url("/v1/chat/completions"))
    async with session.post(url, json=_chat("m-alpha", True), headers={"x-sim-hang": "1"}) as r:
        await r.read()


def _values(body: dict) -> list[float]:
    return [float(r["value"][1]) for r in body["data"]["result"]]


def _check_all(prom: DeployedPrometheus, values: dict[str, str], strict: bool) -> list[str]:
    """Every expression of every dashboard: parses, returns data (finite, some non-zero if strict)."""
    failures = []
    for path in DASHBOARDS:
        d = load(path)
        for title, ref, expr in queries(d):
            promql = substitute(expr, values)
            body = prom.instant(promql)
            where = f"{path.name} {title!r} {ref}"
            if body.get("status") != "success":
                failures.append(f"{where}: {body.get('error')} in {promql}")
                continue
            data = _values(body)
            if not data:
                failures.append(f"{where}: no data for {promql}")
            elif strict and not all(math.isfinite(v) for v in data):
                failures.append(f"{where}: not a number {data} for {promql}")
            elif strict and not any(v > 0 for v in data):
                failures.append(f"{where}: only zeros for {promql}")
    return failures


@pytest.mark.prometheus
@pytest.mark.slow
async def test_every_dashboard_query_returns_data(sim_server, tmp_path):
    from tokentail.proxy.telemetry import shutdown_bounded

    prometheus_bin()  # skip (or fail in CI) before starting anything
    upstream = str(sim_server.make_url("/v1"))
    production = await start_proxy_server(upstream, CollectorRegistry(), variant="production")
    canary, provider = await _proxy_dropping_spans(upstream, "canary")
    proxies = (production, canary)
    prom: DeployedPrometheus | None = None
    hanging: list[asyncio.Task] = []
    try:
        prom = DeployedPrometheus(tmp_path, {"production": production.port, "canary": canary.port})
        await asyncio.to_thread(prom.wait_ready)
        async with aiohttp.ClientSession() as session:
            sent = 0
            # Round 1 creates every series; round 2, once Prometheus has them, makes them move
            # (rate() needs two samples, and a series' first sample is its baseline).
            for _ in range(2):
                sent += sum(await asyncio.gather(*(_round(session, p) for p in proxies)))

                def scraped(n=sent):
                    body = prom.instant("sum(tokentail_requests_total)")
                    return _values(body) == [n], _values(body)

                ok, seen = await poll_in_thread(scraped, timeout=POLL_TIMEOUT)
                assert ok, f"Prometheus saw {seen} requests, {sent} were sent; {prom.logs()}"
            hanging = [asyncio.create_task(_hang(session, p)) for p in proxies]

            everything = {**GLOBALS, "variant": ".*", "model": ".*", "operation": ".*"}
            ok, failures = await poll_in_thread(
                lambda: (not (f := _check_all(prom, everything, True)), f), timeout=POLL_TIMEOUT
            )
            assert ok, "\n".join(failures)
            # a single selection narrows, and still finds data
            one = {**GLOBALS, "variant": "canary", "model": "m-alpha", "operation": "chat"}
            failures = await asyncio.to_thread(_check_all, prom, one, False)
            assert not failures, "\n".join(failures)
            # the template variables' label_values() queries list what was scraped
            for path in DASHBOARDS:
                for name, var in variables(load(path)).items():
                    if var["type"] != "query":
                        continue
                    m = re.fullmatch(r"label_values\((.+), *(\w+)\)", variable_query(var))
                    found = await asyncio.to_thread(
                        prom.label_values, m.group(2), substitute(m.group(1), {"variant": ".*"})
                    )
                    expected = {
                        "variant": {"production", "canary"},
                        "model": {"m-alpha", "m-beta"},
                        "operation": {"chat"},
                    }[name]
                    assert set(found) == expected, (path.name, name, found)
    finally:
        for task in hanging:
            task.cancel()
        await asyncio.gather(*hanging, return_exceptions=True)
        if prom is not None:
            prom.stop()
        for p in proxies:
            await p.close()
        await asyncio.to_thread(shutdown_bounded, provider, 2.0)
