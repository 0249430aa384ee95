"""The Grafana dashboard: a valid dashboard, valid PromQL, and exactly the metrics dualtrack exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import am_headers, fixture_bytes
from tests.support.postgres import in_ci

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "dualtrack.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Values for Grafana's own variables and the dashboard's, as Grafana would put them in.
VARIABLES = {"__rate_interval": "1m", "__range": "1d", "job": ".+"}
VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
# A variable's query is Grafana's label_values(METRIC, LABEL), not PromQL.
LABEL_VALUES = re.compile(r"^label_values\((\w+),\s*(\w+)\)$")
# What a sample of each metric type is called: counters end in _total, histograms have three series.
SAMPLE_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}

# To find the metric names in an expression, drop what can hold other identifiers: strings, label
# matchers, ranges and label lists; what is left and not a function call or keyword is a metric.
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
MATCHERS = re.compile(r"\{[^}]*\}")
RANGE = re.compile(r"\[[^\]]*\]")
LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
IDENTIFIER = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    """Every panel but the rows (no row is collapsed, so none holds panels of its own)."""
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def expressions() -> list[tuple[str, str]]:
    """(panel id and refId, expression) for every query of every panel."""
    return [(f"{p['id']}{t['refId']}", t["expr"]) for p in panels() for t in p["targets"]]


def variable_queries() -> list[str]:
    return [v["definition"] for v in dashboard()["templating"]["list"] if v["type"] == "query"]


def substituted(expr: str) -> str:
    return VARIABLE.sub(lambda m: VARIABLES[m.group(1) or m.group(2)], expr)


def metric_names(expr: str) -> set[str]:
    text = substituted(expr)
    for pattern in (STRING, MATCHERS, RANGE, LABEL_LIST):
        text = pattern.sub(" ", text)
    return {name for name, call in IDENTIFIER.findall(text) if not call and name.lower() not in KEYWORDS}


def used_metric_names() -> set[str]:
    names = {name for _, expr in expressions() for name in metric_names(expr)}
    for query in variable_queries():
        match = LABEL_VALUES.match(query)
        assert match, f"variable query {query!r} is not label_values(METRIC, LABEL)"
        names.add(match.group(1))
    return names


@pytest.fixture
def exported(client) -> dict[str, set[str]]:
    """dualtrack's metric families in a real /metrics answer → the names of their samples."""
    for name in ("alertmanager-firing", "alertmanager-mixed", "alertmanager-resolved"):
        response = client.post(
            "/webhooks/alertmanager", data=fixture_bytes(f"alertmanager/{name}.json"), headers=am_headers()
        )
        assert response.status_code == 202, response.text
    text = client.get("/metrics").text
    parsed = [f for f in text_string_to_metric_families(text) if f.name.startswith("dualtrack_")]
    # prometheus_client's creation times of counters and histograms: their own gauges in this format.
    created = {f"{f.name}_created" for f in parsed if f.type in ("counter", "histogram")}
    families, sampled = {}, set()
    for family in parsed:
        if family.name in created:
            continue
        names = {family.name + suffix for suffix in SAMPLE_SUFFIXES[family.type]}
        seen = {s.name for s in family.samples}
        # A labelled family never counted yet has no samples: its names come from its type alone.
        assert seen <= names, f"{family.name} ({family.type}) has samples {sorted(seen - names)}"
        families[family.name] = names
        sampled |= seen
    # The traffic reached labelled series, not only the families' declarations.
    assert {"dualtrack_webhooks_total", "dualtrack_first_notice_seconds_bucket"} <= sampled
    return families


def test_every_metric_the_dashboard_uses_is_exported(exported):
    samples = set().union(*exported.values())
    assert used_metric_names() - samples == set()


def test_every_exported_metric_is_on_the_dashboard(exported):
    used = used_metric_names()
    assert {family for family, names in exported.items() if not names & used} == set()


def test_feedback_counters_have_their_names_and_labels(app):
    metrics = app.extensions["dualtrack"].metrics
    metrics.feedback.labels("business", "enterprise", "yes").inc()
    metrics.detail_requests.labels("enterprise").inc()
    sample = metrics.registry.get_sample_value
    feedback = {"audience": "business", "segment": "enterprise", "helpful": "yes"}
    assert sample("dualtrack_feedback_total", feedback) == 1
    assert sample("dualtrack_detail_requests_total", {"segment": "enterprise"}) == 1


@pytest.fixture
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        message = "promtool is not installed (apt-get install prometheus; .ci/run installs it)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def test_every_expression_is_valid_promql(promtool, tmp_path):
    """promtool 2.42 has no command for one expression: `check rules` parses each rule's."""
    rules = [{"record": f"dashboard:panel_{name}", "expr": substituted(expr)} for name, expr in expressions()]
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_dashboard_shape():
    board = dashboard()
    assert board["schemaVersion"] >= 36
    assert board["uid"] and board["title"]
    ids = Counter(p["id"] for p in board["panels"])
    assert [i for i, n in ids.items() if n > 1] == []
    for panel in board["panels"]:
        position = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= set(position), panel["title"]
        assert position["x"] + position["w"] <= 24, panel["title"]
    rows = [p for p in board["panels"] if p["type"] == "row"]
    assert rows and all(not row["collapsed"] and row["panels"] == [] for row in rows)
    for panel in panels():
        assert panel["title"] and panel["targets"], panel["id"]
        assert panel["datasource"] == DATASOURCE, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(set(refs)) == len(refs), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_panels_do_not_overlap():
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard()["panels"]:
        position = panel["gridPos"]
        for x in range(position["x"], position["x"] + position["w"]):
            for y in range(position["y"], position["y"] + position["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_variables_are_defined_and_the_datasource_is_chosen_on_import():
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE
    # No import-time inputs: the data source variable works for file provisioning and the API too.
    assert "__inputs" not in dashboard()
    used = {m.group(1) or m.group(2) for _, expr in expressions() for m in VARIABLE.finditer(expr)}
    assert used - {"__rate_interval", "__range"} <= set(variables)
