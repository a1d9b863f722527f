"""Engine and session set-up for Postgres and the embedded SQLite default."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ARRAY, Engine, String, any_, bindparam, cast, create_engine, event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from config import Settings

T = TypeVar("T")


@dataclass
class Database:
    engine: Engine
    sessionmaker: sessionmaker[Session]

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any error."""
        session = self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take control of BEGIN so that every transaction starts IMMEDIATE: web,
        # workers and beat share one file, and a deferred transaction that reads
        # and then writes would fail with SQLITE_BUSY instead of waiting.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# A pooled connection idle longer than this is pinged before use (see _ping_if_idle).
IDLE_PING_AFTER = 10.0


def _ping_if_idle(engine: Engine) -> None:
    """Ping a connection before use only when it sat idle, instead of on every checkout.

    ``pool_pre_ping`` costs a round trip per checkout, two per request here. A
    connection in steady use has just proved itself; one that sat idle may have
    been dropped by a restart or a proxy, so it is pinged and, if dead, replaced.
    """

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_AFTER:
            return
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("SELECT 1")
            # End the transaction the ping opened: the connection goes out as it came in,
            # so that a hot path can switch it to autocommit (``execute_at_once``).
            dbapi_conn.rollback()
        except Exception:
            raise DisconnectionError("idle connection is dead") from None  # the pool reconnects
        finally:
            with suppress(Exception):
                cursor.close()


def make_engine(settings: Settings) -> Engine:
    if settings.is_sqlite:
        return _sqlite_engine(settings.database_url)
    engine = create_engine(
        settings.database_url,
        # gunicorn runs several threads a worker, and a request briefly holds a second
        # connection while its outbox rows are deleted after commit; a threads-pool worker
        # runs WORKER_CONCURRENCY tasks at once, each with its own session: keep them pooled.
        pool_size=settings.database_pool_size or max(10, settings.worker_concurrency),
        max_overflow=settings.database_max_overflow,
        pool_timeout=5,
        # Fail fast when Postgres is unreachable, so the API can answer 503 promptly.
        connect_args={"connect_timeout": 3, "application_name": "switchboard"},
        # A flush of many updated rows (a CRM batch's outcomes) in pages of statements,
        # not one round trip per row; INSERTs stay one multi-row statement.
        executemany_mode="values_plus_batch",
        executemany_batch_page_size=500,
    )
    _ping_if_idle(engine)
    return engine


def make_database(settings: Settings) -> Database:
    engine = make_engine(settings)
    return Database(engine, sessionmaker(engine, expire_on_commit=False))


