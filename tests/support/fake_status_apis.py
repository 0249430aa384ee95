"""Fake Instatus, Cachet 2.x and Cachet 3.x APIs: real local HTTP servers that enforce each API's rules."""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from tests.support.scripted import write_reply

Answer = tuple[int, Any]


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    answered: int = 0

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass
class Failure:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


class ApiError(Exception):
    def __init__(self, status: int, body: Any):
        super().__init__(status)
        self.status = status
        self.body = body


class FakeApi:
    """A threaded HTTP server on 127.0.0.1 with routes and scripted failures."""

    routes: list[tuple[str, str, str]] = []  # (method, path regex, handler method name)

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        self._failures: list[Failure | None] = []
        self._compiled = [(m, re.compile(p + r"$"), getattr(self, h)) for m, p, h in self.routes]
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, body = api._answer(self.command, self.path, dict(self.headers.items()), raw)
                json_headers = {**headers, "Content-Type": "application/json"}
                write_reply(self, status, json_headers, json.dumps(body).encode())

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # Handler threads are joined on close, so none outlives the test.
        self._server.daemon_threads = False
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__
        )

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    # -- scripting -------------------------------------------------------------------------

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        after: int = 0,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> None:
        """Answer `times` requests with `status` instead of handling them, once `after` more went well."""
        with self.lock:
            self._failures += [None] * after + [Failure(status, headers or {}, body) for _ in range(times)]

    def writes(self) -> list[Call]:
        return [c for c in self.calls if c.method != "GET"]

    # -- dispatch --------------------------------------------------------------------------

    def _answer(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict, Any]:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        call = Call(method, path, headers, body)
        with self.lock:
            self.calls.append(call)
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            call.answered = failure.status
            return failure.status, failure.headers, failure.body if failure.body is not None else {}
        status, answer = self._route(call)
        call.answered = status
        return status, {}, answer

    def _route(self, call: Call) -> Answer:
        if not self.authorized(call):
            return self.unauthorized()
        for method, pattern, handler in self._compiled:
            match = pattern.match(call.path.split("?")[0])
            if match and method == call.method:
                try:
                    with self.lock:
                        return handler(call, *match.groups())
                except ApiError as exc:
                    return exc.status, exc.body
        return self.not_found()

    # -- per API ---------------------------------------------------------------------------

    def authorized(self, call: Call) -> bool:
        raise NotImplementedError

    def unauthorized(self) -> Answer:
        raise NotImplementedError

    def not_found(self) -> Answer:
        raise NotImplementedError


def require(condition: bool, error: Callable[[], ApiError]) -> None:
    if not condition:
        raise error()


# --------------------------------------------------------------------------------------------
# Instatus (https://instatus.com/help/api)

INSTATUS_INCIDENT = {"INVESTIGATING", "IDENTIFIED", "MONITORING", "RESOLVED"}
INSTATUS_COMPONENT = {
    "OPERATIONAL",
    "UNDERMAINTENANCE",
    "DEGRADEDPERFORMANCE",
    "PARTIALOUTAGE",
    "MINOROUTAGE",
    "MAJOROUTAGE",
}


