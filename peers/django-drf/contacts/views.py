"""The contract's routes as views: DRF generic views over the models for `/types` and
`/contacts`, DRF `APIView`s for the other synchronous routes, and Django's own async views for
the concurrency study's waits and CPU work (DRF has no async views).

Under ASGI, Django runs a synchronous view in a thread of its own for each request (asgiref's
`ThreadSensitiveContext`), so the DRF views never hold the worker's event loop; the database
views run their queries through `database.read`, which applies the contract's connection rules.
The async views run on the event loop itself: `/test/sync-cpubound` and
`/test/blocking-iobound` hold it on purpose (the mistakes the second study shows),
`/test/offload-cpubound` hands the work to a thread (`sync_to_async`) and
`/test/async-iobound` awaits `asyncio.sleep`.
"""

from __future__ import annotations

import asyncio
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpResponse
from django.views import View
from rest_framework import generics
from rest_framework.response import Response
from rest_framework.views import APIView

from bakeoff_contract import (
    JSON_CONTENT_TYPE,
    OPENAPI_BYTES,
    VERSION,
    model,
    params,
    resmon,
    workload,
)
from bakeoff_contract.errors import ApiError, ContactNotFound, MethodNotAllowed
from contacts import database
from contacts.api import plain_error_response
from contacts.models import Contact, ContactType
from contacts.pagination import CountedLimitOffset
from contacts.serializers import ContactSerializer, ContactTypeSerializer

#: Every path answers GET and HEAD (Django answers HEAD with the GET view); any other method,
#: OPTIONS included, is the contract's 405.
GET_AND_HEAD = ["get", "head"]


class ContactTypeList(generics.ListAPIView):
    """`/types`: every type, counted; one statement."""

    http_method_names = GET_AND_HEAD
    queryset = ContactType.objects.all()
    serializer_class = ContactTypeSerializer

    def list(self, request, *args, **kwargs) -> Response:
        types = database.read(lambda: list(self.get_queryset()))
        results = self.get_serializer(types, many=True).data
        return Response({"count": len(results), "results": results})


#: A contact with its type joined, and its phones and emails in one query each for a whole page
#: (the first study's three queries per page).
CONTACTS = Contact.objects.select_related("contact_type").prefetch_related("phones", "emails")


class ContactList(generics.ListAPIView):
    """`/contacts`: a page of contacts and the count of all that match."""

    http_method_names = GET_AND_HEAD
    queryset = CONTACTS
    serializer_class = ContactSerializer
    pagination_class = CountedLimitOffset

    def list(self, request, *args, **kwargs) -> Response:
        # Parsed before a connection is taken: a 400 costs none.
        self.paginator.parse(request)
        list_page = super().list
        return database.read(lambda: list_page(request, *args, **kwargs))


class ContactDetail(generics.RetrieveAPIView):
    """`/contacts/{contact_id}`: one contact, or the contract's 404."""

    http_method_names = GET_AND_HEAD
    queryset = CONTACTS
    serializer_class = ContactSerializer

    def get_object(self) -> Contact:
        try:
            return self.get_queryset().get(contact_id=self.kwargs["contact_id"])
        except Contact.DoesNotExist:
            raise ContactNotFound() from None

    def retrieve(self, request, *args, **kwargs) -> Response:
        # The raw path segment, parsed by the contract's rules (no URL converter answers first).
        self.kwargs["contact_id"] = params.parse_contact_id(self.kwargs["contact_id"])
        contact = database.read(self.get_object)
        return Response(self.get_serializer(contact).data)


class ContractView(APIView):
    """A synchronous route without a database."""

    http_method_names = GET_AND_HEAD


class VersionView(ContractView):
    def get(self, request) -> Response:
        return Response({"version": VERSION, "variant": settings.BAKEOFF_VARIANT.name})


class FibonacciView(ContractView):
    def get(self, request, n: str) -> Response:
        return Response({"result": workload.fibonacci(params.parse_fibonacci_n(n))})


class CalibrateView(ContractView):
    def get(self, request) -> Response:
        return Response(workload.calibrate())


class ResmonView(ContractView):
    def get(self, request) -> Response:
        service = settings.BAKEOFF
        return Response(
            resmon.snapshot(
                settings.BAKEOFF_VARIANT.name,
                service.workers,
                service.db_pool_size,
                service.db_recycle.value,
            )
        )


class OpenApiView(ContractView):
    def get(self, request) -> HttpResponse:
        return HttpResponse(OPENAPI_BYTES, content_type=JSON_CONTENT_TYPE)


class AsyncContractView(View):
    """An async Django view with the contract's 405 and errors."""

    http_method_names = GET_AND_HEAD

    async def dispatch(self, request, *args, **kwargs) -> HttpResponse:
        try:
            return await super().dispatch(request, *args, **kwargs)
        except ApiError as error:
            return plain_error_response(error)

    def http_method_not_allowed(self, request, *args, **kwargs):
        async def refuse() -> HttpResponse:
            return plain_error_response(MethodNotAllowed())

        return refuse()


def _json(body: dict) -> HttpResponse:
    return HttpResponse(model.to_json_with_floats(body), content_type=JSON_CONTENT_TYPE)


class SyncCpuView(AsyncContractView):
    async def get(self, request, iterations: str) -> HttpResponse:
        # On the event loop, on purpose: this worker serves nothing else meanwhile.
        report = workload.run_iterations(params.parse_iterations(iterations))
        return _json(report.body())


class OffloadCpuView(AsyncContractView):
    async def get(self, request, iterations: str) -> HttpResponse:
        count = params.parse_iterations(iterations)
        report = await sync_to_async(workload.run_iterations, thread_sensitive=False)(count)
        return _json(report.body())


class AsyncWaitView(AsyncContractView):
    async def get(self, request, millis: str) -> HttpResponse:
        wait = params.parse_millis(millis)
        started = time.perf_counter()
        await asyncio.sleep(wait / 1000)
        return _json(workload.waited_body(wait, time.perf_counter() - started))


class BlockingWaitView(AsyncContractView):
    async def get(self, request, millis: str) -> HttpResponse:
        wait = params.parse_millis(millis)
        started = time.perf_counter()
        time.sleep(wait / 1000)  # blocks the event loop, on purpose
        return _json(workload.waited_body(wait, time.perf_counter() - started))
