"""fastapi-sqlalchemy: FastAPI on uvicorn workers, SQLAlchemy 2's async ORM over asyncpg, one
engine (and its pool) per worker process, a session per request (the first study's FastAPI +
ORM).

The routes without a database, the error rendering and the trailing slash come from
`bakeoff_contract.fastapi_shared`; this module is the database part: the engine (lifespan), the
session dependency and the three contacts routes as ORM queries. They stay within the contract's
budget as the Rust ORM variant does: a page is one query (contacts joined with their type, the
total as a scalar subquery) and one `selectinload` query per collection for the whole page.

DB_RECYCLE is the engine's `pool_pre_ping`: on under `verified` (a ping on every checkout; a
connection that fails it is replaced), off under `fast`. Either way a request whose first query
finds its connection closed under it (a PostgreSQL restart, `pg_terminate_backend`) invalidates
it and runs once more on another connection, checked with `SELECT 1` first (`RequestSession`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import aliased, contains_eager, joinedload, selectinload

from bakeoff_contract.config import DbRecycle, Settings, Variant
from bakeoff_contract.errors import ContactNotFound, DatabaseUnavailable
from bakeoff_contract.fastapi_shared import (
    ContactIdParam,
    PageParam,
    create_contract_app,
    get_and_head,
)
from bakeoff_contract.params import PageRequest
from bakeoff_contract.schemas import Contact as ContactSchema
from bakeoff_contract.schemas import ContactType as ContactTypeSchema
from bakeoff_contract.schemas import Page
from models import Contact, ContactType

logger = logging.getLogger("bakeoff")


def is_unavailable(error: BaseException | None) -> bool:
    """Whether an error means the database (or this connection to it) is gone, rather than a
    bug: core's rule (SQLSTATE class 08, 57P, 53; a failed socket; a timeout), through
    SQLAlchemy's wrapping of asyncpg's errors."""
    if error is None:
        return False
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection freed up in time
        return True
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        return is_unavailable(error.orig)
    if isinstance(error, (OSError, asyncio.TimeoutError)):
        return True
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate:
        return sqlstate.startswith(("08", "57P", "53"))
    # SQLAlchemy's adapted DBAPI errors carry asyncpg's as their cause.
    return is_unavailable(error.__cause__)


#: SQLSTATEs of a connection closed under a statement (core's `is_connection_lost`).
_LOST_SQLSTATES = ("57P01", "57P02", "08")


def is_connection_lost(error: BaseException | None) -> bool:
    """Whether a statement failed because its connection was closed under it (SQLAlchemy saw a
    disconnect, or asyncpg's error says so), so that another connection may well work."""
    if error is None:
        return False
    if isinstance(error, sa_exc.DBAPIError):
        return error.connection_invalidated or is_connection_lost(error.orig)
    if isinstance(error, ConnectionError):
        return True
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate:
        return sqlstate.startswith(_LOST_SQLSTATES)
    if "connection is closed" in str(error) or "connection was closed" in str(error):
        return True
    return is_connection_lost(error.__cause__)


#: The key of `Session.info` that says whether the pool checks connections itself (pre-ping).
POOL_CHECKS_CONNECTIONS = "bakeoff_pool_checks_connections"


class RequestSession(AsyncSession):
    """The request's session: its first query, when it finds the connection closed under it,
    invalidates that connection and runs once more on another (checked with `SELECT 1` under
    `fast`; the pool's pre-ping checks it under `verified`). Later queries fail as they fail."""

    _first_query_done = False

    async def _first_query(self, run, *arguments, **options):
        if self._first_query_done:
            return await run(*arguments, **options)
        self._first_query_done = True
        try:
            return await run(*arguments, **options)
        except Exception as error:
            if not is_connection_lost(error):
                raise
            logger.info("database connection closed under a request; retrying on another")
        await self.invalidate()
        await self.checked_connection()
        return await run(*arguments, **options)

    async def checked_connection(self) -> None:
        """A connection for the retry, checked; one that fails the check is invalidated and
        another taken, at most once per connection of the pool."""
        size = self.bind.pool.size() if self.bind is not None else 1
        for _ in range(size + 1):
            connection = await self.connection()
            if self.info.get(POOL_CHECKS_CONNECTIONS):
                return
            try:
                await connection.exec_driver_sql("SELECT 1")
                return
            except Exception as error:
                await self.invalidate()
                if not is_connection_lost(error):
                    raise
        raise DatabaseUnavailable()

    async def execute(self, *arguments, **options):
        return await self._first_query(super().execute, *arguments, **options)

    async def scalar(self, *arguments, **options):
        return await self._first_query(super().scalar, *arguments, **options)

    async def get(self, *arguments, **options):
        return await self._first_query(super().get, *arguments, **options)


def create_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        make_url(settings.database_url).set(drivername="postgresql+asyncpg"),
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=settings.db_wait_timeout,
        # Each statement its own, as in core (the contract's reads need no transaction): without
        # this, every session would add BEGIN and ROLLBACK, two more round trips per request.
        isolation_level="AUTOCOMMIT",
        # DB_RECYCLE=verified: a ping on every checkout (asyncpg's dialect runs `SELECT 1`,
        # as warp-diesel-async does), so a connection a restart broke is replaced, not failed on.
        pool_pre_ping=settings.db_recycle is DbRecycle.VERIFIED,
        connect_args={"timeout": settings.db_wait_timeout},
    )


