"""fastapi-asyncpg: FastAPI on uvicorn workers, raw SQL through one asyncpg pool per worker
process, a connection checked out per request (the first study's FastAPI + asyncpg).

The routes without a database, the error rendering and the trailing slash come from
`bakeoff_contract.fastapi_shared`; this module is the database part: the pool (lifespan), the
connection dependency and the three contacts routes, running core's SQL.

DB_RECYCLE is the pool's `setup`: under `verified` every checkout runs `SELECT 1` first (a
connection that fails it is closed and another one taken); under `fast` nothing runs, and asyncpg
hands out any connection it has not seen close. Either way a request whose first statement finds
its connection closed under it (a PostgreSQL restart, `pg_terminate_backend`) drops it and runs
that statement once more on another connection, checked with `SELECT 1` first: nothing has been
answered yet, and the contract's requests are reads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated

import asyncpg
from fastapi import Depends, FastAPI, Request

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


#: SQLSTATEs of a connection closed under a statement (core's `is_connection_lost`): the backend
#: terminated (admin or crash shutdown), or class 08 (asyncpg's own "connection was closed in the
#: middle of operation" is 08003).
_LOST_SQLSTATES = ("57P01", "57P02", "08")


def is_connection_lost(error: BaseException) -> bool:
    """Whether a statement failed because its connection was closed under it, so that another
    connection may well work."""
    if isinstance(error, asyncpg.PostgresError):
        return (error.sqlstate or "").startswith(_LOST_SQLSTATES)
    if isinstance(error, asyncpg.InterfaceError):
        return "closed" in str(error)
    if isinstance(error, asyncpg.exceptions.InternalClientError):
        # An idle connection whose backend was terminated: PostgreSQL's FATAL arrived with no
        # query running, and asyncpg is still consuming it when the next query comes.
        return "another operation" in str(error)
    return isinstance(error, ConnectionError)


def is_unavailable(error: BaseException) -> bool:
    """Whether an error means the database (or this connection to it) is gone, rather than a
    bug: core's rule (SQLSTATE class 08, 57P, 53; a failed socket; a timeout)."""
    if isinstance(error, (OSError, asyncio.TimeoutError)):
        return True
    if isinstance(error, asyncpg.PostgresError):
        return (error.sqlstate or "").startswith(("08", "57P", "53"))
    # Raised for a connection asyncpg already saw close.
    return isinstance(error, asyncpg.InterfaceError) and "closed" in str(error)


async def keep_session(connection: asyncpg.Connection) -> None:
    """The pool's reset on release. asyncpg's default runs `SELECT pg_advisory_unlock_all()`
    (and RESET ALL...) on every release: a statement per request beyond the contract's budget.
    These routes set no session state, and asyncpg still rolls back any open transaction."""


async def prepare_statements(connection: asyncpg.Connection) -> None:
    """The pool's `init`, run once on each new connection: prepares every statement, as
    axum-tokio-postgres does. asyncpg looks a parameter's array type (`int4[]`) up in the
    catalog with a few queries on a connection's first use of it; this way they run when the
    connection opens, not inside the first request's statement budget."""
    for statement in sql.ALL:
        await connection.prepare(statement)


async def open_connections(pool: asyncpg.Pool, count: int, timeout: float) -> None:
    """Opens the pool's connections ahead of the first requests, so that none pays for a
    connect (or counts `prepare_statements`' catalog queries). Best effort: with the database
    down, connections open on demand later."""
    opened = await asyncio.gather(
        *(pool.acquire(timeout=timeout) for _ in range(count)), return_exceptions=True
    )
    for connection in opened:
        if isinstance(connection, BaseException):
            logger.info("connection not opened at start: %s", connection)
        else:
            await pool.release(connection)


async def check_connection(connection: asyncpg.Connection) -> None:
    """The pool's `setup` under DB_RECYCLE=verified, run on every checkout: one round trip that
    fails on a connection PostgreSQL has closed (`SELECT 1` is not counted as a statement)."""
    await connection.execute("SELECT 1")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    # min_size=0: nothing is opened here, so a worker starts (and answers 503) while the
    # database is down; connections open on demand and are kept (no idle lifetime).
    async with asyncpg.create_pool(
        settings.database_url,
        min_size=0,
        max_size=settings.db_pool_size,
        max_inactive_connection_lifetime=0,
        timeout=settings.db_wait_timeout,
        init=prepare_statements,
        setup=check_connection if settings.db_recycle is DbRecycle.VERIFIED else None,
        reset=keep_session,
    ) as pool:
        app.state.pool = pool
        await open_connections(pool, settings.db_pool_size, settings.db_wait_timeout)
        yield


