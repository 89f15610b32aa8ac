"""The alert rules' checks, run by validate.py (scripts/check-deploy.sh), offline.

- PrometheusRule documents (deploy/k8s/monitoring) against a strict JSON schema made from
  `cloudcoil.models.prometheus_operator` (Pydantic models generated from the Prometheus
  Operator's CRDs), strict as the KEDA kinds are;
- every alert has `expr`, `for`, `labels.severity` (critical, warning or info) and the
  annotations `summary`, `description` and `runbook`; `runbook` names a docs/ page and a heading
  that exist; alert and group names are unique;
- every `expr` parses as PromQL (`promql-parser`, the Rust parser behind GreptimeDB);
- every metric an expression reads is one the code defines (`metrics::counter!("name"` and the
  like, under crates/*/src), `rate`/`increase`/`irate` read counters, and every label value an
  expression matches on is a string literal of the code (`outcome="unable_to_process"`);
- the CloudWatch example of docs/deploy-aws.md filters on log messages the code writes.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Iterator

import jsonschema

SEVERITIES = ("critical", "warning", "info")
ANNOTATIONS = ("summary", "description", "runbook")
# How the code defines a metric: metrics::counter!("vidsnap_…", …) and its kin.
DEFINITION = re.compile(r"\b(counter|gauge|histogram)!\(\s*\"(vidsnap_[a-z0-9_]+)\"")
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")
COUNTER_FUNCTIONS = {"rate", "increase", "irate", "resets"}


class RuleSchema:
    """PrometheusRule as a JSON schema from the cloudcoil models, `additionalProperties: false`
    wherever properties are listed (the API server refuses unknown fields of custom resources
    under kubectl's default strict field validation)."""

    def __init__(self) -> None:
        from importlib.metadata import version

        from cloudcoil.models.prometheus_operator import v1

        self.version = version("cloudcoil.models.prometheus_operator")
        schema = v1.PrometheusRule.model_json_schema(by_alias=True)
        self.validator = jsonschema.Draft202012Validator(self._strict(schema))

    @classmethod
    def _strict(cls, node: Any) -> Any:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            # Go's `^(?i)…` is `(?i)^…` to Python, which refuses flags after the start.
            pattern = node.get("pattern")
            if isinstance(pattern, str) and pattern.startswith("^(?i)"):
                node["pattern"] = "(?i)^" + pattern[len("^(?i)"):]
            for value in node.values():
                cls._strict(value)
        elif isinstance(node, list):
            for value in node:
                cls._strict(value)
        return node

    def errors(self, body: dict[str, Any], error_text) -> Iterator[str]:
        if body.get("apiVersion") != "monitoring.coreos.com/v1":
            yield f"PrometheusRule is monitoring.coreos.com/v1, not {body.get('apiVersion')}"
            return
        for error in self.validator.iter_errors(body):
            yield f"{error_text(error)} (Prometheus Operator schema, " \
                  f"cloudcoil.models.prometheus_operator {self.version})"


def code_text(root: Path) -> str:
    """The Rust sources of every crate, tests left out: what the binary can emit."""
    return "\n".join(path.read_text() for path in sorted(root.glob("crates/*/src/**/*.rs")))


def defined_metrics(code: str) -> dict[str, str]:
    return {name: kind for kind, name in DEFINITION.findall(code)}


def expression_problems(expr: str, metrics: dict[str, str], code: str) -> list[str]:
    """What is wrong with one PromQL expression: syntax, unknown metrics, functions of counters
    applied to something else, label values the code never writes."""
    import promql_parser

    try:
        parsed = promql_parser.parse(expr)
    except ValueError as e:
        return [f"expr is not PromQL: {e}"]
    problems: list[str] = []

    def metric_kind(name: str) -> str | None:
        if name in metrics:
            return metrics[name]
        for suffix in HISTOGRAM_SERIES:
            base = name.removesuffix(suffix)
            if base != name and metrics.get(base) == "histogram":
                return "histogram series"
        return None

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name and metric_kind(node.name) is None:
                problems.append(f"expr reads {node.name}, which no crate defines "
                                "(metrics::counter!/gauge!/histogram! under crates/*/src)")
            for matcher in node.matchers.matchers:
                if matcher.name == "__name__":
                    continue
                values = matcher.value.split("|") if matcher.op in (
                    promql_parser.MatchOp.Re, promql_parser.MatchOp.NotRe) else [matcher.value]
                for value in values:
                    if value and f'"{value}"' not in code:
                        problems.append(f"expr matches {matcher.name}={value!r}, a value the "
                                        "code never writes")
        if isinstance(node, promql_parser.Call) and node.func.name in COUNTER_FUNCTIONS:
            for arg in node.args:
                if isinstance(arg, promql_parser.MatrixSelector):
                    name = arg.vector_selector.name
                    kind = metric_kind(name)
                    if kind not in (None, "counter", "histogram series"):
                        problems.append(f"{node.func.name}() of {name}, a {kind}: "
                                        "it takes a counter")

    promql_parser.walk(parsed, visit)
    return problems


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a Markdown page's headings."""
    found = set()
    for heading in re.findall(r"^#+\s+(.*)$", page.read_text(), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def check_runbook(root: Path, where: str, target: str, report) -> None:
    page, _, anchor = target.partition("#")
    path = root / page
    if not page.startswith("docs/") or not path.is_file():
        report.add(where, f"runbook {target!r} is not a page under docs/")
    elif anchor and anchor not in anchors(path):
        report.add(where, f"runbook {target!r}: {page} has no heading #{anchor}")


def check_rules(root: Path, docs: list, report, code: str | None = None) -> int:
    """The alerts of every PrometheusRule in `docs`; returns how many there are."""
    code = code_text(root) if code is None else code
    metrics = defined_metrics(code)
    alerts: dict[str, str] = {}
    groups: set[str] = set()
    for doc in docs:
        if doc.kind != "PrometheusRule":
            continue
        for group in (doc.body.get("spec") or {}).get("groups") or []:
            name = group.get("name")
            if name in groups:
                report.add(doc, f"a second rule group named {name}")
            groups.add(name)
            for rule in group.get("rules") or []:
                if "alert" not in rule:
                    continue
                alert = str(rule["alert"])
                where = f"{report.rel(doc.path)}: alert {alert}"
                if alert in alerts:
                    report.add(where, f"a second alert named {alert} (also {alerts[alert]})")
                alerts[alert] = report.rel(doc.path)
                for key in ("expr", "for"):
                    if not str(rule.get(key) or "").strip():
                        report.add(where, f"`{key}` is missing")
                severity = (rule.get("labels") or {}).get("severity")
                if severity not in SEVERITIES:
                    report.add(where, f"labels.severity is {severity!r}, not one of "
                                      f"{', '.join(SEVERITIES)}")
                annotations = rule.get("annotations") or {}
                for key in ANNOTATIONS:
                    if not str(annotations.get(key) or "").strip():
                        report.add(where, f"annotations.{key} is missing")
                if annotations.get("runbook"):
                    check_runbook(root, where, str(annotations["runbook"]), report)
                for problem in expression_problems(str(rule.get("expr", "")), metrics, code):
                    report.add(where, problem)
    return len(alerts)


def check_cloudwatch_example(root: Path, report, code: str | None = None) -> None:
    """The metric filters of docs/deploy-aws.md match lines the code logs: every quoted term
    of a `--filter-pattern` is a string the code writes."""
    page = root / "docs/deploy-aws.md"
    code = code_text(root) if code is None else code
    patterns = re.findall(r"--filter-pattern '([^']*)'", page.read_text())
    if not patterns:
        report.add(page, "the CloudWatch alarm example (a metric filter) is missing")
    for pattern in patterns:
        for term in re.findall(r'"([^"]+)"', pattern):
            if term not in code:
                report.add(page, f"the metric filter looks for {term!r}, which the code "
                                 "never logs")


def self_test(docs: list, schema: RuleSchema, root: Path, report) -> None:
    """Broken copies of the real rules must fail: a misspelt field, an unknown metric."""
    rule_doc = next((d for d in docs if d.kind == "PrometheusRule"), None)
    if rule_doc is None:
        report.add("deploy/k8s/monitoring", "self-test: no PrometheusRule to test the checks")
        return
    body = copy.deepcopy(rule_doc.body)
    rule = body["spec"]["groups"][0]["rules"][0]
    rule["annotation"] = rule.pop("annotations", {})
    if not list(schema.errors(body, str)):
        report.add("deploy/check/alerts.py", "self-test: a misspelt rule field passed the "
                                             "schema check; the validator is not strict any more")
    code = code_text(root)
    if not expression_problems("rate(vidsnap_no_such_metric_total[5m]) > 0",
                               defined_metrics(code), code):
        report.add("deploy/check/alerts.py", "self-test: an unknown metric passed the check")
