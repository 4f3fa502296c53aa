"""The contract's paths. Each pattern takes one optional trailing slash and no redirect (the
contract answers `/types` and `/types/` alike; `APPEND_SLASH` is off), and path segments are
plain strings that the views parse by the contract's rules, so that no converter answers 404
first."""

import re

from django.urls import re_path

from contacts import views


def route(path: str, view):
    """`path`, with `{name}` for one raw segment, answering with or without a trailing slash."""
    # Literal text and `{name}` alternate: re.split keeps the names at the odd places.
    parts = re.split(r"\{(\w+)\}", path.lstrip("/"))
    pattern = "".join(
        f"(?P<{part}>[^/]+)" if index % 2 else re.escape(part) for index, part in enumerate(parts)
    )
    return re_path(f"^{pattern}/?$", view.as_view())


urlpatterns = [
    route("/version", views.VersionView),
    route("/types", views.ContactTypeList),
    route("/contacts", views.ContactList),
    route("/contacts/{contact_id}", views.ContactDetail),
    route("/fibonacci/{n}", views.FibonacciView),
    route("/test/calibrate", views.CalibrateView),
    route("/test/sync-cpubound/{iterations}", views.SyncCpuView),
    route("/test/offload-cpubound/{iterations}", views.OffloadCpuView),
    route("/test/async-iobound/{millis}", views.AsyncWaitView),
    route("/test/blocking-iobound/{millis}", views.BlockingWaitView),
    route("/test/resmon", views.ResmonView),
    route("/openapi.json", views.OpenApiView),
]

handler400 = "contacts.api.bad_request"
handler404 = "contacts.api.no_such_path"
handler500 = "contacts.api.server_error"
