"""The read API: auth, listing and filtering, one incident with alerts, notices and timeline."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import am_headers, api_headers, fixture_bytes

FIRING = "alertmanager/alertmanager-firing.json"


@pytest.fixture
def two_incidents(client, clock):
    from tests.payloads import am_alert, am_body, encode

    client.post("/webhooks/alertmanager", data=fixture_bytes(FIRING), headers=am_headers())
    clock.advance(timedelta(minutes=1))
    alert = am_alert(
        "9999000000000001", {"alertname": "DiskFull", "service": "search", "severity": "critical"}
    )
    client.post("/webhooks/alertmanager", data=encode(am_body([alert], "g2")), headers=am_headers())
    clock.advance(timedelta(minutes=1))
    resolved = dict(alert, status="resolved", endsAt="2026-11-26T14:40:00Z")
    client.post("/webhooks/alertmanager", data=encode(am_body([resolved], "g2")), headers=am_headers())


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, am_headers()])
def test_api_requires_the_api_token(client, headers):
    response = client.get("/api/v1/incidents", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_list_is_newest_first_and_filters_by_status(client, two_incidents):
    def refs(status=None):
        url = "/api/v1/incidents" + (f"?status={status}" if status else "")
        return [i["ref"] for i in client.get(url, headers=api_headers()).get_json()["incidents"]]

    assert refs() == ["INC-2026-0002", "INC-2026-0001"]
    assert refs("all") == ["INC-2026-0002", "INC-2026-0001"]
    assert refs("open") == ["INC-2026-0001"]
    assert refs("resolved") == ["INC-2026-0002"]
    response = client.get("/api/v1/incidents?status=closed", headers=api_headers())
    assert response.status_code == 400
    assert response.get_json()["error"]["details"][0]["field"] == "status"


def test_one_incident_has_the_contract_fields(client, two_incidents):
    body = client.get("/api/v1/incidents/INC-2026-0002", headers=api_headers()).get_json()
    for key in (
        "ref",
        "title",
        "status",
        "level",
        "incident_type",
        "services",
        "unknown_services",
        "tenants",
        "opened_at",
        "resolved_at",
        "alerts",
        "notices",
    ):
        assert key in body
    assert body["status"] == "resolved"
    assert body["level"] == 4
    assert body["services"] == ["search"]
    assert body["tenants"] == ["bloom"]
    assert body["opened_at"] == "2026-11-26T14:33:00Z"
    assert body["resolved_at"] == "2026-11-26T14:34:00Z"
    assert [a["status"] for a in body["alerts"]] == ["resolved"]
    notice = body["notices"][0]
    for key in (
        "id",
        "provider",
        "audience",
        "phase",
        "tenant",
        "state",
        "attempts",
        "last_error",
        "subject",
        "body",
        "created_at",
        "delivered_at",
    ):
        assert key in notice
    # Search serves only a business tenant: the technical version is not posted.
    assert [(n["audience"], n["phase"], n["state"]) for n in body["notices"]] == [
        ("business", "acknowledgement", "delivered"),
        ("business", "resolution", "delivered"),
    ]


def test_unknown_incident_is_404(client):
    response = client.get("/api/v1/incidents/INC-2026-9999", headers=api_headers())
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
