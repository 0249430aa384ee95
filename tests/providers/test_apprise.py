"""Apprise provider against real local servers: what it posts where, URLs kept secret, check-config."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from adapter import cli
from adapter.config import ProviderSettings
from adapter.providers import DeliveryError, Message, build_providers
from adapter.providers.apprise import Apprise
from tests.conftest import base_config, write_config
from tests.providers.test_contract import MESSAGE
from tests.support.chat import mattermost, mattermost_posts, ntfy
from tests.support.server import Sink, free_port

TOKEN = "xq7hk3d9tbgz5rwn1m4e8yjcpa"  # a Mattermost webhook id: the secret of its URL
STATUS_URL = "https://status.example.test/status"
BODY = (
    "We are investigating errors during checkout.\n\nWas this update helpful? Yes: https://y · No: https://n"
)


def message(**overrides: Any) -> Message:
    """The contract's notice, as the dispatcher hands it to a provider with feedback links on."""
    changes = {"body": BODY, "data": {"status_url": STATUS_URL}, **overrides}
    return replace(MESSAGE, **changes)


def chat(urls: Any = None, **settings: Any) -> Apprise:
    options = {} if urls is None else {"urls": urls}
    provider = build_providers([ProviderSettings(name="chat", type="apprise", **options, **settings)])["chat"]
    assert isinstance(provider, Apprise)
    return provider


def hook(sink: Sink, token: str = TOKEN) -> str:
    return f"mmost://127.0.0.1:{sink.port}/{token}"


def test_a_mattermost_post_is_the_subject_the_body_and_the_status_page() -> None:
    with Sink(answer=mattermost({TOKEN})) as server:
        ref = chat(hook(server)).send(message())
    (post,) = mattermost_posts(server, TOKEN)
    # Mattermost posts have no title: apprise puts it on the first line.
    assert (
        post["text"] == f"Online checkout: errors for some customers\r\n{BODY}\n\nStatus page: {STATUS_URL}"
    )
    assert post["username"] == "dualtrack"
    assert ref == "chat/7"


def test_ntfy_json_and_form_get_the_subject_as_title_and_the_text_as_message() -> None:
    with Sink(answer=ntfy) as push, Sink() as plain:
        urls = [
            f"ntfy://127.0.0.1:{push.port}/status-updates",
            f"json://127.0.0.1:{plain.port}/json",
            f"form://127.0.0.1:{plain.port}/form",
        ]
        chat(urls).send(message(body="Resolved.", status="resolved", data={}))
    (published,) = push.received("/")
    assert published.json() == {
        "topic": "status-updates",
        "title": "Online checkout: errors for some customers",
        "message": "Resolved.",  # no status_url in the notice's data: no status line
    }
    as_json = plain.received("/json")[0].json()
    assert (as_json["title"], as_json["message"], as_json["type"]) == (
        message().subject,
        "Resolved.",
        "success",
    )
    form = parse_qs(plain.received("/form")[0].body.decode())
    assert (form["title"], form["message"], form["type"]) == ([message().subject], ["Resolved."], ["success"])


def test_per_tenant_posts_go_to_the_tenants_chat_contact() -> None:
    direct = chat(per_tenant=True)
    with Sink(answer=mattermost({TOKEN})) as server:
        direct.send(message(tenant="bloom", data={"contact": {"chat": hook(server)}}))
    assert len(mattermost_posts(server, TOKEN)) == 1

    with pytest.raises(DeliveryError) as missing:
        direct.send(message(tenant="bloom", data={"contact": {"email": "ops@bloom.example"}}))
    assert missing.value.permanent and str(missing.value) == "tenant bloom has no chat contact"

    with pytest.raises(DeliveryError) as unknown:
        direct.send(message(tenant="bloom", data={"contact": {"chat": f"nochat://{TOKEN}@example.test"}}))
    assert unknown.value.permanent
    assert str(unknown.value) == (
        "apprise chat (tenant bloom's contacts.chat): not an Apprise URL apprise knows"
    )


def test_a_retry_after_a_partial_failure_posts_only_where_it_failed() -> None:
    with Sink(answer=mattermost({TOKEN})) as good, Sink(status=503) as busy:
        provider = chat([hook(good), f"json://127.0.0.1:{busy.port}/hook"])
        with pytest.raises(DeliveryError) as failed:
            provider.send(message())
        assert not failed.value.permanent
        assert str(failed.value) == "apprise chat (urls[1], JSON): HTTP 503"
        busy.status = 200
        assert provider.send(message()) == "chat/7"
        assert len(mattermost_posts(good, TOKEN)) == 1
        assert [r.answered for r in busy.received()] == [503, 200]
        # Once delivered everywhere it is forgotten: the next notice goes to both again.
        provider.send(message(notice_id=8))
        assert len(mattermost_posts(good, TOKEN)) == 2


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_urls_never_reach_errors_logs_or_reprs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)  # as `dualtrack serve` logs
    logged = Records()  # what reaches the root logger (pytest's caplog also listens to apprise's own)
    logging.getLogger().addHandler(logged)
    unknown = "u" + TOKEN[1:]  # a webhook the server does not have
    try:
        with Sink(answer=mattermost({TOKEN})) as server:
            urls = [hook(server, unknown), f"mmost://127.0.0.1:{free_port()}/{TOKEN}"]
            provider = chat(urls, timeout="1s")
            with pytest.raises(DeliveryError) as failed:
                provider.send(message())
    finally:
        logging.getLogger().removeHandler(logged)
    assert failed.value.permanent  # Mattermost's 400: that webhook does not exist
    assert str(failed.value) == (
        "apprise chat (urls[0], Mattermost): HTTP 400; "
        "apprise chat (urls[1], Mattermost): connection failed or timed out"
    )
    # apprise logs the addresses it posts to, tokens and all: none of it reaches dualtrack's logs.
    assert not [r for r in logged.records if r.name.startswith("apprise")]
    texts = [r.getMessage() for r in logged.records] + [repr(provider.options), str(vars(provider))]
    assert not [text for text in texts if TOKEN in text or unknown in text]


def test_check_config_names_each_url_apprise_does_not_know(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = base_config()
    config["providers"] += [
        {"name": "chat", "type": "apprise", "urls": [f"mmost://chat.example.test/{TOKEN}", "mmost://"]},
        {"name": "pager", "type": "apprise", "urls": f"nochat://{TOKEN}@chat.example.test"},
        {"name": "nothing", "type": "apprise"},
    ]
    path = write_config(tmp_path / "config", config)
    assert cli.main(["check-config", "--config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f"{path}: providers[1].urls[1]: not an Apprise URL apprise knows",
        f"{path}: providers[2].urls[0]: not an Apprise URL apprise knows",
        f"{path}: providers[3].urls: required unless per_tenant is true",
    ]
    assert TOKEN not in out + err
