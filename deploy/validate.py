#!/usr/bin/env python3
"""Offline validation of everything in deploy/ (and the CI/CD workflow).

    deploy/validate.sh                     # the whole repository (what tests/deploy_manifests.rs runs)
    deploy/validate.py --manifests FILE... --profile prod|dev
                                           # rendered manifests only, e.g. a file you built yourself

What is checked, per Kubernetes overlay (deploy/k8s/overlays/*):
  1. `deploy/render.sh <overlay>` (kubectl kustomize) builds it, and the image pin CI/CD uses works.
  2. Built-in kinds: the JSON schema of Kubernetes 1.29 (kubernetes-validate, strict: unknown
     fields are errors). Custom resources (CloudNativePG Cluster/ScheduledBackup, PodMonitor,
     PrometheusRule) have no schema there: the checkers below test their required fields.
  3. House rules: probes, resources, security context, images, secrets, references between
     objects, replicas/HPAs, NetworkPolicies, migration Job, scrape annotations.
Then compose.yaml, the GitHub Actions workflow, the Dockerfile, the shell scripts, the Grafana
dashboard, and whether the alerts' agora_* metrics exist in the Rust sources (a warning).

Exit status: 0 all good, 1 problems found (listed), 3 a required tool is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

KUBERNETES_VERSION = "1.29.0"
KUBERNETES_VALIDATE_PIN = "kubernetes-validate==1.37.0"
DEPLOY = Path(__file__).resolve().parent
REPO = DEPLOY.parent
AGORA_ROLES = ("command", "query", "projector")
PINNED_TEST_IMAGE = "ghcr.io/validate/agora@sha256:" + "0" * 64
MUTABLE_TAGS = {"latest", "main", "master", "dev", "edge"}
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


def missing_tool(message: str) -> None:
    print(f"validate: MISSING TOOL: {message}", file=sys.stderr)
    sys.exit(3)


try:
    import yaml
except ImportError:
    missing_tool(f"the PyYAML module; install it with `python3 -m pip install pyyaml` (comes with {KUBERNETES_VALIDATE_PIN})")
try:
    import kubernetes_validate
except ImportError:
    missing_tool(f"the kubernetes-validate module; install it with `python3 -m pip install '{KUBERNETES_VALIDATE_PIN}'`")


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def fail(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def warn(self, where: str, message: str) -> None:
        self.warnings.append(f"{where}: {message}")

    def ok(self, line: str) -> None:
        self.lines.append(line)


def obj_id(doc: dict) -> str:
    meta = doc.get("metadata") or {}
    return f"{doc.get('kind')}/{meta.get('name')}"


def load_yaml_docs(text: str, where: str, report: Report) -> list[dict]:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        report.fail(where, f"not valid YAML: {error}")
        return []
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            report.fail(where, "a document without apiVersion/kind")
    return [d for d in docs if isinstance(d, dict) and "kind" in d and "apiVersion" in d]


# ---------------------------------------------------------------------------------------------
# Built-in kinds: the Kubernetes JSON schema
# ---------------------------------------------------------------------------------------------

def schema_check(doc: dict, where: str, report: Report) -> bool:
    """True if kubernetes-validate knows the kind (and reports its verdict)."""
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return False
    except kubernetes_validate.ValidationError as error:
        path = "/".join(str(p) for p in error.path) if hasattr(error, "path") else ""
        report.fail(where, f"{obj_id(doc)} does not match the Kubernetes {KUBERNETES_VERSION} schema at '{path}': {error.message}")
    return True


# ---------------------------------------------------------------------------------------------
# Custom resources: required fields, by hand
# ---------------------------------------------------------------------------------------------

CNPG_CLUSTER_SPEC_FIELDS = {
    "affinity", "backup", "bootstrap", "certificates", "description", "enablePDB", "enableSuperuserAccess",
    "env", "envFrom", "ephemeralVolumeSource", "ephemeralVolumesSizeLimit", "externalClusters",
    "failoverDelay", "imageCatalogRef", "imageName", "imagePullPolicy", "imagePullSecrets",
    "inheritedMetadata", "instances", "livenessProbeTimeout", "logLevel", "managed", "maxSyncReplicas",
    "minSyncReplicas", "monitoring", "nodeMaintenanceWindow", "plugins", "podSecurityContext",
    "postgresGID", "postgresUID", "postgresql", "primaryUpdateMethod", "primaryUpdateStrategy",
    "priorityClassName", "probes", "projectedVolumeTemplate", "replica", "replicationSlots", "resources",
    "schedulerName", "seccompProfile", "securityContext", "serviceAccountTemplate", "smartShutdownTimeout",
    "startDelay", "stopDelay", "storage", "superuserSecret", "switchoverDelay", "tablespaces",
    "topologySpreadConstraints", "walStorage",
}


def check_quantity(value, where: str, what: str, report: Report) -> None:
    if not isinstance(value, (str, int)) or not QUANTITY.match(str(value)):
        report.fail(where, f"{what} is not a Kubernetes quantity: {value!r}")


def check_resources(resources, where: str, what: str, report: Report) -> None:
    if not isinstance(resources, dict):
        report.fail(where, f"{what} has no resources")
        return
    for section in ("requests", "limits"):
        for name, value in (resources.get(section) or {}).items():
            check_quantity(value, where, f"{what} resources.{section}.{name}", report)


def check_image_ref(image, where: str, what: str, report: Report, strict_tag: bool) -> None:
    if not isinstance(image, str) or not image:
        report.fail(where, f"{what} has no image")
        return
    if "@sha256:" in image:
        if not re.search(r"@sha256:[0-9a-f]{64}$", image):
            report.fail(where, f"{what} image digest is malformed: {image}")
        return
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    if not tag:
        report.fail(where, f"{what} image has no tag (an implicit :latest): {image}")
    elif tag == "latest":
        report.fail(where, f"{what} image uses :latest: {image}")
    elif strict_tag and tag in MUTABLE_TAGS:
        report.fail(where, f"{what} image uses the mutable tag :{tag} in a production overlay: {image}")


def check_cnpg_cluster(doc: dict, where: str, report: Report, strict_tag: bool) -> None:
    me = obj_id(doc)
    name = (doc.get("metadata") or {}).get("name", "")
    if not DNS_LABEL.match(name or "") or len(name) > 50:
        report.fail(where, f"{me}: metadata.name must be a DNS label of at most 50 characters (services get -rw/-ro suffixes)")
    if doc.get("apiVersion") != "postgresql.cnpg.io/v1":
        report.fail(where, f"{me}: apiVersion must be postgresql.cnpg.io/v1")
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        report.fail(where, f"{me}: no spec")
        return
    for key in spec:
        if key not in CNPG_CLUSTER_SPEC_FIELDS:
            report.fail(where, f"{me}: unknown field spec.{key}")
    instances = spec.get("instances")
    if not isinstance(instances, int) or isinstance(instances, bool) or instances < 1:
        report.fail(where, f"{me}: spec.instances must be a positive integer")
    storage = spec.get("storage")
    if not isinstance(storage, dict) or not ("size" in storage or "pvcTemplate" in storage):
        report.fail(where, f"{me}: spec.storage.size (or pvcTemplate) is required")
    elif "size" in storage:
        check_quantity(storage["size"], where, f"{me} spec.storage.size", report)
    if isinstance(spec.get("walStorage"), dict) and "size" in spec["walStorage"]:
        check_quantity(spec["walStorage"]["size"], where, f"{me} spec.walStorage.size", report)
    if "imageName" in spec:
        check_image_ref(spec["imageName"], where, f"{me} spec.imageName", report, strict_tag)
    bootstrap = spec.get("bootstrap")
    if isinstance(bootstrap, dict):
        methods = [m for m in ("initdb", "recovery", "pg_basebackup") if m in bootstrap]
        if len(methods) != 1:
            report.fail(where, f"{me}: spec.bootstrap needs exactly one of initdb, recovery, pg_basebackup")
        initdb = bootstrap.get("initdb")
        if isinstance(initdb, dict) and not (isinstance(initdb.get("database"), str) and isinstance(initdb.get("owner"), str)):
            report.fail(where, f"{me}: spec.bootstrap.initdb needs database and owner")
    parameters = ((spec.get("postgresql") or {}).get("parameters")) or {}
    for key, value in parameters.items():
        if not isinstance(value, str):
            report.fail(where, f"{me}: spec.postgresql.parameters.{key} must be a string (CloudNativePG rejects {value!r})")
    if "resources" in spec:
        check_resources(spec["resources"], where, me, report)
    monitoring = spec.get("monitoring")
    if isinstance(monitoring, dict) and "enablePodMonitor" in monitoring and not isinstance(monitoring["enablePodMonitor"], bool):
        report.fail(where, f"{me}: spec.monitoring.enablePodMonitor must be a boolean")
    backup = spec.get("backup")
    if isinstance(backup, dict) and "barmanObjectStore" in backup:
        store = backup["barmanObjectStore"] or {}
        if not isinstance(store.get("destinationPath"), str):
            report.fail(where, f"{me}: spec.backup.barmanObjectStore.destinationPath is required")
        for provider in ("s3Credentials", "azureCredentials", "googleCredentials"):
            for ref_name, ref in (store.get(provider) or {}).items():
                if isinstance(ref, dict) and not (ref.get("name") and ref.get("key")):
                    report.fail(where, f"{me}: {provider}.{ref_name} needs a Secret name and key")
    if spec.get("primaryUpdateStrategy") not in (None, "supervised", "unsupervised"):
        report.fail(where, f"{me}: spec.primaryUpdateStrategy must be supervised or unsupervised")


def check_cnpg_scheduled_backup(doc: dict, where: str, report: Report, clusters: dict[str, dict]) -> None:
    me = obj_id(doc)
    spec = doc.get("spec") or {}
    schedule = spec.get("schedule")
    if not isinstance(schedule, str) or len(schedule.split()) != 6:
        report.fail(where, f"{me}: spec.schedule must be a 6-field cron expression (CloudNativePG has seconds)")
    cluster = (spec.get("cluster") or {}).get("name")
    if cluster not in clusters:
        report.fail(where, f"{me}: spec.cluster.name {cluster!r} names no Cluster in this overlay")
    method = spec.get("method", "barmanObjectStore")
    if method not in ("barmanObjectStore", "volumeSnapshot", "plugin"):
        report.fail(where, f"{me}: spec.method {method!r} is not barmanObjectStore, volumeSnapshot or plugin")
    if method == "barmanObjectStore" and cluster in clusters and "backup" not in (clusters[cluster].get("spec") or {}):
        report.fail(where, f"{me}: Cluster {cluster} has no spec.backup to back up to")


def check_prometheus_rule(doc: dict, where: str, report: Report) -> None:
    me = obj_id(doc)
    groups = (doc.get("spec") or {}).get("groups")
    if not isinstance(groups, list) or not groups:
        report.fail(where, f"{me}: spec.groups must be a non-empty list")
        return
    seen = set()
    for group in groups:
        gname = group.get("name") if isinstance(group, dict) else None
        if not isinstance(gname, str) or not gname:
            report.fail(where, f"{me}: every group needs a name")
            continue
        if gname in seen:
            report.fail(where, f"{me}: duplicate group name {gname}")
        seen.add(gname)
        rules = group.get("rules")
        if not isinstance(rules, list) or not rules:
            report.fail(where, f"{me}: group {gname} has no rules")
            continue
        for rule in rules:
            label = rule.get("alert") or rule.get("record") if isinstance(rule, dict) else None
            if not isinstance(rule, dict) or ("alert" in rule) == ("record" in rule):
                report.fail(where, f"{me}: group {gname}: each rule needs exactly one of alert or record")
                continue
            expr = rule.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                report.fail(where, f"{me}: rule {label}: expr is required")
            elif not balanced(expr):
                report.fail(where, f"{me}: rule {label}: unbalanced brackets in expr")
            if "for" in rule and not DURATION.match(str(rule["for"])):
                report.fail(where, f"{me}: rule {label}: 'for' is not a duration: {rule['for']!r}")
            if "alert" in rule:
                if (rule.get("labels") or {}).get("severity") not in ("info", "warning", "critical"):
                    report.fail(where, f"{me}: alert {label}: labels.severity must be info, warning or critical")
                if not (rule.get("annotations") or {}).get("summary"):
                    report.fail(where, f"{me}: alert {label}: annotations.summary is required")


def check_pod_monitor(doc: dict, where: str, report: Report, pod_ports: list[tuple[dict, set]]) -> None:
    me = obj_id(doc)
    spec = doc.get("spec") or {}
    selector = spec.get("selector") or {}
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        report.fail(where, f"{me}: spec.selector (matchLabels or matchExpressions) is required")
        return
    endpoints = spec.get("podMetricsEndpoints")
    if not isinstance(endpoints, list) or not endpoints:
        report.fail(where, f"{me}: spec.podMetricsEndpoints must be a non-empty list")
        return
    matched = [ports for labels, ports in pod_ports if selector_matches(selector, labels)]
    if not matched:
        report.fail(where, f"{me}: selector {selector} matches no pod template")
    for endpoint in endpoints:
        port = endpoint.get("port")
        if not port:
            report.fail(where, f"{me}: every podMetricsEndpoint needs a port name")
        elif any(port not in ports for ports in matched):
            report.fail(where, f"{me}: port {port!r} is not a named container port of every selected pod")


def selector_matches(selector: dict, labels: dict) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against a label set; empty matches nothing."""
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not match_labels and not expressions:
        return False
    if not match_labels.items() <= labels.items():
        return False
    for expr in expressions:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def balanced(text: str) -> bool:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack = []
    for ch in re.sub(r'"(\\.|[^"\\])*"', "", text):
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs:
            if not stack or stack.pop() != pairs[ch]:
                return False
    return not stack


