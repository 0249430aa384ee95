"""Fixtures that start real processes and always clean them up."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import (
    ALERTMANAGER,
    DUALTRACK,
    Alertmanager,
    Dualtrack,
    Sink,
    free_port,
    write_config,
)


def close_all(items: list[Any], log_lines: int = 0) -> None:
    """Close every item even if one fails; print logs (shown by pytest on failure)."""
    errors: list[BaseException] = []
    for item in items:
        try:
            item.close()
        except BaseException as exc:
            errors.append(exc)
        if log_lines:
            print(item.logs(log_lines))  # noqa: T201
    if errors:
        raise errors[0]


@pytest.fixture(autouse=True)
def _need_binaries() -> None:
    if not DUALTRACK.exists():
        pytest.fail(f"{DUALTRACK} is missing: run `pip install -e .` in the venv")


@pytest.fixture
def need_alertmanager() -> None:
    if not ALERTMANAGER.exists():
        pytest.skip(f"{ALERTMANAGER} is not installed (apt-get install prometheus-alertmanager)")


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink() as server:
        yield server


@pytest.fixture
def sink_factory() -> Iterator[Callable[..., Sink]]:
    """Sinks started later in a test (e.g. on a port chosen up front), closed at teardown."""
    made: list[Sink] = []

    def make(port: int | None = None, status: int = 200, forward: str | None = None) -> Sink:
        server = Sink(port, status, forward)
        made.append(server)
        return server

    yield make
    close_all(made)


@pytest.fixture
def dualtrack_factory(tmp_path: Path) -> Iterator[Callable[..., Dualtrack]]:
    """Build (not start) dualtrack servers; all are stopped and their logs printed at teardown."""
    made: list[Dualtrack] = []

    def make(
        *, folder: Path | None = None, port: int | None = None, workers: int = 2, **config: Any
    ) -> Dualtrack:
        port = port or free_port()
        path = write_config(folder or tmp_path / "dualtrack", port, **config)
        server = Dualtrack(path, port, workers=workers, name=f"dualtrack{len(made)}")
        made.append(server)
        return server

    yield make
    close_all(made, log_lines=200)


@pytest.fixture
def alertmanager_factory(tmp_path: Path, need_alertmanager: None) -> Iterator[Callable[..., Alertmanager]]:
    made: list[Alertmanager] = []

    def make(webhook_urls: list[Any], **kwargs: Any) -> Alertmanager:
        server = Alertmanager(tmp_path / f"alertmanager{len(made)}", webhook_urls, **kwargs)
        made.append(server)
        return server

    yield make
    close_all(made, log_lines=80)
