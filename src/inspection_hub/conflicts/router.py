"""Routes: /v1/conflicts, /v1/joint-inspections and /v1/enterprises/{uscc}/burden."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request

from inspection_hub.auth.deps import authorize
from inspection_hub.auth.principal import Principal, Role
from inspection_hub.config import Settings
from inspection_hub.conflicts import service
from inspection_hub.conflicts.schemas import (
    BurdenRead,
    ConflictKind,
    ConflictRead,
    ConflictResolve,
    ConflictStatus,
    JointDecision,
    JointInspectionCreate,
    JointProposalRead,
)
from inspection_hub.db.deps import SessionDep
from inspection_hub.enterprises.service import normalise_uscc
from inspection_hub.inspections.codes import CodeKeyring
from inspection_hub.inspections.service import keyring_for
from inspection_hub.kit.etag import parse_if_match
from inspection_hub.kit.schema import Page
from inspection_hub.kit.timeutil import local_today
from inspection_hub.policy import PolicyBook

router = APIRouter(tags=["conflicts"])

Reader = Annotated[
    Principal,
    Depends(authorize(Role.scheduler, Role.approver, Role.supervisor, agency_param="agency")),
]
Resolver = Annotated[Principal, Depends(authorize(Role.scheduler, Role.approver, Role.supervisor))]
Approver = Annotated[Principal, Depends(authorize(Role.approver))]
Supervisor = Annotated[Principal, Depends(authorize(Role.supervisor))]
Official = Annotated[Principal, Depends(authorize())]


def _book(request: Request) -> PolicyBook:
    settings: Settings = request.app.state.settings
    return service.policy_book(settings.policy_path())


def _keyring(request: Request) -> CodeKeyring:
    settings: Settings = request.app.state.settings
    return keyring_for(settings.data_dir)


@router.get("/v1/conflicts", response_model=Page[ConflictRead])
async def list_conflicts(
    session: SessionDep,
    principal: Reader,
    status: ConflictStatus | None = None,
    kind: ConflictKind | None = None,
    enterprise: Annotated[str | None, Query(max_length=18)] = None,
    agency: Annotated[str | None, Query(max_length=32)] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[ConflictRead]:
    """Findings newest first; an agency sees those involving its own inspections."""
    items, next_cursor = await service.list_conflicts(
        session,
        principal,
        status=status,
        kind=kind,
        enterprise=enterprise,
        agency=agency,
        cursor=cursor,
        limit=limit,
    )
    return Page[ConflictRead](
        items=[ConflictRead.model_validate(c) for c in items], next_cursor=next_cursor
    )


@router.get("/v1/conflicts/{conflict_id}", response_model=ConflictRead)
async def get_conflict(conflict_id: int, session: SessionDep, principal: Reader) -> ConflictRead:
    """One finding."""
    return ConflictRead.model_validate(await service.get_conflict(session, principal, conflict_id))


@router.post("/v1/conflicts/{conflict_id}/resolve", response_model=ConflictRead)
async def resolve_conflict(
    conflict_id: int,
    body: ConflictResolve,
    session: SessionDep,
    principal: Resolver,
    if_match: Annotated[str | None, Header()] = None,
) -> ConflictRead:
    """Resolve a finding once: merged, justified (reason), cancelled (one inspection), dismissed."""
    found = await service.resolve_conflict(
        session,
        principal,
        conflict_id,
        resolution=body.resolution,
        note=body.note,
        inspection_id=body.inspection_id,
        if_match=parse_if_match(if_match),
    )
    return ConflictRead.model_validate(found)


async def _proposal_read(
    session: SessionDep, principal: Principal, proposal_id: int
) -> JointProposalRead:
    proposal, consents = await service.get_proposal(session, principal, proposal_id)
    return JointProposalRead.model_validate(service.proposal_view(proposal, consents))


@router.post("/v1/joint-inspections", response_model=JointProposalRead, status_code=201)
async def propose_joint(
    body: JointInspectionCreate, session: SessionDep, principal: Resolver
) -> JointProposalRead:
    """Propose one joint visit for scheduled inspections of one enterprise by several agencies."""
    proposal = await service.propose_joint(
        session, principal, body.inspections, body.lead_agency, body.date
    )
    return await _proposal_read(session, principal, proposal.id)


@router.get("/v1/joint-inspections/{proposal_id}", response_model=JointProposalRead)
async def get_joint(proposal_id: int, session: SessionDep, principal: Reader) -> JointProposalRead:
    """One joint inspection proposal with its consents."""
    return await _proposal_read(session, principal, proposal_id)


@router.post("/v1/joint-inspections/{proposal_id}/consent", response_model=JointProposalRead)
async def consent_joint(
    proposal_id: int, request: Request, session: SessionDep, principal: Approver
) -> JointProposalRead:
    """An approver consents for their agency; the last consent merges the inspections."""
    await service.consent_joint(session, principal, proposal_id, _keyring(request))
    return await _proposal_read(session, principal, proposal_id)


@router.post("/v1/joint-inspections/{proposal_id}/accept", response_model=JointProposalRead)
async def accept_joint(
    proposal_id: int,
    request: Request,
    session: SessionDep,
    principal: Supervisor,
    body: JointDecision | None = None,
) -> JointProposalRead:
    """A supervisor decides for every agency and the inspections are merged."""
    note = body.note if body else None
    await service.accept_joint(session, principal, proposal_id, _keyring(request), note)
    return await _proposal_read(session, principal, proposal_id)


@router.post("/v1/joint-inspections/{proposal_id}/reject", response_model=JointProposalRead)
async def reject_joint(
    proposal_id: int,
    session: SessionDep,
    principal: Resolver,
    body: JointDecision | None = None,
) -> JointProposalRead:
    """An approver of an involved agency or a supervisor turns the proposal down."""
    await service.reject_joint(session, principal, proposal_id, body.note if body else None)
    return await _proposal_read(session, principal, proposal_id)


@router.get("/v1/enterprises/{uscc}/burden", response_model=BurdenRead)
async def get_burden(
    uscc: str,
    request: Request,
    session: SessionDep,
    _: Official,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
) -> BurdenRead:
    """The yearly cap ledger: inspections done, scheduled, cap, remaining, by agency."""
    code = normalise_uscc(uscc)
    data = await service.burden(session, code, year or local_today().year, _book(request))
    return BurdenRead.model_validate(data)
