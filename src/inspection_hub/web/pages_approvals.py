"""The approver's queue: pending check requests with the pre-check beside each; approve/reject."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, Response

from inspection_hub.approvals import service as approvals
from inspection_hub.approvals.state import Action
from inspection_hub.auth.principal import Role
from inspection_hub.db.session import driver_connection
from inspection_hub.errors import Conflict, PreconditionFailed, ValidationFailed
from inspection_hub.web.pages import AVAILABLE_PAGES, Page, PageRoute, signed_in

router = APIRouter(route_class=PageRoute, include_in_schema=False)
AVAILABLE_PAGES.add("approvals")

Reader = Annotated[Page, Depends(signed_in(Role.approver, Role.admin, Role.supervisor))]
Approver = Annotated[Page, Depends(signed_in(Role.approver))]
QUEUE_LIMIT = 100


@router.get("/approvals", response_class=HTMLResponse)
async def queue(p: Reader) -> Response:
    """Pending requests of the agency, oldest first, each with its pre-check (one statement)."""
    views, more = await approvals.pending_queue(
        await driver_connection(p.session), p.user, settings=p.settings, limit=QUEUE_LIMIT
    )
    items = [{"row": view.row, "precheck": view.precheck} for view in views]
    return p.render("approvals.html", items=items, more=more)


async def _render_request(
    p: Page, request_id: int, status_code: int = 200, **extra: Any
) -> Response:
    view = await approvals.get_request(p.session, p.user, request_id, settings=p.settings)
    context: dict[str, Any] = {"comment": "", "error": None, "notice": None}
    context.update(extra)
    return p.render(
        "approval.html", status_code=status_code, row=view.row, precheck=view.precheck, **context
    )


@router.get("/approvals/{request_id}", response_class=HTMLResponse)
async def request_page(request_id: int, p: Reader) -> Response:
    """One request with a fresh pre-check and the decision form."""
    notice = p.request.query_params.get("decided")
    return await _render_request(p, request_id, notice=notice)


@router.post("/approvals/{request_id}/decide", response_class=HTMLResponse)
async def decide(request_id: int, p: Approver) -> Response:
    """Approve or reject once; a decision made elsewhere meanwhile is shown, not overwritten."""
    form = await p.form()
    decision = str(form.get("decision", ""))
    comment = str(form.get("comment", "")).strip()
    version = str(form.get("version", ""))
    if decision not in (Action.approve.value, Action.reject.value):
        return await _render_request(p, request_id, 422, comment=comment, error="decision")
    try:
        await approvals.decide(
            p.session,
            p.user,
            request_id,
            Action(decision),
            comment=comment or None,
            if_match=int(version) if version.isdigit() else None,
            settings=p.settings,
        )
    except ValidationFailed as exc:
        await p.session.rollback()
        field = (exc.errors or [{}])[0].get("field", "")
        error = "comment_required" if field == "comment" else "invalid"
        return await _render_request(p, request_id, 422, comment=comment, error=error)
    except (Conflict, PreconditionFailed):
        await p.session.rollback()
        return await _render_request(p, request_id, 409, comment=comment, error="decided_elsewhere")
    return p.redirect(f"/approvals/{request_id}?decided={decision}")
