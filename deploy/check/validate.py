"""Offline checks of the deployment artefacts; scripts/check-deploy.sh runs this after yamllint
and hadolint, with the tools it installed into .services/venv. Nothing here uses the network.

What it checks, and against what:
- every Kubernetes manifest under deploy/k8s against the Kubernetes JSON schemas bundled in the
  `kubernetes-validate` package, strict (an unknown field is an error), for the oldest and the
  newest Kubernetes version supported (MIN_KUBERNETES, and the newest the package bundles);
- KEDA's ScaledObject and TriggerAuthentication against the models `cloudcoil.models.keda`
  generates from KEDA's CRDs, turned into a JSON schema made strict the same way; the trigger
  `metadata` (a free-form map in the CRD) against the parameters KEDA documents for the three
  triggers used here;
- each variant (base/ + one of aws/, rabbitmq/, postgresql/ + its Secret template) as one set:
  names are unique, and every reference resolves (service account, ConfigMaps and Secrets,
  Secret keys, autoscaler targets, TriggerAuthentications, Service selectors and ports, probe
  ports), autoscaled Deployments leave `replicas` to their autoscaler, pods run as the image's
  non-root user with a read-only root filesystem and writable data and /tmp volumes, the grace
  period outlasts the configured shutdown, and the KEDA triggers watch the queue kind, queue
  URLs, region and queue name the variant's ConfigMap configures;
- every VIDSNAP_SECTION__KEY the manifests and docs set is a key vidsnap.example.toml lists;
- the PostgreSQL trigger's query names a table, columns and statuses the migrations define;
- deploy/Dockerfile: the Rust image matches rust-toolchain.toml, the runtime stage installs
  ffmpeg, runs as the numeric uid the manifests use, exposes 8080, starts `vidsnap`;
- docs/ and deploy/README.md: JSON examples parse and relative links point at files;
- the alert rules (deploy/k8s/monitoring) and the CloudWatch alarm example: see alerts.py;
- itself: broken copies of real manifests must fail the schema checks (see `self_test`).

Usage: python validate.py REPO_ROOT  (exit 1 and one line per problem when anything is wrong)
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import yaml
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

import alerts

MIN_KUBERNETES = "1.29.0"
VARIANTS = ("aws", "rabbitmq", "postgresql")
KEDA_KINDS = ("ScaledObject", "TriggerAuthentication", "ClusterTriggerAuthentication")
ROLES = ("api", "worker", "scheduler")
# The binary's defaults for the two shutdown settings (crates/vidsnap/src/config.rs, worker).
DEFAULT_SHUTDOWN_SECONDS = 30
DEFAULT_WORKER_GRACE_SECONDS = 20

# KEDA trigger parameters (keda.sh/docs/2.16/scalers/...): which `metadata` keys each trigger
# accepts, which it needs, and which must be whole numbers or booleans. Deprecated names are
# left out on purpose (queueLength on rabbitmq, identityOwner on aws-sqs-queue).
TRIGGERS: dict[str, dict[str, Any]] = {
    "aws-sqs-queue": {
        "allowed": {"queueURL", "queueURLFromEnv", "queueLength", "activationQueueLength",
                    "awsRegion", "awsEndpoint", "scaleOnInFlight", "scaleOnDelayed"},
        "required": [{"queueURL", "queueURLFromEnv"}, {"awsRegion"}],
        "integers": {"queueLength", "activationQueueLength"},
        "booleans": {"scaleOnInFlight", "scaleOnDelayed"},
    },
    "rabbitmq": {
        "allowed": {"host", "hostFromEnv", "protocol", "mode", "value", "activationValue",
                    "queueName", "vhostName", "useRegex", "excludeUnacknowledged", "pageSize",
                    "operation", "unsafeSsl", "timeout", "usernameFromEnv", "passwordFromEnv"},
        "required": [{"queueName"}, {"mode"}, {"value"}],
        "numbers": {"value", "activationValue"},
        "booleans": {"useRegex", "excludeUnacknowledged", "unsafeSsl"},
        "enums": {"protocol": {"auto", "amqp", "http"}, "mode": {"QueueLength", "MessageRate"},
                  "operation": {"sum", "max", "avg"}},
        # Where the broker's address may come from: metadata, or the TriggerAuthentication.
        "connection": ({"host", "hostFromEnv"}, {"host"}),
    },
    "postgresql": {
        "allowed": {"query", "targetQueryValue", "activationTargetQueryValue",
                    "connectionFromEnv", "host", "port", "userName", "passwordFromEnv",
                    "dbName", "sslmode"},
        "required": [{"query"}, {"targetQueryValue"}],
        "numbers": {"targetQueryValue", "activationTargetQueryValue"},
        "connection": ({"connectionFromEnv", "host"}, {"connection", "host"}),
    },
}


@dataclass
class Doc:
    path: Path
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", "?"))

    @property
    def name(self) -> str:
        return str((self.body.get("metadata") or {}).get("name", "?"))


@dataclass
class Report:
    root: Path
    problems: list[str] = field(default_factory=list)

    def add(self, where: Path | Doc | str, message: str) -> None:
        if isinstance(where, Doc):
            where = f"{self.rel(where.path)}: {where.kind}/{where.name}"
        elif isinstance(where, Path):
            where = self.rel(where)
        # base/ is checked once per variant: say each problem once.
        if f"{where}: {message}" not in self.problems:
            self.problems.append(f"{where}: {message}")

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; the API server refuses them. So do we."""


