"""Alerts and dashboards query only what the project exports, parse in Prometheus, and fire when they should.

promtool (Prometheus 2.x) checks every PromQL expression of the PrometheusRule and of both Grafana
dashboards, and runs the unit tests in alerts_test.yaml against the rules the chart renders. The metric
names are checked against the registries of the trainer and the operator, so renaming a metric
there breaks this test until the chart follows.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from chart.helpers import CHART, FEATURES, ROOT, find, one, promtool_path, render
from recipe_api import contract

HERE = Path(__file__).parent
ALERTS_TEST = HERE / "alerts_test.yaml"
DASHBOARDS = sorted((CHART / "dashboards").glob("*.json"))

# Series the chart may query that neither exporter defines: Prometheus's own `up` for each target.
NON_PROJECT_SERIES = {"up"}

# Grafana's variables, replaced by values PromQL accepts (the job/namespace variables sit in regex matchers).
GRAFANA_VARIABLES = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "namespace": ".*",
    "job": ".*",
}

PROMQL_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords, label names
    (in matchers or grouping clauses), strings or durations."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for match in re.finditer(r"(?<![\w.:])[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        word = match.group(0)
        if word in PROMQL_KEYWORDS or e[match.end() :].lstrip().startswith("("):
            continue
        names.add(word)
    return names


def test_metric_name_extraction_sees_through_promql_syntax():
    expr = (
        'histogram_quantile(0.95, sum by (le, rtj) (rate(a_bucket{x=~"$job", y="b c"}[5m])))'
        " / on (rtj) group_left (z) b_total offset 10m and c > bool 1e3 unless absent(up{job='q'} == 1)"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c", "up"}


def substitute_grafana_variables(expr: str) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: GRAFANA_VARIABLES[m.group(1)], expr)


def dashboard_queries(path: Path) -> list[str]:
    """Every PromQL query of a dashboard: panel targets, and the selectors inside variable queries."""
    dashboard = json.loads(path.read_text())
    queries = []

    def walk(panels):
        for panel in panels:
            queries.extend(t["expr"] for t in panel.get("targets", []) if t.get("expr"))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
            assert match, f"{path.name}: variable {variable['name']} is not label_values(selector, label)"
            queries.append(match.group(1))
    return [substitute_grafana_variables(q) for q in queries]


def rendered_rules() -> dict:
    rule = one(render(FEATURES["prometheusRule"]), "PrometheusRule")
    return {"groups": rule["spec"]["groups"]}


def alert_names() -> set[str]:
    return {r["alert"] for g in rendered_rules()["groups"] for r in g["rules"]}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([promtool_path(), *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def exported_metric_names() -> set[str]:
    """Every sample name the trainer and the operator expose, from their own registries."""
    from recipe_operator.metrics import exported_metric_names as operator_names
    from recipe_trainer.training.metrics import exported_metric_names as trainer_names

    return set(trainer_names()) | set(operator_names())


# ---------------------------------------------------------------- promtool check


def test_alert_rules_pass_promtool_check(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rendered_rules()))
    result = promtool("check", "rules", str(rules), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert alert_names() == {
        "RecipeTrainingJobFailed",
        "RecipeTrainingJobRestartingRepeatedly",
        "RecipeTrainingStalled",
        "RecipeTrainingValidationLossRising",
        "RecipeOperatorDown",
        "RecipeOperatorReconcileErrors",
    }


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_queries_pass_promtool_check(dashboard, tmp_path):
    queries = dashboard_queries(dashboard)
    assert len(queries) >= 8
    group = {
        "name": f"dashboard-{dashboard.stem}",
        "rules": [{"record": f"dashboard:query_{i}:check", "expr": q} for i, q in enumerate(queries)],
    }
    rules = tmp_path / "dashboard-rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": [group]}))
    result = promtool("check", "rules", str(rules), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- names against the exporters


def test_alerts_and_dashboards_use_only_exported_metrics():
    exported = exported_metric_names()
    used: dict[str, set[str]] = {}
    for group in rendered_rules()["groups"]:
        for rule in group["rules"]:
            for name in metric_names(rule["expr"]):
                used.setdefault(name, set()).add(rule["alert"])
    for dashboard in DASHBOARDS:
        for query in dashboard_queries(dashboard):
            for name in metric_names(query):
                used.setdefault(name, set()).add(dashboard.name)
    unknown = {
        name: sorted(where) for name, where in used.items() if name not in exported | NON_PROJECT_SERIES
    }
    assert unknown == {}, "metrics no exporter defines (renamed?)"


def _names_in(dashboard: str) -> set[str]:
    return set().union(*(metric_names(q) for q in dashboard_queries(CHART / "dashboards" / dashboard)))


def test_training_dashboard_shows_every_training_signal():
    names = _names_in("training.json")
    wanted = {
        contract.LOSS,
        contract.VALIDATION_LOSS,
        contract.BEST_VALIDATION_LOSS,
        contract.VALIDATION_PERPLEXITY,
        contract.LEARNING_RATE,
        contract.TOKENS_PER_SECOND,
        contract.QUALITY_SCORE,
        contract.CURRICULUM_STAGE,
        contract.GRAD_NORM,
        contract.GRADIENT_NOISE_SIGMA,
        contract.CHECKPOINT_SAVE_SECONDS + "_bucket",
        contract.GPU_MEMORY_ALLOCATED_BYTES,
        contract.GPU_MEMORY_RESERVED_BYTES,
        contract.ETA_SECONDS,
        contract.STEP,
        contract.TOTAL_STEPS,
    }
    assert wanted - names == set()
    dashboard = json.loads((CHART / "dashboards" / "training.json").read_text())
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"namespace", "job"} <= variables
    targets = [t for p in dashboard["panels"] for t in p.get("targets", [])]
    assert all('rtj=~"$job"' in t["expr"] and 'namespace=~"$namespace"' in t["expr"] for t in targets)


def test_operator_dashboard_shows_phases_latency_restarts_and_reconciles():
    names = _names_in("operator.json")
    assert {
        "recipe_operator_jobs",
        "recipe_operator_time_to_running_seconds_bucket",
        "recipe_operator_jobs_restarted_total",
        "recipe_operator_reconcile_duration_seconds_bucket",
        "recipe_operator_reconcile_errors_total",
    } <= names
    text = (CHART / "dashboards" / "operator.json").read_text()
    assert "sum by (phase)" in text and "sum by (reason)" in text


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_panels_use_the_datasource_variable(dashboard):
    """Provisioned dashboards cannot ask for a data source at import: every query names ${datasource}."""
    data = json.loads(dashboard.read_text())
    assert data["uid"] and len(data["uid"]) <= 40
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids))
    for panel in data["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]


# ---------------------------------------------------------------- promtool test rules


def test_each_alert_fires_and_stays_quiet_as_its_unit_tests_say(tmp_path):
    (tmp_path / "rendered-rules.yaml").write_text(yaml.safe_dump(rendered_rules()))
    (tmp_path / "alerts_test.yaml").write_text(ALERTS_TEST.read_text())
    result = promtool("test", "rules", "alerts_test.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    spec = yaml.safe_load(ALERTS_TEST.read_text())
    assert spec["rule_files"] == ["rendered-rules.yaml"]
    fired, quiet = set(), set()
    for test in spec["tests"]:
        for case in test.get("alert_rule_test", []):
            (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert fired == alert_names()
    assert quiet == alert_names()


def test_install_docs_explain_every_alert():
    docs = (ROOT / "docs" / "install.md").read_text()
    for name in alert_names():
        assert f"### {name}" in docs, f"docs/install.md has no section for {name} (its runbook_url)"
    for rule in (r for g in rendered_rules()["groups"] for r in g["rules"]):
        assert rule["annotations"]["runbook_url"].endswith("#" + rule["alert"].lower())


def test_operator_down_alert_watches_the_service_monitor_target():
    objs = render(FEATURES["prometheusRule"])
    service = one(objs, "Service", "rto-recipe-training-operator-metrics")
    assert find(objs, "ServiceMonitor")
    down = next(
        r for g in rendered_rules()["groups"] for r in g["rules"] if r["alert"] == "RecipeOperatorDown"
    )
    # The Prometheus operator names a ServiceMonitor target's job after the Service.
    assert f'job="{service["metadata"]["name"]}"' in down["expr"]
