"""Engine tests' worlds: the app's services on a store of their own, under the test's clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from adapter.app import create_app
from adapter.metrics import Metrics
from adapter.store import Store
from adapter.web.services import Services
from tests.conftest import base_config


@pytest.fixture
def world(open_store, make_settings, clock) -> Iterator[Callable[..., Services]]:
    """`world(providers, catalog, policy=None)`: the services of an app with these providers."""
    stores: list[Store] = []

    def make(providers: list[dict[str, Any]], catalog: dict[str, Any], policy: dict[str, Any] | None = None):
        config = base_config()
        config["providers"] = providers
        if policy:
            config["policy"] = policy
        settings = make_settings(config, catalog)
        store = open_store(settings.storage.url)
        stores.append(store)
        return create_app(settings, clock=clock, store=store, metrics=Metrics()).extensions["dualtrack"]

    yield make
    for store in stores:
        store.dispose()