class FakeInstatus(FakeApi):
    routes = [
        ("POST", r"/v1/([^/]+)/incidents", "create_incident"),
        ("POST", r"/v1/([^/]+)/incidents/([^/]+)/incident-updates", "add_update"),
        ("GET", r"/v1/([^/]+)/incidents/([^/]+)", "get_incident"),
    ]

    def __init__(self, *, page_id: str = "page-1", api_key: str = "ins-key", components: list[str] = ()):
        self.page_id = page_id
        self.api_key = api_key
        self.components: dict[str, str] = {c: "OPERATIONAL" for c in components}
        self.incidents: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        super().__init__()

    @staticmethod
    def error(status: int, code: str, message: str) -> ApiError:
        return ApiError(status, {"error": {"code": code, "message": message}})

    def authorized(self, call: Call) -> bool:
        return call.header("Authorization") == f"Bearer {self.api_key}"

    def unauthorized(self) -> Answer:
        return 401, {"error": {"code": "unauthorized", "message": "Not authorized"}}

    def not_found(self) -> Answer:
        return 404, {"error": {"code": "not_found", "message": "Not found"}}

    def _page(self, page_id: str) -> None:
        require(page_id == self.page_id, lambda: self.error(404, "not_found", "Page not found"))

    def _check(self, body: Any, *, create: bool) -> dict[str, Any]:
        bad = lambda text: self.error(400, "bad_request", text)  # noqa: E731
        require(isinstance(body, dict), lambda: bad("JSON body expected"))
        if create:
            require(isinstance(body.get("name"), str) and body["name"] != "", lambda: bad("name is required"))
        require(isinstance(body.get("message", ""), str), lambda: bad("message must be a string"))
        require(
            body.get("status") in INSTATUS_INCIDENT, lambda: bad(f"invalid status {body.get('status')!r}")
        )
        components = body.get("components", [])
        require(isinstance(components, list), lambda: bad("components must be a list"))
        for component in components:
            require(component in self.components, lambda c=component: bad(f"unknown component {c!r}"))
        for entry in body.get("statuses", []):
            require(
                entry.get("id") in self.components, lambda e=entry: bad(f"unknown component {e.get('id')!r}")
            )
            require(entry.get("status") in INSTATUS_COMPONENT, lambda e=entry: bad(f"bad status {e!r}"))
        if "started" in body:
            try:
                datetime.fromisoformat(str(body["started"]).replace("Z", "+00:00"))
            except ValueError:
                raise bad(f"invalid date {body['started']!r}") from None
        require(isinstance(body.get("notify", False), bool), lambda: bad("notify must be a boolean"))
        return body

    def create_incident(self, call: Call, page_id: str) -> Answer:
        self._page(page_id)
        body = self._check(call.body, create=True)
        incident_id = f"cins{next(self._ids):08d}"
        update = self._update(body)
        incident = {
            "id": incident_id,
            "name": body["name"],
            "status": body["status"],
            "started": body.get("started"),
            "resolved": None,
            "published": bool(body.get("shouldPublish", False)),
            "components": list(body.get("components", [])),
            "updates": [update],
        }
        self.incidents[incident_id] = incident
        self._apply(incident, body)
        return 200, incident

    def add_update(self, call: Call, page_id: str, incident_id: str) -> Answer:
        self._page(page_id)
        incident = self.incidents.get(incident_id)
        require(incident is not None, lambda: self.error(404, "not_found", "Incident not found"))
        assert incident is not None
        body = self._check(call.body, create=False)
        require(bool(body.get("message")), lambda: self.error(400, "bad_request", "message is required"))
        update = self._update(body)
        incident["updates"].append(update)
        incident["status"] = body["status"]
        self._apply(incident, body)
        return 200, {**update, "incident": {"id": incident_id, "status": incident["status"]}}

    def get_incident(self, call: Call, page_id: str, incident_id: str) -> Answer:
        self._page(page_id)
        incident = self.incidents.get(incident_id)
        require(incident is not None, lambda: self.error(404, "not_found", "Incident not found"))
        return 200, incident

    def _update(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"upd{next(self._ids):08d}",
            "message": body.get("message", ""),
            "status": body["status"],
            "notify": body.get("notify", False),
            "started": body.get("started"),
        }

    def _apply(self, incident: dict[str, Any], body: dict[str, Any]) -> None:
        for entry in body.get("statuses", []):
            self.components[entry["id"]] = entry["status"]
        if body["status"] == "RESOLVED" and incident["resolved"] is None:
            incident["resolved"] = body.get("started")


# --------------------------------------------------------------------------------------------
# Cachet 2.x (cachethq/cachet branch 2.4, /api/v1)

CACHET2_DATE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}")


def is_int(value: Any, low: int, high: int) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return isinstance(value, int) and low <= value <= high


