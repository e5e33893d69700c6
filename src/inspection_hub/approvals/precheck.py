"""The conflict pre-check shown with a check request: history, cap, merge candidates, findings.

Everything is computed from one load of the enterprise's facts (conflicts/facts.py, Core SQL) and
the pure rules (conflicts/rules.py); nothing here writes.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from inspection_hub.auth.principal import Principal
from inspection_hub.conflicts.facts import EnterpriseFacts, InspectionRow, request_fact
from inspection_hub.conflicts.rules import (
    COUNTED_STATUSES,
    MERGE_OPEN_STATUSES,
    InspectionFact,
    evaluate,
    gap_days,
)
from inspection_hub.policy import Policy


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


def _inspection_view(row: InspectionRow, viewer: Principal) -> dict[str, Any]:
    """What the viewer may see of an inspection: other agencies' checks without matters/outcome."""
    fact = row.fact
    own = viewer.may_access_agency(fact.agency_code)
    view: dict[str, Any] = {
        "id": fact.id,
        "agency": fact.agency_code,
        "kind": fact.kind,
        "status": fact.status,
        "window_start": _iso(fact.window_start),
        "window_end": _iso(fact.window_end),
        "visit_date": _iso(fact.visit_date),
        "categories": sorted(fact.categories),
        "own_agency": own,
    }
    if own:
        view["matters"] = list(row.matters)
        view["outcome"] = row.outcome
        view["basis"] = fact.basis
    return view


def _merge_view(fact: InspectionFact, gap: int) -> dict[str, Any]:
    return {
        "inspection_id": None if fact.is_request else fact.id,
        "check_request_id": -fact.id if fact.is_request else None,
        "agency": fact.agency_code,
        "status": fact.status,
        "window_start": _iso(fact.window_start),
        "window_end": _iso(fact.window_end),
        "categories": sorted(fact.categories),
        "gap_days": gap,
    }


def build_precheck(
    loaded: EnterpriseFacts,
    viewer: Principal,
    policy: Policy,
    *,
    request_id: int,
    agency_code: str,
    categories: frozenset[str],
    basis: str,
    window_start: date,
    window_end: date,
) -> dict[str, Any]:
    """The pre-check of one request against the loaded facts (the request's own rows ignored)."""
    candidate = request_fact(
        request_id,
        agency_code=agency_code,
        uscc=loaded.enterprise.uscc,
        categories=categories,
        basis=basis,
        window_start=window_start,
        window_end=window_end,
    )
    # The request's own (emergency) inspection is the request itself, not history.
    rows = [r for r in loaded.inspections if r.check_request_id != request_id]
    history = [r.fact for r in rows] + [f for f in loaded.requests if f.id != candidate.id]
    year = window_start.year

    this_year = [r for r in rows if r.fact.anchor.year == year]
    counted = {r.fact.joint_id or r.fact.id for r in this_year if r.fact.status in COUNTED_STATUSES}
    risk_class = loaded.enterprise.risk_class_on(window_start)
    cap_view: dict[str, Any] = {"year": year, "risk_class": risk_class, "count": len(counted)}
    if risk_class is not None:
        cap = policy.cap_for(risk_class)
        cap_view |= {
            "cap": cap,
            "remaining": max(cap - len(counted), 0),
            "with_this_request": len(counted) + 1,
            "would_exceed": len(counted) + 1 > cap,
        }
    cap_view["cap_exempt_basis"] = policy.is_cap_exempt(basis)

    mergeable = []
    for fact in history:
        if fact.agency_code == agency_code or fact.status not in MERGE_OPEN_STATUSES:
            continue
        gap = gap_days(candidate, fact)
        if gap <= policy.merge.window_days:
            mergeable.append(_merge_view(fact, gap))

    findings = evaluate(candidate, history, loaded.enterprise, policy)
    return {
        "policy_version": policy.version,
        "year": year,
        "inspections": [_inspection_view(r, viewer) for r in this_year],
        "cap": cap_view,
        "mergeable": mergeable,
        "merge_window_days": policy.merge.window_days,
        "findings": [
            {
                "kind": f.kind,
                "inspection_ids": sorted(f.inspection_ids),
                "lead_agency": f.lead_agency,
                "policy_version": f.policy_version,
                "detail": f.detail,
            }
            for f in findings
        ],
    }
