"""Database engine, serialized write transactions and migrations, for SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)
_MIGRATIONS = Path(__file__).with_name("migrations")
# PostgreSQL advisory lock keys (any constant bigint; these spell "dualtrk" + 1 and + 2).
WRITER_LOCK_KEY = 0x6475616C74726B01
MIGRATE_LOCK_KEY = 0x6475616C74726B02
# Held until the transaction ends (commit, rollback, or the server noticing the client is gone).
_XACT_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
# How long an SQLite writer waits for another's write lock before it fails, in seconds.
BUSY_TIMEOUT = 30
# Execution option marking a connection from Store.read().
_READ_ONLY = "dualtrack_read_only"
# Alembic keeps its `context` and `op` proxies in module globals: one migration per process at a time.
_MIGRATING = threading.Lock()
# How long the readiness check may wait for a lock or a statement, in seconds. PostgreSQL's
# connect timeout cannot be shorter than 2 s (libpq's floor).
READY_TIMEOUT = 1.0
# How long `serve` waits for PostgreSQL at start before it gives up.
START_CONNECT_TIMEOUT = 10
# SQLite's result codes for a damaged file (extended codes start with these names).
_SQLITE_CORRUPTION = ("SQLITE_CORRUPT", "SQLITE_NOTADB")


def _alembic_config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


class Unavailable(Exception):
    """The database cannot be used now: unreachable, locked, corrupted, or replaced under us."""


def reason(error: BaseException) -> str:
    """The driver's own message, on one line: no SQL, no parameters."""
    orig = getattr(error, "orig", None) or error
    return " ".join(str(orig).split()) or type(orig).__name__


def _is_corruption(error: BaseException) -> bool:
    name = getattr(getattr(error, "orig", None) or error, "sqlite_errorname", None) or ""
    return name.startswith(_SQLITE_CORRUPTION)


def is_outage(error: BaseException) -> bool:
    """Whether `error` says the database cannot be used now (a retry may succeed), not a bug."""
    if isinstance(error, Unavailable | sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True
    if isinstance(error, OSError):  # the disk failing us
        return True
    if isinstance(error, sa_exc.DBAPIError):
        return (
            error.connection_invalidated
            or isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError)
            or _is_corruption(error)
        )
    return False


