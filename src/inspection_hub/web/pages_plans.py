"""Scheduler's pages: plans, draws (verified), inspections with QR codes, completing them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from inspection_hub.auth.principal import Role
from inspection_hub.errors import Conflict, PreconditionFailed, ValidationFailed
from inspection_hub.inspections import service as inspections
from inspection_hub.inspections.codes import qr_svg
from inspection_hub.inspections.schemas import InspectionComplete, InspectionRead, Outcome
from inspection_hub.kit.timeutil import local_today
from inspection_hub.plans import service as plans
from inspection_hub.web.pages import AVAILABLE_PAGES, Page, PageRoute, signed_in
from inspection_hub.web.pages_codes import code_page_url

router = APIRouter(route_class=PageRoute, include_in_schema=False)
AVAILABLE_PAGES.add("plans")

Reader = Annotated[Page, Depends(signed_in(Role.admin, Role.supervisor, Role.scheduler))]
Scheduler = Annotated[Page, Depends(signed_in(Role.scheduler))]


@router.get("/plans", response_class=HTMLResponse)
async def plan_list(
    p: Reader, year: Annotated[int | None, Query(ge=2000, le=2100)] = None
) -> Response:
    """Plans visible to the official, newest first."""
    year = year or local_today().year
    rows, _ = await plans.list_plans(
        p.session, p.user, year=year, agency=None, status=None, cursor=None, limit=200
    )
    return p.render("plans.html", plans=await plans.read_plans(p.session, rows), year=year)


@router.get("/plans/{plan_id}", response_class=HTMLResponse)
async def plan_detail(plan_id: int, p: Reader) -> Response:
    """One plan with its items and links to their draws."""
    plan = await plans.get_plan(p.session, p.user, plan_id)
    (read,) = await plans.read_plans(p.session, [plan])
    return p.render("plan.html", plan=read)


@router.get("/draws/{draw_id}", response_class=HTMLResponse)
async def draw_detail(draw_id: int, p: Reader) -> Response:
    """A draw record with the result of re-running it from its stored inputs."""
    draw = await plans.get_draw(p.session, p.user, draw_id, full=True)
    verified = plans.verify_draw(draw)
    return p.render("draw.html", draw=plans.draw_read(draw, with_result=True), verified=verified)


async def _inspection_list(p: Page, year: int, status: str | None) -> list[InspectionRead]:
    rows, _ = await inspections.list_inspections(
        p.session,
        p.user,
        agency=None,
        enterprise=None,
        status=status,
        year=year,
        plan_id=None,
        cursor=None,
        limit=500,
    )
    return await inspections.read_inspections(p.session, rows, p.settings.public_base_url)


@router.get("/inspections", response_class=HTMLResponse)
async def inspection_list(
    p: Reader,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    status: Annotated[str | None, Query(max_length=20)] = "scheduled",
) -> Response:
    """Inspections involving the official's agency (all for supervisors), by status."""
    year = year or local_today().year
    items = await _inspection_list(p, year, status or None)
    return p.render("inspections.html", items=items, year=year, status=status or "")


@router.get("/inspections/print", response_class=HTMLResponse)
async def inspection_print(
    p: Reader, year: Annotated[int | None, Query(ge=2000, le=2100)] = None
) -> Response:
    """A printable sheet of the scheduled inspections with their QR inspection codes."""
    year = year or local_today().year
    items = await _inspection_list(p, year, "scheduled")
    return p.render("inspections_print.html", items=items, year=year, qr=_qr_for(p, items))


def _qr_for(p: Page, items: list[InspectionRead]) -> dict[int, str]:
    base = p.settings.public_base_url
    return {i.id: qr_svg(code_page_url(base, i.code), scale=3) for i in items if i.code}


async def _render_inspection(
    p: Page, inspection_id: int, status_code: int = 200, **extra: Any
) -> Response:
    row = await inspections.get_inspection(p.session, p.user, inspection_id)
    (read,) = await inspections.read_inspections(p.session, [row], p.settings.public_base_url)
    context: dict[str, Any] = {
        "form": {"visit_date": local_today().isoformat(), "present": [], "outcome": ""},
        "errors": {},
    }
    context.update(extra)
    return p.render(
        "inspection.html",
        status_code=status_code,
        item=read,
        qr=_qr_for(p, [read]).get(read.id),
        code_url=code_page_url(p.settings.public_base_url, read.code) if read.code else None,
        outcomes=[o.value for o in Outcome],
        **context,
    )


@router.get("/inspections/{inspection_id}", response_class=HTMLResponse)
async def inspection_detail(inspection_id: int, p: Reader) -> Response:
    """One inspection: its code (QR), matters, inspectors; the completion form for schedulers."""
    return await _render_inspection(p, inspection_id)


def _min_present(p: Page) -> int:
    policy = plans.policy_book(p.settings).at(local_today())
    return max(2, policy.inspectors.min_per_inspection)


@router.post("/inspections/{inspection_id}/complete", response_class=HTMLResponse)
async def inspection_complete(inspection_id: int, p: Scheduler) -> Response:
    """Record the visit (same service and rules as POST /v1/inspections/{id}/complete)."""
    form = await p.form()
    raw = await p.request.form()
    present = [v for v in raw.getlist("inspectors_present") if isinstance(v, str)]
    echo = {
        "visit_date": str(form.get("visit_date", "")),
        "present": present,
        "outcome": str(form.get("outcome", "")),
        "outcome_text": str(form.get("outcome_text", "")),
    }
    version = str(form.get("version", ""))
    errors: dict[str, str] = {}
    try:
        body = InspectionComplete.model_validate(
            {
                "visit_date": echo["visit_date"] or None,
                "inspectors_present": [int(x) for x in present if x.isdigit()],
                "outcome": echo["outcome"] or None,
                "outcome_text": echo["outcome_text"],
            }
        )
    except ValidationError as exc:
        for detail in exc.errors():
            errors[str(detail["loc"][0])] = "invalid"
        return await _render_inspection(p, inspection_id, 422, form=echo, errors=errors)
    try:
        await inspections.complete_inspection(
            p.session,
            p.user,
            inspection_id,
            body,
            _min_present(p),
            int(version) if version.isdigit() else None,
        )
    except ValidationFailed as exc:
        await p.session.rollback()
        for item in exc.errors or []:
            errors[str(item.get("field", "")).split(".")[0]] = str(item.get("detail", ""))
        return await _render_inspection(p, inspection_id, 422, form=echo, errors=errors)
    except (Conflict, PreconditionFailed):
        await p.session.rollback()
        return await _render_inspection(p, inspection_id, 409, changed=True)
    return p.redirect(f"/inspections/{inspection_id}?done=1")
