"""The per-app services views reach through `app.extensions`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app

from adapter.clock import Clock
from adapter.config import Settings
from adapter.dispatch import Dispatcher
from adapter.engine.core import Engine
from adapter.engine.drafts import Drafts
from adapter.engine.expand import Expander
from adapter.engine.humans import HumanActions
from adapter.engine.pagerduty import PagerDutyIntake
from adapter.engine.scheduler import Scheduler
from adapter.feedback import LinkMaker
from adapter.metrics import Metrics
from adapter.store import Store
from adapter.web.pagecache import PageCache

EXTENSION = "dualtrack"


@dataclass
class Services:
    settings: Settings
    store: Store
    engine: Engine
    dispatcher: Dispatcher
    scheduler: Scheduler
    expander: Expander
    humans: HumanActions
    drafts: Drafts
    pagerduty: PagerDutyIntake
    metrics: Metrics
    clock: Clock
    # Rendered public pages, kept for `status_page.cache`.
    pages: PageCache
    # Customer notices' feedback links (None without feedback.secret).
    feedback_links: LinkMaker | None = None
    # Asks the server to re-read its configuration (None outside `dualtrack serve`).
    reload: Callable[[], None] | None = None


def services() -> Services:
    svc: Services = current_app.extensions[EXTENSION]
    return svc
