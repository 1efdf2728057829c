"""``BeneficiaryCreateRequest``: an individual or a business, its address, its fingerprint."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..problems import ApiProblem
from .common import Collector, norm, reject_unknown, require_object

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+[1-9]\d{6,14}$")

_BENEFICIARY_FIELDS = frozenset(
    {"type", "country", "external_ref", "metadata", "individual", "business", "end_user_ip"}
)
_INDIVIDUAL_FIELDS = frozenset(
    {
        "first_name",
        "middle_name",
        "last_name",
        "email",
        "phone",
        "date_of_birth",
        "nationality",
        "tax_id",
        "address",
    }
)
_BUSINESS_FIELDS = frozenset(
    {
        "legal_name",
        "trading_name",
        "registration_number",
        "tax_id",
        "entity_type",
        "incorporation_country",
        "incorporation_date",
        "email",
        "phone",
        "website",
        "address",
    }
)
_ADDRESS_FIELDS = frozenset(
    {"street_line_1", "street_line_2", "city", "state", "postal_code", "country"}
)
_STATE_REQUIRED = frozenset({"US", "CA", "AU"})
_ENTITY_TYPES = ("llc", "corporation", "partnership", "sole_proprietorship", "trust", "other")


@dataclass(frozen=True, slots=True)
class BeneficiaryInput:
    """A validated beneficiary create request."""

    type: str
    country: str
    display_name: str
    external_ref: str | None
    metadata: dict[str, str] | None
    details: dict[str, Any]
    fingerprint: str


def _address(c: Collector, value: Any, path: str) -> None:
    if value is None:
        c.add(path.rstrip("."), "is required")
        return
    if not isinstance(value, dict):
        c.add(path.rstrip("."), "must be an object")
        return
    for key in ("street_line_1", "city", "postal_code"):
        c.string(value, key, path, required=True, max_len=255)
    c.string(value, "street_line_2", path, required=False, max_len=255)
    country = c.country(value, "country", path, required=True)
    state = c.string(value, "state", path, required=False, max_len=255)
    if country in _STATE_REQUIRED and not state:
        c.add(f"{path}state", f"is required for an address in {country}")


def validate_beneficiary(raw: Any) -> BeneficiaryInput:
    """Validate a ``BeneficiaryCreateRequest``; raise ApiProblem on any problem."""
    body = require_object(raw)
    reject_unknown(body, _BENEFICIARY_FIELDS, "")
    reject_unknown(body.get("individual"), _INDIVIDUAL_FIELDS, "individual.")
    reject_unknown(body.get("business"), _BUSINESS_FIELDS, "business.")
    for block in ("individual", "business"):
        inner = body.get(block)
        if isinstance(inner, dict):
            reject_unknown(inner.get("address"), _ADDRESS_FIELDS, f"{block}.address.")

    c = Collector()
    btype = c.enum(body, "type", "", ("individual", "business"), required=True)
    country = c.country(body, "country", "", required=True)
    external_ref = c.string(body, "external_ref", "", required=False, max_len=255)
    metadata = c.string_map(body, "metadata", "")
    c.string(body, "end_user_ip", "", required=False)

    present = {b for b in ("individual", "business") if body.get(b) is not None}
    for block in sorted(present):
        if not isinstance(body[block], dict):
            c.add(block, "must be an object")
    if btype is not None and len(present) == 2:
        other = "business" if btype == "individual" else "individual"
        c.add(other, f"must not be set when type is {btype}")

    details: dict[str, Any] = {}
    display_name = ""
    fingerprint_parts: list[str] = []
    block_value = body.get(btype) if btype else None
    if btype == "individual" and isinstance(block_value, dict):
        ind = block_value
        first = c.string(ind, "first_name", "individual.", required=True, max_len=100)
        middle = c.string(ind, "middle_name", "individual.", required=False, max_len=100)
        last = c.string(ind, "last_name", "individual.", required=True, max_len=100)
        email = c.pattern(
            ind, "email", "individual.", _EMAIL, "must be a valid email address", required=True
        )
        c.pattern(
            ind,
            "phone",
            "individual.",
            _PHONE,
            "must be an E.164 phone number (+ and 7 to 15 digits)",
            required=True,
        )
        dob = c.date(ind, "date_of_birth", "individual.", required=True)
        c.country(ind, "nationality", "individual.", required=True)
        c.string(ind, "tax_id", "individual.", required=False, max_len=64)
        _address(c, ind.get("address"), "individual.address.")
        display_name = " ".join(p.strip() for p in (first, middle, last) if p)
        fingerprint_parts = [norm(first), norm(middle), norm(last), norm(email), dob or ""]
        details = dict(ind)
    elif btype == "business" and isinstance(block_value, dict):
        bus = block_value
        legal = c.string(bus, "legal_name", "business.", required=True, max_len=255)
        c.string(bus, "trading_name", "business.", required=False, max_len=255)
        reg = c.string(bus, "registration_number", "business.", required=True, max_len=64)
        c.string(bus, "tax_id", "business.", required=False, max_len=64)
        c.enum(bus, "entity_type", "business.", _ENTITY_TYPES, required=False)
        c.country(bus, "incorporation_country", "business.", required=False)
        c.date(bus, "incorporation_date", "business.", required=False)
        email = c.pattern(
            bus, "email", "business.", _EMAIL, "must be a valid email address", required=True
        )
        c.pattern(
            bus,
            "phone",
            "business.",
            _PHONE,
            "must be an E.164 phone number (+ and 7 to 15 digits)",
            required=True,
        )
        website = c.string(bus, "website", "business.", required=False, max_len=2048)
        if website is not None and urlsplit(website).scheme not in ("http", "https"):
            c.add("business.website", "must be an http(s) URL")
        _address(c, bus.get("address"), "business.address.")
        display_name = (legal or "").strip()
        fingerprint_parts = [norm(legal), norm(reg), norm(email)]
        details = dict(bus)
    c.raise_if_any()
    assert btype is not None and country is not None
    if not isinstance(block_value, dict):
        raise ApiProblem(
            422,
            "missing_beneficiary_details",
            f"type is {btype} but the {btype} details block is missing",
        )
    fingerprint = "|".join([btype, country, *fingerprint_parts])
    return BeneficiaryInput(
        type=btype,
        country=country,
        display_name=display_name,
        external_ref=external_ref,
        metadata=metadata,
        details=details,
        fingerprint=fingerprint,
    )