class Store:
    """One engine per process; `transaction()` is the only way to write.

    Writers are serialized, as the engine's correlation expects: on SQLite by BEGIN IMMEDIATE
    (waiting up to BUSY_TIMEOUT for the write lock), on PostgreSQL by a transaction-level advisory
    lock taken first thing in every write transaction (across processes and replicas). A commit is
    durable when `transaction()` returns: SQLite syncs its WAL at commit (synchronous=FULL, unless
    configured NORMAL), PostgreSQL its own log.
    """

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL"):
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self.is_postgresql = parsed.get_backend_name() == "postgresql"
        kwargs: dict[str, Any] = {}
        # Writers queue on these before SQLite's write lock (see `_write_lock`).
        self._writers = threading.Lock()
        self._lock_file: IO[bytes] | None = None
        # Set once the database is known to be unusable (see `_refuse_if_unusable`).
        self._unusable: str | None = None
        self._database: Path | None = None
        self._database_identity: tuple[int, int] | None = None
        if self.is_sqlite:
            database = parsed.database or ""
            if database and database != ":memory:":
                self._database = Path(database)
                self._database.parent.mkdir(parents=True, exist_ok=True)
                self._lock_file = open(f"{database}.lock", "ab")  # noqa: SIM115 - held for the Store's life
            # The busy timeout lets writers queue for the write lock instead of failing.
            kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT, "check_same_thread": False}
        else:
            # A replica outlives database restarts and failovers: test pooled connections first.
            kwargs["pool_pre_ping"] = True
        if self.is_postgresql:
            # Each statement after the writer lock must see what the previous writer committed:
            # READ COMMITTED does (a new snapshot per statement); REPEATABLE READ would not.
            kwargs["isolation_level"] = "READ COMMITTED"
        self.engine: Engine = create_engine(url, hide_parameters=True, **kwargs)  # values: customer data
        if self.is_sqlite:
            self._configure_sqlite(self.engine, sqlite_synchronous)
            event.listen(self.engine, "connect", self._remember_database_file)

    def _remember_database_file(self, _dbapi_connection: Any, _record: Any) -> None:
        """The file SQLite opened first: every later write checks the path still leads to it."""
        if self._database is not None and self._database_identity is None:
            found = os.stat(self._database)
            self._database_identity = (found.st_dev, found.st_ino)

    def _refuse_if_unusable(self) -> None:
        """Raise Unavailable once the database is known corrupted, or when the file at its path
        is no longer the one this process writes to (removed or replaced while running): every
        commit would go to a file nobody will read again."""
        if self._unusable is None and self._database_identity is not None:
            assert self._database is not None
            try:
                found = os.stat(self._database)
            except FileNotFoundError:
                self._unusable = f"{self._database} was removed while dualtrack was running; restart it"
            else:
                if (found.st_dev, found.st_ino) != self._database_identity:
                    self._unusable = f"{self._database} was replaced while dualtrack was running; restart it"
        if self._unusable is not None:
            raise Unavailable(self._unusable)

    @contextmanager
    def _noting_corruption(self) -> Iterator[None]:
        """Once SQLite has found the file damaged, nothing more is written to it in this process:
        a later transaction that happens to touch only cached pages would otherwise commit."""
        try:
            yield
        except Exception as error:
            if _is_corruption(error):
                self._unusable = f"{self._database}: the database is corrupted ({reason(error)})"
            raise

    @staticmethod
    def _configure_sqlite(engine: Engine, synchronous: str) -> None:
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's begin hook below own transaction boundaries.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Writers take the write lock up front: no lock upgrades, so no SQLITE_BUSY deadlocks.
            # Readers (see `read`) begin deferred: WAL lets them run beside the writer.
            # On the driver's connection: the hook runs as SQLAlchemy begins, before it could execute.
            driver = conn.connection.driver_connection
            assert driver is not None
            driver.execute("BEGIN" if conn.get_execution_options().get(_READ_ONLY) else "BEGIN IMMEDIATE")

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction, committed and durable when the block exits, rolled back if it raises."""
        with self._write_lock(), self._noting_corruption(), self.engine.begin() as conn:
            if self.is_sqlite:
                self._refuse_if_unusable()
            elif self.is_postgresql:
                conn.execute(_XACT_LOCK, {"key": WRITER_LOCK_KEY})
            yield conn

    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        """One writer at a time in this process and, on SQLite, across processes, woken the moment
        the lock is free: SQLite's own wait for its lock polls with sleeps of up to 100 ms, which
        at 16 concurrent webhooks cost 40% of throughput and put p99 above a second."""
        if not self.is_sqlite:  # PostgreSQL's advisory lock (see `transaction`) wakes the next at once
            yield
            return
        with self._writers:
            if self._lock_file is None:
                yield
                return
            fcntl.flock(self._lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)

    @contextmanager
    def rolled_back(self) -> Iterator[Connection]:
        """A write transaction that is always rolled back (to a savepoint): for previews."""
        with self.transaction() as conn:
            nested = conn.begin_nested()
            try:
                yield conn
            finally:
                nested.rollback()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reading only: on SQLite it never waits for, nor holds up, a writer."""
        with self._noting_corruption(), self.engine.connect() as conn:
            yield conn.execution_options(**{_READ_ONLY: True})

    def ping(self) -> None:
        """Read the schema version within about READY_TIMEOUT, or raise Unavailable saying why.

        On a connection of its own, with short timeouts: it never takes nor waits for the write
        lock, and a pooled connection stuck on a dead server cannot hold it up.
        """
        if self.is_sqlite:
            self._refuse_if_unusable()
        try:
            with self._noting_corruption():
                self._fresh_read("SELECT version_num FROM alembic_version", READY_TIMEOUT)
        except sa_exc.DBAPIError as error:
            raise Unavailable(self.describe(error)) from None

    def verify(self) -> None:
        """At start: the database answers and, on SQLite, `PRAGMA quick_check` finds it sound;
        else Unavailable, with one line saying what is wrong and what to do."""
        if not self.is_sqlite:
            try:
                self._fresh_read("SELECT 1", START_CONNECT_TIMEOUT)
            except sa_exc.DBAPIError as error:
                raise Unavailable(self.describe(error)) from None
            return
        if self._database is None:
            return
        try:
            problems = [str(row[0]) for row in self._fresh_read("PRAGMA quick_check", START_CONNECT_TIMEOUT)]
        except sa_exc.DBAPIError as error:
            if not _is_corruption(error):
                raise Unavailable(self.describe(error)) from None
            problems = [reason(error)]
        if problems != ["ok"]:
            first = " ".join(problems[0].split())
            raise Unavailable(
                f"{self._database}: the database is corrupted (quick_check: {first}); "
                "restore it from a backup, or move it away to start with an empty one"
            )

    def _fresh_read(self, statement: str, timeout: float) -> list[Any]:
        """Run one reading statement on a new driver connection with short timeouts, then close it.

        Driver errors come out as SQLAlchemy's DBAPIError, as from `conn.execute`.
        """
        dialect = self.engine.dialect
        cargs, cparams = dialect.create_connect_args(self.engine.url)
        if self.is_sqlite:
            cparams["timeout"] = timeout  # the busy timeout: how long a lock may hold the read up
        else:
            limit = f"-c statement_timeout={int(timeout * 1000)} -c lock_timeout={int(timeout * 1000)}"
            cparams["connect_timeout"] = max(2, int(timeout))
            cparams["options"] = f"{cparams.get('options', '')} {limit}".strip()
        driver_error = dialect.loaded_dbapi.Error
        try:
            connection = dialect.connect(*cargs, **cparams)
            try:
                cursor = connection.cursor()
                cursor.execute(statement)
                rows = list(cursor.fetchall())
            finally:
                connection.close()
        except driver_error as error:
            raise sa_exc.DBAPIError.instance(statement, None, error, driver_error) from error
        return rows

    def describe(self, error: BaseException) -> str:
        """Which database, and the driver's reason without the password, on one line."""
        url = self.engine.url
        if self.is_sqlite:
            where = f"SQLite database {url.database}"
        else:
            where = f"PostgreSQL at {url.host or 'localhost'}:{url.port or 5432}, database {url.database}"
        why = reason(error)
        if url.password:
            why = why.replace(str(url.password), "***")
        return f"{where}: {why}"

    def migrate(self) -> None:
        """Bring the schema to the newest version; replicas starting together migrate one at a time.

        On PostgreSQL the whole upgrade is one transaction (DDL is transactional there) behind an
        advisory lock: whoever waited finds the schema at head and does nothing.
        """
        from alembic import command  # loaded only to migrate: it takes a tenth of a second

        config = _alembic_config()
        with _MIGRATING, self.engine.begin() as conn:
            if self.is_postgresql:
                conn.execute(_XACT_LOCK, {"key": MIGRATE_LOCK_KEY})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def at_head(self) -> bool:
        """Whether the schema is at the newest version (False for a database without one)."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
        with self.read() as conn:
            return bool(MigrationContext.configure(conn).get_current_revision() == head)

    def dispose(self) -> None:
        """The end of this Store: its connections and its lock file closed."""
        self.engine.dispose()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
