"""Supervisor's conflict board: open findings by kind, agency, enterprise; resolve; joint visits."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, Response

from inspection_hub.auth.principal import Role
from inspection_hub.conflicts import service as conflicts
from inspection_hub.errors import Conflict, Forbidden, PreconditionFailed, ValidationFailed
from inspection_hub.inspections.service import keyring_for
from inspection_hub.web.pages import AVAILABLE_PAGES, Page, PageRoute, signed_in

router = APIRouter(route_class=PageRoute, include_in_schema=False)
AVAILABLE_PAGES.add("conflicts")

Reader = Annotated[
    Page, Depends(signed_in(Role.supervisor, Role.admin, Role.approver, Role.scheduler))
]
Resolver = Annotated[Page, Depends(signed_in(Role.supervisor, Role.approver, Role.scheduler))]
BOARD_LIMIT = 500
RESOLUTIONS = ("merged", "justified", "cancelled", "dismissed")


@router.get("/conflicts", response_class=HTMLResponse)
async def board(
    p: Reader,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    agency: Annotated[str | None, Query(max_length=32)] = None,
    enterprise: Annotated[str | None, Query(max_length=18)] = None,
) -> Response:
    """Open findings, newest first, with counts by kind and agency; filters by the same."""
    items, more = await conflicts.list_conflicts(
        p.session,
        p.user,
        status="open",
        kind=kind or None,
        enterprise=enterprise or None,
        agency=agency or None,
        cursor=None,
        limit=BOARD_LIMIT,
    )
    by_kind = Counter(c.kind for c in items)
    by_agency = Counter(a for c in items for a in c.agency_codes)
    return p.render(
        "conflicts.html",
        items=items,
        more=more is not None,
        by_kind=sorted(by_kind.items()),
        by_agency=sorted(by_agency.items()),
        filters={"kind": kind or "", "agency": agency or "", "enterprise": enterprise or ""},
    )


async def _render_conflict(
    p: Page, conflict_id: int, status_code: int = 200, **extra: Any
) -> Response:
    found = await conflicts.get_conflict(p.session, p.user, conflict_id)
    context: dict[str, Any] = {"error": None, "form": {}}
    context.update(extra)
    return p.render(
        "conflict.html", status_code=status_code, c=found, resolutions=RESOLUTIONS, **context
    )


@router.get("/conflicts/{conflict_id}", response_class=HTMLResponse)
async def conflict_page(conflict_id: int, p: Reader) -> Response:
    """One finding with the resolve form and the joint-inspection proposal form."""
    return await _render_conflict(p, conflict_id, notice=p.request.query_params.get("done"))


@router.post("/conflicts/{conflict_id}/resolve", response_class=HTMLResponse)
async def resolve(conflict_id: int, p: Resolver) -> Response:
    """Resolve once (the same rules as POST /v1/conflicts/{id}/resolve)."""
    form = await p.form()
    resolution = str(form.get("resolution", ""))
    note = str(form.get("note", "")).strip() or None
    raw_inspection = str(form.get("inspection_id", ""))
    version = str(form.get("version", ""))
    if resolution not in RESOLUTIONS:
        return await _render_conflict(p, conflict_id, 422, error="resolution", form=form)
    try:
        await conflicts.resolve_conflict(
            p.session,
            p.user,
            conflict_id,
            resolution=resolution,
            note=note,
            inspection_id=int(raw_inspection) if raw_inspection.isdigit() else None,
            if_match=int(version) if version.isdigit() else None,
        )
    except ValidationFailed as exc:
        await p.session.rollback()
        field = str((exc.errors or [{}])[0].get("field", ""))
        return await _render_conflict(p, conflict_id, 422, error=field or "invalid", form=form)
    except Forbidden:
        await p.session.rollback()
        return await _render_conflict(p, conflict_id, 403, error="forbidden", form=form)
    except (Conflict, PreconditionFailed):
        await p.session.rollback()
        return await _render_conflict(p, conflict_id, 409, error="changed", form=form)
    return p.redirect(f"/conflicts/{conflict_id}?done=resolved")


@router.post("/conflicts/{conflict_id}/joint", response_class=HTMLResponse)
async def propose(conflict_id: int, p: Resolver) -> Response:
    """Propose one joint visit for the finding's inspections."""
    form = await p.form()
    found = await conflicts.get_conflict(p.session, p.user, conflict_id)
    lead = str(form.get("lead_agency", ""))
    try:
        visit = date.fromisoformat(str(form.get("date", "")))
    except ValueError:
        return await _render_conflict(p, conflict_id, 422, error="date", form=form)
    try:
        proposal = await conflicts.propose_joint(
            p.session, p.user, list(found.inspection_ids), lead, visit
        )
    except ValidationFailed as exc:
        await p.session.rollback()
        field = str((exc.errors or [{}])[0].get("field", ""))
        return await _render_conflict(p, conflict_id, 422, error=field or "joint", form=form)
    except (Conflict, PreconditionFailed):
        await p.session.rollback()
        return await _render_conflict(p, conflict_id, 409, error="joint_conflict", form=form)
    return p.redirect(f"/joint-inspections/{proposal.id}")


async def _render_proposal(
    p: Page, proposal_id: int, status_code: int = 200, **extra: Any
) -> Response:
    proposal, consents = await conflicts.get_proposal(p.session, p.user, proposal_id)
    return p.render(
        "joint.html",
        status_code=status_code,
        jp=conflicts.proposal_view(proposal, consents),
        error=extra.get("error"),
    )


@router.get("/joint-inspections/{proposal_id}", response_class=HTMLResponse)
async def proposal_page(proposal_id: int, p: Reader) -> Response:
    """A joint inspection proposal: its agencies, consents and state."""
    return await _render_proposal(p, proposal_id)


@router.post("/joint-inspections/{proposal_id}/{action}", response_class=HTMLResponse)
async def proposal_action(proposal_id: int, action: str, p: Resolver) -> Response:
    """Consent (approver), accept (supervisor) or reject a proposal."""
    form = await p.form()
    note = str(form.get("note", "")).strip() or None
    keyring = keyring_for(p.settings.data_dir)
    try:
        if action == "consent" and p.user.role is Role.approver:
            await conflicts.consent_joint(p.session, p.user, proposal_id, keyring)
        elif action == "accept" and p.user.role is Role.supervisor:
            await conflicts.accept_joint(p.session, p.user, proposal_id, keyring, note)
        elif action == "reject":
            await conflicts.reject_joint(p.session, p.user, proposal_id, note)
        else:
            raise Forbidden("This action is not available to your role.")
    except (Conflict, PreconditionFailed, ValidationFailed):
        await p.session.rollback()
        return await _render_proposal(p, proposal_id, 409, error="changed")
    return p.redirect(f"/joint-inspections/{proposal_id}")
