"""SMTP provider against a real local SMTP server: the message, threading, TLS and failure classes."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from pydantic import ValidationError

from adapter.config import ProviderSettings
from adapter.providers import DeliveryError, Message
from adapter.providers.smtp import Smtp, SmtpOptions
from tests.support.smtp_server import SmtpServer, free_port, self_signed_cert, tls_available

SENDER = "Example Status <status@example.com>"
BODY = """We're investigating <errors> & more.

Status page: https://status.example.com/incidents/INC-2026-0001.
- Checkout API (checkout-api)"""

needs_tls = pytest.mark.skipif(not tls_available(), reason="neither cryptography nor openssl is installed")


def message(**overrides) -> Message:
    values = dict(
        notice_id=7,
        incident_ref="INC-2026-0001",
        phase="acknowledgement",
        audience="business",
        subject="INC-2026-0001: Checkout API 5xx ratio above 5% - Initial Response",
        body=BODY,
        level=4,
        status="investigating",
        services=["checkout"],
        tenants=["acme"],
        html="<!DOCTYPE html>\n<html><body><p>Checkout is failing &amp; slow.</p></body></html>\n",
    )
    values.update(overrides)
    return Message(**values)


@pytest.fixture(autouse=True)
def hang_up():
    """Each test's providers give back the connections they keep between messages."""
    yield
    while made:
        made.pop().close()


made: list[Smtp] = []


def smtp(port: int, **options) -> Smtp:
    values = dict(
        host="127.0.0.1",
        port=port,
        security="none",
        sender=SENDER,
        to=["ops@example.net", "Support Desk <desk@example.net>"],
        timeout="5s",
    )
    values.update(options)
    made.append(Smtp(ProviderSettings(name="mail", type="smtp", audience="business", **values)))
    return made[-1]


def parts(mail: EmailMessage) -> tuple[str, str]:
    text = mail.get_body(preferencelist=("plain",))
    markup = mail.get_body(preferencelist=("html",))
    assert text is not None and markup is not None
    return text.get_content(), markup.get_content()


def test_sends_a_multipart_mail_and_returns_its_message_id():
    with SmtpServer() as server:
        ref = smtp(server.port, reply_to="support@example.com").send(message())
    (received,) = server.received
    assert received.mail_from == "status@example.com"
    assert received.rcpt_tos == ["ops@example.net", "desk@example.net"]
    mail = received.message
    assert mail["Subject"] == "INC-2026-0001: Checkout API 5xx ratio above 5% - Initial Response"
    assert mail["From"] == SENDER
    assert mail["To"] == "ops@example.net, Support Desk <desk@example.net>"
    assert mail["Reply-To"] == "support@example.com"
    assert mail["Message-ID"] == ref == "<dualtrack-notice-7@example.com>"
    assert mail["X-Dualtrack-Incident"] == "INC-2026-0001"
    assert mail["Date"].datetime is not None
    assert mail.get_content_type() == "multipart/alternative"
    text, markup = parts(mail)
    assert text.replace("\r\n", "\n").rstrip("\n") == BODY
    # The HTML part is the one the dispatcher rendered (tests/test_rendering.py has how).
    assert markup.replace("\r\n", "\n") == message().html


def test_first_notice_starts_the_thread_and_later_ones_reply_to_it():
    with SmtpServer() as server:
        provider = smtp(server.port)
        first = provider.send(message(notice_id=7))
        provider.send(message(notice_id=9, phase="update", provider_ref=first))
        # Without a usable first id, the incident's root still threads it.
        provider.send(message(notice_id=11, phase="resolution", provider_ref="something-else"))
    one, two, three = (r.message for r in server.received)
    root = "<dualtrack-incident-INC-2026-0001@example.com>"
    assert one["In-Reply-To"] is None
    assert one["References"] == root
    assert two["Message-ID"] == "<dualtrack-notice-9@example.com>"
    assert two["In-Reply-To"] == first
    assert two["References"] == f"{root} {first}"
    assert three["In-Reply-To"] == root
    assert three["References"] == root


SUBJECT_DE = "Störung in Zürich \u2013 Kasse"


def test_messages_share_a_connection_until_the_pass_is_over_or_the_server_hangs_up():
    with SmtpServer(credentials=("alerts", "hunter2")) as server:
        provider = smtp(server.port, username="alerts", password="hunter2")
        for notice_id in (1, 2, 3):
            provider.send(message(notice_id=notice_id))
        assert server.connections == 1
        server.hang_up()  # a kept connection that no longer answers is replaced, not an error
        provider.send(message(notice_id=4))
        assert server.connections == 2
        provider.release()  # the dispatcher's pass is over
        provider.send(message(notice_id=5))
        assert server.connections == 3
    assert [r.message["X-Dualtrack-Notice"] for r in server.received] == ["1", "2", "3", "4", "5"]
    assert all(r.authenticated for r in server.received)


def test_non_ascii_subject_and_body():
    with SmtpServer() as server:
        smtp(server.port).send(
            message(subject=SUBJECT_DE, body="Grüße — 100 % ✓\n", html="<p>Grüße — 100 % ✓</p>")
        )
    mail = server.received[0].message
    assert mail["Subject"] == SUBJECT_DE
    text, markup = parts(mail)
    assert text.startswith("Grüße — 100 % ✓") and "Grüße — 100 % ✓" in markup


