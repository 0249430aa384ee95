"""Level 5 in chat: the social channel at once, the team's briefings, and no token anywhere."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.support.chat import mattermost, mattermost_posts
from tests.support.server import DUALTRACK, Dualtrack, Sink, wait_until, webhook_body

pytestmark = pytest.mark.e2e

SOCIAL = "s0c1altoken4mattermost0001"
TEAM = "t3amtoken4mattermost000002"
WRONG = "wr0ngtoken4mattermost00003"  # no such webhook on the server


def chat(name: str, port: int, token: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "apprise",
        "audience": "technical",
        "urls": f"mmost://127.0.0.1:{port}/{token}",
    }


def test_level_5_reaches_the_social_channel_at_once_and_the_team_its_briefings(
    dualtrack_factory: Any,
) -> None:
    with Sink(answer=mattermost({SOCIAL, TEAM})) as channel:
        policy = {
            # The business track waits 10 minutes at level 5 here: the social channel does not.
            "levels": {5: {"business": {"hold_for": "10m"}, "social": ["social-chat"]}},
            "internal_providers": ["team-chat"],
            "senior_authoring": {"providers": ["team-chat"]},
        }
        server: Dualtrack = dualtrack_factory(
            providers=[
                {"name": "status", "type": "builtin", "audience": "all"},
                chat("social-chat", channel.port, SOCIAL),
                chat("team-chat", channel.port, TEAM),
                chat("broken-chat", channel.port, WRONG),
            ],
            extra={"policy": policy, "feedback": {"secret": "feedback-e2e-secret-0123456789"}},
        ).start()
        labels = {"alertname": "CheckoutDown", "incident_level": "5", "instance": "10.2.0.7:9100"}
        answer = server.post_alertmanager(webhook_body({"service": "checkout"}, [labels]))
        assert answer.status_code == 202, answer.text
        (ref,) = answer.json()["incidents"]

        def business_post() -> dict[str, Any] | None:
            posts = mattermost_posts(channel, SOCIAL)
            return next((p for p in posts if p["text"].startswith("Service Update:")), None)

        post = wait_until(business_post, message=lambda: "the business post\n" + server.logs())
        text = post["text"]
        assert "10.2.0.7" not in text and "CheckoutDown" not in text
        assert "Was this update helpful? Yes: http" in text and "Technical details: http" in text
        assert text.endswith(f"Status page: {server.url}/status")

        def briefings() -> list[str]:
            subjects = [p["text"].splitlines()[0] for p in mattermost_posts(channel, TEAM)]
            return [s for s in subjects if s.endswith(("Executive Briefing", "Authoring Request"))]

        found = wait_until(lambda: len(briefings()) == 2 and briefings(), message=server.logs)
        assert sorted(s.rpartition(" - ")[2] for s in found) == ["Authoring Request", "Executive Briefing"]
        assert all(s.startswith(f"{ref}: ") for s in found)
        # The team's own notices link where they need to: no customer status page line is added.
        texts = [p["text"] for p in mattermost_posts(channel, TEAM) if p["text"].splitlines()[0] in found]
        assert len(texts) == 2 and not [t for t in texts if t.endswith("/status/technical")]

        def notice(provider: str, audience: str, phase: str = "acknowledgement") -> dict[str, Any]:
            return next(
                n
                for n in server.incident(ref)["notices"]
                if (n["provider"], n["audience"], n["phase"]) == (provider, audience, phase)
            )

        wait_until(lambda: notice("broken-chat", "technical")["state"] == "dead", message=server.logs)
        social = notice("social-chat", "business")
        assert social["state"] == "delivered"
        taken = datetime.fromisoformat(social["delivered_at"]) - datetime.fromisoformat(social["created_at"])
        assert taken < timedelta(seconds=30)
        assert notice("status", "business")["state"] == "held"
        assert (
            notice("broken-chat", "technical")["last_error"]
            == "apprise broken-chat (urls[0], Mattermost): HTTP 400"
        )

        # The tokens are in no answer, log or check-config line.
        checked = subprocess.run(
            [str(DUALTRACK), "check-config", "--config", str(server.config)],
            capture_output=True,
            text=True,
            check=False,
        )
        answers = [
            json.dumps(server.incident(ref)),
            json.dumps(server.api("notices", state="held,pending,delivered,failed,dead")),
            server.metrics(),
        ]
        logs = [path.read_text(errors="replace") for path in (server.config.parent / "logs").iterdir()]
        for text in [checked.stdout + checked.stderr, *answers, *logs]:
            for token in (SOCIAL, TEAM, WRONG):
                assert token not in text
