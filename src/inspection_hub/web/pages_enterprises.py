"""Enterprise history `/enterprises/{uscc}`: this year's inspections, the cap ledger, findings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from inspection_hub.conflicts import service as conflicts
from inspection_hub.enterprises.service import normalise_uscc
from inspection_hub.inspections import service as inspections
from inspection_hub.kit.timeutil import local_today
from inspection_hub.web.pages import AVAILABLE_PAGES, Page, PageRoute, signed_in

router = APIRouter(route_class=PageRoute, include_in_schema=False)
AVAILABLE_PAGES.add("enterprises")

Official = Annotated[Page, Depends(signed_in())]


@router.get("/enterprises", response_class=HTMLResponse)
async def find(p: Official, uscc: Annotated[str, Query(max_length=40)] = "") -> Response:
    """The search box on the home page leads here; go to the enterprise's page."""
    code = uscc.strip().upper()
    return RedirectResponse(f"/enterprises/{code}" if code else "/", status_code=303)


@router.get("/enterprises/{uscc}", response_class=HTMLResponse)
async def history(
    uscc: str, p: Official, year: Annotated[int | None, Query(ge=2000, le=2100)] = None
) -> Response:
    """One enterprise's year: inspections (all agencies), cap ledger and findings."""
    year = year or local_today().year
    code = normalise_uscc(uscc)
    enterprise, rows, _counted = await inspections.enterprise_inspections(p.session, code, year)
    items = await inspections.read_inspections(p.session, rows, p.settings.public_base_url)
    ledger = await conflicts.burden(
        p.session, code, year, conflicts.policy_book(p.settings.policy_path())
    )
    findings, _ = await conflicts.list_conflicts(
        p.session,
        p.user,
        status=None,
        kind=None,
        enterprise=code,
        agency=None,
        cursor=None,
        limit=200,
    )
    return p.render(
        "enterprise.html",
        enterprise=enterprise,
        year=year,
        items=items,
        ledger=ledger,
        findings=findings,
    )
