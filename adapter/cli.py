"""The `dualtrack` command: serve, check-config, migrate."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapter.config import (
    ConfigError,
    Settings,
    config_warnings,
    is_loopback,
    load_settings,
    weak_secrets,
)
from adapter.providers import check_settings
from adapter.sources import SOURCES

if TYPE_CHECKING:
    from adapter.store import Store

DEFAULT_CONFIG = "config/dualtrack.yaml"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


def echo(text: str = "", *, err: bool = False) -> None:
    """One line of the command's output, on stdout (or stderr)."""
    (sys.stderr if err else sys.stdout).write(text + "\n")


def _load(path: str) -> Settings | None:
    try:
        return load_settings(path, check_settings)
    except ConfigError as exc:
        for line in exc.problems:
            echo(line, err=True)
        return None


def check_config(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    if settings is None:
        return 1
    bind = settings.server.bind
    weak = weak_secrets(settings)
    for secret in weak:
        line = f"{settings.config_path}: {secret.path}: {secret.problem}"
        if is_loopback(bind):
            echo(f"warning: {line}: `serve` accepts it on loopback only", err=True)
        else:
            echo(f"{line}: `serve` refuses it with server.bind {bind}, which is not loopback", err=True)
    for line in config_warnings(settings):
        echo(f"warning: {line}", err=True)
    broken = _check_templates(settings, args.samples)
    if broken or (weak and not is_loopback(bind)):
        return 1
    echo(
        f"{args.config}: ok ({len(settings.providers)} providers, "
        f"{len(settings.catalog.services)} services, {len(settings.catalog.tenants)} tenants)"
    )
    return 0


def _check_templates(settings: Settings, show: bool) -> int:
    """Compile every template and render each for a sample incident (every type, phase and
    audience, shared and for a tenant); print what fails, and with `show` every rendering.
    Returns how many failed."""
    from datetime import UTC, datetime

    from adapter.engine.samples import compile_errors, render_samples
    from adapter.rendering import settings_renderer

    renderer = settings_renderer(settings)
    where = settings.templates_dir or "templates"
    failed = 0
    for name, error in compile_errors(renderer):
        echo(f"{where}/{name}: {error}", err=True)
        failed += 1
    samples = render_samples(settings, renderer, datetime.now(UTC))
    for sample in samples:
        if sample.error is not None:
            scene = f"{sample.incident_type} {sample.audience} {sample.phase}"
            if sample.tenant:
                scene += f" for tenant {sample.tenant}"
            echo(f"{where}/{sample.template or '(no template)'}: {scene}: {sample.error}", err=True)
            failed += 1
    if show:
        shown: dict[tuple[str, str, str | None], dict[str, str]] = {}
        for sample in samples:
            key = (sample.incident_type, sample.phase, "tenant" if sample.tenant else None)
            shown.setdefault(key, {})[sample.audience] = sample.text or f"({sample.error})"
        for (incident_type, phase, for_tenant), texts in shown.items():
            echo(f"== {incident_type} {phase}{' (a tenant of each segment)' if for_tenant else ''}")
            echo(side_by_side(texts.get("technical", ""), texts.get("business", "")))
            echo()
    return failed


def _prepare_database(settings: Settings) -> bool:
    """Check the database (SQLite: `quick_check`) and migrate it; on trouble print one line."""
    from sqlalchemy.exc import SQLAlchemyError

    from adapter.store import Store
    from adapter.store.db import Unavailable

    store: Store | None = None
    try:
        store = Store(settings.storage.url)
        store.verify()
        store.migrate()
    except Unavailable as exc:
        echo(f"dualtrack: cannot use the database: {exc}", err=True)
        return False
    except (SQLAlchemyError, OSError) as exc:
        problem = store.describe(exc) if store else " ".join(str(exc).split())
        echo(f"dualtrack: cannot bring the database schema up to date: {problem}", err=True)
        return False
    finally:
        if store is not None:
            store.dispose()
    return True


def migrate(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    if settings is None or not _prepare_database(settings):
        return 1
    echo("database schema is up to date")
    return 0


def serve(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    if settings is None:
        return 1
    bind = args.bind or settings.server.bind
    weak = weak_secrets(settings)
    named = ", ".join(secret.named() for secret in weak)
    if weak and not is_loopback(bind):
        echo(
            f"{settings.config_path}: refusing to listen on {bind}, which is not loopback, with public "
            f"demo or missing secrets: {named}; set them "
            "(`dualtrack check-config` says more), or listen on 127.0.0.1",
            err=True,
        )
        return 1
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    if weak:
        logging.getLogger("dualtrack.serve").warning(
            "listening on %s (loopback only) with public demo or missing secrets: %s", bind, named
        )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if not _prepare_database(settings):
        return 1
    # prometheus_client picks its value store at import: the directory must be set first.
    own_metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own_metrics_dir = tempfile.mkdtemp(prefix="dualtrack-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_metrics_dir

    from gunicorn.app.base import BaseApplication

    from adapter.app import create_app
    from adapter.metrics import reload_gauge

    # The config new workers start with; a reload replaces it only with a valid one.
    current = {"settings": settings}
    reloaded = reload_gauge(None)
    reloaded.set(1)

    options: dict[str, Any] = {
        "bind": bind,
        "workers": args.workers or settings.server.workers,
        # Threads keep senders' connections alive between requests. The worker is gunicorn's
        # gthread one, with JSON errors and honest 413s (see its module).
        "worker_class": "adapter.web.worker.Worker",
        "threads": args.threads or settings.server.threads,
        "timeout": 30,
        "graceful_timeout": 30,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "dualtrack",
        # Several servers may run side by side (tests, replicas); none needs gunicorn's control socket.
        "control_socket_disable": True,
        "post_worker_init": _post_worker_init,
        "worker_exit": _worker_exit,
        "child_exit": _child_exit,
    }

    def signal_master() -> None:
        # Workers ask the master for a reload; it validates again and replaces them gracefully.
        os.kill(os.getppid(), signal.SIGHUP)

    class Server(BaseApplication):  # type: ignore[misc]  # gunicorn has no type hints
        loaded = False

        def load_config(self) -> None:
            for key, value in options.items():
                # control_socket_disable exists from gunicorn 24 on; older ones have no socket.
                if key in self.cfg.settings:
                    self.cfg.set(key, value)
            if self.loaded:  # gunicorn calls this again on SIGHUP
                self._reload()
            self.loaded = True

        def _reload(self) -> None:
            try:
                fresh = load_settings(args.config, check_settings)
            except ConfigError as exc:
                reloaded.set(0)
                for line in exc.problems:
                    logging.getLogger("dualtrack.reload").error("reload refused: %s", line)
                return
            current["settings"] = fresh
            reloaded.set(1)
            logging.getLogger("dualtrack.reload").info("configuration reloaded from %s", args.config)

        def load(self) -> Any:
            return create_app(current["settings"], reload=signal_master)

    master = os.getpid()
    try:
        Server().run()
    finally:
        # Workers leave through here too (SystemExit in the forked child): only the master cleans.
        if own_metrics_dir and os.getpid() == master:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)
    return 0


def side_by_side(left: str, right: str, width: int = 60) -> str:
    """Two texts in columns, each line wrapped to `width`."""
    import textwrap

    def column(text: str) -> list[str]:
        lines: list[str] = []
        for line in text.splitlines() or [""]:
            lines.extend(textwrap.wrap(line, width) or [""])
        return lines

    a, b = column(left), column(right)
    a += [""] * (len(b) - len(a))
    b += [""] * (len(a) - len(b))
    return "\n".join(f"{x:<{width}} | {y}".rstrip() for x, y in zip(a, b, strict=True))


def _preview_store(settings: Settings, folder: str) -> tuple[Store, str | None]:
    """The configured database, when it is there and up to date: the preview then gets the ref
    and joins the incidents a webhook would (in a transaction that is rolled back). Else an empty
    one, and why."""
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.engine import make_url

    from adapter.store import Store
    from adapter.store.db import Unavailable

    url = make_url(settings.storage.url)
    why = "it does not exist"
    if url.get_backend_name() != "sqlite" or (url.database and Path(url.database).exists()):
        store = Store(settings.storage.url)
        try:
            store.ping()
            if store.at_head():
                return store, None
            why = "its schema is not up to date (dualtrack migrate)"
        except (Unavailable, sa_exc.SQLAlchemyError) as error:
            why = store.describe(error) if isinstance(error, sa_exc.DBAPIError) else str(error)
        store.dispose()
    empty = Store(f"sqlite:///{folder}/preview.db")
    empty.migrate()
    return empty, f"against an empty database: {settings.storage.url} could not be used ({why})"


def preview(args: argparse.Namespace) -> int:
    """Render what a payload would do, against the configured database when it can be read (refs
    and correlation as a webhook would meet them); nothing is stored or sent."""
    settings = _load(args.config)
    if settings is None:
        return 1
    import json

    from adapter.app import create_app
    from adapter.sources.signal import PayloadError
    from adapter.store.records import Notice
    from adapter.web.webhooks import RECEIVERS

    try:
        payload = SOURCES[args.source].parse(json.loads(Path(args.payload).read_bytes()), {})
    except PayloadError as exc:
        detail = "; ".join(f"{d['field']}: {d['message']}" for d in exc.details)
        echo(f"{args.payload}: {exc} ({detail})", err=True)
        return 1
    except (OSError, ValueError) as exc:
        echo(f"{args.payload}: {exc}", err=True)
        return 1
    with tempfile.TemporaryDirectory(prefix="dualtrack-preview-") as folder:
        store, note = _preview_store(settings, folder)
        if note:
            echo(note, err=True)
        app = create_app(settings, store=store)
        svc = app.extensions["dualtrack"]
        results = svc.engine.preview(RECEIVERS[args.source].preview(svc, payload))
        store.dispose()
    if not results:
        echo("nothing would open (a test notification, or only resolved alerts)")
        return 0
    for incident, notices in results:
        echo(
            f"{incident.ref}  level {incident.level}  {incident.incident_type}  "
            f"services: {', '.join(incident.services + incident.unknown_services) or '-'}  "
            f"tenants: {', '.join(incident.tenants) or '-'}"
        )
        streams: dict[tuple[str, str | None], dict[str, Notice]] = {}
        for notice in notices:
            streams.setdefault((notice.provider, notice.tenant), {})[notice.audience] = notice
        for (provider, tenant), by_audience in streams.items():
            heading = f"provider {provider}" + (f", tenant {tenant}" if tenant else "")
            texts = {
                audience: (
                    f"[{audience}, {n.phase}, {n.state}]\n{n.subject}\n\n{n.body}"
                    if (n := by_audience.get(audience))
                    else f"[{audience}: not sent to this provider]"
                )
                for audience in ("technical", "business")
            }
            echo(f"\n== {heading} " + "=" * max(0, 118 - len(heading)))
            echo(side_by_side(texts["technical"], texts["business"]))
        echo()
    return 0


def outbox_command(args: argparse.Namespace) -> int:
    """`outbox list [--state S]` and `outbox retry --dead | ID…`: dead letters by hand."""
    settings = _load(args.config)
    if settings is None:
        return 1
    from datetime import UTC, datetime

    from adapter.store import Store, outbox

    store = Store(settings.storage.url)
    try:
        if args.action == "list":
            with store.read() as conn:
                rows = outbox.by_state(conn, args.state.split(","))
            for notice in rows:
                error = (notice.last_error or "").replace("\n", " ")
                stream = f"{notice.provider}/{notice.audience}" + (
                    f"/{notice.tenant}" if notice.tenant else ""
                )
                echo(
                    f"{notice.id:>7}  {notice.state:<10} {notice.incident_ref}  {stream}  "
                    f"{notice.phase:<16} attempts={notice.attempts}  {error[:120]}"
                )
            echo(f"{len(rows)} notice(s)", err=True)
            return 0
        with store.transaction() as conn:
            ids = list(args.ids)
            if args.dead:
                ids += [n.id for n in outbox.by_state(conn, ["dead"], limit=1_000_000)]
            retried = outbox.retry(conn, ids, datetime.now(UTC))
        echo(f"{len(retried)} notice(s) queued again: {', '.join(map(str, retried)) or '-'}")
        return 0 if retried or not ids else 1
    finally:
        store.dispose()


def reconcile_command(args: argparse.Namespace) -> int:
    """One reconciliation pass with the configured Alertmanagers; prints what it changes."""
    settings = _load(args.config)
    if settings is None:
        return 1
    from adapter.app import create_app
    from adapter.engine.reconcile import Reconciler, Unreachable

    if not settings.reconcile.alertmanager:
        echo(f"{args.config}: reconcile.alertmanager: no Alertmanager configured", err=True)
        return 1
    app = create_app(settings)
    svc = app.extensions["dualtrack"]
    try:
        svc.store.migrate()
        lines = Reconciler(svc.engine).run(svc.clock.now(), dry_run=args.dry_run)
    except Unreachable as exc:
        echo(f"cannot reconcile: {exc}", err=True)
        return 1
    finally:
        svc.store.dispose()
    for line in lines:
        echo(line)
    echo(f"{len(lines)} change(s){' (dry run: nothing changed)' if args.dry_run else ''}")
    return 0


def subscribers_command(args: argparse.Namespace) -> int:
    """Reconcile each Statuspage provider's subscribers with the catalog."""
    settings = _load(args.config)
    if settings is None:
        return 1
    from adapter.subscribers import sync

    progress = not args.no_progress and sys.stdout.isatty()
    return sync(settings, dry_run=args.dry_run, out=sys.stdout, progress=progress)


def _services(worker: Any) -> Any:
    from adapter.web.services import EXTENSION

    return worker.wsgi.extensions[EXTENSION]


def _post_worker_init(worker: Any) -> None:
    services = _services(worker)
    services.dispatcher.start()
    services.scheduler.start()
    services.expander.start()
    # gunicorn's own "Booting worker" comes before the app is loaded; this is when it serves.
    logging.getLogger("dualtrack.serve").info("worker ready pid=%d", os.getpid())


def _worker_exit(server: Any, worker: Any) -> None:
    services = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("dualtrack")
    if services is not None:
        services.expander.stop()
        services.scheduler.stop()
        services.dispatcher.stop()
        services.store.dispose()


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def tenants_command(args: argparse.Namespace) -> int:
    """Each tenant's own status page address, one a line: `id<TAB>url`."""
    settings = _load(args.config)
    if settings is None:
        return 1
    from adapter.web.status import tenant_token

    base = settings.server.public_url.rstrip("/")
    missing = 0
    for tenant in settings.catalog.tenants:
        token = tenant_token(settings, tenant)
        if token is None:
            missing += 1
        echo(f"{tenant.id}\t{base}/status/t/{token}" if token else f"{tenant.id}\t(no page)")
    if missing:
        echo(
            f"{missing} tenant(s) have no page: set status_page.tenant_token_secret, or the tenant's "
            "status_token in the catalog",
            err=True,
        )
    return 0


def users_hash_command(args: argparse.Namespace) -> int:
    """Prompt for a password (twice, unechoed) and print its argon2 hash for `users[].password_hash`;
    with --stdin, read it from the first line of standard input instead."""
    import getpass

    from argon2 import PasswordHasher

    if args.stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            echo("the passwords differ", err=True)
            return 1
    if len(password) < 8:
        echo("a password needs at least 8 characters", err=True)
        return 1
    echo(PasswordHasher().hash(password))
    return 0


def segments_command(args: argparse.Namespace) -> int:
    """`segment suggest` and `catalog import` (adapter/segments/commands.py)."""
    from adapter.segments.commands import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dualtrack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    default = os.environ.get("DUALTRACK_CONFIG", DEFAULT_CONFIG)

    p_serve = sub.add_parser("serve", help="serve webhooks, API and status page; deliver notices")
    p_serve.add_argument("--config", default=default, help="main YAML file")
    p_serve.add_argument("--bind", help="HOST:PORT (default: server.bind)")
    p_serve.add_argument("--workers", type=int, help="gunicorn workers (default: server.workers)")
    p_serve.add_argument("--threads", type=int, help="threads per worker (default: server.threads)")
    p_serve.set_defaults(func=serve)

    p_check = sub.add_parser("check-config", help="validate config, catalog and templates")
    p_check.add_argument("--config", default=default)
    p_check.add_argument(
        "--samples", action="store_true", help="print every template rendered for a sample incident"
    )
    p_check.set_defaults(func=check_config)

    p_preview = sub.add_parser("preview", help="print the incident and notices a payload would produce")
    p_preview.add_argument("--config", default=default)
    p_preview.add_argument("--source", default="alertmanager", choices=list(SOURCES), help="its format")
    p_preview.add_argument("payload", help="a webhook body (JSON file)")
    p_preview.set_defaults(func=preview)

    p_outbox = sub.add_parser("outbox", help="list notices by state; retry dead letters")
    outbox_sub = p_outbox.add_subparsers(dest="action", required=True)
    p_list = outbox_sub.add_parser("list", help="notices in a state (default dead)")
    p_list.add_argument("--config", default=default)
    p_list.add_argument("--state", default="dead", help="dead, failed, pending, … (comma-separated)")
    p_retry = outbox_sub.add_parser("retry", help="queue dead or failed notices again")
    p_retry.add_argument("--config", default=default)
    p_retry.add_argument("--dead", action="store_true", help="every dead notice")
    p_retry.add_argument("ids", nargs="*", type=int, help="notice ids")
    for p in (p_list, p_retry):
        p.set_defaults(func=outbox_command)

    p_reconcile = sub.add_parser("reconcile", help="one reconciliation pass with Alertmanager")
    p_reconcile.add_argument("--config", default=default)
    p_reconcile.add_argument("--dry-run", action="store_true", help="print what would change")
    p_reconcile.set_defaults(func=reconcile_command)

    p_subscribers = sub.add_parser("subscribers", help="Statuspage subscribers from the catalog")
    subscribers_sub = p_subscribers.add_subparsers(dest="action", required=True)
    p_sync = subscribers_sub.add_parser("sync", help="print the plan and apply it")
    p_sync.add_argument("--config", default=default)
    p_sync.add_argument("--dry-run", action="store_true", help="print the plan only")
    p_sync.add_argument("--no-progress", action="store_true", help="no progress bar on a terminal")
    p_sync.set_defaults(func=subscribers_command)

    p_tenants = sub.add_parser("tenants", help="the catalog's tenants")
    tenants_sub = p_tenants.add_subparsers(dest="action", required=True)
    p_urls = tenants_sub.add_parser("urls", help="each tenant's own status page address")
    p_urls.add_argument("--config", default=default)
    p_urls.set_defaults(func=tenants_command)

    p_users = sub.add_parser("users", help="desk users")
    users_sub = p_users.add_subparsers(dest="action", required=True)
    p_hash = users_sub.add_parser("hash", help="print a password's argon2 hash, for users[].password_hash")
    p_hash.add_argument("--stdin", action="store_true", help="read the password from standard input")
    p_hash.set_defaults(func=users_hash_command)

    p_migrate = sub.add_parser("migrate", help="bring the database schema up to date")
    p_migrate.add_argument("--config", default=default)
    p_migrate.set_defaults(func=migrate)

    catalog_help = "the catalog file (default: config/catalog.yaml)"
    map_help = 'read an export\'s column COLUMN as FIELD (repeatable), e.g. "Org Name=account"'
    p_segment = sub.add_parser("segment", help="tenants' segments from CRM and helpdesk exports")
    segment_sub = p_segment.add_subparsers(dest="action", required=True)
    p_suggest = segment_sub.add_parser("suggest", help="suggest each account's segment, with its reasons")
    p_suggest.add_argument("--accounts", required=True, help="CRM export of accounts (CSV)")
    p_suggest.add_argument("--tickets", required=True, help="helpdesk export of tickets (CSV)")
    p_suggest.add_argument("--catalog", default="config/catalog.yaml", help=catalog_help)
    p_suggest.add_argument("--apply", action="store_true", help="write the suggested segments to the catalog")
    p_suggest.add_argument("--format", choices=["table", "json"], default="table")
    p_suggest.add_argument("--map", action="append", default=[], metavar="COLUMN=FIELD", help=map_help)
    p_suggest.add_argument("--detail-requests", metavar="REPORT", help="communication report (JSON)")
    p_suggest.set_defaults(func=segments_command)
    p_catalog = sub.add_parser("catalog", help="the catalog's tenants from a CRM export")
    catalog_sub = p_catalog.add_subparsers(dest="action", required=True)
    p_import = catalog_sub.add_parser("import", help="add and update tenants from a CRM export (CSV)")
    p_import.add_argument("tenants", help="CRM export of tenants (CSV)")
    p_import.add_argument("--catalog", default="config/catalog.yaml", help=catalog_help)
    p_import.add_argument("--apply", action="store_true", help="write the changes to the catalog")
    p_import.add_argument("--map", action="append", default=[], metavar="COLUMN=FIELD", help=map_help)
    p_import.set_defaults(func=segments_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
