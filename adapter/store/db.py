"""Database engine, serialized write transactions and migrations, for SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from alembic import command
from alembic.config import Config as AlembicConfig
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
# Write transactions of one process between two checkpoints of the WAL: a group transaction of
# the ingest benchmark writes about 40 pages, so this is about SQLite's own default of 1,000.
CHECKPOINT_EVERY = 25
# Execution option marking a connection from Store.read().
_READ_ONLY = "dualtrack_read_only"
# Alembic keeps its `context` and `op` proxies in module globals: one migration per process at a time.
_MIGRATING = threading.Lock()
# Connection.info key: what a write transaction asked to run once it has committed.
_AFTER_COMMIT = "dualtrack_after_commit"
# How long the readiness check may wait for a lock or a statement, in seconds. PostgreSQL's
# connect timeout cannot be shorter than 2 s (libpq's floor).
READY_TIMEOUT = 1.0
# How long `serve` waits for PostgreSQL at start before it gives up.
START_CONNECT_TIMEOUT = 10
# SQLite's result codes for a damaged file (extended codes start with these names).
_SQLITE_CORRUPTION = ("SQLITE_CORRUPT", "SQLITE_NOTADB")

Effect = Callable[[], None]


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
    if isinstance(error, OSError):  # the WAL's fsync, the write lock's file: the disk failing us
        return True
    if isinstance(error, sa_exc.DBAPIError):
        return (
            error.connection_invalidated
            or isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError)
            or _is_corruption(error)
        )
    return False


def after_commit(conn: Connection, effect: Effect) -> None:
    """Run `effect` once the write transaction on `conn` has committed; never if it rolls back.

    Logs and metrics of a transaction's work go here: they then describe only what was stored,
    and cost nothing while the write lock, which every writer waits for, is held.
    """
    conn.info.setdefault(_AFTER_COMMIT, []).append(effect)


def run_effects(effects: list[Effect]) -> None:
    for effect in effects:
        try:
            effect()
        except Exception:  # the transaction is committed: its caller must not hear otherwise
            log.exception("after-commit effect failed")


def _take_effects(conn: Connection) -> list[Effect]:
    effects: list[Effect] = conn.info.pop(_AFTER_COMMIT, [])
    return effects


class Store:
    """One engine per process; `transaction()` is the only way to write.

    Writers are serialized, as the engine's correlation expects: on SQLite by
    BEGIN IMMEDIATE behind a file lock, on PostgreSQL by a transaction-level advisory lock taken
    first thing in every write transaction (across processes and replicas).
    """

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL"):
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self.is_postgresql = parsed.get_backend_name() == "postgresql"
        kwargs: dict[str, Any] = {}
        self._writer_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._writer_file: IO[bytes] | None = None
        self._wal: Path | None = None
        self._wal_inode: int | None = None
        self._commits = 0
        # Checkpoints run on a thread of their own, started at the first (see `_sync_wal`).
        self._checkpoint_due = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self._closing = False
        # Set once the database is known to be unusable (see `_refuse_if_unusable`).
        self._unusable: str | None = None
        self._database: Path | None = None
        self._database_identity: tuple[int, int] | None = None
        if self.is_sqlite:
            database = parsed.database or ""
            if database and database != ":memory:":
                self._database = Path(database)
                self._database.parent.mkdir(parents=True, exist_ok=True)
                self._writer_file = open(f"{database}.lock", "ab")  # noqa: SIM115 - held for the Store's life
                if sqlite_synchronous == "FULL":
                    # Group commit: SQLite commits without syncing (NORMAL), and each writer
                    # syncs the WAL itself after giving up the lock, so one fsync can cover
                    # several commits and none is spent holding the lock.
                    self._wal = Path(f"{database}-wal")
                    sqlite_synchronous = "NORMAL"
            # The busy timeout lets workers queue for the write lock instead of failing.
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            # A replica outlives database restarts and failovers: test pooled connections first.
            kwargs["pool_pre_ping"] = True
        if self.is_postgresql:
            # Each statement after the writer lock must see what the previous writer committed:
            # READ COMMITTED does (a new snapshot per statement); REPEATABLE READ would not.
            kwargs["isolation_level"] = "READ COMMITTED"
        self.engine: Engine = create_engine(url, hide_parameters=True, **kwargs)  # values: customer data
        if self.is_sqlite:
            self._configure_sqlite(self.engine, sqlite_synchronous, checkpoint_by_hand=self._wal is not None)
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
        except Exception as error:  # from SQLAlchemy, or the driver itself (see `_checkpoint`)
            if _is_corruption(error):
                self._unusable = f"{self._database}: the database is corrupted ({reason(error)})"
            raise

    @staticmethod
    def _configure_sqlite(engine: Engine, synchronous: str, *, checkpoint_by_hand: bool) -> None:
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's begin hook below own transaction boundaries.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            if checkpoint_by_hand:
                # SQLite would checkpoint inside a commit, holding the write lock; see _sync_wal.
                cursor.execute("PRAGMA wal_autocheckpoint=0")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Writers take the write lock up front: no lock upgrades, so no SQLITE_BUSY deadlocks.
            # Readers (see `read`) begin deferred: WAL lets them run beside the writer.
            # On the driver's own connection: SQLAlchemy's execution machinery costs more than the
            # statement, and this one runs in every write transaction.
            driver = conn.connection.driver_connection
            assert driver is not None
            driver.execute("BEGIN" if conn.get_execution_options().get(_READ_ONLY) else "BEGIN IMMEDIATE")

    @contextmanager
    def transaction(self, *, sync: bool = True, effects: list[Effect] | None = None) -> Iterator[Connection]:
        """A write transaction, durable when the block exits, after which its `after_commit`
        effects run.

        `sync=False` leaves making it durable to a later `sync()`: a caller that commits for others
        can let the next writer in first, as the sync needs no lock. Such a caller passes
        `effects`, a list the committed transaction's effects are added to, to run them itself.
        """
        committed: list[Effect] = []
        if self._writer_file is None:
            with self.engine.begin() as conn:
                try:
                    if self.is_postgresql:
                        conn.execute(_XACT_LOCK, {"key": WRITER_LOCK_KEY})
                    yield conn
                finally:
                    committed = _take_effects(conn)  # ran only if the commit below succeeds
        else:
            # The pooled connection is taken and given back outside the lock, which is for writing.
            with self._noting_corruption(), self.engine.connect() as conn, self._write_lock():
                self._refuse_if_unusable()
                with conn.begin():
                    try:
                        yield conn
                    finally:
                        committed = _take_effects(conn)
            if sync:
                self._sync_wal()
        if effects is not None:
            effects.extend(committed)
        else:
            run_effects(committed)

    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        """SQLite's write lock: one writer at a time across threads and processes, woken the
        moment the lock frees (SQLite's own busy handler would poll with sleeps of up to 100 ms)."""
        assert self._writer_file is not None
        with self._writer_lock:
            fcntl.flock(self._writer_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._writer_file, fcntl.LOCK_UN)

    def sync(self) -> None:
        """Make every transaction committed so far durable (see `transaction(sync=False)`)."""
        self._sync_wal()

    def _sync_wal(self) -> None:
        """Make what this process committed durable (before `transaction()` returns, or in `sync()`).

        The WAL holds every commit not yet checkpointed, in order, so syncing it covers ours and
        any before it; a checkpoint syncs the database file itself before the WAL is reused.
        """
        if self._wal is None:
            return
        try:
            fd = os.open(self._wal, os.O_RDONLY)
        except FileNotFoundError:
            return  # checkpointed and removed: the commit is in the (synced) database file
        try:
            os.fdatasync(fd)  # data and the size that finds it, as SQLite's own syncs
            inode = os.fstat(fd).st_ino
        finally:
            os.close(fd)
        # Several threads may sync at once (see `sync()`); none may return before the directory
        # sync another started for the same new WAL has finished.
        with self._sync_lock:
            if inode != self._wal_inode:
                # A new WAL file: its directory entry must survive a power loss too.
                directory = os.open(self._wal.parent, os.O_RDONLY)
                try:
                    os.fsync(directory)
                finally:
                    os.close(directory)
                self._wal_inode = inode
            self._commits += 1
            if self._commits % CHECKPOINT_EVERY == 0:
                self._request_checkpoint()

    def _request_checkpoint(self) -> None:
        """Have the checkpointer thread checkpoint the WAL (caller holds `_sync_lock`).

        Not here: a checkpoint copies the commits of many transactions and waits for the write
        lock, and the writer that happens to sync the 25th commit answers webhooks meanwhile.
        Requests made while one runs are served by one more checkpoint after it.
        """
        if self._closing:
            return
        if self._checkpointer is None:
            self._checkpointer = threading.Thread(
                target=self._checkpoint_when_due, name="dualtrack-checkpointer", daemon=True
            )
            self._checkpointer.start()
        self._checkpoint_due.set()

    def _checkpoint_when_due(self) -> None:
        while True:
            self._checkpoint_due.wait()
            if self._closing:
                return
            self._checkpoint_due.clear()
            try:
                with self._noting_corruption():
                    self._checkpoint()
            except Exception:  # the next request tries again; the WAL only grows meanwhile
                log.exception("WAL checkpoint failed")

    def _checkpoint(self) -> None:
        """Copy the WAL into the database file, so that the WAL is reused instead of growing.

        The bulk is copied without the write lock, while writers go on. That copy never catches
        up with writers that never stop, and a WAL is only reused once all of it is copied: then
        it grows for as long as the load lasts, and every page lookup searches all of it. So the
        few frames committed meanwhile are copied holding the lock; the next writer then starts
        the WAL afresh.
        """
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            with self._write_lock():
                cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            cursor.close()
        finally:
            raw.close()

    @contextmanager
    def rolled_back(self) -> Iterator[Connection]:
        """A write transaction that is always rolled back (to a savepoint): for previews."""
        with self.transaction() as conn:
            nested = conn.begin_nested()
            try:
                yield conn
            finally:
                nested.rollback()
                _take_effects(conn)  # what was rolled back has no effects

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
        config = AlembicConfig()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with _MIGRATING, self.engine.begin() as conn:
            if self.is_postgresql:
                conn.execute(_XACT_LOCK, {"key": MIGRATE_LOCK_KEY})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def dispose(self) -> None:
        """The end of this Store: connections closed, the write lock's file and checkpoints too."""
        with self._sync_lock:
            self._closing = True
            checkpointer, self._checkpointer = self._checkpointer, None
        self._checkpoint_due.set()
        if checkpointer is not None:
            checkpointer.join(timeout=30)  # a checkpoint in progress finishes
        self.engine.dispose()
        if self._writer_file is not None:
            self._writer_file.close()
            self._writer_file = None
