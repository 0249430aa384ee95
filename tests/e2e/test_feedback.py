"""Did it work? Readers answer from their e-mails (a real SMTP server), a business reader asks for
the technical details three times, and the report and its CSV say exactly that."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest
import requests

from tests.support.catalog import catalog_data
from tests.support.server import API_TOKEN, Dualtrack, wait_until, webhook_body
from tests.support.smtp_server import SmtpServer

pytestmark = pytest.mark.e2e

FEEDBACK_SECRET = "feedback-e2e-secret-0123456789"
TENANTS = {  # id: segment
    "alpha": "technical",
    "beta": "technical",
    "gamma": "business",
    "delta": "business",
}
ANSWERS = {"alpha": "yes", "beta": "no", "gamma": "yes", "delta": "no"}
LINKS = re.compile(r"Was this update helpful\? Yes: (\S+) · No: (\S+)")
DETAILS = re.compile(r"Technical details: (\S+)")


def catalog() -> dict[str, Any]:
    data = catalog_data()
    data["tenants"] = [
        {
            "id": tenant,
            "name": f"{tenant.title()} GmbH",
            "segment": segment,
            "timezone": "Europe/Berlin",
            "services": ["checkout"],
            "contacts": {"email": f"ops@{tenant}.example"},
        }
        for tenant, segment in TENANTS.items()
    ]
    return data


def text_of(message: Any) -> str:
    part = message.get_body(preferencelist=("plain",))
    return str(part.get_content())


def test_answers_and_detail_requests_by_segment_reach_the_report(dualtrack_factory: Any) -> None:
    with SmtpServer() as smtp:
        mail = {
            "name": "mail",
            "type": "smtp",
            "audience": "all",
            "per_tenant": True,
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "none",
            "sender": "Example Status <status@example.com>",
        }
        server: Dualtrack = dualtrack_factory(
            providers=[{"name": "status", "type": "builtin", "audience": "all"}, mail],
            catalog=catalog(),
            extra={"feedback": {"secret": FEEDBACK_SECRET}},
        ).start()
        labels = {"alertname": "CheckoutErrors", "service": "checkout", "incident_level": "3"}
        assert server.post_alertmanager(webhook_body({"service": "checkout"}, [labels])).status_code == 202
        wait_until(lambda: len(smtp.received) == 4, timeout=30, message=lambda: "4 e-mails\n" + server.logs())

        mails = {r.rcpt_tos[0].split("@")[1].split(".")[0]: text_of(r.message) for r in smtp.received}
        for tenant, answer in ANSWERS.items():
            yes, no = LINKS.search(mails[tenant]).groups()  # type: ignore[union-attr]
            page = requests.get(yes if answer == "yes" else no, timeout=10)
            assert page.status_code == 200 and "Thank you" in page.text
        assert DETAILS.search(mails["alpha"]) is None  # technical readers have the details already
        details = DETAILS.search(mails["gamma"]).group(1)  # type: ignore[union-attr]
        for _ in range(3):
            shown = requests.get(details, timeout=10)
            assert shown.status_code == 200 and "Technical details" in shown.text
            assert "Checkout API" in shown.text  # the technical names business notices leave out
            assert not any(f"{t.title()} GmbH" in shown.text for t in TENANTS if t != "gamma")

        forged = details[:-6] + ("aaaaaa" if not details.endswith("aaaaaa") else "bbbbbb")
        refused = requests.get(forged, timeout=10)
        assert refused.status_code == 400 and "This link does not work" in refused.text
        assert "Traceback" not in refused.text

        headers = {"Authorization": f"Bearer {API_TOKEN}"}
        url = f"{server.url}/api/v1/reports/communication"
        report = requests.get(url, headers=headers, timeout=10).json()
        said = {(f["audience"], f["segment"]): (f["helpful"], f["not_helpful"]) for f in report["feedback"]}
        assert said == {("technical", "technical"): (1, 1), ("business", "business"): (1, 1)}
        assert all(f["level"] == 3 and f["provider"] == "mail" for f in report["feedback"])
        assert report["detail_requests"] == [
            {
                "tenant": "gamma",
                "segment": "business",
                "count": 3,
                "flagged": True,
                "incidents": ["INC-2026-0001"],
            }
        ]
        firsts = {(s["audience"], s["provider"]): (s["good"], s["total"]) for s in report["first_notices"]}
        assert firsts[("business", "mail")] == (2, 2) and firsts[("technical", "mail")] == (2, 2)

        exported = requests.get(url, params={"format": "csv"}, headers=headers, timeout=10)
        assert exported.headers["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        helpful = {
            (r["audience"], r["segment"]): (r["good"], r["total"]) for r in rows if r["figure"] == "helpful"
        }
        assert helpful == {("technical", "technical"): ("1", "2"), ("business", "business"): ("1", "2")}
        (row,) = [r for r in rows if r["figure"] == "detail_requests"]
        assert (row["tenant"], row["segment"], row["total"]) == ("gamma", "business", "3")

        metrics = server.metrics()
        assert 'dualtrack_feedback_total{audience="business",helpful="no",segment="business"} 1.0' in metrics
        assert 'dualtrack_detail_requests_total{segment="business"} 3.0' in metrics
