"""Routes: /v1/inspections (lifecycle, codes), enterprise inspections, public code checks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from inspection_hub.auth.deps import Public, authorize
from inspection_hub.auth.principal import Principal, Role
from inspection_hub.config import Settings
from inspection_hub.db.deps import SessionDep, autocommit_connection
from inspection_hub.errors import NotFound, problem_response
from inspection_hub.inspections import service
from inspection_hub.inspections.codes import qr_png, qr_svg
from inspection_hub.inspections.schemas import (
    CodeLookup,
    EnterpriseInspections,
    InspectionCancel,
    InspectionComplete,
    InspectionRead,
    PublicInspection,
    ScanResult,
)
from inspection_hub.inspections.state import InspectionStatus
from inspection_hub.kit.etag import parse_if_match
from inspection_hub.kit.schema import Page
from inspection_hub.kit.timeutil import local_today
from inspection_hub.plans.service import policy_book

router = APIRouter(tags=["inspections"])
public_router = APIRouter(prefix="/public/v1", tags=["public"], dependencies=[Depends(Public())])

Official = Annotated[Principal, Depends(authorize())]
Reader = Annotated[Principal, Depends(authorize(agency_param="agency"))]
Scheduler = Annotated[Principal, Depends(authorize(Role.scheduler, Role.admin))]
IfMatch = Annotated[str | None, Header()]
CODE_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "forged or unknown code (检查码无效)"},
    410: {"description": "expired code, or the inspection was cancelled or merged"},
}


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _read(request: Request, session: SessionDep, inspection: Any) -> InspectionRead:
    base = _settings(request).public_base_url
    return (await service.read_inspections(session, [inspection], base))[0]


@router.get("/v1/inspections", response_model=Page[InspectionRead])
async def list_inspections(
    request: Request,
    session: SessionDep,
    actor: Reader,
    agency: str | None = None,
    enterprise: str | None = None,
    status: InspectionStatus | None = None,
    year: int | None = None,
    plan_id: int | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[InspectionRead]:
    """Inspections involving your agency (all for admin and supervisor), cursor-paginated."""
    rows, next_cursor = await service.list_inspections(
        session,
        actor,
        agency=agency,
        enterprise=enterprise,
        status=status.value if status else None,
        year=year,
        plan_id=plan_id,
        cursor=cursor,
        limit=limit,
    )
    items = await service.read_inspections(session, rows, _settings(request).public_base_url)
    return Page[InspectionRead](items=items, next_cursor=next_cursor)


def _json(model: BaseModel, headers: dict[str, str] | None = None) -> Response:
    return Response(model.model_dump_json(), media_type="application/json", headers=headers)


@router.get("/v1/inspections/{inspection_id}", response_model=InspectionRead)
async def get_inspection(inspection_id: int, request: Request, actor: Official) -> Response:
    """One inspection with matters, inspectors and its code."""
    async with autocommit_connection(request) as conn:
        read = await service.read_inspection(
            conn, actor, inspection_id, _settings(request).public_base_url
        )
    # Serialised here: the model was built from the database row just now, so FastAPI's
    # response validation would only check it again (the schema still documents it).
    return _json(read, {"ETag": f'"{read.version}"'})


@router.post("/v1/inspections/{inspection_id}/start", response_model=InspectionRead)
async def start_inspection(
    inspection_id: int,
    request: Request,
    session: SessionDep,
    actor: Scheduler,
    if_match: IfMatch = None,
) -> InspectionRead:
    """Mark the visit as started (scheduler of an involved agency)."""
    inspection = await service.start_inspection(
        session, actor, inspection_id, parse_if_match(if_match)
    )
    return await _read(request, session, inspection)


@router.post("/v1/inspections/{inspection_id}/complete", response_model=InspectionRead)
async def complete_inspection(
    inspection_id: int,
    body: InspectionComplete,
    request: Request,
    session: SessionDep,
    actor: Scheduler,
    if_match: IfMatch = None,
) -> InspectionRead:
    """Record the visit date, the inspectors present (valid certificates) and the outcome."""
    policy = policy_book(_settings(request)).at(local_today())
    inspection = await service.complete_inspection(
        session,
        actor,
        inspection_id,
        body,
        max(2, policy.inspectors.min_per_inspection),
        parse_if_match(if_match),
    )
    return await _read(request, session, inspection)


@router.post("/v1/inspections/{inspection_id}/cancel", response_model=InspectionRead)
async def cancel_inspection(
    inspection_id: int,
    request: Request,
    session: SessionDep,
    actor: Scheduler,
    body: InspectionCancel | None = None,
    if_match: IfMatch = None,
) -> InspectionRead:
    """Cancel a scheduled inspection; its code is refused from then on."""
    inspection = await service.cancel_inspection(
        session, actor, inspection_id, body.reason if body else "", parse_if_match(if_match)
    )
    return await _read(request, session, inspection)


async def _code_text(
    request: Request, session: SessionDep, actor: Principal, inspection_id: int
) -> str:
    inspection = await service.get_inspection(session, actor, inspection_id)
    url = service.code_url(_settings(request).public_base_url, inspection.code)
    if url is None:
        raise NotFound(f"Inspection {inspection_id} has no inspection code.")
    return url


@router.get(
    "/v1/inspections/{inspection_id}/code.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
async def code_png(
    inspection_id: int, request: Request, session: SessionDep, actor: Official
) -> Response:
    """The inspection code (检查码) as a QR code PNG of its public scan URL."""
    url = await _code_text(request, session, actor, inspection_id)
    return Response(qr_png(url), media_type="image/png")


@router.get(
    "/v1/inspections/{inspection_id}/code.svg",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}},
)
async def code_svg(
    inspection_id: int, request: Request, session: SessionDep, actor: Official
) -> Response:
    """The inspection code (检查码) as an SVG QR code of its public scan URL."""
    url = await _code_text(request, session, actor, inspection_id)
    return Response(qr_svg(url), media_type="image/svg+xml")


@router.get("/v1/enterprises/{uscc}/inspections", response_model=EnterpriseInspections)
async def enterprise_inspections(
    uscc: str,
    request: Request,
    _: Official,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
) -> Response:
    """The enterprise's inspections in a year with the yearly count and its risk class's cap."""
    today = local_today()
    the_year = year or today.year
    async with autocommit_connection(request) as conn:
        code, risk_class, items, count = await service.enterprise_year(
            conn, uscc, the_year, today, _settings(request).public_base_url
        )
    policy = policy_book(_settings(request)).at(today)
    read = EnterpriseInspections(
        uscc=code,
        year=the_year,
        risk_class=risk_class,
        count=count,
        cap=policy.cap_for(risk_class),  # type: ignore[arg-type]
        policy_version=policy.version,
        items=items,
    )
    return _json(read)


def _refusal(request: Request, exc: service.CodeRefused) -> JSONResponse:
    # Answer the problem WITHOUT raising, so that the refusal event is committed.
    return problem_response(exc.error.status, exc.error.to_problem(request.url.path))


@public_router.get("/inspection-codes/{code}", response_model=CodeLookup, responses=CODE_RESPONSES)
async def check_code(code: str, request: Request, session: SessionDep) -> Any:
    """Check an inspection code at the door: the registered agency, matters, window, inspectors."""
    keyring = service.keyring_for(_settings(request).data_dir)
    try:
        return await service.code_lookup(session, keyring, code)
    except service.CodeRefused as exc:
        return _refusal(request, exc)


@public_router.post(
    "/inspection-codes/{code}/scan", response_model=ScanResult, responses=CODE_RESPONSES
)
async def scan_code(code: str, request: Request, session: SessionDep) -> Any:
    """Record the enterprise's scan of the code; the first scan marks the visit's start."""
    keyring = service.keyring_for(_settings(request).data_dir)
    try:
        return await service.scan_code(session, keyring, code)
    except service.CodeRefused as exc:
        return _refusal(request, exc)


@public_router.get("/inspection-code-keys")
async def code_keys(request: Request) -> dict[str, Any]:
    """The public keys (JWKS, Ed25519) for verifying inspection codes offline."""
    return service.keyring_for(_settings(request).data_dir).public_keys_jwks()


@public_router.get("/inspections", response_model=Page[PublicInspection])
async def public_inspections(
    session: SessionDep,
    year: int | None = None,
    agency: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[PublicInspection]:
    """Completed inspections of published plans: enterprise, agency, date, outcome (一公开)."""
    items, next_cursor = await service.public_inspections(session, year, agency, cursor, limit)
    return Page[PublicInspection](items=items, next_cursor=next_cursor)