class FakeCachet2(FakeApi):
    routes = [
        ("POST", r"/api/v1/incidents", "create_incident"),
        ("PUT", r"/api/v1/incidents/(\d+)", "update_incident"),
        ("POST", r"/api/v1/incidents/(\d+)/updates", "add_update"),
    ]

    def __init__(self, *, token: str = "c2-token", components: list[int] = ()):  # noqa: S107
        self.token = token
        self.components: dict[int, int] = {c: 1 for c in components}
        self.incidents: dict[int, dict[str, Any]] = {}
        self.updates: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        super().__init__()

    @property
    def api_url(self) -> str:
        return self.url + "/api/v1"

    @staticmethod
    def error(status: int, *details: str) -> ApiError:
        titles = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}
        return ApiError(
            status,
            {
                "errors": [
                    {
                        "id": "00000000-0000-4000-8000-000000000000",
                        "status": status,
                        "title": titles.get(status, "Error"),
                        "detail": "The request cannot be fulfilled due to bad syntax.",
                        "meta": {"details": list(details)},
                    }
                ]
            },
        )

    def authorized(self, call: Call) -> bool:
        return call.header("X-Cachet-Token") == self.token

    def unauthorized(self) -> Answer:
        return 401, self.error(401, "Authentication required.").body

    def not_found(self) -> Answer:
        return 404, self.error(404).body

    def _validate(self, body: Any, *, create: bool) -> dict[str, Any]:
        require(isinstance(body, dict), lambda: self.error(400, "A JSON body is required."))
        if create or "name" in body:
            require(
                isinstance(body.get("name"), str) and body["name"] != "",
                lambda: self.error(400, "The name field is required."),
            )
            require(
                len(body["name"]) <= 255, lambda: self.error(400, "The name may not be greater than 255.")
            )
        if create or "status" in body:
            require(
                is_int(body.get("status"), 0, 4),
                lambda: self.error(400, "The status must be between 0 and 4."),
            )
        if "visible" in body:
            require(
                body["visible"] in (True, False, 0, 1),
                lambda: self.error(400, "The visible field must be bool."),
            )
        has_id, has_status = body.get("component_id") is not None, body.get("component_status") is not None
        require(
            has_id or not has_status,
            lambda: self.error(400, "The component id field is required when component status is present."),
        )
        require(
            has_status or not has_id,
            lambda: self.error(400, "The component status field is required when component id is present."),
        )
        if has_status:
            require(
                is_int(body["component_status"], 0, 4),
                lambda: self.error(400, "The component status must be between 0 and 4."),
            )
            require(
                is_int(body["component_id"], 1, 10**9),
                lambda: self.error(400, "The component id must be an integer."),
            )
        if body.get("occurred_at") is not None:
            text = str(body["occurred_at"])
            valid = CACHET2_DATE.fullmatch(text) is not None
            if valid:
                try:
                    datetime.strptime(text, "%Y-%m-%d %H:%M")
                except ValueError:
                    valid = False
            # InvalidIncidentTimestampException
            require(valid, lambda: self.error(400, f"Unable to pass timestamp {text}"))
        return body

    def create_incident(self, call: Call) -> Answer:
        body = self._validate(call.body, create=True)
        incident_id = next(self._ids)
        incident = {
            "id": incident_id,
            "name": body["name"],
            "status": int(body["status"]),
            "message": body.get("message", ""),
            "visible": int(bool(body.get("visible", True))),
            "notify": bool(body.get("notify", True)),
            "occurred_at": body.get("occurred_at"),
            "component_id": body.get("component_id") or 0,
        }
        self.incidents[incident_id] = incident
        if body.get("component_id") is not None:
            self._set_component(int(body["component_id"]), int(body["component_status"]))
        return 200, {"data": incident}

    def update_incident(self, call: Call, incident_id: str) -> Answer:
        incident = self.incidents.get(int(incident_id))
        require(incident is not None, lambda: self.error(404))
        assert incident is not None
        body = self._validate(call.body, create=False)
        for key in ("name", "status", "message", "visible", "component_id"):
            if body.get(key) is not None:
                incident[key] = body[key]
        if body.get("component_id") is not None:
            # UpdateIncidentCommandHandler: Component::find(id) → UpdateComponentCommand.
            self._set_component(int(body["component_id"]), int(body["component_status"]))
        return 200, {"data": incident}

    def add_update(self, call: Call, incident_id: str) -> Answer:
        incident = self.incidents.get(int(incident_id))
        require(incident is not None, lambda: self.error(404))
        assert incident is not None
        body = call.body
        require(isinstance(body, dict), lambda: self.error(400, "A JSON body is required."))
        require(
            is_int(body.get("status"), 1, 4), lambda: self.error(400, "The status must be between 1 and 4.")
        )
        require(bool(body.get("message")), lambda: self.error(400, "The message field is required."))
        # The controller accepts component_id/component_status; the handler ignores them.
        update = {
            "id": len(self.updates) + 1,
            "incident_id": incident["id"],
            "status": int(body["status"]),
            "message": body["message"],
        }
        self.updates.append(update)
        incident["status"] = update["status"]
        return 200, {"data": update}

    def _set_component(self, component_id: int, status: int) -> None:
        if component_id in self.components:
            self.components[component_id] = status


# --------------------------------------------------------------------------------------------
# Cachet 3.x (cachethq/core, /api)


