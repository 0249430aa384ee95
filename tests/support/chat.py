"""Fakes of the chat services apprise posts to, as `Sink` answers: Mattermost and ntfy."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from typing import Any

from tests.support.server import Received

Answer = Callable[[Received], tuple[int, bytes]]


def _json(request: Received) -> dict[str, Any] | None:
    try:
        body = json.loads(request.body)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def mattermost(tokens: Collection[str]) -> Answer:
    """Mattermost's incoming webhooks: POST /hooks/<id> with JSON whose `text` is the post; 200 `ok`.

    An id that names no webhook, or a post without text, is a 400 with Mattermost's error body.
    """

    def error(what: str, message: str) -> tuple[int, bytes]:
        body = {"id": f"web.incoming_webhook.{what}.app_error", "message": message, "status_code": 400}
        return 400, json.dumps(body).encode()

    def answer(request: Received) -> tuple[int, bytes]:
        hook = request.path.split("?")[0].removeprefix("/hooks/")
        if request.method != "POST" or hook not in tokens:
            return error("invalid", "Invalid webhook.")
        post = _json(request)
        if post is None or not post.get("text"):
            return error("text", "No text specified.")
        return 200, b"ok"

    return answer


def mattermost_posts(sink: Any, token: str) -> list[dict[str, Any]]:
    """The posts a Mattermost fake accepted on one webhook, oldest first."""
    return [r.json() for r in sink.received(f"/hooks/{token}") if r.answered == 200]


_TOPIC = re.compile(r"[-_A-Za-z0-9]{1,64}")


def ntfy(request: Received) -> tuple[int, bytes]:
    """ntfy's JSON publishing: POST / with {topic, title?, message?}; the message back, or its error."""
    message = _json(request) if request.method == "POST" and request.path.split("?")[0] == "/" else None
    if message is None or not _TOPIC.fullmatch(str(message.get("topic", ""))):
        return 400, json.dumps({"code": 40009, "http": 400, "error": "invalid request"}).encode()
    return 200, json.dumps({"id": "msg1", "event": "message", **message}).encode()
