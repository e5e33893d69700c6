"""Parsing an enterprise upload (CSV or JSON) into validated rows, reporting every bad row."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from inspection_hub.enterprises.schemas import ALL_COLUMNS, REQUIRED_COLUMNS, validate_row
from inspection_hub.errors import UnsupportedMediaType, ValidationFailed

MAX_REPORTED_ERRORS = 10_000


def _fail(detail: str, field: str = "file", row: int | None = None) -> ValidationFailed:
    return ValidationFailed(detail, errors=[{"row": row, "field": field, "detail": detail}])


def _decode(body: bytes) -> str:
    if not body.strip():
        raise _fail("The file is empty.")
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _fail(
            f"The file is not UTF-8 (invalid byte at offset {exc.start}); save it as UTF-8."
        ) from exc


def _rows_from_csv(text: str) -> tuple[list[tuple[int, dict[str, Any]]], list[dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise _fail("The file is empty.") from None
    problems: list[dict[str, Any]] = []
    unknown = [h for h in header if h not in ALL_COLUMNS]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    for h in unknown:
        problems.append({"row": 1, "field": h, "detail": "unknown column"})
    for c in missing:
        problems.append({"row": 1, "field": c, "detail": "required column is missing"})
    if len(set(header)) != len(header):
        problems.append({"row": 1, "field": "header", "detail": "a column appears twice"})
    if problems:
        raise ValidationFailed(
            "The header row is not valid; expected columns: " + ",".join(ALL_COLUMNS),
            errors=problems,
        )
    rows: list[tuple[int, dict[str, Any]]] = []
    for lineno, values in enumerate(reader, start=2):
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) != len(header):
            problems.append(
                {
                    "row": lineno,
                    "field": "row",
                    "detail": f"has {len(values)} values, the header has {len(header)}",
                }
            )
            continue
        rows.append((lineno, dict(zip(header, values, strict=True))))
    return rows, problems


def _rows_from_json(text: str) -> tuple[list[tuple[int, dict[str, Any]]], list[dict[str, Any]]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(f"The body is not valid JSON: {exc.msg} at line {exc.lineno}.") from exc
    if not isinstance(doc, dict) or set(doc) != {"enterprises"}:
        raise _fail('The body must be {"enterprises": [...]}.', field="enterprises")
    items = doc["enterprises"]
    if not isinstance(items, list):
        raise _fail('"enterprises" must be a list.', field="enterprises")
    if not items:
        raise _fail("The list of enterprises is empty.", field="enterprises")
    rows: list[tuple[int, dict[str, Any]]] = []
    problems: list[dict[str, Any]] = []
    for index, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            problems.append({"row": index, "field": "row", "detail": "must be an object"})
            continue
        for key in item:
            if key not in ALL_COLUMNS:
                problems.append({"row": index, "field": key, "detail": "unknown field"})
        rows.append((index, {k: item.get(k) for k in ALL_COLUMNS}))
    return rows, problems


def parse_upload(body: bytes, content_type: str) -> list[dict[str, Any]]:
    """Validate a whole upload; return the normalised rows or raise one 422 listing every error."""
    media = content_type.split(";")[0].strip().lower()
    if media in ("text/csv", "application/csv", "text/plain"):
        rows, problems = _rows_from_csv(_decode(body))
    elif media == "application/json":
        rows, problems = _rows_from_json(_decode(body))
    else:
        raise UnsupportedMediaType(
            f"Content type {media or '(none)'} is not accepted; send text/csv or application/json."
        )
    if not rows and not problems:
        raise _fail("The file has a header but no rows.")
    valid: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for row_no, raw in rows:
        clean, errors = validate_row(raw)
        for field, detail in errors:
            problems.append({"row": row_no, "field": field, "detail": detail})
        if clean is None:
            continue
        first = seen.get(clean["uscc"])
        if first is not None:
            problems.append({"row": row_no, "field": "uscc", "detail": f"duplicate of row {first}"})
            continue
        seen[clean["uscc"]] = row_no
        valid.append(clean)
    if problems:
        total = len(problems)
        raise ValidationFailed(
            f"{total} problem(s) found; nothing was imported.",
            errors=problems[:MAX_REPORTED_ERRORS],
            error_count=total,
            truncated=total > MAX_REPORTED_ERRORS,
        )
    return valid
