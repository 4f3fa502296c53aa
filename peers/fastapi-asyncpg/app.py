"""fastapi-asyncpg: FastAPI on uvicorn workers, raw SQL through one asyncpg pool per worker
process, a connection checked out per request (the first study's FastAPI + asyncpg).

The routes without a database, the error rendering and the trailing slash come from
`bakeoff_contract.fastapi_shared`; this module is the database part: the pool (lifespan), the
connection dependency and the three contacts routes, running core's SQL.
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
from bakeoff_contract.config import Settings, Variant
from bakeoff_contract.errors import ContactNotFound, DatabaseUnavailable
from bakeoff_contract.fastapi_shared import (
    ContactIdParam,
    PageParam,
    create_contract_app,
    get_and_head,
)
from bakeoff_contract.schemas import Contact, ContactType, Page

logger = logging.getLogger("bakeoff")


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
        reset=keep_session,
    ) as pool:
        app.state.pool = pool
        await open_connections(pool, settings.db_pool_size, settings.db_wait_timeout)
        yield


async def database_connection(request: Request) -> AsyncIterator[asyncpg.Connection]:
    """One pooled connection for the request's statements, checked out within
    DB_WAIT_TIMEOUT_MS, and returned as soon as the route function ends."""
    pool: asyncpg.Pool = request.app.state.pool
    try:
        connection = await pool.acquire(timeout=request.app.state.settings.db_wait_timeout)
    except Exception as error:
        if is_unavailable(error):
            raise DatabaseUnavailable() from error
        raise
    try:
        yield connection
    except Exception as error:
        if is_unavailable(error):
            raise DatabaseUnavailable() from error
        raise
    finally:
        await pool.release(connection)


DbConnection = Annotated[asyncpg.Connection, Depends(database_connection, scope="function")]


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
