"""A real SMTP server for provider tests: aiosmtpd on 127.0.0.1, optional AUTH, STARTTLS or SSL."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import importlib.util
import shutil
import socket
import ssl
import subprocess
import time
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tls_available() -> bool:
    return importlib.util.find_spec("cryptography") is not None or shutil.which("openssl") is not None


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """(cert.pem, key.pem) for localhost and 127.0.0.1, made with cryptography or the openssl CLI."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    if importlib.util.find_spec("cryptography") is not None:
        _cryptography_cert(cert, key)
    else:
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-days", "2", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-keyout", str(key), "-out", str(cert),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
    return cert, key


def _cryptography_cert(cert_path: Path, key_path: Path) -> None:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    authenticated: bool
    at: float = field(default_factory=time.monotonic)
    # When the server answered 250 (after `delay`), or saw the sender hang up; None until then.
    answered_at: float | None = None

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Handler:
    """Stores every accepted message; can answer RCPT or DATA with a configured reply instead.

    A message is stored as soon as its data has arrived, and answered `delay` s later: a sender
    killed meanwhile has handed it over without hearing so, as with a real MTA.
    """

    rcpt_reply: str | None = None
    data_reply: str | None = None
    # Refuse MAIL until the session logged in (the server offers AUTH without requiring it).
    require_auth: bool = False
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]):
        if self.require_auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]):
        if self.rcpt_reply is not None:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply is not None:
            return self.data_reply
        received = Received(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            data=envelope.original_content or b"",
            authenticated=bool(session.authenticated),
        )
        self.received.append(received)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:  # also when the sender hung up meanwhile, which cancels the session
            received.answered_at = time.monotonic()
        return "250 Message accepted for delivery"


class _Controller(Controller):
    """aiosmtpd's controller, which also hangs up on connected clients when it stops, as a real
    server does: a client keeps its connection between messages."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()
        self.connections = 0

    def factory(self) -> SMTP:
        session = super().factory()
        self.sessions.add(session)
        self.connections += 1
        return session

    def hang_up(self) -> None:
        """Drop every client connection."""

        async def drop() -> None:
            for session in list(self.sessions):
                if session.transport is not None:
                    session.transport.abort()  # at once: a TLS close would wait for the client
            await asyncio.sleep(0)

        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(drop(), self.loop).result(5)

    def stop(self, no_assert: bool = False) -> None:
        self.hang_up()
        super().stop(no_assert)


class SmtpServer:
    """`with SmtpServer() as server:` listens on server.port until the block ends.

    credentials: (username, password) the server accepts for AUTH PLAIN/LOGIN, and then requires.
    tls: (cert, key) to offer STARTTLS, or with implicit=True to speak TLS from the first byte.
    delay: seconds between a message's data arriving and the server's 250 (see Handler).
    """

    def __init__(
        self,
        *,
        rcpt_reply: str | None = None,
        data_reply: str | None = None,
        credentials: tuple[str, str] | None = None,
        tls: tuple[Path, Path] | None = None,
        implicit: bool = False,
        delay: float = 0.0,
    ):
        self.handler = Handler(rcpt_reply, data_reply, require_auth=credentials is not None, delay=delay)
        self.port = free_port()
        self.credentials = credentials
        kwargs: dict[str, Any] = {}
        context = None
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*map(str, tls))
        if credentials is not None:
            # auth_required=True with plain connections makes aiosmtpd warn; the handler
            # refuses MAIL before AUTH instead, which is what a client sees either way.
            kwargs.update(authenticator=self._authenticate, auth_require_tls=tls is not None and not implicit)
        if context is not None and not implicit:
            kwargs.update(tls_context=context, require_starttls=True)
        self.controller = _Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            ssl_context=context if implicit else None,
            server_hostname="mx.test",
            ready_timeout=10,
            **kwargs,
        )

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any):
        ok = (
            self.credentials is not None
            and isinstance(data, LoginPassword)
            and (data.login.decode(), data.password.decode()) == self.credentials
        )
        # handled=False: aiosmtpd answers the failure itself (535).
        return AuthResult(success=ok, handled=False)

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    @property
    def connections(self) -> int:
        """How many connections clients have opened."""
        return self.controller.connections

    def hang_up(self) -> None:
        """Drop every client connection, as a server does after a while or when it restarts."""
        self.controller.hang_up()

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        self.controller.connections = 0  # start() connects once itself, to see the server is up
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(AssertionError):
            self.controller.stop()
