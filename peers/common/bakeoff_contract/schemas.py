"""The contract's JSON as pydantic 2 models, for the FastAPI peers' `response_model`s.

Field order is core's struct order, which is the byte order on the wire. FastAPI serializes a
response model straight to JSON bytes in pydantic's Rust core, whose compact output (floats
included) is serde_json's. `from_attributes` lets the SQLAlchemy peer return ORM objects.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class VersionInfo(Schema):
    version: str
    variant: str


class ContactType(Schema):
    type_id: int
    type_name: str


class Contact(Schema):
    contact_id: int
    first_name: str
    last_name: str
    contact_type: ContactType
    phone_number: list[str]
    email: list[str]


class Page(Schema, Generic[T]):
    """A counted list: `/types` and `/contacts`. `count` ignores paging."""

    count: int
    results: list[T]


class FibonacciBody(Schema):
    result: int


class TimedBody(Schema):
    """`/test/calibrate` and the waits."""

    message: str
    result: float


class CpuBody(Schema):
    """`/test/sync-cpubound` and `/test/offload-cpubound`."""

    message: str
    result: float
    checksum: int


class ResourceSnapshot(Schema):
    variant: str
    pid: int
    threads: int
    rss_bytes: int
    cpu_user_seconds: float
    cpu_system_seconds: float
    uptime_seconds: float
    processes: int
    workers: int
    db_pool_size: int
    #: `fast` or `verified`, as DB_RECYCLE was applied.
    db_recycle: str