class RequestConnection:
    """The request's pooled connection, as the routes use it (`fetch`, `fetchrow`, `fetchval`).

    The first statement that finds the connection closed under it drops that connection and runs
    once more on another, checked first; later statements fail as they fail (503). Checking out,
    the first time and for the retry, is bounded by DB_WAIT_TIMEOUT_MS as a whole."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings
        self._deadline = asyncio.get_running_loop().time() + settings.db_wait_timeout
        self._connection: asyncpg.Connection | None = None
        self._first_statement_done = False

    async def checkout(self, check_here: bool = False) -> None:
        """Takes a connection within the deadline. Under `verified` the pool's setup has checked
        it; with `check_here` (a retry under `fast`) it is checked here. One that fails its
        check is closed and another taken, at most once per connection of the pool."""
        for _ in range(self._settings.db_pool_size + 1):
            remaining = self._deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                connection = await self._pool.acquire(timeout=remaining)
            except Exception as error:
                # Only a failed setup check reports a lost connection here (asyncpg has closed
                # it); a failed connect is the database being unavailable.
                if is_connection_lost(error) and not isinstance(error, ConnectionError):
                    continue
                raise
            if check_here:
                try:
                    await connection.execute("SELECT 1", timeout=remaining)
                except Exception as error:
                    await self._drop(connection)
                    if is_connection_lost(error):
                        continue
                    raise
            self._connection = connection
            return
        raise DatabaseUnavailable()

    async def _drop(self, connection: asyncpg.Connection) -> None:
        """Closes a connection found closed, so that the pool opens a new one in its place."""
        try:
            connection.terminate()
        except asyncpg.InterfaceError:
            pass  # asyncpg saw it close and has taken it back already
        await self._pool.release(connection)

    async def release(self) -> None:
        if self._connection is not None:
            await self._pool.release(self._connection)
            self._connection = None

    async def _run(self, method: str, statement: str, arguments: tuple):
        if self._first_statement_done:
            return await getattr(self._connection, method)(statement, *arguments)
        self._first_statement_done = True
        try:
            return await getattr(self._connection, method)(statement, *arguments)
        except Exception as error:
            if not is_connection_lost(error):
                raise
            logger.info("database connection closed under a request; retrying on another")
        lost, self._connection = self._connection, None
        await self._drop(lost)
        await self.checkout(check_here=self._settings.db_recycle is DbRecycle.FAST)
        return await getattr(self._connection, method)(statement, *arguments)

    async def fetch(self, statement: str, *arguments) -> list[asyncpg.Record]:
        return await self._run("fetch", statement, arguments)

    async def fetchrow(self, statement: str, *arguments) -> asyncpg.Record | None:
        return await self._run("fetchrow", statement, arguments)

    async def fetchval(self, statement: str, *arguments):
        return await self._run("fetchval", statement, arguments)


async def database_connection(request: Request) -> AsyncIterator[RequestConnection]:
    """One pooled connection for the request's statements, checked out within
    DB_WAIT_TIMEOUT_MS, and returned as soon as the route function ends."""
    connection = RequestConnection(request.app.state.pool, request.app.state.settings)
    try:
        await connection.checkout()
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
        return {"count": len(rows), "results": [dict(row) for row in rows]}

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
        ids = [row["contact_id"] for row in rows]
        phones = await connection.fetch(sql.PHONES_OF_CONTACTS, ids)
        emails = await connection.fetch(sql.EMAILS_OF_CONTACTS, ids)
        return {
            "count": rows[0]["total_count"],
            "results": model.assemble_contacts(rows, phones, emails),
        }

    @route("/contacts/{contact_id}", response_model=Contact)
    async def get_contact(contact_id: ContactIdParam, connection: DbConnection) -> dict:
        row = await connection.fetchrow(sql.CONTACT_BY_ID, contact_id)
        if row is None:
            raise ContactNotFound()
        phones = await connection.fetch(sql.PHONES_OF_CONTACTS, [contact_id])
        emails = await connection.fetch(sql.EMAILS_OF_CONTACTS, [contact_id])
        return model.assemble_contacts([row], phones, emails)[0]

    return app
