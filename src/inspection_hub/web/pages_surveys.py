"""The enterprise's survey page `/s/{token}`: no sign-in, phone first, the API's service."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from inspection_hub.errors import Conflict, Gone, NotFound
from inspection_hub.surveys import service as surveys
from inspection_hub.surveys.schemas import SurveyAnswer
from inspection_hub.web.pages import AVAILABLE_PAGES, Page, PageRoute, page

router = APIRouter(route_class=PageRoute, include_in_schema=False)
AVAILABLE_PAGES.add("surveys")

AnyPage = Annotated[Page, Depends(page)]
YES_NO_FIELDS = (
    "certificates_shown",
    "code_scanned",
    "fees_or_favours_asked",
    "items_outside_checklist",
)
INT_FIELDS = ("inspector_count", "duration_minutes", "burden")


def _link_problem(p: Page, exc: NotFound | Gone) -> Response:
    state = "expired" if isinstance(exc, Gone) else "unknown"
    return p.render("survey_closed.html", status_code=exc.status, state=state)


def answer_from_form(form: dict[str, Any]) -> tuple[SurveyAnswer | None, dict[str, str]]:
    """The answer the form describes, or the fields in error (empty inputs mean unanswered)."""
    data: dict[str, Any] = {"occurred": form.get("occurred") or None}
    errors: dict[str, str] = {}
    for name in YES_NO_FIELDS:
        value = form.get(name) or ""
        data[name] = {"yes": True, "no": False}.get(str(value))
    for name in INT_FIELDS:
        value = str(form.get(name) or "").strip()
        if value:
            if value.isdigit():
                data[name] = int(value)
            else:
                errors[name] = "invalid"
    visited = str(form.get("visited_on") or "").strip()
    if visited:
        try:
            data["visited_on"] = date.fromisoformat(visited)
        except ValueError:
            errors["visited_on"] = "invalid"
    comments = str(form.get("comments") or "").strip()
    data["comments"] = comments or None
    try:
        answer = SurveyAnswer(**data)
    except ValidationError as exc:
        for err in exc.errors():
            errors[str(err["loc"][0])] = "invalid"
        return None, errors
    return (answer if not errors else None), errors


@router.get("/s/{token}", response_class=HTMLResponse)
async def survey_page(token: str, p: AnyPage) -> Response:
    """What the record says and the questions; a clear page for an expired or used link."""
    try:
        survey = await surveys.public_survey(p.session, token)
    except (NotFound, Gone) as exc:
        return _link_problem(p, exc)
    if survey["status"] == "answered":
        return p.render("survey_closed.html", state="answered")
    return p.render("survey.html", survey=survey, token=token, form={}, errors={})


@router.post("/s/{token}", response_class=HTMLResponse)
async def survey_submit(token: str, p: AnyPage) -> Response:
    """Store the answer once (POST /public/v1/surveys/{token}/answers does the same)."""
    form = await p.form()
    answer, errors = answer_from_form(form)
    try:
        if answer is None:
            survey = await surveys.public_survey(p.session, token)
            return p.render(
                "survey.html", status_code=422, survey=survey, token=token, form=form, errors=errors
            )
        await surveys.submit_answer(p.session, token, answer)
    except (NotFound, Gone) as exc:
        return _link_problem(p, exc)
    except Conflict:
        return p.render("survey_closed.html", status_code=409, state="answered")
    return p.render("survey_closed.html", state="thanks")