def test_message_id_is_stable_when_a_notice_is_sent_again():
    with SmtpServer() as server:
        provider = smtp(server.port)
        first = provider.send(message())
        again = provider.send(message())
    assert first == again
    assert server.received[0].message["Message-ID"] == server.received[1].message["Message-ID"]


def test_per_tenant_mail_goes_to_the_tenants_contact():
    with SmtpServer() as server:
        provider = smtp(server.port, to=[], per_tenant=True)
        provider.send(message(tenant="acme", data={"contact": {"email": "it@acme.example"}}))
    (received,) = server.received
    assert received.rcpt_tos == ["it@acme.example"]
    assert received.message["To"] == "it@acme.example"


@pytest.mark.parametrize("data", [{}, {"contact": None}, {"contact": {"email": None}}])
def test_per_tenant_without_an_email_contact_is_permanent(data):
    provider = smtp(free_port(), to=[], per_tenant=True)
    with pytest.raises(DeliveryError) as info:
        provider.send(message(tenant="acme", data=data))
    assert info.value.permanent
    assert "acme" in str(info.value)


@pytest.mark.parametrize(
    ("reply", "permanent"),
    [("451 4.3.0 Try again later", False), ("550 5.1.1 Mailbox unavailable", True)],
)
def test_refused_recipients_retry_on_4xx_and_are_permanent_on_5xx(reply, permanent):
    # Refusals of the message itself are in test_contract.py; these come per recipient.
    with SmtpServer(rcpt_reply=reply) as server, pytest.raises(DeliveryError) as info:
        smtp(server.port).send(message())
    assert info.value.permanent is permanent
    assert reply.split()[0] in str(info.value)
    assert server.received == []


def test_login_when_the_server_requires_it():
    with SmtpServer(credentials=("alerts", "hunter2")) as server:
        smtp(server.port, username="alerts", password="hunter2").send(message())
    (received,) = server.received
    assert received.authenticated


def test_auth_failure_is_permanent_and_never_shows_the_password():
    with SmtpServer(credentials=("alerts", "hunter2")) as server, pytest.raises(DeliveryError) as info:
        smtp(server.port, username="alerts", password="wrong-pw-42").send(message())
    assert info.value.permanent
    assert "535" in str(info.value)
    assert "wrong-pw-42" not in str(info.value) and "wrong-pw-42" not in repr(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_missing_login_is_permanent():
    with SmtpServer(credentials=("alerts", "hunter2")) as server, pytest.raises(DeliveryError) as info:
        smtp(server.port).send(message())
    assert info.value.permanent
    assert "530" in str(info.value)


def test_the_password_is_hidden_in_the_options_repr():
    provider = smtp(25, username="alerts", password="hunter2")
    assert "hunter2" not in repr(provider.options)


@needs_tls
def test_starttls_with_login(tmp_path):
    cert, key = self_signed_cert(tmp_path)
    with SmtpServer(tls=(cert, key), credentials=("alerts", "hunter2")) as server:
        provider = smtp(
            server.port, security="starttls", ca=cert.read_text(), username="alerts", password="hunter2"
        )
        provider.send(message())
    (received,) = server.received
    assert received.authenticated
    assert received.message["Message-ID"] == "<dualtrack-notice-7@example.com>"


@needs_tls
def test_implicit_ssl(tmp_path):
    cert, key = self_signed_cert(tmp_path)
    with SmtpServer(tls=(cert, key), implicit=True) as server:
        smtp(server.port, security="ssl", ca=cert.read_text()).send(message())
    assert len(server.received) == 1


@needs_tls
def test_an_untrusted_certificate_is_retryable(tmp_path):
    cert, key = self_signed_cert(tmp_path)
    with SmtpServer(tls=(cert, key)) as server, pytest.raises(DeliveryError) as info:
        smtp(server.port, security="starttls").send(message())
    assert not info.value.permanent
    assert "TLS failed" in str(info.value)
    assert server.received == []


def test_starttls_unsupported_by_the_server_is_permanent():
    with SmtpServer() as server, pytest.raises(DeliveryError) as info:
        smtp(server.port, security="starttls").send(message())
    assert info.value.permanent
    assert "STARTTLS" in str(info.value)


def test_check_requires_recipients_unless_per_tenant():
    def problems(**values):
        settings = ProviderSettings(name="mail", type="smtp", host="mx", sender=SENDER, **values)
        return Smtp.check(settings, SmtpOptions.model_validate(settings.options()))

    assert problems() == [("to", "required unless per_tenant is true")]
    assert problems(per_tenant=True) == []
    assert problems(to=["ops@example.net"]) == []
    assert [key for key, _ in problems(to=["a@b.c"], username="u")] == ["password"]


@pytest.mark.parametrize(
    "values",
    [
        {"sender": "not an address"},
        {"to": ["nobody"]},
        {"security": "tls"},
        {"sender": "a@b.c\r\nBcc: x@y.z"},
        {"unknown": 1},
    ],
)
def test_invalid_options(values):
    with pytest.raises(ValidationError):
        SmtpOptions.model_validate({"host": "mx", "sender": SENDER, "to": ["a@b.c"], **values})