def _mapping(loader: UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    keys = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in keys:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        keys.add(key)
    return loader.construct_mapping(node, deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_docs(path: Path, report: Report) -> list[Doc]:
    try:
        with path.open() as f:
            bodies = list(yaml.load_all(f, Loader=UniqueKeyLoader))
    except yaml.YAMLError as e:
        report.add(path, f"not valid YAML: {e}")
        return []
    docs = []
    for body in bodies:
        if body is None:
            continue
        if not isinstance(body, dict):
            report.add(path, "a document is not a mapping")
            continue
        docs.append(Doc(path, body))
    return docs


# --- schemas ----------------------------------------------------------------------------------

def error_text(error: ValidationError) -> str:
    """The most specific message of an error: anyOf/oneOf failures name their best branch."""
    while error.context:
        # Optional fields are `anyOf: [X, null]`: the null branch never explains anything.
        branches = [e for e in error.context
                    if not (e.validator == "type" and e.validator_value == "null")]
        error = max(branches or error.context, key=lambda e: len(e.absolute_path))
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"{where.lstrip('.') or '(document)'}: {error.message}"


class KubernetesSchemas:
    """The strict schemas kubernetes-validate bundles, read from its package directly so that
    every error (not only the first) is reported and each file is parsed once."""

    def __init__(self) -> None:
        from kubernetes_validate import utils

        self.utils = utils
        newest = utils.latest_version()
        self.versions = [MIN_KUBERNETES, newest if newest.count(".") == 2 else newest + ".0"]
        self.registries: dict[str, Registry] = {}
        self.validators: dict[str, jsonschema.Draft202012Validator | None] = {}

    def _validator(self, version: str, kind: str, api_version: str):
        folder = f"kubernetes-json-schema/v{version}-local-strict"
        # rbac.authorization.k8s.io/v1 -> rbac-v1, the package's file naming.
        short = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
        name = f"{folder}/{kind.lower()}-{short}.json"
        if name not in self.validators:
            if version not in self.registries:
                definitions = self.utils.schema_contents(f"{folder}/_definitions.json", version)
                self.registries[version] = Resource.from_contents(definitions) @ Registry()
            try:
                schema = self.utils.schema_contents(name, version)
            except FileNotFoundError:
                self.validators[name] = None
            else:
                # Schemas carry an $id and refer to _definitions.json by its $id.
                registry = Resource.from_contents(schema) @ self.registries[version]
                self.validators[name] = jsonschema.Draft202012Validator(schema, registry=registry)
        return self.validators[name]

    def errors(self, body: dict[str, Any]) -> Iterator[str]:
        api_version = str(body.get("apiVersion", ""))
        for version in self.versions:
            validator = self._validator(version, str(body["kind"]), api_version)
            if validator is None:
                yield f"no Kubernetes {version[:-2]} schema for {body['kind']} in {api_version}"
                continue
            for error in validator.iter_errors(body):
                yield f"{error_text(error)} (Kubernetes {version[:-2]} schema)"


class KedaSchemas:
    """KEDA's kinds as JSON schemas from the cloudcoil models (generated from KEDA's CRDs),
    with `additionalProperties: false` wherever properties are listed: kubectl's default
    server-side field validation (strict) refuses unknown fields of custom resources too."""

    def __init__(self) -> None:
        from importlib.metadata import version

        import cloudcoil.models.keda.v1alpha1 as keda

        self.version = version("cloudcoil.models.keda")
        self.validators = {
            kind: jsonschema.Draft202012Validator(
                self._strict(getattr(keda, kind).model_json_schema(by_alias=True)))
            for kind in KEDA_KINDS
        }

    @classmethod
    def _strict(cls, node: Any) -> Any:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                cls._strict(value)
        elif isinstance(node, list):
            for value in node:
                cls._strict(value)
        return node

    def errors(self, body: dict[str, Any]) -> Iterator[str]:
        if body.get("apiVersion") != "keda.sh/v1alpha1":
            yield f"KEDA kinds are keda.sh/v1alpha1, not {body.get('apiVersion')}"
            return
        for error in self.validators[body["kind"]].iter_errors(body):
            yield f"{error_text(error)} (KEDA schema, cloudcoil.models.keda {self.version})"


def check_document(doc: Doc, k8s: KubernetesSchemas, keda: KedaSchemas,
                   rules: alerts.RuleSchema, report: Report) -> None:
    body = doc.body
    for key in ("apiVersion", "kind"):
        if not isinstance(body.get(key), str):
            report.add(doc, f"`{key}` is missing")
            return
    if not (body.get("metadata") or {}).get("name"):
        report.add(doc, "metadata.name is missing")
    if "namespace" in (body.get("metadata") or {}):
        report.add(doc, "metadata.namespace is set: the manifests are applied with -n NAMESPACE")
    if body["kind"] == "PrometheusRule":
        for message in rules.errors(body, error_text):
            report.add(doc, message)
        return
    schema = keda if body["kind"] in KEDA_KINDS else k8s
    for message in schema.errors(body):
        report.add(doc, message)


# --- one variant as a whole -------------------------------------------------------------------

def pod_spec(doc: Doc) -> dict[str, Any]:
    return ((doc.body.get("spec") or {}).get("template") or {}).get("spec") or {}


def env_value(doc: Doc, name: str, config: dict[str, str]) -> str | None:
    """What a container of the Deployment sees for NAME: `env` wins over `envFrom`."""
    for container in pod_spec(doc).get("containers") or []:
        for env in container.get("env") or []:
            if env.get("name") == name and "value" in env:
                return str(env["value"])
    return config.get(name)


def check_variant(variant: str, docs: list[Doc], uid: int | None, report: Report) -> None:
    label = f"variant {variant}"
    by_kind: dict[str, dict[str, Doc]] = {}
    for doc in docs:
        names = by_kind.setdefault(doc.kind, {})
        if doc.name in names:
            report.add(doc, f"{label}: a second {doc.kind} named {doc.name} "
                            f"(also in {report.rel(names[doc.name].path)})")
        names[doc.name] = doc

    def named(kind: str) -> dict[str, Doc]:
        return by_kind.get(kind, {})

    secret_keys = {
        name: set((d.body.get("stringData") or {}) | (d.body.get("data") or {}))
        for name, d in named("Secret").items()
    }
    config: dict[str, str] = {}
    for cm in named("ConfigMap").values():
        config.update({k: str(v) for k, v in (cm.body.get("data") or {}).items()})

    # Autoscalers: targets exist, one autoscaler per Deployment, no `replicas` beside one.
    scaled: dict[str, Doc] = {}
    for doc in [*named("HorizontalPodAutoscaler").values(), *named("ScaledObject").values()]:
        target = (doc.body.get("spec") or {}).get("scaleTargetRef") or {}
        name = target.get("name")
        if target.get("kind", "Deployment") != "Deployment" or name not in named("Deployment"):
            report.add(doc, f"{label}: scaleTargetRef names no Deployment of this variant")
            continue
        if name in scaled:
            report.add(doc, f"{label}: Deployment {name} is also scaled by "
                            f"{scaled[name].kind}/{scaled[name].name}")
        scaled[name] = doc
        if "replicas" in (named("Deployment")[name].body.get("spec") or {}):
            report.add(named("Deployment")[name],
                       f"sets `replicas` although {doc.kind}/{doc.name} scales it "
                       "(every `kubectl apply` would reset the count)")

    roles: dict[str, Doc] = {}
    pod_labels: dict[str, dict[str, str]] = {}
    for deployment in named("Deployment").values():
        spec = pod_spec(deployment)
        pod_labels[deployment.name] = (((deployment.body.get("spec") or {}).get("template")
                                        or {}).get("metadata") or {}).get("labels") or {}
        role = None
        account = spec.get("serviceAccountName")
        if account not in named("ServiceAccount"):
            report.add(deployment, f"{label}: serviceAccountName {account!r} is not defined")
        pod_security = spec.get("securityContext") or {}
        volumes = {v.get("name"): v for v in spec.get("volumes") or []}
        for container in spec.get("containers") or []:
            where = f"{report.rel(deployment.path)}: Deployment/{deployment.name}: " \
                    f"container {container.get('name')}"
            args = [str(a) for a in container.get("args") or []]
            role = args[args.index("--role") + 1] if "--role" in args[:-1] else None
            if args[:1] != ["serve"] or role not in ROLES:
                report.add(where, f"args must be `serve --role {'|'.join(ROLES)}`, not {args}")
            elif role in roles:
                report.add(where, f"a second Deployment with --role {role} "
                                  f"(also {roles[role].name})")
            else:
                roles[role] = deployment
            for source in container.get("envFrom") or []:
                for ref_kind, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                    ref = source.get(ref_kind)
                    if ref and ref.get("name") not in named(kind) and not ref.get("optional"):
                        report.add(where, f"{label}: {kind} {ref.get('name')!r} is not defined")
            for env in container.get("env") or []:
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref and not ref.get("optional") and \
                        ref.get("key") not in secret_keys.get(ref.get("name"), set()):
                    report.add(where, f"{label}: no key {ref.get('key')!r} in Secret "
                                      f"{ref.get('name')!r}")
            ports = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                port = ((container.get(probe) or {}).get("httpGet") or {}).get("port")
                if port is not None and port not in ports and port not in ports.values():
                    report.add(where, f"{probe} uses port {port!r}, which the container lacks")
            if ((container.get("readinessProbe") or {}).get("httpGet") or {}).get("path") \
                    != "/readyz":
                report.add(where, "readinessProbe must be GET /readyz")
            if ((container.get("livenessProbe") or {}).get("httpGet") or {}).get("path") \
                    != "/healthz":
                report.add(where, "livenessProbe must be GET /healthz")
            listen = env_value(deployment, "VIDSNAP_SERVER__LISTEN", config) or ""
            if not listen.endswith(":8080") or 8080 not in ports.values():
                report.add(where, "must listen on and expose port 8080 (server.listen)")
            security = container.get("securityContext") or {}
            if not (pod_security.get("runAsNonRoot") or security.get("runAsNonRoot")):
                report.add(where, "runAsNonRoot must be true")
            run_as = security.get("runAsUser", pod_security.get("runAsUser"))
            if uid is not None and run_as != uid:
                report.add(where, f"runAsUser is {run_as}, the image's user is {uid}")
            if security.get("readOnlyRootFilesystem") is not True:
                report.add(where, "readOnlyRootFilesystem must be true")
            if security.get("allowPrivilegeEscalation") is not False:
                report.add(where, "allowPrivilegeEscalation must be false")
            # With a read-only root, the data directory and /tmp need volumes.
            mounts = {m.get("mountPath"): m.get("name") for m in container.get("volumeMounts") or []}
            # The image sets VIDSNAP_SERVER__DATA_DIR=/var/lib/vidsnap (deploy/Dockerfile).
            data_dir = env_value(deployment, "VIDSNAP_SERVER__DATA_DIR", config) \
                or "/var/lib/vidsnap"
            for path in (data_dir, "/tmp"):
                if path not in mounts or mounts[path] not in volumes:
                    report.add(where, f"no writable volume mounted at {path}")
            # Kubernetes kills the pod after the grace period: it must outlast the shutdown.
            prestop = ((container.get("lifecycle") or {}).get("preStop") or {}) \
                .get("exec", {}).get("command") or []
            sleep = int(prestop[1]) if prestop[:1] == ["sleep"] and len(prestop) > 1 else 0
            needed = max(
                int(env_value(deployment, "VIDSNAP_SERVER__SHUTDOWN_SECONDS", config)
                    or DEFAULT_SHUTDOWN_SECONDS),
                int(env_value(deployment, "VIDSNAP_WORKER__SHUTDOWN_GRACE_SECONDS", config)
                    or DEFAULT_WORKER_GRACE_SECONDS) if role == "worker" else 0,
            ) + sleep
            grace = spec.get("terminationGracePeriodSeconds", 30)
            if grace <= needed:
                report.add(where, f"terminationGracePeriodSeconds ({grace}) must exceed the "
                                  f"shutdown it waits for ({needed} s)")
        autoscaler = scaled[deployment.name].kind if deployment.name in scaled else None
        if role == "worker" and autoscaler != "ScaledObject":
            report.add(deployment, f"{label}: the workers have no KEDA ScaledObject")
        if role == "api" and autoscaler != "HorizontalPodAutoscaler":
            report.add(deployment, f"{label}: the API has no HorizontalPodAutoscaler")
    for role in ROLES:
        if role not in roles:
            report.add(label, f"no Deployment runs --role {role}")

    # Services select pods of one Deployment and target a port they have.
    for service in named("Service").values():
        selector = (service.body.get("spec") or {}).get("selector") or {}
        matches = [d for d in named("Deployment").values()
                   if selector and all(pod_labels[d.name].get(k) == v
                                       for k, v in selector.items())]
        if len(matches) != 1:
            report.add(service, f"{label}: the selector matches {len(matches)} Deployments, "
                                "not one")
            continue
        ports = {p.get("name") for c in pod_spec(matches[0]).get("containers") or []
                 for p in c.get("ports") or []}
        numbers = {p.get("containerPort") for c in pod_spec(matches[0]).get("containers") or []
                   for p in c.get("ports") or []}
        for port in (service.body.get("spec") or {}).get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            if target not in ports and target not in numbers:
                report.add(service, f"targetPort {target!r} is not a port of "
                                    f"{matches[0].name}")

    # TriggerAuthentications read Secrets that exist, with the keys they name.
    auths = named("TriggerAuthentication")
    for auth in auths.values():
        for ref in (auth.body.get("spec") or {}).get("secretTargetRef") or []:
            if ref.get("key") not in secret_keys.get(ref.get("name"), set()):
                report.add(auth, f"{label}: no key {ref.get('key')!r} in Secret "
                                 f"{ref.get('name')!r} (deploy/k8s/secrets/{variant}.example.yaml)")

    # KEDA triggers: documented parameters, numbers as strings, a way to reach the backend.
    for scaled_object in named("ScaledObject").values():
        triggers = (scaled_object.body.get("spec") or {}).get("triggers") or []
        if not triggers:
            report.add(scaled_object, "no triggers")
        for i, trigger in enumerate(triggers):
            where = f"{report.rel(scaled_object.path)}: ScaledObject/{scaled_object.name}: " \
                    f"triggers[{i}] ({trigger.get('type')})"
            rules = TRIGGERS.get(trigger.get("type"))
            if rules is None:
                report.add(where, f"not one of the triggers these checks know: {sorted(TRIGGERS)}")
                continue
            metadata = trigger.get("metadata") or {}
            for key in sorted(set(metadata) - rules["allowed"]):
                report.add(where, f"metadata.{key} is not a parameter of this trigger")
            for alternatives in rules["required"]:
                if not alternatives & set(metadata):
                    report.add(where, f"metadata needs {' or '.join(sorted(alternatives))}")
            for key in rules.get("integers", set()) & set(metadata):
                if not re.fullmatch(r"\d+", str(metadata[key])):
                    report.add(where, f"metadata.{key} must be a whole number, "
                                      f"not {metadata[key]!r}")
            for key in rules.get("numbers", set()) & set(metadata):
                if not re.fullmatch(r"\d+(\.\d+)?", str(metadata[key])):
                    report.add(where, f"metadata.{key} must be a number, not {metadata[key]!r}")
            for key in rules.get("booleans", set()) & set(metadata):
                if str(metadata[key]) not in ("true", "false"):
                    report.add(where, f"metadata.{key} must be \"true\" or \"false\"")
            for key, values in rules.get("enums", {}).items():
                if key in metadata and metadata[key] not in values:
                    report.add(where, f"metadata.{key} must be one of {sorted(values)}")
            ref = (trigger.get("authenticationRef") or {}).get("name")
            auth = auths.get(ref) if ref else None
            if ref and auth is None:
                report.add(where, f"{label}: TriggerAuthentication {ref!r} is not defined")
            auth_spec = (auth.body.get("spec") or {}) if auth else {}
            if "connection" in rules:
                in_metadata, in_auth = rules["connection"]
                params = {r.get("parameter") for r in auth_spec.get("secretTargetRef") or []}
                if not (in_metadata & set(metadata) or in_auth & params):
                    report.add(where, "no connection: set it in metadata "
                                      f"({', '.join(sorted(in_metadata))}) or through a "
                                      f"TriggerAuthentication ({', '.join(sorted(in_auth))})")
            if trigger.get("type") == "aws-sqs-queue":
                provider = (auth_spec.get("podIdentity") or {}).get("provider")
                if provider != "aws":
                    report.add(where, "the AWS trigger authenticates with podIdentity "
                                      "provider aws (IRSA), not with keys")
            if trigger.get("type") == "rabbitmq" and metadata.get("protocol") != "http":
                report.add(where, "protocol must be http: over AMQP KEDA counts only ready "
                                  "messages and would remove workers that are busy")
            check_trigger_matches_config(where, trigger, config, report)
        kinds = {TRIGGER_QUEUE_KIND.get(t.get("type")) for t in triggers}
        queue_kind = config.get("VIDSNAP_QUEUE__KIND", "database")
        if kinds != {queue_kind}:
            report.add(scaled_object, f"{label}: the triggers watch {sorted(map(str, kinds))} "
                                      f"but VIDSNAP_QUEUE__KIND is {queue_kind!r}")
        if queue_kind == "sqs":
            watched = {str((t.get("metadata") or {}).get("queueURL")) for t in triggers}
            for key in ("VIDSNAP_QUEUE__QUEUE_URL", "VIDSNAP_S3_EVENTS__QUEUE_URL"):
                if key in config and config[key] not in watched:
                    report.add(scaled_object, f"{label}: no trigger watches {key} "
                                              f"({config[key]}): the workers consume it")


# Which `[queue] kind` each trigger watches.
TRIGGER_QUEUE_KIND = {"aws-sqs-queue": "sqs", "rabbitmq": "rabbitmq", "postgresql": "database"}


def check_trigger_matches_config(where: str, trigger: dict[str, Any], config: dict[str, str],
                                 report: Report) -> None:
    """The trigger watches the queue the workers consume, as the variant's ConfigMap sets it."""
    metadata = trigger.get("metadata") or {}
    if trigger.get("type") == "aws-sqs-queue":
        urls = {config.get(k) for k in ("VIDSNAP_QUEUE__QUEUE_URL", "VIDSNAP_S3_EVENTS__QUEUE_URL")}
        if metadata.get("queueURL") not in urls:
            report.add(where, f"queueURL {metadata.get('queueURL')} is neither "
                              "VIDSNAP_QUEUE__QUEUE_URL nor VIDSNAP_S3_EVENTS__QUEUE_URL")
        regions = {config.get(k) for k in ("VIDSNAP_QUEUE__REGION", "VIDSNAP_S3_EVENTS__REGION")}
        if metadata.get("awsRegion") not in regions:
            report.add(where, f"awsRegion {metadata.get('awsRegion')} is not the queues' region")
    elif trigger.get("type") == "rabbitmq":
        queue = config.get("VIDSNAP_QUEUE__QUEUE", "vidsnap.jobs")
        name = str(metadata.get("queueName", ""))
        regex = str(metadata.get("useRegex")) == "true"
        if not (re.search(name, queue) if regex else name == queue):
            report.add(where, f"queueName {name!r} does not select VIDSNAP_QUEUE__QUEUE ({queue})")


# --- configuration names, the database, the Dockerfile, the docs -------------------------------

ENV_NAME = re.compile(r"\bVIDSNAP_[A-Z0-9]+(?:_[A-Z0-9]+)*__[A-Z0-9_]*[A-Z0-9]\b")


def known_env_names(root: Path) -> set[str]:
    return set(ENV_NAME.findall((root / "vidsnap.example.toml").read_text()))


def check_env_names(docs: list[Doc], known: set[str], report: Report) -> None:
    for doc in docs:
        names: list[str] = []
        if doc.kind in ("ConfigMap", "Secret"):
            for section in ("data", "stringData"):
                names += list((doc.body.get(section) or {}).keys())
        for container in pod_spec(doc).get("containers") or []:
            names += [e.get("name", "") for e in container.get("env") or []]
        for name in names:
            if name.startswith("VIDSNAP_") and "__" in name and name not in known:
                report.add(doc, f"{name} is not a key vidsnap.example.toml lists "
                                "(the server would refuse to start on an unknown key)")
    # Secrets loaded with envFrom must hold nothing but settings.
    for doc in docs:
        if doc.kind == "Secret" and doc.name == "vidsnap":
            for name in (doc.body.get("stringData") or {}) | (doc.body.get("data") or {}):
                if not name.startswith("VIDSNAP_"):
                    report.add(doc, f"{name}: the pods load this Secret whole; keep other "
                                    "keys in another Secret")


def check_tasks_query(docs: list[Doc], root: Path, report: Report) -> None:
    sql = "\n".join(p.read_text() for p in sorted((root / "crates/db/migrations/postgres")
                                                  .glob("*.sql")))
    table = re.search(r"CREATE TABLE tasks \((.*?)\n\);", sql, re.S)
    if not table:
        report.add("crates/db/migrations/postgres", "no `CREATE TABLE tasks` found")
        return
    columns = {line.split()[0] for line in table.group(1).splitlines()
               if line.strip() and not line.strip().startswith("--")}
    statuses = set(re.findall(r"'([a-z_]+)'",
                              re.search(r"status\s+text[^\n]*\n?[^\n]*", table.group(1)).group(0)))
    for doc in docs:
        if doc.kind != "ScaledObject":
            continue
        for trigger in (doc.body.get("spec") or {}).get("triggers") or []:
            if trigger.get("type") != "postgresql":
                continue
            query = str((trigger.get("metadata") or {}).get("query", ""))
            if not re.search(r"\bFROM\s+tasks\b", query, re.I):
                report.add(doc, "the query must read the tasks table (the queue)")
            for column in ("status", "run_at"):
                if re.search(rf"\b{column}\b", query) and column not in columns:
                    report.add(doc, f"the tasks table has no column {column}")
            for literal in re.findall(r"'([^']*)'", query):
                if literal not in statuses:
                    report.add(doc, f"'{literal}' is not a task status ({sorted(statuses)})")


def check_dockerfile(root: Path, report: Report) -> int | None:
    """Returns the image's numeric uid, for the manifests' runAsUser."""
    path = root / "deploy/Dockerfile"
    lines, current = [], ""
    for raw in path.read_text().splitlines():
        if raw.lstrip().startswith("#") and not current:
            continue
        current += raw.rstrip("\\").strip() + " "
        if not raw.rstrip().endswith("\\"):
            if current.strip():
                lines.append(current.strip())
            current = ""
    stages: list[list[str]] = []
    for line in lines:
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    if len(stages) < 2:
        report.add(path, "must be multi-stage (a build stage and a runtime stage)")
        return None
    toolchain = re.search(r'channel\s*=\s*"(\d+\.\d+)', (root / "rust-toolchain.toml").read_text())
    builder = stages[0][0].split()[1]
    if not toolchain or not builder.startswith(f"rust:{toolchain.group(1)}-"):
        report.add(path, f"the build stage uses {builder}; rust-toolchain.toml pins "
                         f"{toolchain.group(1) if toolchain else '?'}")
    runtime = stages[-1]
    if runtime[0].split()[1] != "debian:bookworm-slim":
        report.add(path, f"the runtime stage is {runtime[0].split()[1]}, not debian:bookworm-slim "
                         "(the FFmpeg 5.1 libraries the binary links are bookworm's)")
    text = "\n".join(runtime)
    if not re.search(r"apt-get install[^\n]*\bffmpeg\b", text):
        report.add(path, "the runtime stage must install ffmpeg (ffprobe and the libav* libraries)")
    users = [line.split()[1] for line in runtime if line.upper().startswith("USER ")]
    uid = None
    if not users or not re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]):
        report.add(path, "the runtime stage must end as a numeric non-root USER (uid[:gid])")
    else:
        uid = int(users[-1].split(":")[0])
    if not any(line.upper() == "EXPOSE 8080" for line in runtime):
        report.add(path, "the runtime stage must EXPOSE 8080")
    if not any(line.replace(" ", "") == 'ENTRYPOINT["vidsnap"]' for line in runtime):
        report.add(path, 'the entry point must be ["vidsnap"]')
    return uid


