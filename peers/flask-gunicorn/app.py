"""flask-gunicorn: Flask under gunicorn's sync workers, raw SQL through psycopg 3 and a
psycopg_pool pool per worker process (the first study's threaded control case: Flask or Django
under gunicorn).

A sync worker is one process serving one request at a time: whatever a request does, computing,
sleeping or waiting on PostgreSQL, it holds its worker, so concurrency is exactly WORKERS. There
is no event loop, so `/test/offload-cpubound` runs inline like `/test/sync-cpubound`, and
`/test/async-iobound` sleeps like `/test/blocking-iobound` (as threaded-blocking does).

DB_RECYCLE=verified is psycopg_pool's `ConnectionPool.check_connection` (an empty query) on every
checkout, a connection that fails it dropped and another taken; `fast` runs nothing. Either way a
request whose first statement finds its connection closed under it (a PostgreSQL restart,
`pg_terminate_backend`) drops it and runs that statement once more on another connection, checked
first (`RequestConnection`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from flask import Blueprint, Flask, Response, current_app, request
from psycopg_pool import ConnectionPool, PoolTimeout
from werkzeug.exceptions import HTTPException

from bakeoff_contract import (
    ALLOWED_METHODS,
    JSON_CONTENT_TYPE,
    OPENAPI_BYTES,
    VERSION,
    model,
    params,
    resmon,
    sql,
    workload,
)
from bakeoff_contract.config import DbRecycle, Settings, Variant
from bakeoff_contract.errors import (
    ApiError,
    ContactNotFound,
    DatabaseUnavailable,
    Internal,
    MethodNotAllowed,
    RouteNotFound,
)
from bakeoff_contract.params import PageRequest

logger = logging.getLogger("bakeoff")

contract = Blueprint("contract", __name__)


def route(rule: str):
    """A GET route. Flask answers HEAD for it (the GET's status and headers, no body); its
    automatic OPTIONS is off, so every other method is the contract's 405."""
    return contract.get(rule, provide_automatic_options=False)


def json_response(body: bytes, status: int = 200, headers: dict | None = None) -> Response:
    # Not flask.jsonify: its provider sorts keys by default and ends the body with a newline.
    return Response(body, status=status, headers=headers, mimetype=JSON_CONTENT_TYPE)


def error_response(error: ApiError) -> Response:
    headers = error.headers()
    if isinstance(error, MethodNotAllowed):
        headers["Allow"] = ALLOWED_METHODS
    return json_response(error.to_json(), error.status, headers)


class OneTrailingSlash:
    """WSGI middleware serving `/path/` as `/path`: the contract answers both with no redirect
    (werkzeug would 404 one form or redirect to the other). One slash only."""

    def __init__(self, wsgi_app) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if len(path) > 1 and path.endswith("/"):
            environ["PATH_INFO"] = path[:-1]
        return self.wsgi_app(environ, start_response)


def create_pool(variant: Variant, settings: Settings) -> ConnectionPool:
    """The worker's pool, not opened: gunicorn forks workers from the preloaded app, and each
    opens its own (`open_pool`, from gunicorn's post_worker_init hook)."""
    return ConnectionPool(
        settings.database_url,
        min_size=settings.db_pool_size,
        max_size=settings.db_pool_size,
        open=False,
        timeout=settings.db_wait_timeout,
        # Autocommit: each statement is its own, as in core; RawCursor: core's `$n` SQL as is.
        kwargs={
            "autocommit": True,
            "cursor_factory": psycopg.RawCursor,
            "connect_timeout": max(2, math.ceil(settings.db_wait_timeout)),
        },
        # No `check` here: under DB_RECYCLE=verified, `RequestConnection.checkout` runs the
        # same `ConnectionPool.check_connection` itself. The pool's own check loop sleeps its
        # reconnect backoff (a second, then more) after every connection that fails the check,
        # so after a restart a request would wait past DB_WAIT_TIMEOUT_MS for the next one.
        # psycopg_pool retries a failed connection with a backoff of up to minutes; giving up
        # after the wait timeout instead lets the next request try again at once, so service
        # comes back within a second or two of PostgreSQL.
        reconnect_timeout=settings.db_wait_timeout,
        name=variant.name,
    )


def open_pool(app: Flask) -> None:
    """Opens the worker's connections in the background (a database that is down delays
    nothing: requests wait for a connection up to DB_WAIT_TIMEOUT_MS, then get 503)."""
    app.extensions["bakeoff_pool"].open(wait=False)


def close_pool(app: Flask) -> None:
    app.extensions["bakeoff_pool"].close(timeout=1)


#: SQLSTATEs of a connection closed under a statement (core's `is_connection_lost`).
_LOST_SQLSTATES = ("57P01", "57P02", "08")


def is_connection_lost(connection: psycopg.Connection, error: Exception) -> bool:
    """Whether a statement failed because its connection was closed under it, so that another
    connection may well work."""
    if not isinstance(error, psycopg.OperationalError):
        return False
    return connection.broken or (error.sqlstate or "").startswith(_LOST_SQLSTATES)


class RequestConnection:
    """The request's pooled connection, as the routes use it (`execute`). Its first statement,
    when it finds the connection closed under it, drops that connection and runs once more on
    another, checked first; later statements fail as they fail (503). Checking out, the first
    time and for the retry, is bounded by DB_WAIT_TIMEOUT_MS as a whole."""

    def __init__(self, pool: ConnectionPool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings
        self._deadline = time.monotonic() + settings.db_wait_timeout
        self._connection: psycopg.Connection | None = None
        self._first_statement_done = False

    def checkout(self, check_here: bool = False) -> None:
        """Takes a connection within the deadline, checked with an empty query under `verified`
        or with `check_here` (a retry): one that fails is dropped and another taken, at most
        once per connection of the pool (empty queries are not statements to
        pg_stat_statements)."""
        check_here = check_here or self._settings.db_recycle is DbRecycle.VERIFIED
        for _ in range(self._settings.db_pool_size + 1):
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                break
            connection = self._pool.getconn(timeout=remaining)
            if not check_here:
                self._connection = connection
                return
            try:
                ConnectionPool.check_connection(connection)
            except psycopg.OperationalError as error:
                # A broken connection given back is discarded by the pool.
                self._pool.putconn(connection)
                if is_connection_lost(connection, error):
                    continue
                raise
            self._connection = connection
            return
        raise DatabaseUnavailable()

    def release(self) -> None:
        if self._connection is not None:
            self._pool.putconn(self._connection)
            self._connection = None

    def execute(self, statement: str, parameters: tuple | None = None) -> psycopg.Cursor:
        if self._first_statement_done:
            return self._connection.execute(statement, parameters)
        self._first_statement_done = True
        try:
            return self._connection.execute(statement, parameters)
        except psycopg.OperationalError as error:
            if not is_connection_lost(self._connection, error):
                raise
            logger.info("database connection closed under a request; retrying on another")
        lost, self._connection = self._connection, None
        if not lost.broken:
            lost.close()  # a terminated backend the socket has not shown yet: drop it anyway
        self._pool.putconn(lost)
        self.checkout(check_here=True)
        return self._connection.execute(statement, parameters)


@contextmanager
def database() -> Iterator[RequestConnection]:
    """A pooled connection for the request's statements, checked out within
    DB_WAIT_TIMEOUT_MS; connection failures become the contract's 503."""
    settings: Settings = current_app.config["BAKEOFF_SETTINGS"]
    connection = RequestConnection(current_app.extensions["bakeoff_pool"], settings)
    try:
        connection.checkout()
        yield connection
    # OperationalError is psycopg's class for lost connections and SQLSTATE classes 08, 53 and
    # 57 (shutdown, cannot connect now).
    except (PoolTimeout, psycopg.OperationalError) as error:
        logger.warning("database unavailable: %s", error)
        raise DatabaseUnavailable() from error
    finally:
        connection.release()


@route("/version")
def version() -> Response:
    variant: Variant = current_app.config["BAKEOFF_VARIANT"]
    return json_response(model.to_json({"version": VERSION, "variant": variant.name}))


@route("/types")
def list_types() -> Response:
    with database() as connection:
        rows = connection.execute(sql.LIST_TYPES).fetchall()
    results = [{"type_id": type_id, "type_name": type_name} for type_id, type_name in rows]
    return json_response(model.to_json({"count": len(results), "results": results}))


@route("/contacts")
def list_contacts() -> Response:
    page = PageRequest.from_query(request.query_string)
    with database() as connection:
        if page.starts is None:
            rows = connection.execute(sql.CONTACTS_PAGE, (page.limit, page.offset)).fetchall()
        else:
            pattern = page.starts.like_pattern()
            rows = connection.execute(
                sql.CONTACTS_PAGE_STARTS, (page.limit, page.offset, pattern)
            ).fetchall()
        if not rows:
            # The count rides on the page's rows; an empty page needs it alone.
            if page.starts is None:
                (count,) = connection.execute(sql.COUNT_CONTACTS).fetchone()
            else:
                (count,) = connection.execute(sql.COUNT_CONTACTS_STARTS, (pattern,)).fetchone()
            return json_response(model.to_json({"count": count, "results": []}))
        ids = [row[0] for row in rows]
        phones = connection.execute(sql.PHONES_OF_CONTACTS, (ids,)).fetchall()
        emails = connection.execute(sql.EMAILS_OF_CONTACTS, (ids,)).fetchall()
    body = {"count": rows[0][5], "results": model.assemble_contacts(rows, phones, emails)}
    return json_response(model.to_json(body))


@route("/contacts/<contact_id>")
def get_contact(contact_id: str) -> Response:
    contact_id = params.parse_contact_id(contact_id)
    with database() as connection:
        row = connection.execute(sql.CONTACT_BY_ID, (contact_id,)).fetchone()
        if row is None:
            raise ContactNotFound()
        phones = connection.execute(sql.PHONES_OF_CONTACTS, ([contact_id],)).fetchall()
        emails = connection.execute(sql.EMAILS_OF_CONTACTS, ([contact_id],)).fetchall()
    return json_response(model.to_json(model.assemble_contacts([row], phones, emails)[0]))


@route("/fibonacci/<n>")
def fibonacci(n: str) -> Response:
    result = workload.fibonacci(params.parse_fibonacci_n(n))
    return json_response(model.to_json({"result": result}))


@route("/test/calibrate")
def calibrate() -> Response:
    return json_response(model.to_json_with_floats(workload.calibrate()))


@route("/test/sync-cpubound/<iterations>")
def sync_cpubound(iterations: str) -> Response:
    report = workload.run_iterations(params.parse_iterations(iterations))
    return json_response(model.to_json_with_floats(report.body()))


@route("/test/offload-cpubound/<iterations>")
def offload_cpubound(iterations: str) -> Response:
    # Inline too: a sync worker has nothing better to offload to, and a thread would still hold
    # this worker until it finished.
    return sync_cpubound(iterations)


def _sleep(millis: str) -> Response:
    wait = params.parse_millis(millis)
    started = time.perf_counter()
    time.sleep(wait / 1000)
    return json_response(
        model.to_json_with_floats(workload.waited_body(wait, time.perf_counter() - started))
    )


@route("/test/async-iobound/<millis>")
def async_iobound(millis: str) -> Response:
    # No event loop to wait on: the worker sleeps, as in /test/blocking-iobound.
    return _sleep(millis)


@route("/test/blocking-iobound/<millis>")
def blocking_iobound(millis: str) -> Response:
    return _sleep(millis)


@route("/test/resmon")
def test_resmon() -> Response:
    variant: Variant = current_app.config["BAKEOFF_VARIANT"]
    settings: Settings = current_app.config["BAKEOFF_SETTINGS"]
    snapshot = resmon.snapshot(
        variant.name, settings.workers, settings.db_pool_size, settings.db_recycle.value
    )
    return json_response(model.to_json_with_floats(snapshot))


@route("/openapi.json")
def openapi_document() -> Response:
    return json_response(OPENAPI_BYTES)


@contract.app_errorhandler(ApiError)
def api_error(error: ApiError) -> Response:
    return error_response(error)


@contract.app_errorhandler(404)
def no_such_path(error: HTTPException) -> Response:
    return error_response(RouteNotFound())


@contract.app_errorhandler(405)
def method_not_allowed(error: HTTPException) -> Response:
    return error_response(MethodNotAllowed())


@contract.app_errorhandler(Exception)
def bug(error: Exception) -> Response:
    if isinstance(error, HTTPException):
        # werkzeug's other refusals (a malformed request, say): its status, the contract's form.
        message = (error.name or "error").lower()
        return error_response(ApiError({"request": message}, status=error.code or 500))
    logger.exception("unhandled error in %s %s", request.method, request.path)
    return error_response(Internal())


def create_app(variant: Variant, settings: Settings) -> Flask:
    app = Flask(__name__)
    # `/contacts//1` is an unknown path, not a redirect to `/contacts/1`.
    app.url_map.merge_slashes = False
    app.config["BAKEOFF_VARIANT"] = variant
    app.config["BAKEOFF_SETTINGS"] = settings
    app.extensions["bakeoff_pool"] = create_pool(variant, settings)
    app.register_blueprint(contract)
    app.wsgi_app = OneTrailingSlash(app.wsgi_app)
    workload.warm_up()
    return app
