"""A real Alertmanager sends a group holding alerts no database column takes to dualtrack on
PostgreSQL: the good alerts open the incident, the bad one is rejected, and nothing is retried."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.support.postgres import database_for_tests
from tests.support.server import Alertmanager, Dualtrack, am_alert, metric_sum, rfc3339, wait_until

pytestmark = pytest.mark.e2e

GROUP = {"alertname": "ReplicaLag", "service": "mysql-shared", "severity": "critical"}


@pytest.fixture
def pg_url() -> Iterator[str]:
    with database_for_tests("dualtrack_bad_alerts") as url:
        yield url


def test_one_bad_alert_never_blocks_its_group(dualtrack_factory, alertmanager_factory, sink_factory, pg_url):
    dt: Dualtrack = dualtrack_factory(workers=1, extra={"storage": {"url": pg_url}})
    dt.start()
    proxy = sink_factory(forward=dt.url).start()
    am: Alertmanager = alertmanager_factory([Alertmanager.dualtrack_receiver(proxy.url)])
    am.start()

    # Just started: Alertmanager holds the group for group_wait and sends all three together (an
    # alert older than that is sent at once, and the others would follow in the next notification).
    started = rfc3339(datetime.now(UTC))
    # Prometheus label values may hold any Unicode, NUL included; PostgreSQL text cannot.
    odd = am_alert({**GROUP, "instance": "db-1\x00"}, annotations={"summary": "lag\x00"}, starts_at=started)
    good = am_alert({**GROUP, "instance": "db-2"}, annotations={"summary": "lag"}, starts_at=started)
    # An incident type longer than its column: this alert alone is rejected.
    bad = am_alert({**GROUP, "instance": "db-3", "incident_type": "t" * 65}, starts_at=started)
    am.post_alerts([odd, good, bad])

    (incident,) = wait_until(lambda: dt.incidents("open") or None, timeout=30, message=dt.logs)
    detail = dt.incident(incident["ref"])
    assert sorted(a["labels"]["instance"] for a in detail["alerts"]) == ["db-1\ufffd", "db-2"]

    # Alertmanager repeats the group (repeat_interval 2s): every answer is a 202, none failed.
    wait_until(lambda: len(proxy.received("/webhooks/alertmanager")) >= 3, timeout=30, message=dt.logs)
    now = rfc3339()
    am.post_alerts([{**odd, "endsAt": now}, {**good, "endsAt": now}, {**bad, "endsAt": now}])
    resolved = wait_until(
        lambda: dt.incidents("resolved") or None, timeout=30, message=lambda: f"{dt.incidents()}\n{dt.logs()}"
    )
    assert [i["ref"] for i in resolved] == [incident["ref"]]
    assert len(dt.incidents("all")) == 1

    answers = Counter(r.answered for r in proxy.received())
    assert set(answers) == {202}, f"dualtrack answered Alertmanager with {answers}"
    assert am.metric("alertmanager_notifications_failed_total") == 0
    rejected = metric_sum(dt.metrics(), "dualtrack_signals_total", source="alertmanager", outcome="rejected")
    assert rejected == answers[202]  # the bad alert, once in every notification of the group
    assert dt.stop() == 0, dt.logs()
