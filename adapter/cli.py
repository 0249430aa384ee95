"""The `dualtrack` command: serve, check-config, migrate."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from typing import Any

from adapter.config import ConfigError, Settings, load_settings

DEFAULT_CONFIG = "config/dualtrack.yaml"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


def _load(path: str) -> Settings | None:
    try:
        return load_settings(path)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return None


def check_config(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    if settings is None:
        return 1
    print(
        f"{args.config}: ok ({len(settings.providers)} providers, "
        f"{len(settings.catalog.services)} services, {len(settings.catalog.tenants)} tenants)"
    )
    return 0


def migrate(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    if settings is None:
        return 1
    from adapter.store import Store

    store = Store(settings.storage.url)
    store.migrate()
    store.dispose()
    print("database schema is up to date")
    return 0


def serve(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    if settings is None:
        return 1
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # prometheus_client picks its value store at import: the directory must be set first.
    own_metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own_metrics_dir = tempfile.mkdtemp(prefix="dualtrack-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_metrics_dir

    from gunicorn.app.base import BaseApplication

    from adapter.app import create_app
    from adapter.store import Store

    valid = settings

    store = Store(settings.storage.url)
    store.migrate()
    store.dispose()

    options: dict[str, Any] = {
        "bind": args.bind or settings.server.bind,
        "workers": args.workers or settings.server.workers,
        "worker_class": "sync",
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

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                # control_socket_disable exists from gunicorn 24 on; older ones have no socket.
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return create_app(valid)

    try:
        Server().run()
    finally:
        if own_metrics_dir:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)
    return 0


def _services(worker: Any) -> Any:
    from adapter.web.services import EXTENSION

    return worker.wsgi.extensions[EXTENSION]


def _post_worker_init(worker: Any) -> None:
    services = _services(worker)
    services.dispatcher.start()
    services.scheduler.start()


def _worker_exit(server: Any, worker: Any) -> None:
    services = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("dualtrack")
    if services is not None:
        services.scheduler.stop()
        services.dispatcher.stop()
        services.store.dispose()


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dualtrack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    default = os.environ.get("DUALTRACK_CONFIG", DEFAULT_CONFIG)

    p_serve = sub.add_parser("serve", help="serve webhooks, API and status page; deliver notices")
    p_serve.add_argument("--config", default=default, help="main YAML file")
    p_serve.add_argument("--bind", help="HOST:PORT (default: server.bind)")
    p_serve.add_argument("--workers", type=int, help="gunicorn workers (default: server.workers)")
    p_serve.set_defaults(func=serve)

    p_check = sub.add_parser("check-config", help="validate config and catalog")
    p_check.add_argument("--config", default=default)
    p_check.set_defaults(func=check_config)

    p_migrate = sub.add_parser("migrate", help="bring the database schema up to date")
    p_migrate.add_argument("--config", default=default)
    p_migrate.set_defaults(func=migrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
