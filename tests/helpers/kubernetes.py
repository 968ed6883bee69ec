"""deploy/kubernetes read as Kubernetes would: manifests, a kustomize renderer, container env.

kustomize is not a Python package and usually not installed, so ``render`` builds an
overlay with the subset of kustomize our files use (``resources``, ``namespace``,
``images``, ``patches`` as strategic-merge files) and refuses any other key, so a new
feature in a kustomization cannot be silently skipped. Where ``kubectl`` is installed,
tests/test_kubernetes.py checks this renderer's output against ``kubectl kustomize``.
"""

from __future__ import annotations

import contextlib
import copy
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import free_port, require_binary, wait_port
from tests.helpers.compose import ROOT, image_env
from tokentail import cli
from tokentail.settings import resolve

__all__ = [
    "BASE",
    "EXAMPLE",
    "KUBE",
    "TEST_SECRETS",
    "container_env",
    "load_docs",
    "redis_server",
    "render",
    "selects",
    "settings_for",
    "workloads",
]

KUBE = ROOT / "deploy" / "kubernetes"
BASE = KUBE / "base"
EXAMPLE = KUBE / "overlays" / "example"

# Values for the Secret's keys in tests (the Secret itself ships empty).
TEST_SECRETS = {
    "read-token": "k8s-read-token-0123456789",
    "admin-token": "k8s-admin-token-0123456789",
    "fingerprint-key": "k8s-fingerprint-key-0123456789abcdef",
    "redis-password": "k8s-redis-password-0123",
}

KUSTOMIZATION_KEYS = {"apiVersion", "kind", "namespace", "resources", "images", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "StorageClass"}
# Strategic merge: lists merged item by item on these keys (the Kubernetes API's
# patchMergeKey); every other list is replaced by the patch's, as kustomize does.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
}
WORKLOAD_KINDS = ("Deployment", "StatefulSet")


