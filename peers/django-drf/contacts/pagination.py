"""`GET /contacts`' paging as a DRF pagination class: the contract's `limit`, `offset` and
`starts`, and a count that costs no statement of its own on a page with rows.

DRF's `LimitOffsetPagination` counts with a separate `COUNT(*)` before the page: with the two
`prefetch_related` queries, four statements, one over the contract's budget. Here the total rides
on the page's rows as a scalar subquery (core's statement does the same), and only an empty page
(an offset past the end, a prefix nothing matches) counts on its own.
"""

from __future__ import annotations

from django.db.models import F, Func, IntegerField, QuerySet, Subquery
from django.db.models.functions import Lower
from rest_framework.pagination import BasePagination
from rest_framework.response import Response

from bakeoff_contract.params import PageRequest


def raw_query_string(request) -> bytes:
    """The query string as it arrived (ASGI's bytes), for the contract's own parser: Django's
    `QueryDict` decodes it by other rules."""
    return request.scope["query_string"]


class CountedLimitOffset(BasePagination):
    """`{"count", "results"}`: `count` is every contact the filter matches, ignoring paging."""

    def __init__(self) -> None:
        self.page = PageRequest()
        self.count = 0

    def parse(self, request) -> None:
        """Reads `limit`, `offset` and `starts` by the contract's rules (400 otherwise)."""
        self.page = PageRequest.from_query(raw_query_string(request))

    def paginate_queryset(self, queryset: QuerySet, request, view=None) -> list:
        page = self.page
        if page.starts is not None:
            queryset = queryset.alias(last_name_lower=Lower("last_name")).filter(
                last_name_lower__startswith=page.starts.text.lower()
            )
        # `count(contact_id)` of the same filtered contacts, as a plain function: the `Count`
        # aggregate would make the subquery GROUP BY.
        total = queryset.order_by().annotate(total=Func(F("pk"), function="count")).values("total")
        rows = list(
            queryset.annotate(total_count=Subquery(total, output_field=IntegerField()))[
                page.offset : page.offset + page.limit
            ]
        )
        self.count = rows[0].total_count if rows else queryset.count()
        return rows

    def get_paginated_response(self, data) -> Response:
        return Response({"count": self.count, "results": data})
