"""DRF's extension points set to the contract (`REST_FRAMEWORK` in the settings): the JSON
renderer, content negotiation and the exception handler, and the plain Django views for paths
no DRF view answers (404, 500).
"""

from __future__ import annotations

import logging

from django.db import Error as DjangoDatabaseError
from django.http import HttpResponse
from rest_framework import exceptions
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from bakeoff_contract import ALLOWED_METHODS, JSON_CONTENT_TYPE, model
from bakeoff_contract.errors import (
    ApiError,
    DatabaseUnavailable,
    Internal,
    MethodNotAllowed,
    RouteNotFound,
)
from contacts import database

logger = logging.getLogger("bakeoff")


class ContractJSONRenderer(JSONRenderer):
    """serde_json's compact bytes, as every variant sends them. DRF's own renderer is compact
    too, but writes floats as Python does (`1.5e-05` for serde's `0.000015`) and escapes
    U+2028 and U+2029, which serde_json does not."""

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        # Only the flat bodies of the /test endpoints carry floats; the contacts are encoded by
        # the C encoder.
        if isinstance(data, dict) and any(type(value) is float for value in data.values()):
            return model.to_json_with_floats(data)
        return model.to_json(data)


class IgnoreAccept(BaseContentNegotiation):
    """Every answer is JSON, whatever `Accept` says (DRF would answer 406 to `Accept:
    text/html`); the example of DRF's documentation on custom negotiation."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return (renderers[0], renderers[0].media_type)


def error_response(error: ApiError) -> Response:
    """The contract's body and headers for `error` (with `Allow` on a 405)."""
    headers = error.headers()
    if isinstance(error, MethodNotAllowed):
        headers["Allow"] = ALLOWED_METHODS
    return Response(error.body(), status=error.status, headers=headers)


def contract_exception_handler(error: Exception, context: dict) -> Response:
    """DRF's `EXCEPTION_HANDLER`: every failure as the contract's error body."""
    if isinstance(error, ApiError):
        return error_response(error)
    if isinstance(error, exceptions.MethodNotAllowed):
        return error_response(MethodNotAllowed())
    if isinstance(error, DjangoDatabaseError) and database.is_unavailable(error):
        logger.warning("database unavailable: %s", error)
        return error_response(DatabaseUnavailable())
    if isinstance(error, exceptions.APIException):
        # DRF's other refusals (none is reachable with GET only): its status, the contract's
        # form.
        return error_response(ApiError({"request": str(error.detail).lower()}, error.status_code))
    logger.exception("unhandled error", exc_info=error)
    return error_response(Internal())


def plain_error_response(error: ApiError) -> HttpResponse:
    """The contract's error outside DRF (Django's handlers, the async views), with the same
    bytes and headers as `error_response`."""
    response = HttpResponse(error.to_json(), status=error.status, content_type=JSON_CONTENT_TYPE)
    for name, value in error.headers().items():
        response[name] = value
    if isinstance(error, MethodNotAllowed):
        response["Allow"] = ALLOWED_METHODS
    return response


def no_such_path(request, exception=None) -> HttpResponse:
    """Django's `handler404`: no URL pattern matches."""
    return plain_error_response(RouteNotFound())


def bad_request(request, exception=None) -> HttpResponse:
    """Django's `handler400` (a request Django refuses before any view, such as a malformed
    Host)."""
    return plain_error_response(ApiError({"request": "bad request"}, status=400))


def server_error(request) -> HttpResponse:
    """Django's `handler500`: a bug outside a DRF view; the detail went to the log."""
    return plain_error_response(Internal())