# ---------------------------------------------------------------------------------------------
# House rules over one rendered overlay
# ---------------------------------------------------------------------------------------------

def pod_templates(docs: list[dict]):
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
            yield doc, ((doc.get("spec") or {}).get("template") or {})
        elif doc["kind"] == "CronJob":
            yield doc, (((doc.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
        elif doc["kind"] == "Pod":
            yield doc, doc


def env_map(container: dict) -> dict[str, dict]:
    return {e.get("name"): e for e in container.get("env") or [] if isinstance(e, dict)}


def check_workloads(docs: list[dict], where: str, report: Report, strict_tag: bool) -> None:
    by_kind_name = {(d["kind"], (d.get("metadata") or {}).get("name")): d for d in docs}
    configmaps = {n for (k, n) in by_kind_name if k == "ConfigMap"}
    clusters = [n for (k, n) in by_kind_name if k == "Cluster"]
    config_values = {}
    for (kind, name), doc in by_kind_name.items():
        if kind == "ConfigMap":
            config_values.update(doc.get("data") or {})

    for workload, template in pod_templates(docs):
        me = obj_id(workload)
        pod = template.get("spec") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        annotations = (template.get("metadata") or {}).get("annotations") or {}
        role = labels.get("app.kubernetes.io/component")
        is_server = workload["kind"] == "Deployment"
        psc = pod.get("securityContext") or {}
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(flag):
                report.fail(where, f"{me}: {flag} is not allowed")
        if pod.get("automountServiceAccountToken") is not False:
            report.fail(where, f"{me}: automountServiceAccountToken must be false (Agora never calls the Kubernetes API)")
        if psc.get("runAsNonRoot") is not True:
            report.fail(where, f"{me}: pod securityContext.runAsNonRoot must be true")
        if isinstance(psc.get("runAsUser"), int) and psc["runAsUser"] == 0:
            report.fail(where, f"{me}: pod runs as UID 0")
        pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
        volumes = {v.get("name"): v for v in pod.get("volumes") or []}
        for volume in volumes.values():
            if "hostPath" in volume:
                report.fail(where, f"{me}: hostPath volume {volume.get('name')} is not allowed")
        if is_server and not isinstance(pod.get("terminationGracePeriodSeconds"), int):
            report.fail(where, f"{me}: set terminationGracePeriodSeconds (graceful drain on SIGTERM)")
        if is_server and (annotations.get("prometheus.io/scrape") != "true" or not annotations.get("prometheus.io/port")):
            report.fail(where, f"{me}: pod template needs prometheus.io/scrape and prometheus.io/port annotations")

        containers = list(pod.get("containers") or [])
        if not containers:
            report.fail(where, f"{me}: no containers")
        for container in containers + list(pod.get("initContainers") or []):
            what = f"{me} container {container.get('name')}"
            check_image_ref(container.get("image"), where, what, report, strict_tag)
            sc = container.get("securityContext") or {}
            if sc.get("allowPrivilegeEscalation") is not False:
                report.fail(where, f"{what}: securityContext.allowPrivilegeEscalation must be false")
            if sc.get("privileged"):
                report.fail(where, f"{what}: privileged is not allowed")
            if sc.get("readOnlyRootFilesystem") is not True:
                report.fail(where, f"{what}: securityContext.readOnlyRootFilesystem must be true")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                report.fail(where, f"{what}: securityContext.capabilities.drop must include ALL")
            if (sc.get("capabilities") or {}).get("add"):
                report.fail(where, f"{what}: adds capabilities")
            if sc.get("runAsNonRoot") is False or sc.get("runAsUser") == 0:
                report.fail(where, f"{what}: overrides the pod and runs as root")
            if ((sc.get("seccompProfile") or {}).get("type") or pod_seccomp) != "RuntimeDefault":
                report.fail(where, f"{what}: seccompProfile must be RuntimeDefault (pod or container)")
            resources = container.get("resources") or {}
            requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
            if not ("cpu" in requests and "memory" in requests and "memory" in limits):
                report.fail(where, f"{what}: resources need requests.cpu, requests.memory and limits.memory")
            check_resources(resources, where, what, report)
            if is_server:
                for probe in ("livenessProbe", "readinessProbe"):
                    if not isinstance(container.get(probe), dict):
                        report.fail(where, f"{what}: {probe} is required")
                if role in AGORA_ROLES:
                    paths = {p: ((container.get(p) or {}).get("httpGet") or {}).get("path") for p in ("livenessProbe", "readinessProbe")}
                    if paths != {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}:
                        report.fail(where, f"{what}: liveness must probe /healthz and readiness /readyz, found {paths}")
            mounts = {m.get("mountPath"): m.get("name") for m in container.get("volumeMounts") or []}
            for path, vname in mounts.items():
                if vname not in volumes:
                    report.fail(where, f"{what}: volumeMount {path} names no volume {vname!r}")
            if "/tmp" not in mounts or "emptyDir" not in volumes.get(mounts["/tmp"], {}):
                report.fail(where, f"{what}: /tmp must be an emptyDir mount (read-only root filesystem)")
            for ref in container.get("envFrom") or []:
                cm = (ref.get("configMapRef") or {}).get("name")
                if cm and cm not in configmaps:
                    report.fail(where, f"{what}: envFrom names ConfigMap {cm!r}, which is not in this overlay")
            env = env_map(container)
            for name, entry in env.items():
                value = entry.get("value")
                if isinstance(value, str) and re.search(r"SECRET|PASSWORD|TOKEN|KEY", name or "") and "$(" not in value:
                    report.fail(where, f"{what}: env {name} carries a literal value; take it from a Secret")
                if isinstance(value, str) and re.search(r"://[^/:@$]+:[^@$(]+@", value):
                    report.fail(where, f"{what}: env {name} embeds a literal password in a URL")
            if role in AGORA_ROLES or role == "migrate":
                index_dir = config_values.get("INDEX_DIR")
                if role in AGORA_ROLES and (not index_dir or index_dir not in mounts or "emptyDir" not in volumes.get(mounts[index_dir], {})):
                    report.fail(where, f"{what}: INDEX_DIR ({index_dir}) must be an emptyDir mount")
                if "DATABASE_URL" not in env:
                    report.fail(where, f"{what}: DATABASE_URL is not set")
                if role in AGORA_ROLES:
                    if "READ_DATABASE_URL" not in env:
                        report.fail(where, f"{what}: READ_DATABASE_URL is not set")
                    secret_ref = ((env.get("JWT_SECRET") or {}).get("valueFrom") or {}).get("secretKeyRef")
                    if not secret_ref:
                        report.fail(where, f"{what}: JWT_SECRET must come from a secretKeyRef")
                for var, suffix in (("DATABASE_URL", "-rw"), ("READ_DATABASE_URL", "-ro")):
                    value = (env.get(var) or {}).get("value", "")
                    if value and not any(f"@{c}{suffix}" in value for c in clusters):
                        report.fail(where, f"{what}: {var} must point at the CloudNativePG service <cluster>{suffix} ({', '.join(clusters) or 'no Cluster'})")
                if role == "migrate" and container.get("args") != ["migrate"]:
                    report.fail(where, f"{what}: the migration Job must run `agora migrate`")
                if role in AGORA_ROLES and container.get("args") != [{"projector": "project"}.get(role, role)]:
                    report.fail(where, f"{what}: args must be the role subcommand, found {container.get('args')}")


def check_references(docs: list[dict], where: str, report: Report) -> None:
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    templates = [((t.get("metadata") or {}).get("labels") or {}, t) for _, t in pod_templates(docs)]

    def port_names(template: dict) -> set:
        return {p.get("name") for c in (template.get("spec") or {}).get("containers") or [] for p in c.get("ports") or []}

    def matching(selector: dict) -> list[dict]:
        return [t for labels, t in templates if selector_matches({"matchLabels": selector}, labels)]

    for name, svc in services.items():
        selector = (svc.get("spec") or {}).get("selector") or {}
        targets = matching(selector)
        if not targets:
            report.fail(where, f"Service/{name}: selector {selector} matches no pod template")
        for port in (svc.get("spec") or {}).get("ports") or []:
            target = port.get("targetPort")
            if isinstance(target, str) and any(target not in port_names(t) for t in targets):
                report.fail(where, f"Service/{name}: targetPort {target!r} is not a container port of the selected pods")

    for ing in (d for d in docs if d["kind"] == "Ingress"):
        routes = {}
        for rule in (ing.get("spec") or {}).get("rules") or []:
            for path in ((rule.get("http") or {}).get("paths")) or []:
                backend = (path.get("backend") or {}).get("service") or {}
                routes[path.get("path")] = backend.get("name")
                svc = services.get(backend.get("name"))
                if svc is None:
                    report.fail(where, f"{obj_id(ing)}: path {path.get('path')} routes to missing Service {backend.get('name')!r}")
                    continue
                pname = (backend.get("port") or {}).get("name")
                if pname and pname not in {p.get("name") for p in svc["spec"].get("ports") or []}:
                    report.fail(where, f"{obj_id(ing)}: Service {backend.get('name')} has no port {pname!r}")
        if routes.get("/api") != "agora-command" or routes.get("/graphql") != "agora-query":
            report.fail(where, f"{obj_id(ing)}: /api must route to agora-command and /graphql to agora-query, found {routes}")

    hpa_targets = {}
    for hpa in (d for d in docs if d["kind"] == "HorizontalPodAutoscaler"):
        ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        if ref.get("kind") != "Deployment" or ref.get("name") not in deployments:
            report.fail(where, f"{obj_id(hpa)}: scaleTargetRef names no Deployment in this overlay")
        hpa_targets[ref.get("name")] = hpa
    for role in ("command", "query"):
        name = f"agora-{role}"
        if name not in hpa_targets:
            report.fail(where, f"Deployment/{name}: needs a HorizontalPodAutoscaler")
        elif "replicas" in (deployments.get(name, {}).get("spec") or {}):
            report.fail(where, f"Deployment/{name}: drop spec.replicas, its HPA owns the count (every apply would reset it)")
    query_hpa = hpa_targets.get("agora-query")
    if query_hpa and (query_hpa["spec"].get("minReplicas") or 1) < 2:
        report.fail(where, "HorizontalPodAutoscaler/agora-query: minReplicas must be at least 2")
    projector = deployments.get("agora-projector")
    if projector is None or (projector.get("spec") or {}).get("replicas") != 2:
        report.fail(where, "Deployment/agora-projector: must run exactly 2 replicas (leader + standby)")
    for role in AGORA_ROLES:
        if f"agora-{role}" not in deployments:
            report.fail(where, f"Deployment/agora-{role} is missing")

    pdb_covered = set()
    for pdb in (d for d in docs if d["kind"] == "PodDisruptionBudget"):
        selector = (pdb.get("spec") or {}).get("selector") or {}
        for name, dep in deployments.items():
            labels = (dep["spec"]["template"].get("metadata") or {}).get("labels") or {}
            if selector_matches(selector, labels):
                pdb_covered.add(name)
    for name in deployments:
        if name not in pdb_covered:
            report.fail(where, f"Deployment/{name}: no PodDisruptionBudget selects it")

    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    default_deny = [
        p for p in policies
        if (p["spec"].get("podSelector") or {}) == {} and set(p["spec"].get("policyTypes") or []) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress") and not p["spec"].get("egress")
    ]
    if not default_deny:
        report.fail(where, "NetworkPolicy: no default deny (podSelector {} with Ingress and Egress and no rules)")
    dns = any(
        any(port.get("port") == 53 for rule in p["spec"].get("egress") or [] for port in rule.get("ports") or [])
        for p in policies
    )
    if not dns:
        report.fail(where, "NetworkPolicy: nothing allows DNS egress (port 53)")
    postgres = any(
        any(port.get("port") == 5432 for rule in p["spec"].get("egress") or [] for port in rule.get("ports") or [])
        and ((p["spec"].get("podSelector") or {}).get("matchLabels") or {}).get("app.kubernetes.io/name") == "agora"
        for p in policies
    )
    if not postgres:
        report.fail(where, "NetworkPolicy: Agora pods may not reach PostgreSQL (egress 5432)")
    ingress_roles = set()
    for p in policies:
        for rule in p["spec"].get("ingress") or []:
            if any((peer.get("namespaceSelector") or {}).get("matchLabels", {}).get("kubernetes.io/metadata.name") == "ingress-nginx" for peer in rule.get("from") or []):
                for expr in (p["spec"].get("podSelector") or {}).get("matchExpressions") or []:
                    if expr.get("key") == "app.kubernetes.io/component" and expr.get("operator") == "In":
                        ingress_roles.update(expr.get("values") or [])
                role = ((p["spec"].get("podSelector") or {}).get("matchLabels") or {}).get("app.kubernetes.io/component")
                if role:
                    ingress_roles.add(role)
    if not {"command", "query"} <= ingress_roles:
        report.fail(where, f"NetworkPolicy: the ingress controller must reach command and query (allowed: {sorted(ingress_roles)})")

    jobs = [d for d in docs if d["kind"] == "Job" and ((d.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/component") == "migrate"]
    if len(jobs) != 1:
        report.fail(where, "Job: exactly one migration Job (app.kubernetes.io/component=migrate) expected")
    clusters = [d for d in docs if d["kind"] == "Cluster"]
    if len(clusters) != 1 or (clusters[0].get("spec") or {}).get("instances") != 3:
        report.fail(where, "Cluster: exactly one CloudNativePG Cluster with 3 instances expected")


def check_secrets(docs: list[dict], where: str, report: Report) -> None:
    for doc in docs:
        if doc["kind"] == "Secret" and (doc.get("data") or doc.get("stringData")):
            report.fail(where, f"{obj_id(doc)} carries values; Secrets are created out of band (deploy/README.md)")


def check_namespaces(docs: list[dict], where: str, namespace: str | None, report: Report) -> None:
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass", "StorageClass", "IngressClass"}
    for doc in docs:
        if doc["kind"] in cluster_scoped:
            continue
        ns = (doc.get("metadata") or {}).get("namespace")
        if namespace and ns != namespace:
            report.fail(where, f"{obj_id(doc)} is in namespace {ns!r}, expected {namespace!r}")


def validate_manifests(docs: list[dict], where: str, report: Report, profile: str, namespace: str | None = None) -> None:
    strict_tag = profile == "prod"
    clusters = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Cluster"}
    pod_ports = [
        ((t.get("metadata") or {}).get("labels") or {}, {p.get("name") for c in (t.get("spec") or {}).get("containers") or [] for p in c.get("ports") or []})
        for _, t in pod_templates(docs)
    ]
    counts: dict[str, int] = {}
    for doc in docs:
        kind = doc["kind"]
        if schema_check(doc, where, report):
            counts[f"{kind} (schema {KUBERNETES_VERSION})"] = counts.get(f"{kind} (schema {KUBERNETES_VERSION})", 0) + 1
            continue
        if kind == "Cluster" and doc["apiVersion"].startswith("postgresql.cnpg.io/"):
            check_cnpg_cluster(doc, where, report, strict_tag)
        elif kind == "ScheduledBackup" and doc["apiVersion"].startswith("postgresql.cnpg.io/"):
            check_cnpg_scheduled_backup(doc, where, report, clusters)
        elif kind == "PrometheusRule" and doc["apiVersion"] == "monitoring.coreos.com/v1":
            check_prometheus_rule(doc, where, report)
        elif kind == "PodMonitor" and doc["apiVersion"] == "monitoring.coreos.com/v1":
            check_pod_monitor(doc, where, report, pod_ports)
        else:
            report.fail(where, f"{obj_id(doc)} ({doc['apiVersion']}): no schema and no checker; add one to deploy/validate.py")
            continue
        counts[f"{kind} (CRD checker)"] = counts.get(f"{kind} (CRD checker)", 0) + 1
    check_secrets(docs, where, report)
    check_namespaces(docs, where, namespace, report)
    check_workloads(docs, where, report, strict_tag)
    check_references(docs, where, report)
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    report.ok(f"{where}: {len(docs)} objects: {summary}")


# ---------------------------------------------------------------------------------------------
# The repository: overlays, compose, workflow, Dockerfile, scripts, dashboards
# ---------------------------------------------------------------------------------------------

def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)


def validate_overlays(report: Report) -> None:
    overlays = sorted(p.parent for p in (DEPLOY / "k8s" / "overlays").glob("*/kustomization.yaml"))
    if not overlays:
        report.fail("deploy/k8s/overlays", "no overlays found")
    for overlay in overlays:
        name = overlay.name
        where = f"overlay {name}"
        result = run(["bash", str(DEPLOY / "render.sh"), name])
        if result.returncode != 0:
            report.fail(where, f"kubectl kustomize failed: {result.stderr.strip()}")
            continue
        docs = load_yaml_docs(result.stdout, where, report)
        kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
        validate_manifests(docs, where, report, "prod" if name == "prod" else "dev", kustomization.get("namespace"))
        pinned = run(["bash", str(DEPLOY / "render.sh"), name, PINNED_TEST_IMAGE])
        if pinned.returncode != 0:
            report.fail(where, f"render.sh with a pinned image failed: {pinned.stderr.strip()}")
            continue
        images = {
            c.get("image") for _, t in pod_templates(load_yaml_docs(pinned.stdout, where, report))
            for c in (t.get("spec") or {}).get("containers") or []
        }
        if images != {PINNED_TEST_IMAGE}:
            report.fail(where, f"render.sh {name} <image@digest> must pin every Agora container, found {sorted(images)}")
        else:
            report.ok(f"{where}: render.sh pins every container to image@digest")
        refused = run(["bash", str(DEPLOY / "render.sh"), name, "ghcr.io/validate/agora:latest"])
        if refused.returncode == 0:
            report.fail(where, "render.sh accepted an image with :latest")


def validate_compose(report: Report) -> None:
    where = "deploy/compose.yaml"
    path = DEPLOY / "compose.yaml"
    try:
        compose = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        report.fail(where, f"cannot parse: {error}")
        return
    services = (compose or {}).get("services") or {}
    postgres, agora = services.get("postgres"), services.get("agora")
    if not postgres or not str(postgres.get("image", "")).startswith("postgres:15"):
        report.fail(where, "service postgres must run a postgres:15 image")
    elif not (postgres.get("healthcheck") or {}).get("test"):
        report.fail(where, "service postgres needs a healthcheck")
    if not agora:
        report.fail(where, "service agora is missing")
        return
    if ((agora.get("depends_on") or {}).get("postgres") or {}).get("condition") != "service_healthy":
        report.fail(where, "agora must depend on postgres with condition service_healthy")
    build = agora.get("build") or {}
    dockerfile = (path.parent / build.get("context", ".") / build.get("dockerfile", "Dockerfile")).resolve()
    if not dockerfile.is_file():
        report.fail(where, f"agora build points at a missing Dockerfile: {dockerfile}")
    env = agora.get("environment") or {}
    if not str(env.get("DATABASE_URL", "")).startswith("postgres://") or "@postgres:" not in str(env.get("DATABASE_URL", "")):
        report.fail(where, "agora DATABASE_URL must point at the postgres service")
    if env.get("JWT_SECRET"):
        report.fail(where, "JWT_SECRET must not have a value in the file")
    if (agora.get("command") or ["serve"])[0] != "serve":
        report.fail(where, "agora must run `serve`")
    kurrent = services.get("kurrentdb")
    if not kurrent or not kurrent.get("profiles"):
        report.fail(where, "a kurrentdb service behind a profile is expected (EVENT_STORE=eventstoredb)")
    for name, svc in services.items():
        for port in svc.get("ports") or []:
            if not str(port).startswith("127.0.0.1:"):
                report.fail(where, f"service {name} publishes {port} on all interfaces; bind to 127.0.0.1")
    report.ok(f"{where}: {len(services)} services ({', '.join(services)}), dependencies and health checks")


def validate_workflow(report: Report) -> None:
    where = ".github/workflows/ci-cd.yaml"
    path = REPO / where
    try:
        workflow = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        report.fail(where, f"cannot parse: {error}")
        return
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    if not isinstance(triggers, dict) or "push" not in triggers or "pull_request" not in triggers:
        report.fail(where, "must run on push and pull_request")
    jobs = workflow.get("jobs") or {}
    for name, job in jobs.items():
        if "runs-on" not in job or not isinstance(job.get("steps"), list):
            report.fail(where, f"job {name} needs runs-on and steps")
            continue
        needs = job.get("needs") or []
        for need in [needs] if isinstance(needs, str) else needs:
            if need not in jobs:
                report.fail(where, f"job {name} needs unknown job {need}")
        for step in job["steps"]:
            uses = step.get("uses")
            if uses and not re.match(r"^[\w.-]+/[\w./-]+@[\w.-]+$", uses):
                report.fail(where, f"job {name}: action {uses!r} is not pinned to a version")
            for script in re.findall(r"(?:bash\s+)?((?:\.ci|deploy)/[\w./-]+)", step.get("run") or ""):
                if not (REPO / script).is_file():
                    report.fail(where, f"job {name} runs {script}, which does not exist")
    text = path.read_text()
    test = jobs.get("test") or {}
    if not str(((test.get("services") or {}).get("postgres") or {}).get("image", "")).startswith("postgres:15"):
        report.fail(where, "the test job needs a postgres:15 service")
    if ".ci/run" not in json.dumps(test):
        report.fail(where, "the test job must run .ci/run")
    if "docker/build-push-action" not in text or "deploy/Dockerfile" not in text or "type=gha" not in text:
        report.fail(where, "the image job must build deploy/Dockerfile with build-push-action and a cache")
    for job_name, overlay in (("deploy-dev", "dev"), ("deploy-prod", "prod")):
        job = jobs.get(job_name) or {}
        if not job.get("environment"):
            report.fail(where, f"{job_name} must name an environment (approvals for production)")
        if f"deploy/deploy.sh {overlay}" not in json.dumps(job):
            report.fail(where, f"{job_name} must run deploy/deploy.sh {overlay}")
    if "refs/tags/v" not in json.dumps(jobs.get("deploy-prod") or {}) or "refs/heads/main" not in json.dumps(jobs.get("deploy-dev") or {}):
        report.fail(where, "dev deploys from main, prod from v* tags")
    deploy_script = (DEPLOY / "deploy.sh").read_text()
    for needle in ("rollout status", "--timeout", "rollout undo", "agora-migrate"):
        if needle not in deploy_script:
            report.fail("deploy/deploy.sh", f"must use `{needle}`")
    report.ok(f"{where}: {len(jobs)} jobs ({', '.join(jobs)}), triggers, pinned actions, scripts exist")


def validate_dockerfile(report: Report) -> None:
    where = "deploy/Dockerfile"
    lines = []
    for raw in re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text()).splitlines():
        if raw.strip() and not raw.lstrip().startswith("#"):
            lines.append(raw.strip())
    args = {}
    stages, current, copies, stage_lines = [], None, [], {}
    for line in lines:
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "ARG" and current is None:
            key, _, value = rest.partition("=")
            args[key] = value
        if op == "FROM":
            parts = rest.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            current = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(stages))
            if image not in [s for s, _ in stages]:
                check_image_ref(image, where, f"base image of stage {current}", report, strict_tag=True)
            stages.append((current, image))
            stage_lines[current] = []
        elif current is not None:
            stage_lines[current].append((op, rest))
            if op == "COPY":
                copies.append((current, rest))
    names = [s for s, _ in stages]
    for stage, rest in copies:
        match = re.search(r"--from=(\S+)", rest)
        if match and match.group(1) not in names:
            report.fail(where, f"COPY in stage {stage} uses unknown stage {match.group(1)}")
    if len(stages) < 2:
        report.fail(where, "must be multi-stage")
        return
    final = stage_lines[names[-1]]
    users = [rest for op, rest in final if op == "USER"]
    if not users or not re.match(r"^[1-9][0-9]*(:[0-9]+)?$", users[-1]):
        report.fail(where, "the runtime stage must end as a numeric non-root USER")
    if ("ENTRYPOINT", '["agora"]') not in final or ("CMD", '["serve"]') not in final:
        report.fail(where, 'the runtime stage needs ENTRYPOINT ["agora"] and CMD ["serve"]')
    if any(op == "RUN" for op, _ in final):
        report.fail(where, "the runtime stage must not RUN anything (no shell in it)")
    builder = [(op, rest) for stage in names[:-1] for op, rest in stage_lines[stage]]
    cook = next((i for i, (op, rest) in enumerate(builder) if op == "RUN" and "cargo chef cook" in rest), None)
    full_copy = [i for i, (op, rest) in enumerate(builder) if op == "COPY" and rest.split()[-2:] == [".", "."]]
    if cook is None or not any(i > cook for i in full_copy):
        report.fail(where, "dependencies must be cooked (cargo chef cook) before the sources are copied")
    if not any(op == "RUN" and "--release" in rest and "--bin agora" in rest and "cargo build" in rest for op, rest in builder):
        report.fail(where, "must run cargo build --release --bin agora")
    ignore = (REPO / ".dockerignore").read_text().split() if (REPO / ".dockerignore").is_file() else []
    if "target" not in ignore and "/target" not in ignore:
        report.fail(".dockerignore", "must exclude target/")
    report.ok(f"{where}: {len(stages)} stages ({', '.join(names)}), cached dependency layer, non-root runtime")


def validate_scripts(report: Report) -> None:
    scripts = sorted(DEPLOY.glob("*.sh"))
    for script in scripts:
        result = run(["bash", "-n", str(script)])
        if result.returncode != 0:
            report.fail(str(script.relative_to(REPO)), f"bash -n: {result.stderr.strip()}")
    report.ok(f"deploy/*.sh: {len(scripts)} scripts parse (bash -n)")


# A stand-in for kubectl that plays a cluster from a JSON state file, to test deploy.sh's control
# flow (order of steps, waiting, rollback) offline. `kubectl kustomize` goes to the real kubectl.
FAKE_KUBECTL = r"""#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
if args[:1] == ["kustomize"]:
    os.execv(os.environ["REAL_KUBECTL"], ["kubectl"] + args)
if args[:1] == ["--namespace"]:
    args = args[2:]
path = os.environ["FAKE_STATE"]
state = json.load(open(path))
state["calls"].append(" ".join(a for a in args if not a.startswith("/")))
scenario = state["scenario"]
rc = 0
verb = args[0]
if verb == "apply":
    selector = args[args.index("--selector") + 1] if "--selector" in args else "all"
    if selector == "all":
        for d in state["revisions"]:
            state["revisions"][d] = str(int(state["revisions"][d] or 0) + 1)
elif verb == "get" and args[1] == "job":
    want = "Complete" if "Complete" in args[-1] else "Failed"
    ok = scenario != "migrate-fails"
    print("True" if (want == "Complete") == ok else "", end="")
elif verb == "get" and args[1] == "deployment":
    rev = state["revisions"].get(args[2], "")
    if rev == "":
        rc = 1
    print(rev, end="")
elif verb == "rollout" and args[1] == "status":
    rc = 1 if scenario == "rollout-fails" and args[2] == "deployment/agora-query" and not state.get("undone") else 0
elif verb == "rollout" and args[1] == "undo":
    state["undone"] = True
json.dump(state, open(path, "w"))
sys.exit(rc)
"""


def validate_deploy_script(report: Report) -> None:
    real = shutil.which("kubectl")
    where = "deploy/deploy.sh"
    expectations = {
        # scenario: (exit status, calls that must appear in this order, calls that must not appear)
        "success": (0, ["apply -f --selector app.kubernetes.io/component notin (command,query,projector,migrate)",
                        "wait cluster.postgresql.cnpg.io/agora-db", "delete job agora-migrate",
                        "apply -f --selector app.kubernetes.io/component=migrate", "apply -f",
                        "rollout status deployment/agora-command", "rollout status deployment/agora-projector"],
                    ["rollout undo"]),
        "migrate-fails": (1, ["apply -f --selector app.kubernetes.io/component=migrate", "logs job/agora-migrate"],
                          ["rollout status", "rollout undo"]),
        "rollout-fails": (1, ["rollout status deployment/agora-query", "rollout undo deployment/agora-command",
                              "rollout undo deployment/agora-query", "rollout undo deployment/agora-projector"], []),
        # First deployment into a namespace: nothing to roll back to, but still a failure.
        "first-rollout-fails": (1, ["rollout status deployment/agora-query"], ["rollout undo"]),
    }
    with tempfile.TemporaryDirectory() as tmp:
        fake = Path(tmp) / "kubectl"
        fake.write_text(FAKE_KUBECTL)
        fake.chmod(0o755)
        for scenario, (status, ordered, absent) in expectations.items():
            state = Path(tmp) / f"{scenario}.json"
            revision = "" if scenario.startswith("first-") else "1"
            state.write_text(json.dumps({"scenario": scenario.removeprefix("first-"), "calls": [],
                                         "revisions": {d: revision for d in ("agora-command", "agora-query", "agora-projector")}}))
            env = {**os.environ, "PATH": f"{tmp}:{os.environ.get('PATH', '')}",
                   "REAL_KUBECTL": real, "FAKE_STATE": str(state), "MIGRATE_TIMEOUT_SECONDS": "20"}
            result = subprocess.run(["bash", str(DEPLOY / "deploy.sh"), "prod", PINNED_TEST_IMAGE], cwd=REPO,
                                    capture_output=True, text=True, env=env, timeout=120)
            calls = json.loads(state.read_text())["calls"]
            position = 0
            for expected in ordered:
                found = next((i for i in range(position, len(calls)) if calls[i].startswith(expected)), None)
                if found is None:
                    report.fail(where, f"scenario {scenario}: expected `kubectl {expected}` (in order); calls were {calls}")
                    break
                position = found + 1
            for unwanted in absent:
                if any(c.startswith(unwanted) for c in calls):
                    report.fail(where, f"scenario {scenario}: must not run `kubectl {unwanted}`; calls were {calls}")
            if result.returncode != status:
                report.fail(where, f"scenario {scenario}: exit {result.returncode}, expected {status}: {result.stderr.strip()[-500:]}")
    report.ok(f"{where}: step order, migration failure and rollback on a failed rollout ({len(expectations)} scenarios against a stand-in kubectl)")


def validate_no_committed_secrets(report: Report) -> None:
    """Every YAML file under deploy/ and .github/, rendered or not: no Secret values, no keys."""
    files = sorted(p for d in (DEPLOY, REPO / ".github") for p in d.glob("**/*") if p.is_file() and p.suffix in (".yaml", ".yml", ".json", ".env", ".sh", ""))
    for path in files:
        where = str(path.relative_to(REPO))
        text = path.read_text(errors="replace")
        if "-----BEGIN" in text and "PRIVATE KEY" in text:
            report.fail(where, "contains a private key")
        if path.suffix in (".yaml", ".yml"):
            try:
                docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
            except yaml.YAMLError as error:
                report.fail(where, f"not valid YAML: {error}")
                continue
            for doc in docs:
                if doc.get("kind") == "Secret" and (doc.get("data") or doc.get("stringData")):
                    report.fail(where, f"{obj_id(doc)} carries values; create Secrets out of band (deploy/README.md)")
    report.ok(f"deploy/, .github/: {len(files)} files hold no Secret values or private keys")


def validate_dashboards_and_metrics(report: Report) -> None:
    dashboards = sorted((DEPLOY / "observability").glob("*.json"))
    referenced: set[str] = set()
    for path in dashboards:
        where = str(path.relative_to(REPO))
        try:
            dash = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            report.fail(where, f"not JSON: {error}")
            continue
        if not dash.get("uid") or not dash.get("title") or not dash.get("panels"):
            report.fail(where, "needs uid, title and panels")
        for panel in dash.get("panels") or []:
            exprs = [t.get("expr") for t in panel.get("targets") or []]
            if not exprs or not all(isinstance(e, str) and e and balanced(e) for e in exprs):
                report.fail(where, f"panel {panel.get('title')!r}: every target needs a well-formed expr")
            referenced.update(m for e in exprs if isinstance(e, str) for m in re.findall(r"\bagora_[a-z0-9_]+", e))
        report.ok(f"{where}: {len(dash.get('panels') or [])} panels")
    for path in sorted((DEPLOY / "observability").glob("*.yaml")):
        referenced.update(re.findall(r"\bagora_[a-z0-9_]+", path.read_text()))
    # Alert/dashboard series vs. what the Rust code registers. A warning, not a failure: the
    # metrics facade builds names at run time in places, and histograms grow _bucket/_sum/_count.
    sources = [p for p in REPO.glob("**/*.rs") if "target" not in p.parts and ".git" not in p.parts]
    emitted = set()
    for path in sources:
        try:
            emitted.update(re.findall(r"\"(agora_[a-z0-9_]+)\"", path.read_text()))
        except (OSError, UnicodeDecodeError):
            continue
    base = lambda name: re.sub(r"_(bucket|sum|count)$", "", name)
    unknown = sorted(n for n in referenced if base(n) not in emitted and n not in emitted)
    if unknown:
        report.warn("deploy/observability", f"{len(unknown)} metric(s) used by alerts/dashboard not found in the Rust sources: {', '.join(unknown)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifests", nargs="+", type=Path, help="validate these rendered manifest files only")
    parser.add_argument("--profile", choices=("dev", "prod"), default="prod", help="rules for --manifests (prod forbids mutable tags)")
    options = parser.parse_args()

    report = Report()
    if options.manifests:
        for path in options.manifests:
            validate_manifests(load_yaml_docs(path.read_text(), str(path), report), str(path), report, options.profile)
    else:
        if shutil.which("kubectl") is None:
            missing_tool("kubectl (for `kubectl kustomize`); install it from your distribution or https://kubernetes.io/docs/tasks/tools/")
        validate_overlays(report)
        validate_compose(report)
        validate_workflow(report)
        validate_dockerfile(report)
        validate_scripts(report)
        validate_deploy_script(report)
        validate_no_committed_secrets(report)
        validate_dashboards_and_metrics(report)

    print(f"validate: kubernetes-validate {kubernetes_validate.version.__version__ if hasattr(kubernetes_validate, 'version') else '?'}, schemas of Kubernetes {KUBERNETES_VERSION} (strict)")
    for line in report.lines:
        print(f"  checked  {line}")
    for line in report.warnings:
        print(f"  WARN     {line}")
    for line in report.problems:
        print(f"  FAIL     {line}")
    if report.problems:
        print(f"validate: {len(report.problems)} problem(s)")
        return 1
    print("validate: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
