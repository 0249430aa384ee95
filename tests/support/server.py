"""Real-process helpers for end-to-end tests: dualtrack serve, Alertmanager and an HTTP sink."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import requests
import yaml

from tests.support.catalog import catalog_data

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.prefix) / "bin"
DUALTRACK = Path(os.environ.get("DUALTRACK_BIN") or VENV_BIN / "dualtrack")
ALERTMANAGER = Path("/usr/bin/prometheus-alertmanager")
FIXTURES = REPO / "tests" / "fixtures"

AM_TOKEN = "am-secret"
AM_BASIC = ("am", "pw")
API_TOKEN = "api-secret"
HOOK_SECRET = "s3cret"
SIGNATURE_HEADER = "X-Dualtrack-Signature"
WORKER_READY = "worker ready pid="  # what `dualtrack serve` logs once a worker serves

T = TypeVar("T")

# --------------------------------------------------------------------------------------------
# small utilities


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    probe: Callable[[], T],
    *,
    timeout: float = 30.0,
    interval: float = 0.2,
    message: str | Callable[[], str] = "condition",
) -> T:
    """Call `probe` until it returns something truthy; raise AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
        except (requests.RequestException, OSError) as exc:
            last_error, value = exc, None
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            suffix = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {text}{suffix}")
        time.sleep(interval)