def check_docs(root: Path, known: set[str], report: Report) -> None:
    pages = sorted((root / "docs").glob("*.md")) + [root / "deploy/README.md"]
    for page in pages:
        if not page.exists():
            report.add(page, "is missing")
            continue
        text = page.read_text()
        for match in re.finditer(r"```json\n(.*?)```", text, re.S):
            try:
                json.loads(match.group(1))
            except json.JSONDecodeError as e:
                line = text[:match.start()].count("\n") + 2 + e.lineno - 1
                report.add(f"{report.rel(page)}:{line}", f"JSON example does not parse: {e.msg}")
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                report.add(page, f"links to {target}, which does not exist")
        for name in sorted(set(ENV_NAME.findall(text)) - known):
            report.add(page, f"names {name}, which vidsnap.example.toml does not list")


def self_test(docs: list[Doc], k8s: KubernetesSchemas, keda: KedaSchemas, report: Report) -> None:
    """Broken copies of real manifests must fail: a tool update that quietly stopped checking
    (a lax schema, a skipped kind) would otherwise pass everything."""
    import copy

    def first(kind: str) -> dict[str, Any] | None:
        return next((copy.deepcopy(d.body) for d in docs if d.kind == kind), None)

    cases = []
    if (body := first("Deployment")) is not None:
        body["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
        cases.append(("a misspelt container field", k8s, body))
    if (body := first("HorizontalPodAutoscaler")) is not None:
        body["spec"]["minReplicas"] = "2"
        cases.append(("a string where an integer belongs", k8s, body))
    if (body := first("ScaledObject")) is not None:
        body["spec"]["minReplicas"] = 0
        cases.append(("an unknown ScaledObject field", keda, body))
    if (body := first("TriggerAuthentication")) is not None:
        body["spec"]["podIdentity"] = {"provider": "aws-iam"}
        cases.append(("an unknown pod identity provider", keda, body))
    if len(cases) < 4:
        report.add("deploy/k8s", "self-test: a Deployment, an HPA, a ScaledObject and a "
                                 "TriggerAuthentication are needed to test the schemas")
    for what, schema, body in cases:
        if not list(schema.errors(body)):
            report.add("deploy/check/validate.py", f"self-test: {what} passed the schema check; "
                                                   "the validator is not strict any more")


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    report = Report(root)
    k8s_dir = root / "deploy/k8s"
    k8s, keda, rules = KubernetesSchemas(), KedaSchemas(), alerts.RuleSchema()

    files = sorted(k8s_dir.rglob("*.yaml")) + sorted(k8s_dir.rglob("*.yml"))
    docs_by_file = {path: load_docs(path, report) for path in files}
    all_docs = [doc for docs in docs_by_file.values() for doc in docs]
    for doc in all_docs:
        check_document(doc, k8s, keda, rules, report)

    uid = check_dockerfile(root, report)
    # monitoring/: the PrometheusRule, applied on its own where the Prometheus Operator runs.
    layout = {"base", *VARIANTS, "secrets", "monitoring"}
    for path in files:
        top = path.relative_to(k8s_dir).parts[0]
        if top not in layout:
            report.add(path, f"is outside the layout ({', '.join(sorted(layout))}): "
                             "no variant applies it")
    for variant in VARIANTS:
        secrets = k8s_dir / "secrets" / f"{variant}.example.yaml"
        if not secrets.exists():
            report.add(secrets, "is missing")
        variant_docs = [doc for path, docs in docs_by_file.items()
                        if path.parent in (k8s_dir / "base", k8s_dir / variant)
                        or path == secrets for doc in docs]
        check_variant(variant, variant_docs, uid, report)

    self_test(all_docs, k8s, keda, report)
    alerts.self_test(all_docs, rules, root, report)
    code = alerts.code_text(root)
    alert_count = alerts.check_rules(root, all_docs, report, code)
    alerts.check_cloudwatch_example(root, report, code)
    known = known_env_names(root)
    check_env_names(all_docs, known, report)
    check_tasks_query(all_docs, root, report)
    check_docs(root, known, report)

    if report.problems:
        for problem in report.problems:
            print(problem)
        print(f"deploy: {len(report.problems)} problem(s) ({len(all_docs)} manifests checked)")
        return 1
    print(f"deploy: {len(all_docs)} manifests in {len(files)} files valid "
          f"(Kubernetes {', '.join(v[:-2] for v in k8s.versions)} strict; "
          f"KEDA kinds from cloudcoil.models.keda {keda.version}); "
          f"{alert_count} alerts against the code's metrics "
          f"(PrometheusRule from cloudcoil.models.prometheus_operator {rules.version}); "
          f"variants {', '.join(VARIANTS)} consistent; Dockerfile and docs consistent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