async def open_connections(engine: AsyncEngine, count: int, timeout: float) -> None:
    """Opens the pool's connections ahead of the first requests. SQLAlchemy initializes its
    dialect on a process's first connection (a few statements) and asyncpg's type codecs on
    each; done here, no request pays for it, or counts its statements. Best effort: with the
    database down, connections open on demand later."""
    try:
        async with asyncio.timeout(timeout), contextlib.AsyncExitStack() as held:
            for _ in range(count):
                await held.enter_async_context(engine.connect())
    except Exception as error:
        logger.info("connections not opened at start: %s", error)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine = create_engine(settings)
    app.state.sessions = async_sessionmaker(
        engine,
        class_=RequestSession,
        expire_on_commit=False,
        info={POOL_CHECKS_CONNECTIONS: settings.db_recycle is DbRecycle.VERIFIED},
    )
    await open_connections(engine, settings.db_pool_size, settings.db_wait_timeout)
    try:
        yield
    finally:
        await engine.dispose()


async def database_session(request: Request) -> AsyncIterator[RequestSession]:
    """A session for the request, its connection checked out within DB_WAIT_TIMEOUT_MS (the
    pool's wait, the connect and the pre-ping together), closed as soon as the route function
    ends."""
    async with request.app.state.sessions() as session:
        try:
            async with asyncio.timeout(request.app.state.settings.db_wait_timeout):
                await session.connection()
            yield session
        except Exception as error:
            if is_unavailable(error):
                raise DatabaseUnavailable() from error
            raise


DbSession = Annotated[RequestSession, Depends(database_session, scope="function")]


def _matching(entity, page: PageRequest) -> list:
    """The `starts` filter on `entity` (Contact, or an alias of it), as core's SQL has it."""
    if page.starts is None:
        return []
    return [func.lower(entity.last_name).like(page.starts.like_pattern())]


def create_app(variant: Variant, settings: Settings) -> FastAPI:
    app = create_contract_app(variant, settings, lifespan)
    app.state.settings = settings
    route = partial(get_and_head, app)

    @route("/types", response_model=Page[ContactTypeSchema])
    async def list_types(session: DbSession) -> dict:
        types = (await session.scalars(select(ContactType).order_by(ContactType.type_id))).all()
        return {"count": len(types), "results": types}

    @route("/contacts", response_model=Page[ContactSchema])
    async def list_contacts(page: PageParam, session: DbSession) -> dict:
        # The total rides on every row as a scalar subquery over an alias (the same table
        # unaliased would be correlated with the outer query).
        counted = aliased(Contact)
        total = (
            select(func.count()).select_from(counted).where(*_matching(counted, page))
        ).scalar_subquery()
        statement = (
            select(Contact, total.label("total_count"))
            .join(Contact.contact_type)
            .options(
                contains_eager(Contact.contact_type),
                selectinload(Contact.phones),
                selectinload(Contact.emails),
            )
            .where(*_matching(Contact, page))
            .order_by(Contact.contact_id)
            .limit(page.limit)
            .offset(page.offset)
        )
        rows = (await session.execute(statement)).all()
        if not rows:
            # The count rides on the page's rows; an empty page needs it alone.
            count = await session.scalar(
                select(func.count()).select_from(Contact).where(*_matching(Contact, page))
            )
            return {"count": count, "results": []}
        return {"count": rows[0].total_count, "results": [row.Contact for row in rows]}

    @route("/contacts/{contact_id}", response_model=ContactSchema)
    async def get_contact(contact_id: ContactIdParam, session: DbSession) -> Contact:
        contact = await session.get(
            Contact,
            contact_id,
            options=[
                joinedload(Contact.contact_type, innerjoin=True),
                selectinload(Contact.phones),
                selectinload(Contact.emails),
            ],
        )
        if contact is None:
            raise ContactNotFound()
        return contact

    return app
