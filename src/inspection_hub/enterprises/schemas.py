"""Enterprise bodies and the row validation shared by the importer and PATCH."""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Literal

from pydantic import Field
from stdnum.cn import uscc as stdnum_uscc
from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat, InvalidLength

from inspection_hub.kit.schema import RequestModel, ResponseModel

RiskClass = Literal["A", "B", "C", "D"]
REQUIRED_COLUMNS = ("uscc", "name", "district_code", "industry_code", "risk_class")
OPTIONAL_COLUMNS = ("established_on", "address", "callback_url")
ALL_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
DISTRICT_RE = re.compile(r"^\d{6}$")
INDUSTRY_RE = re.compile(r"^[A-T](\d{2}|\d{3}|\d{4})?$")  # GB/T 4754: section letter + digits
URL_RE = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)


_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_INDEX = {c: i for i, c in enumerate(_USCC_ALPHABET)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_CANONICAL = re.compile(r"\d{8}[0-9A-HJ-NPQRTUWXY]{10}")


def _canonical_uscc_ok(code: str) -> bool:
    """The GB 32100-2015 check for a code already in canonical form (the import's hot path)."""
    index = _USCC_INDEX
    total = sum(index[c] * w for c, w in zip(code, _USCC_WEIGHTS, strict=False))
    return code[17] == _USCC_ALPHABET[(31 - total) % 31]


def check_uscc(value: str) -> tuple[str | None, str | None]:
    """Normalise a USCC; return (code, None) or (None, reason)."""
    code = value.strip().upper()
    # Fast path for well-formed codes; anything else (separators, errors) goes to python-stdnum,
    # which stays the authority and names the reason. tests/foundation checks they agree.
    if _USCC_CANONICAL.fullmatch(code) and _canonical_uscc_ok(code):
        return code, None
    try:
        return stdnum_uscc.validate(value.strip().upper()), None
    except InvalidChecksum:
        return None, "check character is wrong"
    except InvalidLength:
        return None, "must be 18 characters"
    except (InvalidFormat, InvalidComponent):
        return None, "contains characters a USCC cannot have"


def validate_row(raw: dict[str, Any]) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
    """Validate and normalise one enterprise row; returns (row, [(field, detail), ...])."""
    errors: list[tuple[str, str]] = []
    out: dict[str, Any] = {}
    for col in REQUIRED_COLUMNS:
        v = raw.get(col)
        if v is None or (isinstance(v, str) and not v.strip()):
            errors.append((col, "is required"))
    if errors:
        return None, errors
    code, reason = check_uscc(str(raw["uscc"]))
    if reason:
        errors.append(("uscc", reason))
    out["uscc"] = code
    name = str(raw["name"]).strip()
    if len(name) > 300:
        errors.append(("name", "is longer than 300 characters"))
    out["name"] = name
    district = str(raw["district_code"]).strip()
    if not DISTRICT_RE.match(district):
        errors.append(("district_code", "must be a 6-digit administrative division code"))
    out["district_code"] = district
    industry = str(raw["industry_code"]).strip().upper()
    if not INDUSTRY_RE.match(industry):
        errors.append(("industry_code", "must be a GB/T 4754 code such as F5212"))
    out["industry_code"] = industry
    risk = str(raw["risk_class"]).strip().upper()
    if risk not in ("A", "B", "C", "D"):
        errors.append(("risk_class", "must be one of A, B, C, D"))
    out["risk_class"] = risk
    established = raw.get("established_on")
    out["established_on"] = None
    if established not in (None, ""):
        try:
            out["established_on"] = date.fromisoformat(str(established).strip())
        except ValueError:
            errors.append(("established_on", "must be a date YYYY-MM-DD"))
    address = raw.get("address")
    out["address"] = str(address).strip() if address not in (None, "") else None
    url = raw.get("callback_url")
    out["callback_url"] = None
    if url not in (None, ""):
        url_s = str(url).strip()
        if not URL_RE.match(url_s):
            errors.append(("callback_url", "must be an http(s) URL"))
        out["callback_url"] = url_s
    return (None if errors else out), errors


class EnterpriseRead(ResponseModel):
    """An enterprise."""

    uscc: str
    name: str
    district_code: str
    industry_code: str
    risk_class: str
    established_on: date | None
    address: str | None
    callback_url: str | None
    version: int


class EnterpriseUpdate(RequestModel):
    """Fields an admin may change; a risk-class change keeps its history."""

    name: str | None = Field(default=None, min_length=1, max_length=300)
    district_code: str | None = Field(default=None, pattern=r"^\d{6}$")
    industry_code: str | None = Field(default=None, pattern=r"^[A-T](\d{2}|\d{3}|\d{4})?$")
    risk_class: RiskClass | None = None
    risk_class_valid_from: date | None = None
    established_on: date | None = None
    address: str | None = None
    callback_url: str | None = Field(default=None, pattern=r"^https?://\S+$")


class ImportResult(ResponseModel):
    """What an import did."""

    created: int
    updated: int


class RiskClassPeriod(ResponseModel):
    """The risk class held from a date on."""

    valid_from: date
    risk_class: str
