"""Store-suite fixtures: more stores on the test's database, as separate processes or replicas would hold."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from adapter.config import Settings
from adapter.store import Store


@pytest.fixture
def make_store(settings: Settings, store: Store) -> Iterator[Callable[[], Store]]:
    """Another Store (its own engine and pool) on the migrated database of `store`."""
    made: list[Store] = []

    def make() -> Store:
        made.append(Store(settings.storage.url))
        return made[-1]

    yield make
    for other in made:
        other.dispose()
