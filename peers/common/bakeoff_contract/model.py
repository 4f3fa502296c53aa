"""The JSON model for the raw-SQL peers (`core::model`): contacts assembled from the rows of
`sql.py` as plain dicts whose key order is the contract's field order.

The FastAPI peers declare the same shapes as pydantic models (`schemas.py`); the Flask peer
serializes these dicts directly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence


def assemble_contacts(
    rows: Sequence[Sequence], phones: Sequence[Sequence], emails: Sequence[Sequence]
) -> list[dict]:
    """Joins contact rows `(contact_id, first_name, last_name, type_id, type_name, ...)` with
    their phones and emails `(contact_id, value)`.

    All three inputs must be ordered by contact_id, and the details by their own key within a
    contact, as the SQL returns them: the join is then a single merge pass.
    """
    contacts = []
    phone_at = email_at = 0
    for row in rows:
        contact_id = row[0]
        phone_numbers, phone_at = _details_of(contact_id, phones, phone_at)
        addresses, email_at = _details_of(contact_id, emails, email_at)
        contacts.append(
            {
                "contact_id": contact_id,
                "first_name": row[1],
                "last_name": row[2],
                "contact_type": {"type_id": row[3], "type_name": row[4]},
                "phone_number": phone_numbers,
                "email": addresses,
            }
        )
    return contacts


def _details_of(contact_id: int, details: Sequence[Sequence], at: int) -> tuple[list[str], int]:
    # Details of contacts that are not in the page cannot occur, but skipping them keeps the
    # merge correct whatever the input.
    while at < len(details) and details[at][0] < contact_id:
        at += 1
    values = []
    while at < len(details) and details[at][0] == contact_id:
        values.append(details[at][1])
        at += 1
    return values, at


def to_json(value) -> bytes:
    """serde_json's compact bytes for a body without floats: no spaces, non-ASCII as UTF-8, the
    same escapes. The C encoder: this is the hot path of every contacts page."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def to_json_with_floats(value) -> bytes:
    """Like `to_json`, with floats written as serde_json writes them (Rust's shortest round-trip
    form: `0.000015`, `1e-7`, `12.0`, where Python would write `1.5e-05`, `1e-07`, `12.0`)."""
    return _encode(value).encode()


def _encode(value) -> str:
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_encode(str(k))}:{_encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_encode(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def format_float(value: float) -> str:
    """A finite f64 as serde_json (the ryu crate) writes it; non-finite values as `null`."""
    if value != value or value in (float("inf"), float("-inf")):
        return "null"
    if value == 0.0:
        return "-0.0" if str(value).startswith("-") else "0.0"
    sign = "-" if value < 0 else ""
    # repr gives the shortest digits that round-trip, the same digits ryu finds; only the
    # layout differs.
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    exponent_value = int(exponent or 0)
    digits = (whole + fraction).lstrip("0").rstrip("0") or "0"
    if whole.strip("0"):
        point = len(whole.lstrip("0")) + exponent_value
    else:
        point = exponent_value - (len(fraction) - len(fraction.lstrip("0")))
    # value = 0.DIGITS x 10^point; ryu's cases, in its order.
    length = len(digits)
    if 0 <= point - length and point <= 16:
        text = digits + "0" * (point - length) + ".0"
    elif 0 < point <= 16:
        text = digits[:point] + "." + digits[point:]
    elif -5 < point <= 0:
        text = "0." + "0" * (-point) + digits
    elif length == 1:
        text = f"{digits}e{point - 1}"
    else:
        text = f"{digits[0]}.{digits[1:]}e{point - 1}"
    return sign + text
