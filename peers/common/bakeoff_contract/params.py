"""Parsing of every path and query parameter of the contract (`core::params`): parse, don't
validate.

Handlers take raw path segments (declared as plain strings, so that no framework converter answers
404 or 422 first) and the raw query string, and get either a valid value or the contract's 400
with core's message, word for word.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from .errors import InvalidInput, invalid

INT4_MAX = 2_147_483_647


def _parse_bounded(text: str, minimum: int, maximum: int) -> int | None:
    """A decimal integer of ASCII digits only (no sign, no spaces) within minimum..=maximum."""
    # str.isdigit alone accepts other scripts' digits and superscripts; core takes ASCII only.
    if not text or not text.isascii() or not text.isdigit():
        return None
    # More than 20 digits overflows core's u64; such inputs are out of range anyway (and spare
    # int() its limit on very long digit strings).
    if len(text) > 20:
        return None
    value = int(text)
    return value if minimum <= value <= maximum else None


def _range_message(minimum: int, maximum: int) -> str:
    return f"must be an integer from {minimum} to {maximum}"


def _bounded(parameter: str, minimum: int, maximum: int):
    def parse(text: str) -> int:
        value = _parse_bounded(text, minimum, maximum)
        if value is None:
            raise invalid(parameter, _range_message(minimum, maximum))
        return value

    parse.__doc__ = f"Parses the raw (percent-decoded) `{parameter}` path segment."
    return parse


#: `/contacts/{contact_id}`: a positive PostgreSQL integer.
parse_contact_id = _bounded("contact_id", 1, INT4_MAX)
#: `/fibonacci/{n}`: small enough that naive recursion ends.
parse_fibonacci_n = _bounded("n", 0, 40)
#: `/test/*-cpubound/{iterations}`: repetitions of the CPU workload.
parse_iterations = _bounded("iterations", 1, 10_000)
#: `/test/*-iobound/{millis}`: how long to wait, up to a minute.
parse_millis = _bounded("millis", 0, 60_000)


@dataclass(frozen=True)
class LastNamePrefix:
    """A validated `starts` filter: 1 to 100 letters, digits and spaces. With no punctuation at
    all, no LIKE wildcard (`%`, `_`, `\\`) can reach the database."""

    text: str

    PARAMETER = "starts"
    MAX_CHARS = 100

    @classmethod
    def parse(cls, text: str) -> LastNamePrefix:
        if not 1 <= len(text) <= cls.MAX_CHARS:
            raise invalid(cls.PARAMETER, f"must be 1 to {cls.MAX_CHARS} characters")
        # core uses Rust's char::is_alphanumeric; str.isalnum agrees on every letter and digit
        # the contract's tests use (it differs on a few combining marks that Unicode counts as
        # Alphabetic, such as Indic vowel signs).
        if not all(char.isalnum() or char == " " for char in text):
            raise invalid(cls.PARAMETER, "may contain only letters, digits and spaces")
        return cls(text)

    def like_pattern(self) -> str:
        """The LIKE pattern matched against `lower(last_name)`: the lower-cased prefix and `%`."""
        return f"{self.text.lower()}%"


def _form_pairs(raw_query: bytes):
    """`application/x-www-form-urlencoded` pairs, decoded as the url crate's form_urlencoded does:
    `+` is a space, percent escapes are decoded (malformed ones kept), UTF-8 decoded lossily."""

    def decode(part: bytes) -> str:
        return unquote_to_bytes(part.replace(b"+", b" ")).decode("utf-8", "replace")

    for piece in raw_query.split(b"&"):
        if not piece:
            continue
        name, _, value = piece.partition(b"=")
        yield decode(name), decode(value)


@dataclass(frozen=True)
class PageRequest:
    """The query of `GET /contacts`: `limit`, `offset` and an optional `starts`."""

    limit: int = 100
    offset: int = 0
    starts: LastNamePrefix | None = None

    DEFAULT_LIMIT = 100
    MAX_LIMIT = 200
    MAX_OFFSET = INT4_MAX

    @classmethod
    def from_query(cls, raw_query: bytes | str | None) -> PageRequest:
        """Parses the raw query string (without `?`), percent-encoded as it arrived.

        Unknown parameters are ignored; a repeated parameter takes its last value; every invalid
        value is reported, not just the first.
        """
        if isinstance(raw_query, str):
            raw_query = raw_query.encode("latin-1", "replace")
        given: dict[str, str] = {}
        for name, value in _form_pairs(raw_query or b""):
            if name in ("limit", "offset", "starts"):
                given[name] = value

        errors: dict[str, str] = {}
        limit, offset, starts = cls.DEFAULT_LIMIT, 0, None
        if "limit" in given:
            limit = _parse_bounded(given["limit"], 1, cls.MAX_LIMIT)
            if limit is None:
                errors["limit"] = _range_message(1, cls.MAX_LIMIT)
        if "offset" in given:
            offset = _parse_bounded(given["offset"], 0, cls.MAX_OFFSET)
            if offset is None:
                errors["offset"] = _range_message(0, cls.MAX_OFFSET)
        if "starts" in given:
            try:
                starts = LastNamePrefix.parse(given["starts"])
            except InvalidInput as error:
                errors.update(error.errors)
        if errors:
            raise InvalidInput(errors)
        return cls(limit=limit, offset=offset, starts=starts)
