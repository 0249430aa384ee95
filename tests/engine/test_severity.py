"""Alertmanager-style matchers and classify(): labels and services → level 1-5."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapter.catalog import Service
from adapter.config import SeverityRule, SeveritySettings
from adapter.engine.severity import classify
from adapter.matchers import Matcher, parse_matcher
from tests.support.catalog import shared_catalog

DEFAULTS = SeveritySettings()
PLAIN = shared_catalog().service("search")
CRITICAL_INFRA = shared_catalog().service("mysql-shared")


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('severity="critical"', Matcher("severity", "=", "critical")),
        ("severity=critical", Matcher("severity", "=", "critical")),
        ('severity!="info"', Matcher("severity", "!=", "info")),
        ("severity!=info", Matcher("severity", "!=", "info")),
        ('team=~"db.*"', Matcher("team", "=~", "db.*")),
        ("team=~db.*", Matcher("team", "=~", "db.*")),
        ('team!~"web|api"', Matcher("team", "!~", "web|api")),
        ('  severity = "critical"  ', Matcher("severity", "=", "critical")),
        ('summary="disk full on /var"', Matcher("summary", "=", "disk full on /var")),
        ('msg="say \\"hi\\""', Matcher("msg", "=", 'say "hi"')),
        ('path="C:\\\\temp"', Matcher("path", "=", "C:\\temp")),
        ('env=""', Matcher("env", "=", "")),
        ("env=", Matcher("env", "=", "")),
        ('_private="x"', Matcher("_private", "=", "x")),
        ('Label_2="x"', Matcher("Label_2", "=", "x")),
        ('a="="', Matcher("a", "=", "=")),
    ],
)
def test_parse(text: str, expected: Matcher) -> None:
    assert parse_matcher(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "severity",
        'severity "critical"',
        "severity=two words",
        '="critical"',
        '2xx="yes"',
        'sev-erity="x"',
        'severity<"x"',
        'severity=~"("',
        'team=~"[a-"',
        "team!~*",
    ],
)
def test_parse_invalid(text: str) -> None:
    with pytest.raises(ValueError, match=r"matcher|regular expression"):
        parse_matcher(text)


def test_invalid_regex_message() -> None:
    with pytest.raises(ValueError, match="invalid regular expression"):
        parse_matcher('team=~"("')


@pytest.mark.parametrize(
    "text",
    ['severity="critical', 'severity="crit"ical"', 'severity=="critical"', 'team=db"a'],
)
def test_parse_rejects_unbalanced_quotes(text: str) -> None:
    with pytest.raises(ValueError):
        parse_matcher(text)


def test_parse_non_ascii_value() -> None:
    matcher = parse_matcher('service="café"')
    assert matcher.value == "café"
    assert matcher.matches({"service": "café"})


def test_parse_regex_escape_kept_literally() -> None:
    matcher = parse_matcher('instance=~"db\\d+"')
    assert matcher.value == "db\\d+"
    assert matcher.matches({"instance": "db12"})


# --- matching --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('severity="critical"', {"severity": "critical"}, True),
        ('severity="critical"', {"severity": "Critical"}, False),
        ('severity="critical"', {"severity": "critical "}, False),
        ('severity="critical"', {}, False),
        ('severity!="critical"', {"severity": "warning"}, True),
        ('severity!="critical"', {"severity": "critical"}, False),
        ('severity!="critical"', {}, True),
        # A missing label is the empty string, as in Alertmanager.
        ('env=""', {}, True),
        ('env=""', {"env": "prod"}, False),
        ('env!=""', {}, False),
        ('env!=""', {"env": "prod"}, True),
        # Regex matchers are anchored at both ends.
        ('team=~"db"', {"team": "db"}, True),
        ('team=~"db"', {"team": "dba"}, False),
        ('team=~"db"', {"team": "mydb"}, False),
        ('team=~"db.*"', {"team": "dba"}, True),
        ('team=~".*db"', {"team": "mydb"}, True),
        ('severity=~"error|major"', {"severity": "error"}, True),
        ('severity=~"error|major"', {"severity": "major"}, True),
        ('severity=~"error|major"', {"severity": "errors"}, False),
        ('severity=~"error|major"', {"severity": "minor"}, False),
        ('severity=~"error|major"', {"severity": "xmajor"}, False),
        ('team!~"db"', {"team": "dba"}, True),
        ('team!~"db"', {"team": "db"}, False),
        ('team!~"db|web"', {"team": "web"}, False),
        ('team=~".*"', {}, True),
        ('team=~".+"', {}, False),
        ('team!~".+"', {}, True),
        ('msg="say \\"hi\\""', {"msg": 'say "hi"'}, True),
        ('other="x"', {"severity": "x"}, False),
    ],
)
def test_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected


# --- classify with the default rules ---------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "level"),
    [
        ("critical", 4),
        ("error", 3),
        ("major", 3),
        ("warning", 2),
        ("info", 1),
        ("unknown", 2),
        ("Critical", 2),
        ("", 2),
    ],
)
def test_default_rules(severity: str, level: int) -> None:
    assert classify({"alertname": "X", "severity": severity}, [PLAIN], DEFAULTS) == level


def test_missing_severity_is_default() -> None:
    assert classify({"alertname": "X"}, [], DEFAULTS) == 2
    assert classify({}, [PLAIN], DEFAULTS) == 2


@pytest.mark.parametrize("level", [1, 2, 3, 4, 5])
def test_explicit_level_wins(level: int) -> None:
    labels = {"severity": "info", "incident_level": str(level)}
    assert classify(labels, [PLAIN], DEFAULTS) == level


@pytest.mark.parametrize("level", [1, 2, 3])
def test_explicit_level_wins_over_critical_infrastructure(level: int) -> None:
    labels = {"severity": "critical", "incident_level": str(level)}
    assert classify(labels, [CRITICAL_INFRA], DEFAULTS) == level


def test_explicit_level_is_stripped() -> None:
    assert classify({"severity": "info", "incident_level": " 4 "}, [], DEFAULTS) == 4


@pytest.mark.parametrize("value", ["0", "6", "10", "-1", "3.0", "three", "", "4,5"])
def test_invalid_explicit_level_is_ignored(value: str) -> None:
    assert classify({"severity": "warning", "incident_level": value}, [], DEFAULTS) == 2
    assert classify({"severity": "critical", "incident_level": value}, [], DEFAULTS) == 4


def test_critical_on_critical_infrastructure_is_5() -> None:
    labels = {"severity": "critical"}
    assert classify(labels, [CRITICAL_INFRA], DEFAULTS) == 5
    assert classify(labels, [PLAIN, CRITICAL_INFRA], DEFAULTS) == 5
    assert classify(labels, [PLAIN], DEFAULTS) == 4
    assert classify(labels, [], DEFAULTS) == 4


@pytest.mark.parametrize(("severity", "level"), [("error", 3), ("warning", 2), ("info", 1), ("", 2)])
def test_non_critical_on_critical_infrastructure_is_not_bumped(severity: str, level: int) -> None:
    assert classify({"severity": severity}, [CRITICAL_INFRA], DEFAULTS) == level


def test_custom_level_label() -> None:
    rules = SeveritySettings(level_label="priority")
    assert classify({"priority": "5", "severity": "info"}, [], rules) == 5
    assert classify({"incident_level": "5", "severity": "info"}, [], rules) == 1


# --- custom rules ----------------------------------------------------------------------------


def test_custom_rules_first_match_wins() -> None:
    rules = SeveritySettings(
        rules=[
            SeverityRule(matchers=['team=~"db"', 'env="prod"'], level=5),
            SeverityRule(matchers=['team=~"db.*"'], level=3),
            SeverityRule(matchers=['severity="critical"'], level=4),
        ],
        default_level=1,
    )
    assert classify({"team": "db", "env": "prod", "severity": "critical"}, [], rules) == 5
    # Second rule: not every matcher of the first holds.
    assert classify({"team": "db", "env": "staging", "severity": "critical"}, [], rules) == 3
    assert classify({"team": "dba", "env": "prod", "severity": "critical"}, [], rules) == 3
    assert classify({"team": "web", "severity": "critical"}, [], rules) == 4
    assert classify({"team": "web", "severity": "warning"}, [], rules) == 1


def test_custom_rules_order_matters() -> None:
    low_first = SeveritySettings(
        rules=[
            SeverityRule(matchers=['severity="critical"'], level=1),
            SeverityRule(matchers=['severity="critical"'], level=4),
        ]
    )
    assert classify({"severity": "critical"}, [], low_first) == 1


def test_custom_rules_replace_defaults() -> None:
    rules = SeveritySettings(rules=[SeverityRule(matchers=['team="db"'], level=3)])
    assert classify({"severity": "critical"}, [], rules) == 2
    assert classify({"severity": "info"}, [], rules) == 2
    assert classify({"team": "db", "severity": "info"}, [], rules) == 3


def test_critical_infrastructure_bump_is_configurable() -> None:
    rules = SeveritySettings(
        critical_matchers=['severity=~"critical|error"'], critical_infrastructure_level=4
    )
    assert classify({"severity": "error"}, [CRITICAL_INFRA], rules) == 4
    assert classify({"severity": "critical"}, [CRITICAL_INFRA], rules) == 4
    assert classify({"severity": "error"}, [PLAIN], rules) == 3


def test_bump_never_lowers_a_rule_level() -> None:
    rules = SeveritySettings(
        rules=[SeverityRule(matchers=['severity="critical"'], level=5)], critical_infrastructure_level=3
    )
    assert classify({"severity": "critical"}, [CRITICAL_INFRA], rules) == 5


def test_severity_rule_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="not a matcher"):
        SeverityRule(matchers=["severity critical"], level=3)
    with pytest.raises(ValueError):
        SeverityRule(matchers=[], level=3)
    with pytest.raises(ValueError):
        SeverityRule(matchers=['severity="x"'], level=0)
    with pytest.raises(ValueError):
        SeverityRule(matchers=['severity="x"'], level=6)


# --- properties ------------------------------------------------------------------------------

label_values = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["critical", "error", "major", "warning", "info", "0", "1", "3", "5", "6", " 2 "]),
)
label_names = st.one_of(st.text(max_size=12), st.sampled_from(["severity", "incident_level", "team"]))


@given(
    labels=st.dictionaries(label_names, label_values, max_size=6),
    services=st.lists(st.sampled_from([PLAIN, CRITICAL_INFRA]), max_size=3),
)
def test_classify_always_in_range(labels: dict[str, str], services: list[Service]) -> None:
    level = classify(labels, services, DEFAULTS)
    assert isinstance(level, int)
    assert 1 <= level <= 5


@given(
    labels=st.dictionaries(label_names, label_values, max_size=6),
    level=st.integers(min_value=1, max_value=5),
    services=st.lists(st.sampled_from([PLAIN, CRITICAL_INFRA]), max_size=3),
)
def test_explicit_level_always_wins(labels: dict[str, str], level: int, services: list[Service]) -> None:
    labels = {**labels, "incident_level": str(level)}
    assert classify(labels, services, DEFAULTS) == level


@given(st.text(alphabet=st.characters(codec="ascii", exclude_characters='"\\'), max_size=20))
def test_quoted_equality_matches_only_itself(value: str) -> None:
    matcher = parse_matcher(f'name="{value}"')
    assert matcher.value == value
    assert matcher.matches({"name": value})
    assert not matcher.matches({"name": value + "x"})
