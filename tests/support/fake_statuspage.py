"""A fake Statuspage API on 127.0.0.1: OpenAPI-validated bodies, OAuth keys, 1 req/s per key (420)."""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from adapter.clock import Clock, SystemClock
from tests.support.scripted import write_reply

SPEC_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "statuspage" / "statuspage-api-v1.openapi.json"
COMPONENT_STATUSES = [
    "operational",
    "under_maintenance",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "",
]
METHODS = ("get", "post", "put", "patch", "delete")


def _walk(node: Any) -> Any:
    """Fix the document's invalid types in place (`Object`, `PartialStartDate`, `PartialEndDate`)."""
    if isinstance(node, dict):
        if node.get("type") == "Object":
            node["type"] = "object"
        elif node.get("type") in ("PartialStartDate", "PartialEndDate"):
            node["type"] = "string"
        for value in node.values():
            _walk(value)
    elif isinstance(node, list):
        for value in node:
            _walk(value)
    return node


@cache
def patched_spec() -> dict[str, Any]:
    """The raw OpenAPI document with its known defects patched in memory (see shared/specs/README.md).

    Besides the fixes, the fake is stricter than the document where the document only says it in
    prose: name ≤ 255 and body ≤ 25 000 characters, metadata's top-level values are objects,
    `component_ids` of a subscriber has at least one element; and it refuses unknown fields in
    the `incident` object and a body without its wrapper, so typos fail loudly.
    """
    spec = _walk(json.loads(SPEC_PATH.read_text()))
    schemas = spec["components"]["schemas"]
    for name in ("postPagesPageIdIncidents", "patchPagesPageIdIncidents", "putPagesPageIdIncidents"):
        wrapper = schemas[name]
        incident = wrapper["properties"]["incident"]
        props = incident["properties"]
        # Documented as an object whose only property is a dummy component id: really {id: status}.
        props["components"] = {
            "type": "object",
            "description": props["components"].get("description", ""),
            "additionalProperties": {"type": "string", "enum": COMPONENT_STATUSES},
        }
        props["name"]["maxLength"] = 255
        props["body"]["maxLength"] = 25_000
        props["metadata"]["additionalProperties"] = {"type": "object"}
        incident["additionalProperties"] = False
        wrapper["required"] = ["incident"]
        wrapper["additionalProperties"] = False
    schemas["postPagesPageIdIncidents"]["properties"]["incident"]["required"] = ["name"]
    # Array fields typed as string.
    schemas["Subscriber"]["properties"]["components"] = {"type": "array", "items": {"type": "string"}}
    subscriber = schemas["postPagesPageIdSubscribers"]
    subscriber["properties"]["subscriber"]["properties"]["component_ids"]["minItems"] = 1
    subscriber["properties"]["subscriber"]["additionalProperties"] = False
    subscriber["required"] = ["subscriber"]
    schemas["patchPagesPageIdSubscribers"]["properties"]["component_ids"]["minItems"] = 1
    schemas["patchPagesPageIdSubscribers"]["additionalProperties"] = False
    for name in (
        "putPagesPageIdIncidentsIncidentIdPostmortem",
        "putPagesPageIdIncidentsIncidentIdPostmortemPublish",
    ):
        schemas[name]["required"] = ["postmortem"]
        schemas[name]["properties"]["postmortem"]["additionalProperties"] = False
    return spec


@cache
def _routes() -> list[tuple[str, re.Pattern[str], str, str | None]]:
    """(method, path pattern, path template, request schema ref or None) for every operation."""
    routes = []
    for template, item in patched_spec()["paths"].items():
        pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            ref = (
                (operation.get("requestBody") or {})
                .get("content", {})
                .get("application/json", {})
                .get("schema", {})
                .get("$ref")
            )
            routes.append((method.upper(), pattern, template, ref))
    return routes


@cache
def _registry() -> Registry:  # type: ignore[type-arg]
    resource = Resource.from_contents(patched_spec(), default_specification=DRAFT7)
    return Registry().with_resource("urn:statuspage", resource)  # type: ignore[no-any-return]


