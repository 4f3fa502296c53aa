"""What the FastAPI peers share around their database code: the contract's error rendering in
place of FastAPI's defaults, one optional trailing slash without redirects, and the routes that
touch no database (`/version`, `/fibonacci`, the concurrency study's `/test/*`, `/openapi.json`).

The `/test` routes are the second study's cases, in FastAPI's terms: `sync-cpubound` is CPU work
inside an `async def` (it holds the worker's event loop, the mistake the study shows),
`offload-cpubound` hands the same work to Starlette's thread pool, `async-iobound` awaits
`asyncio.sleep`, and `blocking-iobound` calls `time.sleep` inside an `async def` (the same mistake
as inline CPU).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from . import (
    ALLOWED_METHODS,
    JSON_CONTENT_TYPE,
    OPENAPI_BYTES,
    VERSION,
    params,
    resmon,
    serving,
    workload,
)
from .config import Settings, Variant
from .errors import ApiError, Internal, MethodNotAllowed, RouteNotFound
from .params import PageRequest
from .schemas import CpuBody, FibonacciBody, ResourceSnapshot, TimedBody, VersionInfo

logger = logging.getLogger("bakeoff")


def get_and_head(router: APIRouter, path: str, **options):
    """A route answering GET and HEAD (FastAPI's `@get` answers HEAD with 405; the contract
    wants the GET's status and headers). uvicorn sends no body for HEAD."""
    return router.api_route(path, methods=["GET", "HEAD"], **options)


class OneTrailingSlash:
    """Serves `/path/` as `/path`: the contract answers both, with no redirect (FastAPI's
    `redirect_slashes` would send a 307). One slash only: `/path//` is still unknown."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if len(path) > 1 and path.endswith("/"):
                scope = {**scope, "path": path[:-1]}
        await self.app(scope, receive, send)


def error_response(error: ApiError) -> JSONResponse:
    """The contract's body and headers for `error` (with `Allow` on a 405)."""
    headers = error.headers()
    if isinstance(error, MethodNotAllowed):
        headers["Allow"] = ALLOWED_METHODS
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


async def _api_error(request: Request, error: ApiError) -> JSONResponse:
    return error_response(error)


async def _routing_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    # Starlette's router raises 404 for an unknown path and 405 for a known path with another
    # method; nothing else raises HTTPException here.
    if error.status_code == 405:
        return error_response(MethodNotAllowed())
    if error.status_code == 404:
        return error_response(RouteNotFound())
    logger.error("unexpected HTTP exception %s: %s", error.status_code, error.detail)
    return error_response(Internal())


async def _bug(request: Request, error: Exception) -> JSONResponse:
    # Starlette's ServerErrorMiddleware logs the traceback after this answer is sent.
    return error_response(Internal())


def create_contract_app(variant: Variant, settings: Settings, lifespan) -> FastAPI:
    """A FastAPI app with the contract's errors and paths, and the routes without a database.
    `lifespan` is the peer's (its pool); the worker reports ready to gunicorn's master when it
    has started.

    FastAPI's own documents are off: `/openapi.json` is the contract's document, byte for byte.
    """
    workload.warm_up()

    @asynccontextmanager
    async def lifespan_then_ready(app: FastAPI) -> AsyncIterator[None]:
        async with lifespan(app):
            serving.worker_ready()
            yield

    app = FastAPI(
        title=variant.name,
        version=VERSION,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
        lifespan=lifespan_then_ready,
    )
    app.add_middleware(OneTrailingSlash)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _routing_error)
    app.add_exception_handler(Exception, _bug)
    app.include_router(_routes_without_database(variant, settings))
    return app


def _routes_without_database(variant: Variant, settings: Settings) -> APIRouter:
    router = APIRouter()
    route = partial(get_and_head, router)

    @route("/version", response_model=VersionInfo)
    async def version() -> VersionInfo:
        return VersionInfo(version=VERSION, variant=variant.name)

    @route("/fibonacci/{n}", response_model=FibonacciBody)
    async def fibonacci(n: str) -> FibonacciBody:
        # Inline on the event loop, like the Rust async variants: pure Python holds the GIL,
        # so a thread would only add a hop.
        return FibonacciBody(result=workload.fibonacci(params.parse_fibonacci_n(n)))

    @route("/test/calibrate", response_model=TimedBody)
    async def calibrate() -> TimedBody:
        return TimedBody(**workload.calibrate())

    @route("/test/sync-cpubound/{iterations}", response_model=CpuBody)
    async def sync_cpubound(iterations: str) -> CpuBody:
        # On the event loop, on purpose: this worker serves nothing else meanwhile.
        report = workload.run_iterations(params.parse_iterations(iterations))
        return CpuBody(**report.body())

    @route("/test/offload-cpubound/{iterations}", response_model=CpuBody)
    async def offload_cpubound(iterations: str) -> CpuBody:
        count = params.parse_iterations(iterations)
        report = await run_in_threadpool(workload.run_iterations, count)
        return CpuBody(**report.body())

    @route("/test/async-iobound/{millis}", response_model=TimedBody)
    async def async_iobound(millis: str) -> TimedBody:
        wait = params.parse_millis(millis)
        started = time.perf_counter()
        await asyncio.sleep(wait / 1000)
        return TimedBody(**workload.waited_body(wait, time.perf_counter() - started))

    @route("/test/blocking-iobound/{millis}", response_model=TimedBody)
    async def blocking_iobound(millis: str) -> TimedBody:
        wait = params.parse_millis(millis)
        started = time.perf_counter()
        time.sleep(wait / 1000)  # blocks the event loop, on purpose
        return TimedBody(**workload.waited_body(wait, time.perf_counter() - started))

    @route("/test/resmon", response_model=ResourceSnapshot)
    async def test_resmon() -> ResourceSnapshot:
        return ResourceSnapshot(
            **resmon.snapshot(
                variant.name, settings.workers, settings.db_pool_size, settings.db_recycle.value
            )
        )

    @route("/openapi.json")
    async def openapi_document() -> Response:
        return Response(OPENAPI_BYTES, media_type=JSON_CONTENT_TYPE)

    return router


async def _page_request(request: Request) -> PageRequest:
    return PageRequest.from_query(request.scope["query_string"])


async def _contact_id(contact_id: str) -> int:
    return params.parse_contact_id(contact_id)


#: `GET /contacts`'s query, parsed from the raw query string. As dependencies, the parameters are
#: parsed before the database dependency checks a connection out, so a 400 costs no connection.
PageParam = Annotated[PageRequest, Depends(_page_request)]
#: `/contacts/{contact_id}`, parsed from the raw path segment.
ContactIdParam = Annotated[int, Depends(_contact_id)]
