"""The request's database work under the contract's rules, around Django's own connection
handling.

Django takes a connection from its psycopg pool at the request's first query and gives it back
when the request finishes (`CONN_MAX_AGE = 0`, the pool's rule). `read` adds what the contract
asks of every server:

- DB_RECYCLE=verified: the connection is checked when it is taken, with psycopg_pool's
  `ConnectionPool.check_connection` (an empty query, not a statement to pg_stat_statements); one
  that fails is dropped and another taken. Not as the pool's own `check` (Django's
  `CONN_HEALTH_CHECKS`): that loop sleeps its reconnect backoff (a second, then more) after the
  second connection that fails it, so after a restart or terminated backends a request would
  wait past DB_WAIT_TIMEOUT_MS for a good one.
- Under either policy, a read whose first statement finds its connection closed under it (a
  PostgreSQL restart, `pg_terminate_backend`) drops that connection and runs once more on another,
  checked first: nothing has been answered yet, and the contract's requests are reads.

Taking connections, the first time and for the retry, is bounded by DB_WAIT_TIMEOUT_MS as a
whole; what cannot be had in time is the contract's 503.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from django.conf import settings
from django.db import Error as DjangoDatabaseError
from django.db import connection
from psycopg_pool import ConnectionPool

from bakeoff_contract.config import DbRecycle
from bakeoff_contract.errors import DatabaseUnavailable

logger = logging.getLogger("bakeoff")

T = TypeVar("T")

#: SQLSTATEs of a connection closed under a statement (core's `is_connection_lost`).
_LOST_SQLSTATES = ("57P01", "57P02", "08")


def is_connection_lost(error: BaseException) -> bool:
    """Whether a statement failed because its connection was closed under it, so that another
    connection may well work. Django wraps psycopg's error; the cause says what happened."""
    cause = error.__cause__ if isinstance(error, DjangoDatabaseError) else error
    if not isinstance(cause, psycopg.OperationalError):
        return False
    raw = connection.connection
    broken = raw is not None and raw.broken
    return broken or (cause.sqlstate or "").startswith(_LOST_SQLSTATES)


def is_unavailable(error: BaseException) -> bool:
    """Whether a database error means the database (or this connection to it) is gone rather
    than a bug: psycopg's OperationalError (SQLSTATE classes 08, 53, 57, a failed connect, the
    pool's timeout) and InterfaceError (a closed connection), as Django wraps them."""
    cause = error.__cause__ if isinstance(error, DjangoDatabaseError) else error
    return isinstance(cause, (psycopg.OperationalError, psycopg.InterfaceError))


class _FirstStatement:
    """A Django `execute_wrapper`: whether the request's first statement has finished, after
    which a lost connection is no longer retried."""

    def __init__(self) -> None:
        self.finished = False

    def __call__(self, execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        self.finished = True
        return result


def _drop() -> None:
    """Gives the connection back; the pool discards it when it is broken. A backend terminated
    while the socket has not shown it yet is closed here first, so that it is discarded too."""
    raw = connection.connection
    if raw is not None and not raw.closed and not raw.broken:
        raw.close()
    connection.close()


def _checkout(check: bool, deadline: float) -> None:
    """Takes the request's connection, checked when `check`: one that fails its check is
    dropped and another taken, at most once per connection of the pool."""
    for _ in range(settings.BAKEOFF.db_pool_size + 1):
        if time.monotonic() >= deadline:
            break
        connection.ensure_connection()
        if not check:
            return
        try:
            ConnectionPool.check_connection(connection.connection)
        except psycopg.OperationalError as error:
            logger.info("connection failed its check: %s", error)
            _drop()
            continue
        return
    raise DatabaseUnavailable()


def read(reads: Callable[[], T]) -> T:
    """Runs `reads` (the request's queries) on a connection taken by the contract's rules, once
    more on another connection when its first statement found its connection closed."""
    recycle: DbRecycle = settings.BAKEOFF.db_recycle
    deadline = time.monotonic() + settings.BAKEOFF.db_wait_timeout
    _checkout(check=recycle is DbRecycle.VERIFIED, deadline=deadline)
    first_statement = _FirstStatement()
    try:
        with connection.execute_wrapper(first_statement):
            return reads()
    except DjangoDatabaseError as error:
        if first_statement.finished or not is_connection_lost(error):
            raise
        logger.info("database connection closed under a request; retrying on another")
    _drop()
    _checkout(check=True, deadline=deadline)
    return reads()