def _insert_ignore_stmt(
    session: Session, target: Any, values: dict[str, Any] | list[dict[str, Any]], keys: list[str]
) -> Any:
    """INSERT ... ON CONFLICT (keys) DO NOTHING, in the session's dialect (one row or many,
    in one multi-row statement)."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    postgres = session.get_bind().dialect.name == "postgresql"
    statement: Any = pg_insert(target) if postgres else sqlite_insert(target)
    if values:  # else the rows come as the executemany's parameters
        statement = statement.values(values)
    return statement.on_conflict_do_nothing(index_elements=keys)


def insert_ignore(session: Session, table: Any, values: dict[str, Any], keys: list[str]) -> bool:
    """INSERT ... ON CONFLICT (keys) DO NOTHING on Postgres and SQLite; True when a row went in."""
    result = session.execute(_insert_ignore_stmt(session, table, values, keys))
    return bool(getattr(result, "rowcount", 0))


def insert_ignore_many(
    session: Session, table: Any, rows: list[dict[str, Any]], keys: list[str], *returning: Any
) -> list[Any]:
    """Many rows in one statement, those on a conflict left out: the ``returning`` columns of
    each row that went in."""
    if not rows:
        return []
    # One statement compiled once and run as an executemany: SQLAlchemy sends it as multi-row
    # INSERTs of up to a thousand rows ("insertmanyvalues"), RETURNING from each.
    statement = _insert_ignore_stmt(session, table, {}, keys).returning(*returning)
    return list(session.execute(statement, rows).all())


def array_literal(values: Sequence[Any]) -> str:
    """A Postgres array literal (``{"a","b",NULL}``) of values already in their bound form.

    A batch's array goes to the server as this one text parameter: psycopg2 would send a
    list as ``ARRAY['a', 'b', ...]``, an expression of thousands of constants that it quotes
    one by one and the server parses one by one (4.7 ms for two arrays of 2,000, beside
    0.7 ms as literals, measured here). Every element is quoted, so any text is safe.
    """
    parts = []
    for value in values:
        if value is None:
            parts.append("NULL")
            continue
        if isinstance(value, datetime):
            text_value = value.isoformat()
        elif isinstance(value, bool):
            text_value = "true" if value else "false"
        else:
            text_value = str(value)
        parts.append('"' + text_value.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(parts) + "}"


def any_of(session: Session, column: Any, values: Sequence[str]) -> Any:
    """``column IN values`` for a batch: on Postgres one array parameter (``= ANY``), which
    Postgres plans as it plans an IN list, without a bound parameter per value for
    SQLAlchemy to render and psycopg2 to quote (thousands, for a campaign's batch).
    Elsewhere, IN."""
    if session.get_bind().dialect.name == "postgresql":
        literal = bindparam(None, array_literal(values), type_=String())
        return column == any_(cast(literal, ARRAY(String())))
    return column.in_(values)


def insert_rows(
    session: Session,
    table: Any,
    rows: list[dict[str, Any]],
    *returning: Any,
    ignore: list[str] | None = None,
) -> list[Any]:
    """Many rows in one INSERT; with ``ignore``, those on a conflict on those keys left out.

    On Postgres the rows travel as one array per column (``INSERT ... SELECT FROM unnest``):
    one statement shape whatever the batch's size, and no per-value work in SQLAlchemy. A
    column with one value in every row is bound once, so its column type runs once (a
    campaign's body is encrypted once, not once a message). Each value still goes through its
    column's type (encryption, JSON, UTC). Elsewhere (SQLite) an executemany does the same.
    Returns the ``returning`` columns of each row that went in (order not promised).
    """
    if not rows:
        return []
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        from sqlalchemy import insert

        statement: Any = (
            insert(table) if ignore is None else _insert_ignore_stmt(session, table, {}, ignore)
        )
        if returning:
            return list(session.execute(statement.returning(*returning), rows).all())
        session.execute(statement, rows)
        return []
    names = list(rows[0])
    varying: dict[str, list[Any]] = {}
    constant: dict[str, Any] = {}
    for n, name in enumerate(names):
        values = [r[name] for r in rows]
        # Every row alike: bound once (the first column always varies, so unnest yields a
        # row for each row given even when all are alike).
        if n > 0 and all(v == values[0] for v in values):
            constant[name] = values[0]
        else:
            varying[name] = values
    return insert_columns(session, table, varying, constant, *returning, ignore=ignore)


def insert_columns(
    session: Session,
    table: Any,
    varying: dict[str, list[Any]],
    constant: dict[str, Any],
    *returning: Any,
    ignore: list[str] | None = None,
) -> list[Any]:
    """Postgres: rows given by column, one INSERT ... SELECT FROM unnest.

    ``varying`` holds a list per column (all of one length: the rows); ``constant`` a value
    per column, alike in every row and bound once. Each value goes through its column's
    type. The batch hot paths that already hold their values by column (a campaign's
    expansion) call this directly, with no row dicts in between.
    """
    if not varying:
        raise ValueError("at least one column must vary: unnest yields the rows")
    dialect = session.get_bind().dialect
    params: dict[str, Any] = {}
    arrays: list[str] = []
    singles: list[str] = []
    for n, (name, values) in enumerate([*varying.items(), *constant.items()]):
        column = table.c[name]
        process = column.type.bind_processor(dialect)
        key, ddl = f"c{n}", column.type.compile(dialect=dialect)
        if name in varying:
            params[key] = array_literal([process(v) for v in values] if process else values)
            arrays.append(f"CAST(:{key} AS {ddl}[])")
        else:
            params[key] = process(values) if process else values
            singles.append(f"CAST(:{key} AS {ddl})")
    selected = ", ".join(["v.*", *singles])
    # Table and column names come from the model; every value is a bound parameter.
    sql = (
        f"INSERT INTO {table.name} ({', '.join([*varying, *constant])}) "  # noqa: S608
        f"SELECT {selected} FROM unnest({', '.join(arrays)}) AS v"
    )
    if ignore is not None:
        sql += f" ON CONFLICT ({', '.join(ignore)}) DO NOTHING"
    if returning:
        sql += " RETURNING " + ", ".join(c.name for c in returning)
    result = session.execute(text(sql), params)
    return list(result.all()) if returning else []


def insert_ignore_returning(
    session: Session, entity: type[T], values: dict[str, Any], keys: list[str]
) -> T | None:
    """The same, in one round trip returning the new row as an ORM object; None on a conflict."""
    stmt = _insert_ignore_stmt(session, entity, values, keys).returning(entity)
    return session.scalars(stmt).first()


# Called with each round trip ``execute_at_once`` makes: the statement as written, with its
# parameters (None for the PREPARE). The round-trip budgets count them; the query-plan
# test EXPLAINs them.
STATEMENT_LISTENERS: list[Callable[[str, Mapping[str, Any] | None], None]] = []

_PREPARED = "switchboard.prepared"
_UNKNOWN_STATEMENT = "26000"  # invalid_sql_statement_name: no prepared statement by that name
_PARAM = re.compile(r"%\((\w+)\)s")


@dataclass(frozen=True)
class Prepared:
    """A statement Postgres parses and plans once per connection, then only executes.

    Written with ``%(name)s`` parameters; each one's Postgres type is ``types[name]``,
    else ``text``. A hot path's statement of ten CTEs costs Postgres about 0.6 ms to
    parse and plan, more than it costs to run: prepared, only the run is paid.
    """

    name: str
    source: str
    prepare: str
    execute: str

    @classmethod
    def of(cls, name: str, statement: str, types: Mapping[str, str]) -> Prepared:
        order: list[str] = []

        def positional(match: re.Match[str]) -> str:
            if match.group(1) not in order:
                order.append(match.group(1))
            return f"${order.index(match.group(1)) + 1}"

        body = _PARAM.sub(positional, statement)
        declared = ", ".join(types.get(param, "text") for param in order)
        arguments = ", ".join(f"%({param})s" for param in order)
        return cls(
            name,
            statement,
            f"PREPARE {name} ({declared}) AS {body}",
            f"EXECUTE {name} ({arguments})",
        )


def execute_at_once(engine: Engine, statement: Prepared, params: Mapping[str, Any]) -> Any:
    """Run one prepared statement in autocommit on a pooled connection; its first row, or None.

    For the request hot paths, whose one statement is atomic by itself: no BEGIN, no
    COMMIT, no parse or plan after a connection's first use, and none of SQLAlchemy's
    per-execution work (about 0.1 ms of CPU). Errors come back as SQLAlchemy's
    (``OperationalError``, ``IntegrityError``...), so callers and the API's handlers treat
    them as any other; a connection an error shows dead is dropped from the pool.
    """
    dbapi_error = engine.dialect.loaded_dbapi.Error
    fairy = engine.raw_connection()
    driver = fairy.driver_connection
    assert driver is not None
    # The statements prepared on this connection: forgotten with it (invalidated, recycled).
    prepared: set[str] = fairy.info.setdefault(_PREPARED, set())
    invalidated = False
    sql = statement.execute
    try:
        driver.autocommit = True
        cursor = driver.cursor()
        try:
            for attempt in (1, 2):
                if statement.name not in prepared:
                    sql = statement.prepare
                    _notify(sql, None)
                    cursor.execute(sql)
                    prepared.add(statement.name)
                    sql = statement.execute
                _notify(statement.source, params)
                try:
                    cursor.execute(sql, params)
                except dbapi_error as exc:
                    # The server forgot it (DISCARD ALL, a pooler handing over another
                    # session): prepare it again, once. Nothing ran, so nothing is written.
                    if attempt == 2 or getattr(exc, "pgcode", None) != _UNKNOWN_STATEMENT:
                        raise
                    prepared.discard(statement.name)
                    continue
                return cursor.fetchone() if cursor.description else None
            raise AssertionError("unreachable")
        finally:
            cursor.close()
    except dbapi_error as exc:
        invalidated = engine.dialect.is_disconnect(exc, driver, None)
        if invalidated:
            # As SQLAlchemy does on a disconnect: this connection and every other the pool
            # holds from before it are replaced, since the server they knew is gone.
            engine.pool._invalidate(fairy, exc)
        raise DBAPIError.instance(
            sql,
            dict(params),
            exc,
            dbapi_error,
            connection_invalidated=invalidated,
            dialect=engine.dialect,
        ) from exc
    finally:
        if not invalidated:
            with suppress(Exception):
                driver.autocommit = False
        fairy.close()


def _notify(statement: str, params: Mapping[str, Any] | None) -> None:
    for listener in STATEMENT_LISTENERS:
        listener(statement, params)