class FakeCachet3(FakeApi):
    routes = [
        ("POST", r"/api/incidents", "create_incident"),
        ("PUT", r"/api/incidents/(\d+)", "update_incident"),
        ("POST", r"/api/incidents/(\d+)/updates", "add_update"),
    ]

    def __init__(self, *, token: str = "c3-token", components: list[int] = ()):  # noqa: S107
        self.token = token
        self.components = list(components)
        self.incidents: dict[int, dict[str, Any]] = {}
        # (incident id, what) for each message subscribers would get.
        self.notified: list[tuple[int, str]] = []
        self._ids = itertools.count(1)
        super().__init__()

    @property
    def api_url(self) -> str:
        return self.url + "/api"

    @staticmethod
    def invalid(errors: dict[str, list[str]]) -> ApiError:
        first = next(iter(errors.values()))[0]
        more = sum(len(v) for v in errors.values()) - 1
        message = first + (f" (and {more} more error{'s' if more > 1 else ''})" if more else "")
        return ApiError(422, {"message": message, "errors": errors})

    def authorized(self, call: Call) -> bool:
        return call.header("Authorization") == f"Bearer {self.token}"

    def unauthorized(self) -> Answer:
        return 401, {"message": "Unauthenticated."}

    def not_found(self) -> Answer:
        return 404, {"message": "Not Found"}

    def component_status(self, component_id: int) -> int:
        """Derived as in core: the worst impact of the unfixed incidents, else operational."""
        impacts = [
            status
            for incident in self.incidents.values()
            if incident["status"] != 4
            for cid, status in incident["components"].items()
            if cid == component_id
        ]
        return max(impacts, default=1)

    def create_incident(self, call: Call) -> Answer:
        body = call.body if isinstance(call.body, dict) else {}
        errors: dict[str, list[str]] = {}
        if not isinstance(body.get("name"), str) or not body["name"]:
            errors["name"] = ["The name field is required."]
        elif len(body["name"]) > 255:
            errors["name"] = ["The name field must not be greater than 255 characters."]
        if body.get("status") is None:
            errors["status"] = ["The status field is required."]
        elif not is_int(body["status"], 0, 4):
            errors["status"] = ["The selected status is invalid."]
        if not body.get("message") and not body.get("template"):
            errors["message"] = ["The message field is required when template is not present."]
        for key in ("visible", "notifications", "stickied"):
            if key in body and not isinstance(body[key], bool):
                errors[key] = [f"The {key} field must be true or false."]
        components = body.get("components", [])
        if not isinstance(components, list):
            errors["components"] = ["The components field must be an array."]
            components = []
        for index, entry in enumerate(components):
            if not isinstance(entry, dict) or entry.get("id") not in self.components:
                errors[f"components.{index}.id"] = ["The selected components.id is invalid."]
            elif not is_int(entry.get("status"), 1, 6):
                errors[f"components.{index}.status"] = ["The selected components.status is invalid."]
        if errors:
            raise self.invalid(errors)
        incident_id = next(self._ids)
        incident = {
            "id": incident_id,
            "name": body["name"],
            "message": body["message"],
            "status": int(body["status"]),
            # Both default to false: hidden, and nobody is told.
            "visible": bool(body.get("visible", False)),
            "notifications": bool(body.get("notifications", False)),
            "components": {int(e["id"]): int(e["status"]) for e in components},
            "updates": [],
        }
        self.incidents[incident_id] = incident
        self._notify(incident, "created")
        return 201, self._resource(incident)

    def update_incident(self, call: Call, incident_id: str) -> Answer:
        incident = self.incidents.get(int(incident_id))
        require(incident is not None, lambda: ApiError(404, {"message": "Not Found"}))
        assert incident is not None
        body = call.body if isinstance(call.body, dict) else {}
        if "status" in body and not is_int(body["status"], 0, 4):
            raise self.invalid({"status": ["The selected status is invalid."]})
        # UpdateIncidentRequestData has no components: anything else is dropped.
        for key in ("name", "message", "status", "visible", "stickied", "notifications"):
            if key in body:
                incident[key] = body[key]
        return 200, self._resource(incident)

    def add_update(self, call: Call, incident_id: str) -> Answer:
        incident = self.incidents.get(int(incident_id))
        require(incident is not None, lambda: ApiError(404, {"message": "Not Found"}))
        assert incident is not None
        body = call.body if isinstance(call.body, dict) else {}
        errors: dict[str, list[str]] = {}
        if body.get("status") is None or not is_int(body["status"], 0, 4):
            errors["status"] = ["The status field is required."]
        if not body.get("message"):
            errors["message"] = ["The message field is required."]
        if errors:
            raise self.invalid(errors)
        update = {
            "id": len(incident["updates"]) + 1,
            "status": int(body["status"]),
            "message": body["message"],
        }
        incident["updates"].append(update)
        incident["status"] = update["status"]  # SyncIncidentStatus
        self._notify(incident, f"update {update['id']}")
        return 201, {"data": {"id": str(update["id"]), "type": "incidentUpdates", "attributes": update}}

    def _notify(self, incident: dict[str, Any], what: str) -> None:
        if incident["visible"] and incident["notifications"]:
            self.notified.append((incident["id"], what))

    @staticmethod
    def _resource(incident: dict[str, Any]) -> dict[str, Any]:
        attributes = {k: v for k, v in incident.items() if k not in ("components", "updates")}
        attributes["status"] = {"value": incident["status"]}
        return {"data": {"id": str(incident["id"]), "type": "incidents", "attributes": attributes}}
