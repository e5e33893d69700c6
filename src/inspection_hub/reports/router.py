"""Routes: /v1/reports/execution, /findings-by-month and /assessment (JSON, CSV, Excel)."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from inspection_hub.auth.deps import authorize
from inspection_hub.auth.principal import Principal, Role
from inspection_hub.db.deps import SessionDep
from inspection_hub.reports import service
from inspection_hub.reports.schemas import FindingsByMonth

router = APIRouter(prefix="/v1/reports", tags=["reports"])

Official = Annotated[Principal, Depends(authorize(agency_param="agency"))]
Supervisor = Annotated[Principal, Depends(authorize(Role.supervisor, Role.admin))]
Year = Annotated[int, Query(ge=2000, le=2100)]
Format = Annotated[Literal["json", "csv", "xlsx"] | None, Query()]

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _wants(request: Request, fmt: str | None) -> str:
    if fmt:
        return fmt
    accept = request.headers.get("accept", "")
    if "text/csv" in accept:
        return "csv"
    if XLSX in accept:
        return "xlsx"
    return "json"


def _table(rows: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    flat = [service.flatten(r) for r in rows]
    columns: list[str] = []
    for r in flat:
        columns.extend(k for k in r if k not in columns)
    return columns, flat


def _csv(rows: list[dict[str, Any]], filename: str) -> Response:
    columns, flat = _table(rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(flat)
    return Response(
        "\ufeff" + buf.getvalue(),  # BOM: Excel opens UTF-8 Chinese correctly
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
    )


def _cell(value: Any) -> Any:
    # XLSX cannot hold most ASCII control characters (an agency name typed with one made the
    # export fail: found by the schemathesis run); they are dropped from the cell, not the data.
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE.sub("", value) if isinstance(value, str) else value


def _xlsx(rows: list[dict[str, Any]], filename: str, title: str) -> Response:
    from openpyxl import Workbook

    columns, flat = _table(rows)
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = title
    ws.append([_cell(c) for c in columns])
    for r in flat:
        ws.append([_cell(r.get(c)) for c in columns])
    buf = io.BytesIO()
    wb.save(buf)
    return Response(
        buf.getvalue(),
        media_type=XLSX,
        headers={"Content-Disposition": f'attachment; filename="{filename}.xlsx"'},
    )


@router.get("/execution")
async def execution(
    request: Request,
    session: SessionDep,
    principal: Official,
    year: Year,
    agency: str | None = None,
    format: Format = None,
) -> Response:
    """Execution report per agency (JSON, or CSV with Accept: text/csv / ?format=csv)."""
    if not principal.sees_everything:
        agency = principal.agency_code  # an agency's officials see their own row only
    rows = await service.execution_report(session, year, agency)
    fmt = _wants(request, format)
    if fmt == "csv":
        return _csv(rows, f"execution-{year}")
    if fmt == "xlsx":
        return _xlsx(rows, f"execution-{year}", "执行情况")
    return JSONResponse({"year": year, "items": rows})


@router.get(
    "/findings-by-month",
    response_model=FindingsByMonth,
    responses={
        200: {"content": {"text/csv": {}, XLSX: {}}},
        404: {"description": "There is no such agency."},
    },
)
async def findings_by_month(
    request: Request,
    session: SessionDep,
    principal: Official,
    year: Year,
    agency: str | None = None,
    format: Format = None,
) -> Response:
    """Findings by kind and inspections completed per month of the year (每月发现问题)."""
    if not principal.sees_everything:
        agency = principal.agency_code  # as the execution report: an agency sees its own
    monthly = await service.findings_by_month(session, year, agency)
    fmt = _wants(request, format)
    name = f"findings-by-month-{year}"
    if fmt == "csv":
        return _csv(monthly["items"], name)
    if fmt == "xlsx":
        return _xlsx(monthly["items"], name, "每月发现问题")
    return JSONResponse(monthly)


@router.get("/assessment")
async def assessment(
    request: Request,
    session: SessionDep,
    principal: Supervisor,
    year: Year,
    format: Format = None,
) -> Response:
    """The annual assessment table (法治政府考核): indicators, weights, total, rank."""
    table = await service.assessment(session, year)
    fmt = _wants(request, format)
    if fmt == "csv":
        return _csv(table, f"assessment-{year}")
    if fmt == "xlsx":
        return _xlsx(table, f"assessment-{year}", "考核")
    return JSONResponse({"year": year, "items": table})