def validate_request(method: str, path: str, body: Any) -> list[str]:
    """Problems of this request body against the (patched) OpenAPI request schema of its operation."""
    for route_method, pattern, _template, ref in _routes():
        if route_method == method and pattern.match(path):
            if ref is None:
                return []
            validator = jsonschema.Draft7Validator({"$ref": "urn:statuspage" + ref}, registry=_registry())
            return [
                f"{'.'.join(map(str, error.absolute_path)) or '(body)'}: {error.message}"
                for error in validator.iter_errors(body)
            ]
    return [f"no operation {method} {path} in the OpenAPI document"]


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 0
    at: float = 0.0


@dataclass
class Failure:
    status: int
    body: Any
    headers: dict[str, str]
    method: str | None


class ApiError(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None):
        self.status, self.body, self.headers = status, body, headers or {}


@dataclass
class Page:
    components: dict[str, dict[str, Any]] = field(default_factory=dict)
    incidents: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscribers: dict[str, dict[str, Any]] = field(default_factory=dict)


class FakeStatuspage:
    """In-memory pages, incidents, components and subscribers behind a real HTTP server.

    `rate` requests per second per API key, burst 1, measured on `clock` when a request arrives (with
    `slack` seconds of tolerance for network jitter); beyond it: 420 with Retry-After. `rate=None`: no
    limit. Pass the clock dualtrack paces its requests on, and the pace is judged on that clock.
    """

    def __init__(
        self,
        *,
        keys: tuple[str, ...] = ("sp-test-key",),
        page_id: str = "pg1",
        components: dict[str, str] | None = None,
        rate: float | None = 1.0,
        slack: float = 0.15,
        clock: Clock | None = None,
    ):
        self.keys = set(keys)
        self.page_id = page_id
        self.pages: dict[str, Page] = {page_id: Page()}
        for cid, status in (components or {}).items():
            self.add_component(cid, status)
        self.rate = rate
        self.slack = slack
        self.clock = clock or SystemClock()
        self.requests: list[Seen] = []
        self.rate_limited = 0
        self.failures: list[Failure] = []
        self.drop_create_for: float | None = None
        self._ids = itertools.count(1)
        self._buckets: dict[str, float] = {}  # key → when (on the clock) it last was let through
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body, headers, delay = fake._dispatch(
                    self.command, self.path, dict(self.headers), raw
                )
                if delay:
                    fake._stopping.wait(delay)  # the client has given up by now: its answer is lost
                payload = b"" if body is None else json.dumps(body).encode()
                write_reply(self, status, {**headers, "Content-Type": "application/json"}, payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> FakeStatuspage:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- test controls --------------------------------------------------------------------------

    @property
    def page(self) -> Page:
        return self.pages[self.page_id]

    def new_id(self) -> str:
        return f"x{next(self._ids):011d}"

    def add_page(self, page_id: str, components: dict[str, str]) -> None:
        self.pages[page_id] = Page()
        for cid, status in components.items():
            self.add_component(cid, status, page_id)

    def add_component(self, cid: str, status: str = "operational", page_id: str | None = None) -> None:
        self.pages[page_id or self.page_id].components[cid] = {
            "id": cid,
            "page_id": page_id or self.page_id,
            "name": f"Component {cid}",
            "status": status,
            "group": False,
            "created_at": now_iso(),
            "updated_at": now_iso(),
        }

    def status_of(self, cid: str) -> str:
        return str(self.page.components[cid]["status"])

    def add_incident(
        self, name: str, components: dict[str, str], metadata: dict[str, Any] | None = None
    ) -> str:
        """An incident made by someone else (the web UI, another tool)."""
        with self._lock:
            return self._create(
                self.page,
                {
                    "name": name,
                    "status": "investigating",
                    "components": components,
                    "metadata": metadata or {},
                },
            )["id"]

    def add_subscriber(
        self,
        email: str,
        component_ids: list[str] | None = None,
        state: str = "active",
        page_id: str | None = None,
    ) -> str:
        with self._lock:
            sid = self.new_id()
            self.pages[page_id or self.page_id].subscribers[sid] = {
                "id": sid,
                "mode": "email",
                "email": email,
                "components": component_ids,
                "state": state,
                "skip_confirmation_notification": False,
                "created_at": now_iso(),
            }
            return sid

    def fail_next(
        self,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        *,
        method: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next matching request(s) with this status, changing nothing."""
        for _ in range(times):
            self.failures.append(
                Failure(status, body if body is not None else {"error": "Internal"}, headers or {}, method)
            )

    def drop_next_create(self, delay: float) -> None:
        """Store the next incident created, then answer only after `delay` s (past the client timeout)."""
        self.drop_create_for = delay

    def writes(self) -> list[Seen]:
        return [r for r in self.requests if r.method != "GET" and 200 <= r.status < 300]

    # -- request handling ------------------------------------------------------------------------------

    def _dispatch(
        self, method: str, target: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any, dict[str, str], float]:
        parts = urlsplit(target)
        path = re.sub(r"\.json$", "", parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        seen = Seen(method, path, query, None, at=self.clock.now().timestamp())
        with self._lock:
            self.requests.append(seen)
            try:
                status, body, extra, delay = self._answer(method, path, query, headers, raw, seen)
            except ApiError as exc:
                status, body, extra, delay = exc.status, exc.body, exc.headers, 0.0
            seen.status = status
        return status, body, extra, delay

    def _admit(self, key: str, now: float) -> None:
        if self.rate is None:
            return
        last = self._buckets.get(key)
        interval = 1.0 / self.rate
        if last is not None and now - last < interval - self.slack:
            self.rate_limited += 1
            wait = interval - (now - last)
            raise ApiError(
                420, {"error": "Rate limit exceeded"}, {"Retry-After": str(max(1, math.ceil(wait)))}
            )
        self._buckets[key] = now

    def _answer(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], raw: bytes, seen: Seen
    ) -> tuple[int, Any, dict[str, str], float]:
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, key = auth.partition(" ")
        if scheme != "OAuth" or key not in self.keys:
            raise ApiError(401, {"error": "Could not authenticate"})
        self._admit(key, seen.at)
        if self.failures and self.failures[0].method in (None, method):
            failure = self.failures.pop(0)
            raise ApiError(failure.status, failure.body, failure.headers)
        body: Any = None
        if raw:
            if "application/json" not in next(
                (v for k, v in headers.items() if k.lower() == "content-type"), ""
            ):
                raise ApiError(400, {"error": "Content-Type must match the body (application/json)"})
            try:
                body = json.loads(raw)
            except ValueError:
                raise ApiError(400, {"error": "Malformed JSON"}) from None
        seen.body = body
        if method in ("POST", "PUT", "PATCH"):
            problems = validate_request(method, path, body)
            if problems:
                raise ApiError(422, {"error": {"body": problems}})
        segments = path.strip("/").split("/")
        if len(segments) < 3 or segments[0] != "pages" or segments[1] not in self.pages:
            raise ApiError(404, {"message": "The requested resource could not be found"})
        page, rest = self.pages[segments[1]], segments[2:]
        return self._route(page, method, rest, query, body)

    def _route(
        self, page: Page, method: str, rest: list[str], query: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str], float]:
        match (method, rest):
            case ("GET", ["incidents", "unresolved"]):
                rows = [i for i in page.incidents.values() if i["status"] != "resolved"]
                rows.sort(key=lambda i: i["created_at"], reverse=True)
                return 200, self._slice(rows, query, page, self._incident_view), {}, 0.0
            case ("POST", ["incidents"]):
                incident = self._create(page, body["incident"])
                delay, self.drop_create_for = self.drop_create_for or 0.0, None
                return 201, self._incident_view(page, incident), {}, delay
            case ("GET", ["incidents", iid]):
                return 200, self._incident_view(page, self._incident(page, iid)), {}, 0.0
            case ("PATCH" | "PUT", ["incidents", iid]):
                incident = self._incident(page, iid)
                self._change(page, incident, body["incident"])
                return 200, self._incident_view(page, incident), {}, 0.0
            case ("PUT", ["incidents", iid, "postmortem"]):
                incident = self._incident(page, iid)
                incident["postmortem_body_draft"] = body["postmortem"]["body_draft"]
                return 200, {"body_draft": incident["postmortem_body_draft"]}, {}, 0.0
            case ("PUT", ["incidents", iid, "postmortem", "publish"]):
                incident = self._incident(page, iid)
                if not incident.get("postmortem_body_draft"):
                    raise ApiError(422, {"error": "Postmortem has no draft to publish"})
                incident["postmortem_body"] = incident["postmortem_body_draft"]
                incident["postmortem_published_at"] = now_iso()
                incident["postmortem_notified_subscribers"] = bool(
                    body["postmortem"].get("notify_subscribers")
                )
                return (
                    200,
                    {
                        "body": incident["postmortem_body"],
                        "published_at": incident["postmortem_published_at"],
                    },
                    {},
                    0.0,
                )
            case ("GET", ["components"]):
                rows = list(page.components.values())
                return 200, self._slice(rows, query, page, lambda _p, c: dict(c)), {}, 0.0
            case ("GET", ["components", cid]):
                if cid not in page.components:
                    raise ApiError(404, {"error": "Component not found"})
                return 200, dict(page.components[cid]), {}, 0.0
            case ("GET", ["subscribers"]):
                return 200, self._subscribers(page, query), {}, 0.0
            case ("POST", ["subscribers"]):
                return 201, self._subscribe(page, body["subscriber"]), {}, 0.0
            case ("PATCH", ["subscribers", sid]):
                subscriber = self._subscriber(page, sid)
                subscriber["components"] = self._known(page, body.get("component_ids"), "component_ids")
                return 200, self._subscriber_view(page, subscriber), {}, 0.0
            case ("DELETE", ["subscribers", sid]):
                subscriber = page.subscribers.pop(self._subscriber(page, sid)["id"])
                return 200, self._subscriber_view(page, subscriber), {}, 0.0
        raise ApiError(404, {"message": f"{method} /{'/'.join(rest)} is not implemented by the fake"})

    # -- incidents ---------------------------------------------------------------------------------

    @staticmethod
    def _slice(rows: list[Any], query: dict[str, str], page: Page, view: Any) -> list[Any]:
        number, per_page = int(query.get("page", 1)), int(query.get("per_page", 100))
        if number < 1 or not 1 <= per_page <= 100:
            raise ApiError(400, {"error": "page starts at 1; per_page is 1 to 100"})
        return [view(page, r) for r in rows[(number - 1) * per_page : number * per_page]]

    @staticmethod
    def _incident(page: Page, iid: str) -> dict[str, Any]:
        if iid not in page.incidents:
            raise ApiError(404, {"error": "Incident not found"})
        return page.incidents[iid]

    def _known(self, page: Page, ids: Any, key: str) -> Any:
        if ids is None:
            return None
        unknown = [c for c in ids if c not in page.components]
        if unknown:
            raise ApiError(422, {"error": {key: [f"unknown component {c}" for c in unknown]}})
        return list(ids)

    def _set_components(self, page: Page, incident: dict[str, Any], fields: dict[str, Any]) -> list[Any]:
        statuses = fields.get("components") or {}
        self._known(page, list(statuses), "components")
        ids = self._known(page, fields.get("component_ids") or [], "component_ids")
        affected = []
        for cid, status in statuses.items():
            old = page.components[cid]["status"]
            if status:
                page.components[cid].update(status=status, updated_at=now_iso())
            affected.append(
                {
                    "code": cid,
                    "name": page.components[cid]["name"],
                    "old_status": old,
                    "new_status": page.components[cid]["status"],
                }
            )
        for cid in [*ids, *statuses]:
            if cid not in incident["component_ids"]:
                incident["component_ids"].append(cid)
        return affected

    def _create(self, page: Page, fields: dict[str, Any]) -> dict[str, Any]:
        now = now_iso()
        incident: dict[str, Any] = {
            "id": self.new_id(),
            "page_id": self.page_id,
            "name": fields["name"],
            "status": fields.get("status", "investigating"),
            "impact": fields.get("impact_override", "none"),
            "impact_override": fields.get("impact_override"),
            "metadata": copy.deepcopy(fields.get("metadata") or {}),
            "component_ids": [],
            "incident_updates": [],
            "created_at": now,
            "updated_at": now,
            "resolved_at": now if fields.get("status") == "resolved" else None,
            "postmortem_body": None,
            "postmortem_published_at": None,
            "shortlink": "http://stspg.io/fake",
        }
        affected = self._set_components(page, incident, fields)
        self._add_update(incident, fields, affected)
        page.incidents[incident["id"]] = incident
        return incident

    def _change(self, page: Page, incident: dict[str, Any], fields: dict[str, Any]) -> None:
        affected = self._set_components(page, incident, fields)
        for key in ("name", "status", "impact_override"):
            if key in fields:
                incident[key] = fields[key]
        if "impact_override" in fields:
            incident["impact"] = fields["impact_override"]
        if "metadata" in fields:
            incident["metadata"].update(copy.deepcopy(fields["metadata"]))
        if fields.get("status") == "resolved" and not incident["resolved_at"]:
            incident["resolved_at"] = now_iso()
        incident["updated_at"] = now_iso()
        if "body" in fields or "status" in fields:
            self._add_update(incident, fields, affected)

    def _add_update(self, incident: dict[str, Any], fields: dict[str, Any], affected: list[Any]) -> None:
        incident["incident_updates"].insert(
            0,
            {
                "id": self.new_id(),
                "incident_id": incident["id"],
                "status": incident["status"],
                "body": fields.get("body", ""),
                "deliver_notifications": fields.get("deliver_notifications", True),
                "affected_components": affected,
                "display_at": now_iso(),
            },
        )

    @staticmethod
    def _incident_view(page: Page, incident: dict[str, Any]) -> dict[str, Any]:
        view = {
            k: copy.deepcopy(v)
            for k, v in incident.items()
            if k not in ("component_ids", "postmortem_body_draft")
        }
        view["components"] = [dict(page.components[c]) for c in incident["component_ids"]]
        return view

    # -- subscribers ------------------------------------------------------------------------------

    @staticmethod
    def _subscriber(page: Page, sid: str) -> dict[str, Any]:
        if sid not in page.subscribers:
            raise ApiError(404, {"error": "Subscriber not found"})
        return page.subscribers[sid]

    @staticmethod
    def _subscriber_view(page: Page, subscriber: dict[str, Any]) -> dict[str, Any]:
        view = {k: v for k, v in subscriber.items() if k != "state"}
        # Subscribed to the whole page: every component.
        view["components"] = list(subscriber["components"] or page.components)
        return view

    def _subscribers(self, page: Page, query: dict[str, str]) -> list[dict[str, Any]]:
        number, limit = int(query.get("page", 0)), int(query.get("limit", 100))
        if number < 0 or not 1 <= limit <= 100:
            raise ApiError(400, {"error": "page starts at 0; limit is 1 to 100"})
        state = query.get("state", "active")
        rows = [
            s
            for s in page.subscribers.values()
            if (state == "all" or s["state"] == state) and query.get("type", s["mode"]) == s["mode"]
        ]
        rows.sort(key=lambda s: s["email"])
        return [self._subscriber_view(page, s) for s in rows[number * limit : (number + 1) * limit]]

    def _subscribe(self, page: Page, fields: dict[str, Any]) -> dict[str, Any]:
        email = fields.get("email")
        if not email:
            raise ApiError(422, {"error": {"email": ["can't be blank"]}})
        if any(s["email"].lower() == email.lower() for s in page.subscribers.values()):
            raise ApiError(422, {"error": {"email": ["has already been taken"]}})
        subscriber = {
            "id": self.new_id(),
            "mode": "email",
            "email": email,
            "components": self._known(page, fields.get("component_ids"), "component_ids"),
            "skip_confirmation_notification": bool(fields.get("skip_confirmation_notification")),
            "state": "active" if fields.get("skip_confirmation_notification") else "unconfirmed",
            "created_at": now_iso(),
        }
        page.subscribers[subscriber["id"]] = subscriber
        return self._subscriber_view(page, subscriber)
