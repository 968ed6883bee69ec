"""deploy/kubernetes (kustomize base + example overlay), validated offline.

Every object is checked against the Kubernetes OpenAPI schemas that ``kubernetes-validate``
ships (strict: unknown fields are errors), both as written and as the overlay renders it.
The PodMonitor (a prometheus-operator CRD) is checked structurally. Then our own contracts:
each container's environment resolves to valid ``tokentail`` settings, probes hit routes the
servers really serve (the real apps answer them), the stop timing covers the proxy's drain,
labels and selectors line up across workloads, Services, HPA, PodMonitor, NetworkPolicy and
Ingress, and every pod runs unprivileged on a read-only root file system.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from aiohttp import ClientSession

from tests.helpers import require, serve
from tests.helpers.compose import ROOT, SHARED_ENV, compose, stages
from tests.helpers.kubernetes import (
    BASE,
    EXAMPLE,
    KUBE,
    TEST_SECRETS,
    cli_module,
    command_of,
    container_env,
    load_docs,
    pod_labels,
    redis_server,
    render,
    selects,
    settings_for,
    workloads,
)
from tokentail.proxy import telemetry

# The oldest Kubernetes minor still in upstream support when this was written, and the newest
# the package knows: the manifests must be valid on both.
KUBE_VERSIONS = ("1.31.0", kubernetes_validate.utils.latest_version())
REQUIRE_KUBECTL = "TOKENTAIL_REQUIRE_KUBECTL"

# Variables only there to be expanded into another one ($(NAME)), read by no program.
HELPER_ENV = {"REDIS_PASSWORD"}
HEALTH_PATHS = {"proxy": "/healthz", "collector": "/healthz", "dashboard": "/_tt/healthz"}
STOP_MARGIN = 3  # seconds beyond preStop + --grace before the kubelet's SIGKILL


@functools.cache
def _rendered(directory: Path) -> list[dict]:
    return render(directory)


def base_docs() -> list[dict]:
    return copy.deepcopy(_rendered(BASE))


def example_docs() -> list[dict]:
    return copy.deepcopy(_rendered(EXAMPLE))


def manifest_files() -> list[Path]:
    """Whole objects as written (patches are partial: checked once rendered)."""
    return sorted(p for p in KUBE.rglob("*.yaml") if p.name != "kustomization.yaml" and p.parent.name != "patches")


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str, name: str) -> dict:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def tokentail_containers(docs: list[dict]):
    """(workload, container, command) for every container running our image."""
    for w in workloads(docs).values():
        for c in w["spec"]["template"]["spec"]["containers"]:
            if c["image"].split(":")[0].endswith("tokentail"):
                yield w, c, command_of(c)


def by_command(docs: list[dict], command: str):
    (found,) = [(w, c) for w, c, cmd in tokentail_containers(docs) if cmd == command]
    return found


def env_of(docs: list[dict], command: str) -> dict[str, str]:
    w, c = by_command(docs, command)
    return container_env(docs, w, c, TEST_SECRETS)


def settings_of(docs: list[dict], command: str):
    return settings_for(env_of(docs, command), command)


def container_port(container: dict, port: int | str) -> int:
    if isinstance(port, int):
        assert port in {p["containerPort"] for p in container["ports"]}, (container["name"], port)
        return port
    (found,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return found


# === schemas ==================================================================================


def _schema_errors(doc: dict, version: str) -> list[str]:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{doc['kind']}/{doc['metadata'].get('name')}: {'/'.join(map(str, exc.path))}: {exc.message}"]
    return []


def builtin(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["kind"] != "PodMonitor"]


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_every_manifest_follows_the_kubernetes_schema(version):
    docs = [d for p in manifest_files() for d in load_docs(p)]
    assert len(docs) >= 20
    errors = [e for d in builtin(docs) for e in _schema_errors(d, version)]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_the_rendered_overlay_follows_the_kubernetes_schema(version):
    docs = example_docs()
    errors = [e for d in builtin(docs) for e in _schema_errors(d, version)]
    assert not errors, "\n".join(errors)
    assert {d["kind"] for d in docs} >= {
        "Namespace",
        "Secret",
        "ConfigMap",
        "Deployment",
        "StatefulSet",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "PodMonitor",
        "NetworkPolicy",
        "Ingress",
    }


def test_the_schema_check_bites():
    deployment = json.loads(json.dumps(one(base_docs(), "Deployment", "tokentail-proxy")))
    assert not _schema_errors(deployment, KUBE_VERSIONS[-1])
    typo = json.loads(json.dumps(deployment))
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = typo["spec"]["template"]["spec"]["containers"][
        0
    ].pop("readinessProbe")
    assert _schema_errors(typo, KUBE_VERSIONS[-1])  # strict: an unknown field is an error
    wrong_type = json.loads(json.dumps(deployment))
    wrong_type["spec"]["replicas"] = "two"
    assert _schema_errors(wrong_type, KUBE_VERSIONS[-1])


def test_the_schemas_ship_with_the_package():
    # Offline by construction: the schemas are files inside the installed package.
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    for version in KUBE_VERSIONS:
        major_minor = ".".join(version.split(".")[:2])
        (folder,) = [p for p in root.iterdir() if p.name == f"v{major_minor}.0-local-strict"]
        assert (folder / "deployment-apps-v1.json").is_file()


def test_the_podmonitor_is_structurally_sound():
    docs = base_docs()
    (pm,) = of_kind(docs, "PodMonitor")
    assert pm["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(pm["spec"]) <= {"selector", "podMetricsEndpoints", "namespaceSelector", "jobLabel", "podTargetLabels"}
    proxy, container = by_command(docs, "proxy")
    matched = [w for w in workloads(docs).values() if selects(pm["spec"]["selector"], pod_labels(w))]
    assert matched == [proxy], "the PodMonitor selects the proxies' pods and nothing else"
    (endpoint,) = pm["spec"]["podMetricsEndpoints"]
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "relabelings", "scheme"}
    assert container_port(container, endpoint["port"]) == settings_of(docs, "proxy").port
    assert endpoint["path"] == "/metrics"
    seconds = {k: int(re.fullmatch(r"(\d+)s", endpoint[k]).group(1)) for k in ("interval", "scrapeTimeout")}
    assert 0 < seconds["scrapeTimeout"] < seconds["interval"]
    # the variant label comes from the pod label the proxy itself reads
    relabel = {r["targetLabel"]: r for r in endpoint["relabelings"]}
    assert set(relabel) == {"variant", "job"}
    assert all(r.get("action", "replace") == "replace" for r in relabel.values())
    (source,) = relabel["variant"]["sourceLabels"]
    label = re.sub(r"[^a-zA-Z0-9_]", "_", "tokentail/variant")
    assert source == f"__meta_kubernetes_pod_label_{label}"
    assert pod_labels(proxy)["tokentail/variant"] == settings_of(docs, "proxy").variant
    # the job the alert rules watch (the operator's default would be <namespace>/<name>)
    rules = (ROOT / "deploy" / "prometheus" / "rules.yml").read_text()
    jobs = set(re.findall(r'up\{job="([^"]+)"\}', rules))
    assert jobs == {relabel["job"]["replacement"]}
    assert "sourceLabels" not in relabel["job"]


def test_scrape_annotations_name_the_metrics_port_and_path():
    docs = base_docs()
    proxy, container = by_command(docs, "proxy")
    notes = proxy["spec"]["template"]["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true"
    assert int(notes["prometheus.io/port"]) == settings_of(docs, "proxy").port == container_port(container, "http")
    assert notes["prometheus.io/path"] == "/metrics"
    for w in workloads(docs).values():  # nothing else claims to have proxy metrics
        if w is not proxy:
            assert "prometheus.io/scrape" not in (w["spec"]["template"]["metadata"].get("annotations") or {})


# === the renderer =============================================================================


def test_the_overlay_changes_what_it_says():
    base, example = base_docs(), example_docs()
    assert {d["metadata"].get("namespace") for d in example if d["kind"] != "Namespace"} == {"tokentail"}
    assert one(example, "Namespace", "tokentail")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == (
        "restricted"
    )
    images = {c["image"] for _, c, _ in tokentail_containers(example)}
    assert images == {"registry.example.internal/tokentail:0.1.0"}
    assert one(example, "HorizontalPodAutoscaler", "tokentail-proxy")["spec"]["maxReplicas"] == 10
    hpa = one(base, "HorizontalPodAutoscaler", "tokentail-proxy")["spec"]
    assert one(example, "HorizontalPodAutoscaler", "tokentail-proxy")["spec"]["metrics"] == hpa["metrics"]
    assert settings_of(example, "proxy").upstream == "http://vllm.llm.svc.cluster.local:8000/v1"
    assert env_of(example, "proxy")["TOKENTAIL_PROXY_GRACE"] == env_of(base, "proxy")["TOKENTAIL_PROXY_GRACE"]
    (claim,) = one(example, "StatefulSet", "tokentail-collector")["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"


def test_the_renderer_refuses_what_it_does_not_know(tmp_path):
    (tmp_path / "kustomization.yaml").write_text("resources: []\ncommonLabels: {a: b}\n")
    with pytest.raises(AssertionError, match="commonLabels"):
        render(tmp_path)
    (tmp_path / "kustomization.yaml").write_text("resources: []\npatches: [{path: p.yaml}]\n")
    (tmp_path / "p.yaml").write_text("kind: ConfigMap\nmetadata: {name: nowhere}\n")
    with pytest.raises(AssertionError, match="patches nothing"):
        render(tmp_path)


def _by_key(docs: list[dict]) -> dict[tuple, dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


@pytest.mark.parametrize("directory", [BASE, EXAMPLE], ids=["base", "example"])
def test_the_renderer_agrees_with_kubectl_kustomize(directory):
    kubectl = shutil.which("kubectl")
    require(REQUIRE_KUBECTL, "the `kubectl` binary (kustomize)", kubectl is not None)
    out = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    theirs = _by_key([d for d in yaml.safe_load_all(out.stdout) if d])
    ours = _by_key(render(directory))
    assert theirs.keys() == ours.keys()
    for key in ours:
        assert ours[key] == theirs[key], key


# === what the containers run ==================================================================


def test_every_tokentail_container_runs_a_command_of_the_image():
    docs = base_docs()
    commands = sorted(cmd for _, _, cmd in tokentail_containers(docs))
    assert commands == ["collector", "dashboard", "proxy"]
    # the image compose.yaml builds from the repository's Dockerfile
    built = compose()["services"]["collector"]["image"]
    assert {c["image"] for _, c, _ in tokentail_containers(docs)} == {built}
    for _, c, _ in tokentail_containers(docs):
        assert "command" not in c, "keep the image's ENTRYPOINT (tokentail)"
        assert len(c["args"]) == 1, "options as TOKENTAIL_<COMMAND>_<OPTION> variables, in the ConfigMaps"


def test_environment_names_are_ones_the_cli_reads():
    otel = set(telemetry.ENV_READ)
    for docs in (base_docs(), example_docs()):
        for w, c, command in tokentail_containers(docs):
            options = cli_module(command).OPTIONS
            known = {o.env_name(command) for o in options} | {a for o in options for a in o.env_aliases}
            known |= SHARED_ENV | HELPER_ENV | (otel if command == "proxy" else set())
            for name in container_env(docs, w, c, TEST_SECRETS):
                assert name in known or name in _image_env_names(), f"{command}: {name} is read by nothing"
            for name in HELPER_ENV & {e["name"] for e in c.get("env", [])}:
                users = [e for e in c["env"] if f"$({name})" in str(e.get("value", ""))]
                assert users, f"{command}: {name} is expanded nowhere"


def _image_env_names() -> set[str]:
    return {item.split("=", 1)[0] for w, rest in stages()[-1]["instructions"] if w == "ENV" for item in rest.split()}


def test_variables_are_expanded_from_ones_defined_before():
    for _w, c, command in tokentail_containers(base_docs()):
        defined = set(_image_env_names())
        for source in c.get("envFrom", []):
            ref = source.get("configMapRef") or source.get("secretRef")
            defined |= set(one(base_docs(), "ConfigMap", ref["name"])["data"]) if "configMapRef" in source else set()
        for item in c.get("env", []):
            for ref in re.findall(r"\$\(([A-Za-z_0-9]+)\)", str(item.get("value", ""))):
                assert ref in defined, f"{command}: {item['name']} expands $({ref}) before it is defined"
            defined.add(item["name"])


def test_environment_resolves_to_valid_settings():
    from tokentail.collector.config import CollectorConfig
    from tokentail.dashboard.config import DashboardConfig
    from tokentail.proxy.command import validate_upstream

    for docs in (base_docs(), example_docs()):
        proxy, collector, dashboard = (settings_of(docs, c) for c in ("proxy", "collector", "dashboard"))
        for s in (proxy, collector, dashboard):
            assert s.host == "0.0.0.0", "listen on the pod's interfaces"
            assert not s.get("insecure"), "never --insecure: the tokens protect captured content"
            assert s.read_token == TEST_SECRETS["read-token"]
            assert s.admin_token == TEST_SECRETS["admin-token"]
        assert validate_upstream(proxy.upstream)
        assert proxy.fingerprint_key == TEST_SECRETS["fingerprint-key"], "one fingerprint secret for every replica"
        config = CollectorConfig.from_settings(collector)
        assert config.targets == (), "Prometheus scrapes the pods; a fixed target list cannot follow them"
        assert str(config.db).startswith("/data/")
        dash = DashboardConfig.from_settings(dashboard)
        assert not dash.open_access and dash.collector
        # the page talks to one origin: the collector's /api/ (live feed too) beside the dashboard
        assert dash.proxies == ()
        assert env_of(docs, "dashboard")["TOKENTAIL_DASHBOARD_LIVE"] == dash.collector
        assert dashboard.live == dash.collector
        # ...which is also the page's own (the Ingress serves both): the collector allows it
        page = urlsplit(dash.collector)
        assert config.allowed_origins == frozenset({f"{page.scheme}://{page.netloc}"})


def test_the_proxies_and_the_collector_share_the_live_plane():
    docs = base_docs()
    redis_service = one(docs, "Service", "tokentail-redis")
    for command, name in (("proxy", "TOKENTAIL_PROXY_LIVE_REDIS"), ("collector", "TOKENTAIL_COLLECTOR_LIVE_REDIS")):
        url = urlsplit(env_of(docs, command)[name])
        assert url.scheme == "redis" and url.hostname == "tokentail-redis"
        assert url.port in {p["port"] for p in redis_service["spec"]["ports"]}
        assert url.password == TEST_SECRETS["redis-password"], "the password, expanded from the Secret"
    redis = workloads(docs)["tokentail-redis"]["spec"]["template"]["spec"]["containers"][0]
    assert redis["image"] == compose()["services"]["redis"]["image"], "one Redis version in both shapes"
    args = redis["args"]
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction", "full means refused writes, counted"
    assert args[args.index("--save") + 1] == "", "a live buffer, not a database"


def test_spans_go_to_the_collector_with_the_admin_token():
    docs = base_docs()
    env = env_of(docs, "proxy")
    url = urlsplit(env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])
    collector = one(docs, "Service", url.hostname)
    assert url.port in {p["port"] for p in collector["spec"]["ports"]} and url.path == "/v1/traces"
    assert url.port == settings_of(docs, "collector").port
    assert env["OTEL_EXPORTER_OTLP_HEADERS"] == f"Authorization=Bearer%20{TEST_SECRETS['admin-token']}"


# === probes and stopping ======================================================================


def _probes(container: dict) -> dict[str, dict]:
    return {k: container[k] for k in ("readinessProbe", "livenessProbe", "startupProbe") if k in container}


def test_probes_ask_each_server_its_health_route_on_its_port():
    docs = base_docs()
    for _, c, command in tokentail_containers(docs):
        probes = _probes(c)
        assert {"readinessProbe", "livenessProbe"} <= set(probes), command
        port = settings_of(docs, command).port
        for kind, probe in probes.items():
            if "httpGet" in probe:
                assert probe["httpGet"]["path"] == HEALTH_PATHS[command], (command, kind)
                assert container_port(c, probe["httpGet"]["port"]) == port, (command, kind)
            else:  # the dashboard: its health route wants the token, which an httpGet cannot carry
                assert command == "dashboard", (command, kind)
                urls = re.findall(r"http://[^'\" ]+", " ".join(probe["exec"]["command"]))
                assert [urlsplit(u).port for u in urls] == [port] and urlsplit(urls[0]).path == HEALTH_PATHS[command]
            assert probe.get("timeoutSeconds", 1) < probe.get("periodSeconds", 10), (command, kind)
        assert c["ports"][0]["containerPort"] == port


async def test_the_proxy_answers_its_probes_and_scrapes_without_a_token(sim_server):
    from prometheus_client import CollectorRegistry

    from tokentail.proxy.app import app_from_settings

    docs = example_docs()
    s = settings_for(env_of(docs, "proxy"), "proxy")
    s = s.replace(upstream=str(sim_server.make_url("/v1")), host="127.0.0.1")
    server = await serve(app_from_settings(s, registry=CollectorRegistry()))
    try:
        async with ClientSession() as http:
            for path in (HEALTH_PATHS["proxy"], "/metrics"):
                async with http.get(server.make_url(path)) as resp:
                    assert resp.status == 200, path
            async with http.get(server.make_url("/metrics")) as resp:
                assert "tokentail_" in await resp.text()
            async with http.get(server.make_url("/healthz")) as resp:
                assert (await resp.json())["variant"] == "production"
    finally:
        await server.close()


async def test_the_collector_answers_its_probe(tmp_path):
    from tokentail.collector.app import create_app
    from tokentail.collector.config import CollectorConfig

    s = settings_for(env_of(example_docs(), "collector"), "collector")
    config = CollectorConfig.from_settings(s.replace(db=str(tmp_path / "t.duckdb"), host="127.0.0.1"))
    server = await serve(create_app(config, scrape=False, maintain=False))
    try:
        async with ClientSession() as http:
            async with http.get(server.make_url(HEALTH_PATHS["collector"])) as resp:
                assert resp.status == 200
    finally:
        await server.close()


def test_the_dashboard_probe_passes_with_the_token_only():
    from werkzeug.serving import make_server

    from tokentail.dashboard.app import create_app
    from tokentail.dashboard.config import DashboardConfig

    docs = example_docs()
    env = env_of(docs, "dashboard")
    s = settings_for(env, "dashboard")
    config = DashboardConfig.from_settings(s)
    assert not config.open_access  # bound off loopback: the health route wants the token
    server = make_server("127.0.0.1", 0, create_app(config).server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _, container = by_command(docs, "dashboard")
    try:
        for probe in _probes(container).values():
            args = [
                a.replace(f"127.0.0.1:{s.port}", f"127.0.0.1:{server.server_port}") for a in probe["exec"]["command"]
            ]
            assert args[0] == "python"

            def run(token: str, args: list[str] = args) -> int:
                child = {"PATH": os.environ.get("PATH", ""), "TOKENTAIL_READ_TOKEN": token}
                return subprocess.run(
                    [sys.executable, *args[1:]], env=child, capture_output=True, timeout=20
                ).returncode

            assert run(TEST_SECRETS["read-token"]) == 0
            assert run("wrong") != 0
    finally:
        server.shutdown()
        thread.join(5)


def _pre_stop_seconds(container: dict) -> int:
    hook = container["lifecycle"]["preStop"]
    if "sleep" in hook:
        return int(hook["sleep"]["seconds"])
    command = hook["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, command
    # an exec hook needs the binary in the image: Debian's coreutils in the python slim image
    assert stages()[-1]["image"].startswith("python:") and "slim" in stages()[-1]["image"]
    return int(command[1])


def test_proxies_get_the_time_to_drain_their_streams():
    for docs in (base_docs(), example_docs()):
        proxy, container = by_command(docs, "proxy")
        pause = _pre_stop_seconds(container)
        grace = settings_of(docs, "proxy").grace
        period = proxy["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        # the pause lets endpoint lists drop the pod before it stops accepting connections
        assert pause >= 5
        assert period >= pause + grace + STOP_MARGIN, (period, pause, grace)
        strategy = proxy["spec"]["strategy"]["rollingUpdate"]
        assert strategy["maxUnavailable"] == 0


# === labels, selectors and who talks to whom ==================================================


def test_selectors_match_their_pod_templates_and_only_them():
    docs = base_docs()
    pods = {name: pod_labels(w) for name, w in workloads(docs).items()}
    for name, w in workloads(docs).items():
        assert selects(w["spec"]["selector"], pods[name]), name
        others = [o for o in pods if o != name and selects(w["spec"]["selector"], pods[o])]
        assert not others, f"{name}'s selector also matches {others}"
    for svc in of_kind(docs, "Service"):
        matched = [n for n, labels in pods.items() if selects(svc["spec"]["selector"], labels)]
        assert matched == [svc["metadata"]["name"]], (svc["metadata"]["name"], matched)
        container = workloads(docs)[matched[0]]["spec"]["template"]["spec"]["containers"][0]
        for port in svc["spec"]["ports"]:
            container_port(container, port["targetPort"])
    (pdb,) = of_kind(docs, "PodDisruptionBudget")
    assert [n for n, labels in pods.items() if selects(pdb["spec"]["selector"], labels)] == ["tokentail-proxy"]


def test_the_hpa_scales_the_proxies_on_a_requested_resource():
    docs = base_docs()
    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    proxy, container = by_command(docs, "proxy")
    assert (target["kind"], target["name"]) == ("Deployment", proxy["metadata"]["name"])
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    for metric in hpa["spec"]["metrics"]:
        resource = metric["resource"]["name"]
        assert resource in container["resources"]["requests"], "utilization is a share of the request"
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 60
    # the collector and the dashboard stay single: one DuckDB writer
    assert workloads(docs)["tokentail-collector"]["spec"]["replicas"] == 1


def _policies_for(docs: list[dict], labels: dict[str, str]) -> list[dict]:
    return [p for p in of_kind(docs, "NetworkPolicy") if selects(p["spec"]["podSelector"], labels)]


def _admitted_ports(docs: list[dict], labels: dict[str, str]) -> set[int]:
    return {
        port["port"]
        for p in _policies_for(docs, labels)
        for rule in p["spec"].get("ingress", [])
        for port in rule["ports"]
    }


def test_network_policies_admit_only_the_serving_ports():
    docs = base_docs()
    for name, w in workloads(docs).items():
        labels = pod_labels(w)
        policies = _policies_for(docs, labels)
        assert any(not p["spec"].get("ingress") for p in policies), f"{name}: no default deny"
        container = w["spec"]["template"]["spec"]["containers"][0]
        assert _admitted_ports(docs, labels) == {p["containerPort"] for p in container["ports"]}, name


def _sources(docs: list[dict], labels: dict[str, str]) -> list[dict]:
    return [peer for p in _policies_for(docs, labels) for rule in p["spec"].get("ingress", []) for peer in rule["from"]]


def test_redis_admits_the_proxies_and_the_collector_only():
    docs = base_docs()
    peers = _sources(docs, pod_labels(workloads(docs)["tokentail-redis"]))
    assert all(set(p) == {"podSelector"} for p in peers), "no other namespace"
    admitted = {n for n, w in workloads(docs).items() if any(selects(p["podSelector"], pod_labels(w)) for p in peers)}
    assert admitted == {"tokentail-proxy", "tokentail-collector"}


def test_the_proxy_api_stays_in_the_namespace():
    """L4 cannot tell /v1 from /api: outside the namespace only the ingress controller (whose
    Ingress routes /v1/ only) and Prometheus may connect to a proxy."""
    docs = example_docs()
    proxy_labels = pod_labels(workloads(docs)["tokentail-proxy"])
    namespaces = set()
    for peer in _sources(docs, proxy_labels):
        assert "ipBlock" not in peer, "no address ranges: they would reach /api/* too"
        if "namespaceSelector" in peer:
            namespaces.add(peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"])
        else:
            assert peer["podSelector"] == {}, peer
    (ingress,) = of_kind(docs, "Ingress")
    assert namespaces == {"ingress-nginx", "monitoring"}
    assert ingress["spec"]["ingressClassName"] == "nginx"
    to_proxy = [
        path["path"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
        if path["backend"]["service"]["name"] == "tokentail-proxy"
    ]
    assert to_proxy == ["/v1/"]
    # the dashboard only through the controller; the collector also from inside the namespace
    for name in ("tokentail-dashboard",):
        for peer in _sources(docs, pod_labels(workloads(docs)[name])):
            assert peer == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}


def test_the_ingress_routes_to_listening_ports_and_allowed_hosts():
    docs = example_docs()
    (ingress,) = of_kind(docs, "Ingress")
    routed: dict[tuple[str, str], str] = {}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            svc = one(docs, "Service", backend["name"])
            (port,) = [p for p in svc["spec"]["ports"] if p.get("name") == backend["port"].get("name")]
            routed[(rule["host"], path["path"])] = backend["name"]
            assert port["port"]
    dashboard, collector = settings_of(docs, "dashboard"), settings_of(docs, "collector")
    page = urlsplit(dashboard.collector)
    assert routed[(page.hostname, "/")] == "tokentail-dashboard"
    assert routed[(page.hostname, "/api/")] == "tokentail-collector", "one origin for the page"
    assert page.hostname in dashboard.allowed_host and page.hostname in collector.allowed_host
    tls_hosts = {h for t in ingress["spec"]["tls"] for h in t["hosts"]}
    assert {r["host"] for r in ingress["spec"]["rules"]} <= tls_hosts
    assert page.scheme == "https"


# === secrets and privileges ===================================================================


def test_tokens_come_from_the_secret_and_ship_empty():
    base, example = base_docs(), example_docs()
    assert not of_kind(base, "Secret"), "the base ships no Secret: apply -k must not overwrite yours"
    (secret,) = of_kind(example, "Secret")
    assert set(secret["stringData"]) == set(TEST_SECRETS)
    assert all(v == "" for v in secret["stringData"].values()), "placeholders only, never a usable token"
    used = set()
    secretish = re.compile(r"(^|_)(TOKEN|PASSWORD|SECRET|KEY|AUTH)(_|$)")
    for w in workloads(base).values():
        for c in w["spec"]["template"]["spec"]["containers"]:
            for item in c.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == secret["metadata"]["name"]
                    used.add(ref["key"])
                elif secretish.search(item["name"]):
                    raise AssertionError(f"{c['name']}: {item['name']} is written in the manifest")
    for cm in of_kind(base, "ConfigMap"):
        assert not [k for k in cm["data"] if secretish.search(k)], cm["metadata"]["name"]
    assert used == set(TEST_SECRETS)


def test_every_pod_runs_unprivileged_on_a_read_only_root():
    docs = base_docs()
    uid = int(next(r for w, r in stages()[-1]["instructions"] if w == "USER").split(":")[0])
    for name, w in workloads(docs).items():
        pod = w["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod.get("automountServiceAccountToken") is False, name
        writable = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        writable |= {t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])}
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], name
            assert {m["name"] for m in c.get("volumeMounts", [])} <= writable, name
            assert "memory" in c["resources"]["limits"] and {"cpu", "memory"} <= set(c["resources"]["requests"])
    for w in workloads(docs).values():
        if any(c["image"].startswith("tokentail") for c in w["spec"]["template"]["spec"]["containers"]):
            assert w["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid
    # the collector's volume holds the DuckDB file, writable through fsGroup
    collector = workloads(docs)["tokentail-collector"]
    mounts = collector["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    db = Path(settings_of(docs, "collector").db)
    assert {"name": "data", "mountPath": str(db.parent)} in mounts
    assert collector["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == uid


def test_redis_runs_with_its_arguments_and_its_probe_wants_the_password(tmp_path):
    docs = base_docs()
    redis = workloads(docs)["tokentail-redis"]
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    env = container_env(docs, redis, container, TEST_SECRETS)
    args = [re.sub(r"\$\(([A-Z_]+)\)", lambda m: env[m.group(1)], a) for a in container["args"]]
    assert env["REDISCLI_AUTH"] == env["REDIS_PASSWORD"] == TEST_SECRETS["redis-password"]
    with redis_server(args, tmp_path) as port:
        probe = container["readinessProbe"]["exec"]["command"]
        probe = [a.replace("-p 6379", f"-p {port}") for a in probe]

        def run(password: str) -> int:
            child = {"PATH": os.environ.get("PATH", ""), "REDISCLI_AUTH": password}
            return subprocess.run(probe, env=child, capture_output=True, timeout=20).returncode

        assert run(TEST_SECRETS["redis-password"]) == 0
        assert run("wrong") != 0, "a Redis that refuses our password is not ready"
        noauth = subprocess.run(["redis-cli", "-p", str(port), "get", "x"], capture_output=True, text=True, timeout=20)
        assert "NOAUTH" in noauth.stdout + noauth.stderr


def test_prometheus_is_where_the_policy_lets_it_scrape_from():
    docs = base_docs()
    source = env_of(docs, "dashboard")["TOKENTAIL_DASHBOARD_METRICS_SOURCE"]
    kind, _, url = source.partition("=")
    assert kind == "prometheus"
    host = urlsplit(url).hostname.split(".")
    assert host[2:] == ["svc"], f"{url}: a Service name, <service>.<namespace>.svc"
    admitted = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for peer in _sources(docs, pod_labels(workloads(docs)["tokentail-proxy"]))
        if "namespaceSelector" in peer
    }
    assert host[1] in admitted, "Prometheus' namespace may connect to the proxies"