def load_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _key(doc: dict) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def _merge(base: Any, patch: Any, field: str = "") -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = _merge(base[k], v, k) if k in base else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(patch, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        out = [copy.deepcopy(item) for item in base]
        for item in patch:
            at = [i for i, old in enumerate(out) if old.get(key) == item.get(key)]
            if at:
                out[at[0]] = _merge(out[at[0]], item)
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def _containers(doc: dict) -> list[dict]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return spec.get("containers", []) + spec.get("initContainers", [])


def _set_image(doc: dict, rule: dict) -> None:
    for c in _containers(doc):
        name, _, _tag = c["image"].partition(":")
        if name == rule["name"]:
            c["image"] = f"{rule.get('newName', name)}:{rule.get('newTag', _tag)}"


def render(directory: Path) -> list[dict]:
    """The objects ``kubectl kustomize directory`` prints, for the subset we use."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(spec) - KUSTOMIZATION_KEYS
    assert not unknown, f"{directory}: the test renderer does not know {sorted(unknown)}"
    docs: list[dict] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        docs += render(path) if path.is_dir() else load_docs(path)
    by_key = {_key(d): d for d in docs}
    assert len(by_key) == len(docs), f"{directory}: a resource is defined twice"
    for entry in spec.get("patches", []):
        assert set(entry) == {"path"}, f"{directory}: patches by path only ({entry})"
        for patch in load_docs(directory / entry["path"]):
            assert _key(patch) in by_key, f"{entry['path']}: patches nothing ({_key(patch)})"
            target = by_key[_key(patch)]
            merged = _merge(target, patch)
            docs[docs.index(target)] = by_key[_key(patch)] = merged
    for rule in spec.get("images", []):
        for doc in docs:
            _set_image(doc, rule)
    if "namespace" in spec:
        for doc in docs:
            if doc["kind"] in CLUSTER_SCOPED:
                if doc["kind"] == "Namespace":
                    doc["metadata"]["name"] = spec["namespace"]
            else:
                doc["metadata"]["namespace"] = spec["namespace"]
    return docs


# --- what runs --------------------------------------------------------------------------------


def workloads(docs: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] in WORKLOAD_KINDS}


def pod_labels(workload: dict) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels, matchExpressions) or a Service's plain selector."""
    plain = {k: v for k, v in selector.items() if k not in ("matchLabels", "matchExpressions")}
    wanted = {**plain, **selector.get("matchLabels", {})}
    if any(labels.get(k) != v for k, v in wanted.items()):
        return False
    for expr in selector.get("matchExpressions", []):
        value, op = labels.get(expr["key"]), expr["operator"]
        if op == "In" and value not in expr["values"]:
            return False
        if op == "NotIn" and value in expr["values"]:
            return False
        if op == "Exists" and value is None:
            return False
        if op == "DoesNotExist" and value is not None:
            return False
    return True


def _find(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert found, f"no {kind} {name}"
    return found[0]


_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def container_env(docs: list[dict], workload: dict, container: dict, secrets: dict[str, str]) -> dict[str, str]:
    """The container's environment as the kubelet builds it: the image's ENV, envFrom, then
    env in order, ``$(VAR)`` expanded from what is defined before (Kubernetes' rule)."""
    env = dict(image_env())
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(_find(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            env.update(_secret_data(docs, source["secretRef"]["name"], secrets))
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = _REF.sub(lambda m: env.get(m.group(1), m.group(0)), str(item["value"]))
            continue
        ref = item["valueFrom"]
        if "secretKeyRef" in ref:
            env[item["name"]] = secrets[ref["secretKeyRef"]["key"]]
        elif "configMapKeyRef" in ref:
            env[item["name"]] = _find(docs, "ConfigMap", ref["configMapKeyRef"]["name"])["data"][
                ref["configMapKeyRef"]["key"]
            ]
        elif "fieldRef" in ref:
            m = re.fullmatch(r"metadata\.labels\['([^']+)'\]", ref["fieldRef"]["fieldPath"])
            assert m, f"fieldRef {ref['fieldRef']['fieldPath']} is not read by these tests"
            env[item["name"]] = pod_labels(workload)[m.group(1)]
        else:
            raise AssertionError(f"env {item['name']}: unknown source {ref}")
    return env


def _secret_data(docs: list[dict], name: str, secrets: dict[str, str]) -> dict[str, str]:
    keys = _find(docs, "Secret", name).get("stringData", {})
    return {k: secrets[k] for k in keys}


def command_of(container: dict) -> str:
    args = container.get("args") or []
    assert args and args[0] in cli.COMMANDS, f"{container['name']}: args {args} run no tokentail command"
    return args[0]


def settings_for(env: dict[str, str], command: str):
    """What ``tokentail <command>`` resolves from this environment."""
    module = cli_module(command)
    return resolve(command, module.OPTIONS, {}, env=env, file_config={})


def cli_module(command: str):
    import importlib

    return importlib.import_module(cli.COMMANDS[command])


# --- a real redis-server with the manifests' arguments --------------------------------------


@contextlib.contextmanager
def redis_server(args: list[str], workdir: Path) -> Iterator[int]:
    """``redis-server`` started with ``args`` as compose.yaml or a manifest writes them, only
    the port moved to a free loopback one (and bound to loopback); yields that port."""
    binary = require_binary("redis-server", "TOKENTAIL_REQUIRE_REDIS")
    assert args[0] == "redis-server", args
    port = free_port()
    rest = list(args[1:])
    if "--port" in rest:
        del rest[rest.index("--port") : rest.index("--port") + 2]
    if "--dir" in rest:
        rest[rest.index("--dir") + 1] = str(workdir)
    log = (workdir / "redis.log").open("wb")
    proc = subprocess.Popen(
        [binary, *rest, "--port", str(port), "--bind", "127.0.0.1"], cwd=workdir, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_port(port, proc, 10.0, output=lambda: (workdir / "redis.log").read_text(errors="replace"))
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
