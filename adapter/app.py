"""create_app(settings) -> Flask: wiring only."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from adapter.clock import Clock, SystemClock
from adapter.config import Settings
from adapter.dispatch import Dispatcher
from adapter.engine.core import Engine
from adapter.engine.drafts import Drafts
from adapter.engine.expand import Expander
from adapter.engine.humans import HumanActions
from adapter.engine.planning import PHASES
from adapter.engine.reconcile import Reconciler
from adapter.engine.scheduler import Scheduler
from adapter.feedback import LinkMaker
from adapter.metrics import Metrics
from adapter.rendering import Renderer, local_time, settings_renderer, utc
from adapter.store import Store
from adapter.web import api, desk, errors, feedback, headers, openapi, ops, status, webhooks
from adapter.web.pagecache import PageCache
from adapter.web.serialize import iso
from adapter.web.services import EXTENSION, Services


def make_renderer(settings: Settings, metrics: Metrics | None = None) -> Renderer:
    """The notice renderer for these settings, counting its fallbacks in `metrics`."""

    def fallback(audience: str, phase: str) -> None:
        if metrics is not None:
            metrics.template_fallbacks.labels(audience, phase).inc()

    return settings_renderer(settings, on_fallback=fallback)


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    store: Store | None = None,
    metrics: Metrics | None = None,
    reload: Callable[[], None] | None = None,
) -> Flask:
    app = Flask(__name__)
    # Werkzeug enforces the limit while reading, so a huge body never reaches memory.
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    clock = clock or SystemClock()
    store = store or Store(settings.storage.url, sqlite_synchronous=settings.storage.sqlite_synchronous)
    metrics = metrics or Metrics()
    answers = settings.feedback
    links = None
    if answers.secret is not None:
        links = LinkMaker(answers.secret, settings.server.public_url, answers.expire_after, frozenset(PHASES))
    dispatcher = Dispatcher(
        store,
        settings.providers,
        settings.delivery,
        clock,
        metrics,
        links=links,
        links_listed=frozenset(answers.providers),
    )
    renderer = make_renderer(settings, metrics)
    engine = Engine(
        settings,
        store,
        renderer,
        clock,
        metrics,
        on_commit=dispatcher.wake,
        on_expansion=lambda: expander.wake(),
    )
    expander = Expander(settings, store, engine.notifier, clock)
    scheduler = Scheduler(
        settings,
        store,
        engine.notifier,
        clock,
        metrics,
        on_commit=dispatcher.wake,
        reconciler=Reconciler(engine) if settings.reconcile.alertmanager else None,
    )
    pagerduty = engine.pagerduty
    humans = HumanActions(settings, store, engine, clock, on_commit=dispatcher.wake)
    app.extensions[EXTENSION] = Services(
        settings=settings,
        store=store,
        engine=engine,
        dispatcher=dispatcher,
        scheduler=scheduler,
        expander=expander,
        humans=humans,
        drafts=Drafts(humans),
        pagerduty=pagerduty,
        reload=reload,
        metrics=metrics,
        clock=clock,
        pages=PageCache(clock, settings.status_page.cache),
        feedback_links=links,
    )
    app.jinja_env.filters.update(iso=iso, utc=utc, local_time=local_time)
    errors.register(app)
    headers.register(app)
    for blueprint in (webhooks.bp, api.bp, openapi.bp, status.bp, ops.bp, desk.bp, feedback.bp):
        app.register_blueprint(blueprint)
    return app
