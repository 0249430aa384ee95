"""Core statements compiled once, and run on SQLite's own cursor on the webhook's write path."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from typing import Any

from sqlalchemy import Connection, exc
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import ColumnDefault
from sqlalchemy.sql.compiler import SQLCompiler

Row = dict[str, Any]
Params = Mapping[str, Any]
Processor = Callable[[Any], Any] | None
_MISSING = object()


class _Compiled:
    """One statement's SQL for SQLite, with how to bind its parameters and read its rows."""

    __slots__ = ("binds", "keys", "results", "sql")

    def __init__(self, statement: Any, dialect: Dialect, column_keys: Sequence[str] | None):
        compiled = statement.compile(dialect=dialect, column_keys=column_keys)
        assert isinstance(compiled, SQLCompiler)
        self.sql = compiled.string
        # Columns with a Python-side default the parameters leave out (SQLAlchemy fills these in
        # while executing): their default is bound as a constant.
        defaults: dict[str, Any] = {}
        prefetch = [(c, c.default) for c in compiled.insert_prefetch]
        prefetch += [(c, c.onupdate) for c in compiled.update_prefetch]
        for column, default in prefetch:
            if not isinstance(default, ColumnDefault) or not default.is_scalar:
                raise ValueError(f"{column} has a default that is not a constant: run it with conn.execute")
            defaults[column.key] = default.arg
        self.binds: list[tuple[str, Any, Processor]] = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            if bind.expanding or bind.literal_execute:
                raise ValueError(f"{name} is rendered at run time: run the statement with conn.execute")
            # A bind the caller does not name is a constant of the statement, or a column default.
            constant = defaults.get(name, _MISSING if bind.required else bind.effective_value)
            self.binds.append((name, constant, bind.type.dialect_impl(dialect).bind_processor(dialect)))
        columns = statement.selected_columns if statement.is_select else compiled.effective_returning or []
        self.keys = tuple(str(column.key) for column in columns)
        self.results: list[Processor] = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ]

    def parameters(self, params: Params) -> tuple[Any, ...]:
        values = []
        for name, constant, process in self.binds:
            value = params.get(name, constant)
            if value is _MISSING:  # as conn.execute raises it
                missing = exc.InvalidRequestError(f"A value is required for bind parameter {name!r}")
                raise exc.StatementError(str(missing), self.sql, None, missing)
            values.append(value if process is None else process(value))
        return tuple(values)

    def row(self, values: Sequence[Any]) -> Row:
        return {
            key: value if process is None else process(value)
            for key, value, process in zip(self.keys, values, self.results, strict=True)
        }


def fetch_rows(conn: Connection, statement: Any, params: Params | None = None) -> list[Row]:
    """`conn.execute`'s rows as dicts, zipped onto plain rows: a sixth faster than copying mappings."""
    result = conn.execute(statement, params)
    keys = tuple(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result]


def _direct(conn: Connection) -> bool:
    """SQLite, and nobody listening for SQLAlchemy's statement events (tracing, tests), who would
    not see a statement run on the cursor."""
    events = conn.dispatch
    return conn.dialect.name == "sqlite" and not (events.before_cursor_execute or events.after_cursor_execute)


class Prepared:
    """A Core statement run as SQLAlchemy would, minus its cost per run on SQLite.

    SQLAlchemy sets up an execution context and a result object for every statement, about 45 µs
    each on the webhook path, while the write lock every writer waits for is held: a third of that
    time went there. On SQLite the statement is compiled once (per set of columns, for an INSERT or
    UPDATE) with the same dialect, types and defaults, and then run on the connection's own sqlite3
    cursor in the same transaction; DBAPI errors are wrapped as SQLAlchemy wraps them. Other
    dialects, and connections whose statement events someone listens to, run the statement with
    `conn.execute`. Statements SQLAlchemy renders again on every run (an expanding IN, a literal
    bound at execution) are refused on SQLite: they gain nothing here.
    """

    __slots__ = ("_compiled", "statement")

    def __init__(self, statement: Any):
        self.statement = statement
        self._compiled: dict[tuple[str, ...] | None, _Compiled] = {}

    def _for(self, conn: Connection, params: Params | None) -> _Compiled:
        # INSERT and UPDATE statements name the columns their parameters set.
        key = tuple(sorted(params)) if params is not None and self.statement.is_dml else None
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = _Compiled(self.statement, conn.dialect, key)
        return compiled

    def _cursor(self, conn: Connection, params: Any, *, many: bool = False) -> tuple[_Compiled, Any]:
        """The statement run on the connection's sqlite3 cursor: (how it was compiled, the cursor)."""
        compiled = self._for(conn, params[0] if many else params)
        if not conn.in_transaction():
            conn.begin()  # as conn.execute would, so that what follows reads the same snapshot
        driver = conn.connection.driver_connection
        assert driver is not None
        cursor = driver.cursor()
        try:
            if many:
                cursor.executemany(compiled.sql, [compiled.parameters(p) for p in params])
            else:
                cursor.execute(compiled.sql, compiled.parameters(params or {}))
        except driver.Error as error:  # what conn.execute would raise
            cursor.close()
            raise exc.DBAPIError.instance(
                compiled.sql, None, error, driver.Error, hide_parameters=True
            ) from error
        return compiled, cursor

    def all(self, conn: Connection, params: Params | None = None) -> list[Row]:
        if not _direct(conn):
            return fetch_rows(conn, self.statement, params)
        compiled, cursor = self._cursor(conn, params)
        with closing(cursor):
            return [compiled.row(values) for values in cursor.fetchall()]

    def first(self, conn: Connection, params: Params | None = None) -> Row | None:
        rows = self.all(conn, params)
        return rows[0] if rows else None

    def scalar(self, conn: Connection, params: Params | None = None) -> Any:
        """The first column of the only row."""
        rows = self.all(conn, params)
        if len(rows) != 1:
            raise exc.NoResultFound("no row") if not rows else exc.MultipleResultsFound("several rows")
        return next(iter(rows[0].values()))

    def run(self, conn: Connection, params: Params | Sequence[Params] | None = None) -> int:
        """Execute an INSERT, UPDATE or DELETE, for a list of parameter sets at once if given one;
        the number of rows it changed, as the driver counts them (psycopg: -1 for a list)."""
        if not _direct(conn):
            return int(conn.execute(self.statement, params).rowcount)
        _, cursor = self._cursor(conn, params, many=params is not None and not isinstance(params, Mapping))
        with closing(cursor):
            return int(cursor.rowcount)

    def inserted_id(self, conn: Connection, params: Params) -> int:
        """Execute a one-row INSERT; the new row's primary key."""
        if not _direct(conn):
            return int(conn.execute(self.statement, params).inserted_primary_key[0])  # type: ignore[index]
        _, cursor = self._cursor(conn, params)
        with closing(cursor):
            return int(cursor.lastrowid)
