"""fastapi-aiopg: FastAPI on uvicorn workers, raw SQL through one aiopg pool per worker process, a
connection checked out per request (the first study's FastAPI + aiopg). The same module serves
fastapi-aiopg-pypy, whose serve.py registers psycopg2cffi as `psycopg2` before importing it, so
that "PyPy against CPython" compares one application.

The routes without a database, the error rendering and the trailing slash come from
`bakeoff_contract.fastapi_shared`; this module is the database part: the pool (lifespan), the
connection dependency and the three contacts routes, running core's SQL with psycopg2's
placeholders. psycopg2 binds on the client and never prepares, and aiopg's connections are in
autocommit: each statement is its own, as in core.

DB_RECYCLE: aiopg's pool has no checkout hook (its `pool_recycle` closes connections by idle age,
not by a check), so under `verified` the request runs `SELECT 1` on the connection it checked out
(a connection that fails it is closed and another taken); under `fast` nothing runs, and aiopg
hands out any connection it has not seen close (it watches each idle connection's socket, so a
terminated backend is usually noticed before anyone asks for it). Either way a request whose first
statement finds its connection closed under it (a PostgreSQL restart, `pg_terminate_backend`)
drops it and runs that statement once more on another connection, checked with `SELECT 1` first:
nothing has been answered yet, and the contract's requests are reads.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated

import aiopg
import psycopg2
from fastapi import Depends, FastAPI, Request
from uvicorn_worker import UvicornWorker

from bakeoff_contract import model, sql
from bakeoff_contract.config import DbRecycle, Settings, Variant
from bakeoff_contract.errors import ContactNotFound, DatabaseUnavailable
from bakeoff_contract.fastapi_shared import (
    ContactIdParam,
    PageParam,
    create_contract_app,
    get_and_head,
)
from bakeoff_contract.schemas import Contact, ContactType, Page

logger = logging.getLogger("bakeoff")

#: How long one statement may take. aiopg bounds every operation, by default with the pool's
#: `timeout`, which here is DB_WAIT_TIMEOUT_MS for taking a connection; a statement gets up to a
#: minute instead (gunicorn kills a worker silent for 70 s).
STATEMENT_TIMEOUT_SECONDS = 60.0

#: SQLSTATEs of a connection closed under a statement (core's `is_connection_lost`).
_LOST_SQLSTATES = ("57P01", "57P02", "08")


class AsyncioUvicornWorker(UvicornWorker):
    """uvicorn's worker on asyncio's own event loop, never uvloop: under uvloop, a connect that
    fails (PostgreSQL down) leaves its socket's poll handle closed but registered, and every
    later connection whose socket reuses that file descriptor fails with `RuntimeError: unable
    to perform operation on <UVPoll closed=True ...>` (aio-libs/aiopg#909, open), a 500 until
    the worker restarts. The HTTP parser is still uvicorn's choice (httptools where it is
    installed, h11 otherwise)."""

    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "loop": "asyncio"}


def pyformat(statement: str) -> str:
    """core's statement with psycopg2's named placeholders: `$1` becomes `%(1)s` (a parameter
    may appear twice, as `$3` does in the filtered page)."""
    return re.sub(r"\$([0-9]+)", r"%(\1)s", statement)


#: Every statement of core in psycopg2's form, converted once.
STATEMENTS = {statement: pyformat(statement) for statement in sql.ALL}


def is_connection_lost(connection: aiopg.Connection, error: BaseException) -> bool:
    """Whether a statement failed because its connection was closed under it, so that another
    connection may well work."""
    if isinstance(error, psycopg2.Error):
        code = error.pgcode or ""
        # No SQLSTATE on an OperationalError or InterfaceError: the driver itself found the
        # socket closed ("server closed the connection unexpectedly"). psycopg2cffi, under PyPy,
        # raises it without marking the connection closed.
        found_by_driver = not code and isinstance(
            error, (psycopg2.OperationalError, psycopg2.InterfaceError)
        )
        return bool(connection.closed) or code.startswith(_LOST_SQLSTATES) or found_by_driver
    return isinstance(error, ConnectionError)


def is_unavailable(error: BaseException) -> bool:
    """Whether an error means the database (or this connection to it) is gone, rather than a
    bug: core's rule, in psycopg2's classes (OperationalError is SQLSTATE classes 08, 53 and 57
    and a failed connect; InterfaceError a closed connection), a failed socket, a timeout."""
    return isinstance(
        error,
        (OSError, asyncio.TimeoutError, psycopg2.OperationalError, psycopg2.InterfaceError),
    )


async def open_connections(pool: aiopg.Pool, count: int, timeout: float) -> None:
    """Opens the pool's connections ahead of the first requests, so that none pays for a
    connect. Best effort: with the database down, connections open on demand later."""
    opened = await asyncio.gather(
        *(asyncio.wait_for(pool.acquire(), timeout) for _ in range(count)),
        return_exceptions=True,
    )
    for connection in opened:
        if isinstance(connection, BaseException):
            logger.info("connection not opened at start: %s", connection)
        else:
            await pool.release(connection)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    # minsize=0: nothing is opened here, so a worker starts (and answers 503) while the database
    # is down; connections open on demand and are kept (no pool_recycle).
    pool = await aiopg.create_pool(
        settings.database_url,
        minsize=0,
        maxsize=settings.db_pool_size,
        # Bounds taking a connection, a connect included.
        timeout=settings.db_wait_timeout,
        # aiopg's defaults register json, uuid and hstore adapters on every new connection; the
        # hstore one looks its types up with a query, a statement inside whichever request opens
        # the connection. The contract has none of these types.
        enable_json=False,
        enable_uuid=False,
        enable_hstore=False,
    )
    async with pool:
        app.state.pool = pool
        await open_connections(pool, settings.db_pool_size, settings.db_wait_timeout)
        yield


class RequestConnection:
    """The request's pooled connection, as the routes use it (`fetch`, `fetchrow`,
    `fetchval`), running core's statements with positional arguments as asyncpg takes them.

    The first statement that finds the connection closed under it drops that connection and runs
    once more on another, checked first; later statements fail as they fail (503). Checking out,
    the first time and for the retry, is bounded by DB_WAIT_TIMEOUT_MS as a whole."""

    def __init__(self, pool: aiopg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings
        self._deadline = asyncio.get_running_loop().time() + settings.db_wait_timeout
        self._connection: aiopg.Connection | None = None
        self._cursor: aiopg.Cursor | None = None
        self._first_statement_done = False

    async def checkout(self, check: bool) -> None:
        """Takes a connection within the deadline, checked with `SELECT 1` when `check`: one found
        closed (by its check, or already on taking a cursor) is dropped and another taken, at
        most once per connection of the pool."""
        for _ in range(self._settings.db_pool_size + 1):
            remaining = self._deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            connection = await asyncio.wait_for(self._pool.acquire(), remaining)
            try:
                # Inside the check: aiopg watches an idle connection's socket, and may find it
                # closed (a terminated backend's last message) between handing it out and this
                # line, so that even creating a cursor fails with "connection already closed".
                cursor = await connection.cursor(timeout=STATEMENT_TIMEOUT_SECONDS)
                if check:
                    await cursor.execute("SELECT 1", timeout=remaining)
            except Exception as error:
                await self._drop(connection)
                if is_connection_lost(connection, error):
                    continue
                raise
            self._connection, self._cursor = connection, cursor
            return
        raise DatabaseUnavailable()

    async def _drop(self, connection: aiopg.Connection) -> None:
        """Closes a connection found closed, so that the pool opens a new one in its place."""
        await connection.close()
        await self._pool.release(connection)

    async def release(self) -> None:
        if self._connection is not None:
            self._cursor.close()
            await self._pool.release(self._connection)
            self._connection = self._cursor = None

    async def _execute(self, statement: str, arguments: tuple) -> aiopg.Cursor:
        parameters = {str(number): value for number, value in enumerate(arguments, start=1)}
        await self._cursor.execute(STATEMENTS[statement], parameters)
        return self._cursor

    async def _run(self, statement: str, arguments: tuple) -> aiopg.Cursor:
        if self._first_statement_done:
            return await self._execute(statement, arguments)
        self._first_statement_done = True
        try:
            return await self._execute(statement, arguments)
        except Exception as error:
            if not is_connection_lost(self._connection, error):
                raise
            logger.info("database connection closed under a request; retrying on another")
        lost, self._connection, self._cursor = self._connection, None, None
        await self._drop(lost)
        await self.checkout(check=True)
        return await self._execute(statement, arguments)

    async def fetch(self, statement: str, *arguments) -> list[tuple]:
        cursor = await self._run(statement, arguments)
        return await cursor.fetchall()

    async def fetchrow(self, statement: str, *arguments) -> tuple | None:
        cursor = await self._run(statement, arguments)
        return await cursor.fetchone()

    async def fetchval(self, statement: str, *arguments):
        cursor = await self._run(statement, arguments)
        row = await cursor.fetchone()
        return row[0]


async def database_connection(request: Request) -> AsyncIterator[RequestConnection]:
    """One pooled connection for the request's statements, checked out within
    DB_WAIT_TIMEOUT_MS, and returned as soon as the route function ends."""
    settings: Settings = request.app.state.settings
    connection = RequestConnection(request.app.state.pool, settings)
    try:
        await connection.checkout(check=settings.db_recycle is DbRecycle.VERIFIED)
        yield connection
    except Exception as error:
        if is_unavailable(error):
            raise DatabaseUnavailable() from error
        raise
    finally:
        await connection.release()


DbConnection = Annotated[RequestConnection, Depends(database_connection, scope="function")]


def create_app(variant: Variant, settings: Settings) -> FastAPI:
    app = create_contract_app(variant, settings, lifespan)
    app.state.settings = settings
    route = partial(get_and_head, app)

    @route("/types", response_model=Page[ContactType])
    async def list_types(connection: DbConnection) -> dict:
        rows = await connection.fetch(sql.LIST_TYPES)
        results = [{"type_id": type_id, "type_name": type_name} for type_id, type_name in rows]
        return {"count": len(results), "results": results}

    @route("/contacts", response_model=Page[Contact])
    async def list_contacts(page: PageParam, connection: DbConnection) -> dict:
        if page.starts is None:
            rows = await connection.fetch(sql.CONTACTS_PAGE, page.limit, page.offset)
        else:
            pattern = page.starts.like_pattern()
            rows = await connection.fetch(
                sql.CONTACTS_PAGE_STARTS, page.limit, page.offset, pattern
            )
        if not rows:
            # The count rides on the page's rows; an empty page needs it alone.
            if page.starts is None:
                count = await connection.fetchval(sql.COUNT_CONTACTS)
            else:
                count = await connection.fetchval(sql.COUNT_CONTACTS_STARTS, pattern)
            return {"count": count, "results": []}
        ids = [row[0] for row in rows]
        phones = await connection.fetch(sql.PHONES_OF_CONTACTS, ids)
        emails = await connection.fetch(sql.EMAILS_OF_CONTACTS, ids)
        return {"count": rows[0][5], "results": model.assemble_contacts(rows, phones, emails)}

    @route("/contacts/{contact_id}", response_model=Contact)
    async def get_contact(contact_id: ContactIdParam, connection: DbConnection) -> dict:
        row = await connection.fetchrow(sql.CONTACT_BY_ID, contact_id)
        if row is None:
            raise ContactNotFound()
        phones = await connection.fetch(sql.PHONES_OF_CONTACTS, [contact_id])
        emails = await connection.fetch(sql.EMAILS_OF_CONTACTS, [contact_id])
        return model.assemble_contacts([row], phones, emails)[0]

    return app