def rfc3339(moment: datetime | None = None) -> str:
    """Alertmanager-style timestamp with microseconds and a Z suffix."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sign(secret: str, body: bytes) -> str:
    """The value dualtrack's webhook provider must put in X-Dualtrack-Signature."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    return header is not None and hmac.compare_digest(sign(secret, body), header.strip())


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's label-set fingerprint (FNV-1a 64 over sorted name/value pairs)."""
    value = 0xCBF29CE484222325
    for name in sorted(labels):
        for chunk in (name.encode(), b"\xff", labels[name].encode(), b"\xff"):
            for byte in chunk:
                value ^= byte
                value = (value * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------------------------
# configuration


def provider_webhook(url: str, *, name: str = "ops-hook", secret: str = HOOK_SECRET) -> dict:
    return {"name": name, "type": "webhook", "audience": "technical", "url": url, "secret": secret}


PROVIDER_BUILTIN: dict[str, Any] = {"name": "status", "type": "builtin", "audience": "all"}


def write_config(
    folder: Path,
    port: int,
    *,
    providers: Iterable[Mapping[str, Any]] = (PROVIDER_BUILTIN,),
    catalog: Mapping[str, Any] | None = None,
    delivery: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write dualtrack.yaml + catalog.yaml (the shared one unless given) into `folder`; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "server": {
            "bind": f"127.0.0.1:{port}",
            "public_url": f"http://127.0.0.1:{port}",
            "max_body_bytes": 1_048_576,
        },
        "storage": {"url": "sqlite:///dualtrack.db"},
        "catalog": "catalog.yaml",
        "auth": {
            "alertmanager": {
                "bearer_tokens": [AM_TOKEN],
                "basic_auth": [{"username": AM_BASIC[0], "password": AM_BASIC[1]}],
            }
        },
        "api": {"tokens": [API_TOKEN]},
        # service_window 0s: tests open many incidents on one service (see tests/conftest.py).
        "correlation": {"service_labels": ["service", "job"], "reopen_window": "30m", "service_window": "0s"},
        "delivery": {
            "backoff_initial": "1s",
            "backoff_max": "5m",
            "max_age": "24h",
            "lease": "60s",
            **(delivery or {}),
        },
        "providers": [dict(p) for p in providers],
    }
    config.update(extra or {})
    (folder / "catalog.yaml").write_text(yaml.safe_dump(dict(catalog or catalog_data()), sort_keys=False))
    path = folder / "dualtrack.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# --------------------------------------------------------------------------------------------
# processes


class Process:
    """A child process in its own process group, with stdout/stderr in files."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, *, cwd: Path | None = None):
        self.name = name
        self.argv = argv
        self.log_dir = log_dir
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    @property
    def stdout_path(self) -> Path:
        return self.log_dir / f"{self.name}.{self.runs}.stdout.log"

    @property
    def stderr_path(self) -> Path:
        return self.log_dir / f"{self.name}.{self.runs}.stderr.log"

    def start(self, env: Mapping[str, str] | None = None) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self.runs += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=self.cwd,
                env=full_env,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def _signal_group(self, signum: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM the process group, wait; SIGKILL what is left. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait(timeout=10)
        # Reap stragglers (workers) that outlived their parent.
        self._signal_group(signal.SIGKILL)
        return self.proc.returncode

    def kill(self) -> None:
        """kill -9 the whole process group, as a crash would."""
        if self.proc is None:
            return
        self._signal_group(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def logs(self, lines: int = 60) -> str:
        out, err = self.stdout_path, self.stderr_path
        return (
            f"--- {self.name} stdout ({out.name}) ---\n{tail(out, lines)}\n"
            f"--- {self.name} stderr ({err.name}) ---\n{tail(err, lines)}"
        )


class Dualtrack:
    """`dualtrack serve` on a config written by `write_config`, plus a small API client."""

    def __init__(
        self,
        config: Path,
        port: int,
        *,
        workers: int = 2,
        threads: int | None = None,
        name: str = "dualtrack",
    ):
        self.config = config
        self.port = port
        self.workers = workers
        self.url = f"http://127.0.0.1:{port}"
        argv = [str(DUALTRACK), "serve", "--config", str(config)]
        argv += ["--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
        if threads is not None:
            argv += ["--threads", str(threads)]
        self.process = Process(name, argv, config.parent / "logs", cwd=config.parent)
        self.session = requests.Session()

    # lifecycle

    def start(self, ready_timeout: float = 30.0) -> Dualtrack:
        self.process.start()
        self.wait_ready(ready_timeout)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if not self.process.running:
                raise AssertionError(
                    f"dualtrack exited with {self.process.returncode} before it was ready\n"
                    + self.process.logs()
                )
            if self.process.stderr_path.read_text(errors="replace").count(WORKER_READY) < self.workers:
                return False  # one worker answering alone often takes every connection opened now
            with contextlib.suppress(requests.RequestException):
                return self.session.get(f"{self.url}/-/ready", timeout=2).status_code == 200
            return False

        wait_until(ready, timeout=timeout, message=lambda: "dualtrack /-/ready\n" + self.logs())

    def stop(self, timeout: float = 20.0) -> int | None:
        return self.process.stop(timeout)

    def kill(self) -> None:
        self.process.kill()

    def close(self) -> None:
        self.process.kill()  # the test is over: nothing waits on a graceful stop
        self.session.close()

    def logs(self, lines: int = 60) -> str:
        return self.process.logs(lines)

    # HTTP

    def post_alertmanager(
        self, body: bytes | Mapping[str, Any], *, auth: str = "bearer", timeout: float = 10.0
    ) -> requests.Response:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "Alertmanager/0.25.0"}
        kwargs: dict[str, Any] = {}
        if auth == "bearer":
            headers["Authorization"] = f"Bearer {AM_TOKEN}"
        elif auth == "basic":
            kwargs["auth"] = AM_BASIC
        return self.session.post(
            f"{self.url}/webhooks/alertmanager",
            data=data,
            headers=headers,
            timeout=timeout,
            **kwargs,
        )

    def open_incidents(self, count: int, prefix: str) -> list[str]:
        """Post `count` notifications, each opening its own incident at level 3 (no business hold)
        on the `checkout` service; returns their refs in order."""
        refs: list[str] = []
        for number in range(count):
            body = webhook_body(
                {"alertname": f"{prefix}{number}", "service": "checkout"},
                [{"instance": f"10.2.0.{number}:9100", "severity": "error"}],
            )
            response = self.post_alertmanager(body)
            assert response.status_code == 202, response.text
            assert len(response.json()["incidents"]) == 1, response.text
            refs.extend(response.json()["incidents"])
        assert len(set(refs)) == count, refs
        return refs

    def api(self, path: str, **params: Any) -> Any:
        response = self.session.get(
            f"{self.url}/api/v1/{path.lstrip('/')}",
            params=params,
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()

    def incidents(self, status: str = "all") -> list[dict[str, Any]]:
        return list(self.api("incidents", status=status)["incidents"])

    def incident(self, ref: str) -> dict[str, Any]:
        return dict(self.api(f"incidents/{ref}"))

    def metrics(self) -> str:
        response = self.session.get(f"{self.url}/metrics", timeout=10)
        response.raise_for_status()
        return response.text


# --------------------------------------------------------------------------------------------
# HTTP sink


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int = 0
    at: float = field(default_factory=time.monotonic)

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    def json(self) -> Any:
        return json.loads(self.body)


class Listener(ThreadingHTTPServer):
    """A threaded HTTP server whose queue of connections not yet accepted is as long as a real
    server's: with http.server's 5, sixteen senders connecting at once lose SYNs and wait 1 s."""

    request_queue_size = 1024


class Sink:
    """A real HTTP server in a thread that records every request and answers `status`.

    With `forward` set it is a recording proxy instead: each request is passed on to
    `forward + path` and the upstream status is recorded and returned. With `answer` set, that
    answers each request (status, body): a fake of some API (see tests/support/chat.py).
    """

    FORWARDED_HEADERS = ("Authorization", "Content-Type", "User-Agent")

    def __init__(
        self,
        port: int | None = None,
        status: int = 200,
        forward: str | None = None,
        answer: Callable[[Received], tuple[int, bytes]] | None = None,
    ):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.status = status
        self.forward = forward
        self.answer = answer
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Sink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self) -> None:
                body = self._read_body()
                record = Received(self.command, self.path, dict(self.headers.items()), body)
                status, payload = sink.status, b"{}"
                if sink.forward is not None:
                    status, payload = sink._pass_on(self.command, self.path, self.headers, body)
                elif sink.answer is not None:
                    status, payload = sink.answer(record)
                record.answered = status
                with sink._lock:
                    sink._received.append(record)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_PUT = do_PATCH = do_GET = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = Listener(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="sink", daemon=True)
        self._thread.start()
        return self

    def _pass_on(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
        wanted = {k: headers[k] for k in self.FORWARDED_HEADERS if headers.get(k)}
        try:
            with requests.Session() as session:
                response = session.request(
                    method, f"{self.forward}{path}", data=body, headers=wanted, timeout=30
                )
                return response.status_code, response.content
        except requests.RequestException as exc:
            return 502, json.dumps({"proxy_error": repr(exc)}).encode()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            items = list(self._received)
        return [r for r in items if path is None or r.path.split("?")[0] == path]

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# Alertmanager


def am_alert(
    labels: Mapping[str, str],
    *,
    annotations: Mapping[str, str] | None = None,
    starts_at: str | None = None,
    ends_at: str | None = None,
    generator_url: str = "http://prometheus.example.org:9090/graph",
) -> dict[str, Any]:
    """One alert as posted to Alertmanager's /api/v2/alerts."""
    alert: dict[str, Any] = {
        "labels": dict(labels),
        "annotations": dict(annotations or {}),
        "generatorURL": generator_url,
    }
    if starts_at:
        alert["startsAt"] = starts_at
    if ends_at:
        alert["endsAt"] = ends_at
    return alert


def webhook_body(
    group_labels: Mapping[str, str],
    alerts: Iterable[Mapping[str, str]],
    *,
    status: str = "firing",
    starts_at: str | None = None,
    ends_at: str | None = None,
) -> dict[str, Any]:
    """An Alertmanager v4 webhook notification for one group; each alert given by its labels."""
    starts_at = starts_at or rfc3339()
    items = []
    for labels in alerts:
        full = dict(sorted({**group_labels, **labels}.items()))
        items.append(
            {
                "status": status,
                "labels": full,
                "annotations": {"summary": f"{full.get('alertname', 'alert')} is {status}"},
                "startsAt": starts_at,
                "endsAt": ends_at if status == "resolved" and ends_at else "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": fingerprint(full),
            }
        )
    common = {k: v for k, v in items[0]["labels"].items() if all(a["labels"].get(k) == v for a in items)}
    key = "{}:{" + ", ".join(f'{k}="{v}"' for k, v in sorted(group_labels.items())) + "}"
    return {
        "receiver": "dualtrack",
        "status": status,
        "alerts": items,
        "groupLabels": dict(group_labels),
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example.org:9093",
        "version": "4",
        "groupKey": key,
        "truncatedAlerts": 0,
    }


class Alertmanager:
    """A real prometheus-alertmanager (no clustering) with a fast route to webhook receivers."""

    def __init__(
        self,
        folder: Path,
        webhook_urls: Iterable[str | Mapping[str, Any]],
        *,
        port: int | None = None,
        group_by: Iterable[str] = ("alertname", "service"),
        group_wait: str = "1s",
        group_interval: str = "1s",
        repeat_interval: str = "2s",
        pagerduty_configs: Iterable[Mapping[str, Any]] = (),
    ):
        self.folder = folder
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        configs = []
        for item in webhook_urls:
            entry = {"url": item, "send_resolved": True} if isinstance(item, str) else dict(item)
            configs.append(entry)
        config = {
            "route": {
                "receiver": "dualtrack",
                "group_by": list(group_by),
                "group_wait": group_wait,
                "group_interval": group_interval,
                "repeat_interval": repeat_interval,
            },
            "receivers": [{"name": "dualtrack"}],
        }
        if configs:
            config["receivers"][0]["webhook_configs"] = configs
        if pagerduty_configs:
            config["receivers"][0]["pagerduty_configs"] = [dict(c) for c in pagerduty_configs]
        folder.mkdir(parents=True, exist_ok=True)
        self.config_path = folder / "alertmanager.yml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        storage = folder / "am-data"
        storage.mkdir(exist_ok=True)
        argv = [
            str(ALERTMANAGER),
            f"--config.file={self.config_path}",
            f"--storage.path={storage}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
            f"--web.external-url={self.url}",
            "--log.level=debug",
        ]
        self.process = Process("alertmanager", argv, folder / "logs", cwd=folder)
        self.session = requests.Session()

    @staticmethod
    def dualtrack_receiver(dualtrack_url: str, token: str = AM_TOKEN) -> dict[str, Any]:
        return {
            "url": f"{dualtrack_url}/webhooks/alertmanager",
            "send_resolved": True,
            "http_config": {"authorization": {"type": "Bearer", "credentials": token}},
        }

    def start(self, timeout: float = 30.0) -> Alertmanager:
        self.process.start()

        def ready() -> bool:
            if not self.process.running:
                raise AssertionError("alertmanager exited early\n" + self.process.logs())
            with contextlib.suppress(requests.RequestException):
                return self.session.get(f"{self.url}/-/ready", timeout=2).status_code == 200
            return False

        wait_until(ready, timeout=timeout, message="alertmanager /-/ready")
        return self

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        response = self.session.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=10)
        if response.status_code != 200:
            raise AssertionError(f"alertmanager refused alerts: {response.status_code} {response.text}")

    def alerts(self) -> list[dict[str, Any]]:
        response = self.session.get(f"{self.url}/api/v2/alerts", timeout=10)
        response.raise_for_status()
        return list(response.json())

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels` (0 if absent)."""
        text = self.session.get(f"{self.url}/metrics", timeout=10).text
        return metric_sum(text, name, **labels)

    def close(self) -> None:
        self.process.stop()
        self.session.close()

    def logs(self, lines: int = 60) -> str:
        return self.process.logs(lines)


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum the samples of one metric in Prometheus text format whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        found = dict(part.split("=", 1) for part in label_text.rstrip("}").split(",") if "=" in part)
        found = {k.strip(): v.strip().strip('"') for k, v in found.items()}
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total


# --------------------------------------------------------------------------------------------
# slow HTTP sink


@dataclass
class SlowReceived(Received):
    """A request a SlowSink recorded on arrival; `answered_at` is set once the answer was written."""

    answered_at: float | None = None
    answer_failed: bool = False


class SlowSink(Sink):
    """A Sink that records each request as it arrives and answers `status` only after `delay` s.

    Deliveries to it stay in flight for a while, so a sender can be killed in the middle of one.
    With `delay=None` it answers nothing until `release()`: a provider that hangs.
    `in_flight()` lists the requests not answered yet.
    """

    def __init__(self, port: int | None = None, status: int = 200, delay: float | None = 1.0):
        super().__init__(port, status)
        self.delay = delay
        self._released = threading.Event()

    def start(self) -> SlowSink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                record = SlowReceived(self.command, self.path, dict(self.headers.items()), body)
                with sink._lock:
                    sink._received.append(record)
                sink._released.wait(sink.delay)
                payload = b"{}"
                try:
                    self.send_response(sink.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    self.wfile.flush()
                except OSError:
                    record.answer_failed = True  # the sender is gone
                record.answered = sink.status
                record.answered_at = time.monotonic()

            do_POST = do_PUT = do_PATCH = do_GET = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._released.clear()
        server = Listener(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="slow-sink", daemon=True)
        self._thread.start()
        return self

    def in_flight(self, path: str | None = None) -> list[Received]:
        return [r for r in self.received(path) if isinstance(r, SlowReceived) and r.answered_at is None]

    def answered(self, path: str | None = None) -> list[Received]:
        return [r for r in self.received(path) if isinstance(r, SlowReceived) and r.answered_at is not None]

    def release(self) -> None:
        """Answer every request held so far, and each later one at once."""
        self._released.set()

    def close(self) -> None:
        self._released.set()
        super().close()

    def __enter__(self) -> SlowSink:
        return self.start()
