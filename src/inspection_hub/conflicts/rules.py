"""Conflict rules as pure functions over plain facts (no database).

``evaluate`` runs every rule for one candidate inspection (or a not-yet-approved check request)
against the enterprise's other inspections. The same function serves the synchronous pre-check of
a check request and the event-driven detector.

Definitions used throughout:

* An inspection's *date range* is ``[visit_date, visit_date]`` once it has a visit date, else its
  planned window ``[window_start, window_end]`` (inclusive). Its *anchor* day is ``visit_date`` or,
  without one, ``window_start``.
* The *gap* between two inspections is 0 when their date ranges overlap (sharing a day counts),
  otherwise the number of days from the end of the earlier range to the start of the later one
  (ranges ending on the 1st and starting on the 2nd are 1 day apart).
* *Counted* inspections are those with status ``scheduled``, ``in_progress`` or ``completed``.
  ``cancelled`` and ``merged`` inspections never count; other ``pending_request`` facts in the
  history take part only in ``mergeable`` (an open request can join a joint visit, but is not yet
  an inspection that could be repeated or counted against the cap). The candidate itself counts
  whatever its status, unless it is ``cancelled`` or ``merged`` (then nothing is reported).
* Inspections sharing a ``joint_id`` form one joint visit: they count once for the cap and are
  never reported against each other.
* For a check request the caller passes an id that cannot collide with inspection ids (e.g. the
  negated request id); findings of a request are for the pre-check and are marked
  ``detail["candidate_is_request"] = True``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

from inspection_hub.policy import RISK_CLASSES, Policy, RiskClass

__all__ = [
    "COUNTED_STATUSES",
    "FINDING_KINDS",
    "MERGE_OPEN_STATUSES",
    "EnterpriseFact",
    "Finding",
    "FindingKind",
    "InspectionFact",
    "InspectionKind",
    "InspectionStatus",
    "MergeDecision",
    "cap_exceeded_findings",
    "choose_lead_agency",
    "evaluate",
    "exempt_findings",
    "finding_key",
    "gap_days",
    "inspector_conflict_findings",
    "mergeable_findings",
    "reconcile_mergeable",
    "repeat_findings",
]

InspectionKind = Literal["planned", "unplanned", "joint"]
InspectionStatus = Literal[
    "scheduled", "in_progress", "completed", "cancelled", "merged", "pending_request"
]
FindingKind = Literal["repeat", "mergeable", "cap_exceeded", "inspector_conflict", "exempt"]

FINDING_KINDS: tuple[FindingKind, ...] = (
    "repeat",
    "mergeable",
    "cap_exceeded",
    "inspector_conflict",
    "exempt",
)
COUNTED_STATUSES: frozenset[str] = frozenset({"scheduled", "in_progress", "completed"})
MERGE_OPEN_STATUSES: frozenset[str] = frozenset({"scheduled", "pending_request"})
_DONE_STATUSES: frozenset[str] = frozenset({"in_progress", "completed"})
_DEAD_STATUSES: frozenset[str] = frozenset({"cancelled", "merged"})
_KIND_ORDER = {kind: i for i, kind in enumerate(FINDING_KINDS)}


@dataclass(frozen=True, slots=True)
class InspectionFact:
    """One inspection (or a candidate check request) as the rules see it."""

    id: int
    agency_code: str
    uscc: str
    premises_id: int | None
    categories: frozenset[str]
    kind: InspectionKind
    basis: str | None
    status: InspectionStatus
    window_start: date
    window_end: date
    visit_date: date | None = None
    inspector_ids: frozenset[int] = frozenset()
    is_request: bool = False
    joint_id: int | None = None

    def __post_init__(self) -> None:
        if self.window_end < self.window_start:
            raise ValueError(f"inspection {self.id}: window_end is before window_start")
        # Accept any iterable from callers, store frozensets (hashable, order-free).
        object.__setattr__(self, "categories", frozenset(self.categories))
        object.__setattr__(self, "inspector_ids", frozenset(self.inspector_ids))

    @property
    def date_range(self) -> tuple[date, date]:
        """``(visit_date, visit_date)`` once visited, else the planned window (inclusive)."""
        if self.visit_date is not None:
            return self.visit_date, self.visit_date
        return self.window_start, self.window_end

    @property
    def anchor(self) -> date:
        """The day the inspection is dated by: visit date, else window start."""
        return self.visit_date if self.visit_date is not None else self.window_start

    @property
    def booked_day(self) -> date | None:
        """The one day the inspectors are booked: visit date or a one-day window, else None."""
        if self.visit_date is not None:
            return self.visit_date
        if self.window_start == self.window_end:
            return self.window_start
        return None


@dataclass(frozen=True, slots=True)
class EnterpriseFact:
    """The inspected enterprise: risk class history, founding date, own no-disturb periods."""

    uscc: str
    risk_classes: tuple[tuple[date, RiskClass], ...] = ()
    established_on: date | None = None
    no_disturb: tuple[tuple[date, date], ...] = ()

    def __post_init__(self) -> None:
        for _, risk_class in self.risk_classes:
            if risk_class not in RISK_CLASSES:
                raise ValueError(f"unknown risk class {risk_class!r}")
        for start, end in self.no_disturb:
            if end < start:
                raise ValueError(f"no-disturb period ends {end} before it starts {start}")
        object.__setattr__(self, "risk_classes", tuple(sorted(self.risk_classes)))
        object.__setattr__(self, "no_disturb", tuple(sorted(self.no_disturb)))

    def risk_class_on(self, day: date) -> RiskClass | None:
        """Risk class in force on ``day`` (the earliest known one before the first change)."""
        if not self.risk_classes:
            return None
        current = self.risk_classes[0][1]
        for since, risk_class in self.risk_classes:
            if since <= day:
                current = risk_class
            else:
                break
        return current


@dataclass(frozen=True, slots=True)
class Finding:
    """One conflict: its kind, the inspections involved and JSON-ready details."""

    kind: FindingKind
    inspection_ids: frozenset[int]
    enterprise: str
    detail: dict[str, Any] = field(hash=False)
    lead_agency: str | None
    policy_version: str

    @property
    def key(self) -> str:
        """Idempotency key: see ``finding_key``."""
        return finding_key(self.kind, self.inspection_ids)


@dataclass(frozen=True, slots=True)
class MergeDecision:
    """What to do with a new mergeable group given the open mergeable findings."""

    action: Literal["new", "grow", "unchanged"]
    conflict_id: int | None
    inspection_ids: frozenset[int]
    superseded: tuple[int, ...] = ()


def finding_key(kind: str, ids: Iterable[int]) -> str:
    """Stable idempotency key ``kind:id1,id2,...`` (ids sorted ascending, duplicates dropped)."""
    return f"{kind}:" + ",".join(str(i) for i in sorted(set(ids)))


def gap_days(first: InspectionFact, second: InspectionFact) -> int:
    """Days between two inspections' date ranges; 0 when they overlap or share a day."""
    a_start, a_end = first.date_range
    b_start, b_end = second.date_range
    return max(0, (max(a_start, b_start) - min(a_end, b_end)).days)


def _iso(day: date) -> str:
    return day.isoformat()


def _others(candidate: InspectionFact, history: Iterable[InspectionFact]) -> list[InspectionFact]:
    """Other inspections of the candidate's enterprise, deduplicated by id, sorted by id."""
    by_id: dict[int, InspectionFact] = {}
    for fact in history:
        if fact.uscc != candidate.uscc or fact.id == candidate.id:
            continue
        known = by_id.get(fact.id)
        if known is not None and known != fact:
            raise ValueError(f"two different facts for inspection {fact.id}")
        by_id[fact.id] = fact
    return [by_id[i] for i in sorted(by_id)]


def _same_joint(first: InspectionFact, second: InspectionFact) -> bool:
    return first.joint_id is not None and first.joint_id == second.joint_id


def _alive(candidate: InspectionFact) -> bool:
    return candidate.status not in _DEAD_STATUSES


def _base_detail(candidate: InspectionFact) -> dict[str, Any]:
    return {"candidate_id": candidate.id, "candidate_is_request": candidate.is_request}


def repeat_findings(
    candidate: InspectionFact, history: Iterable[InspectionFact], policy: Policy
) -> list[Finding]:
    """Same enterprise and matter category, another counted inspection within the repeat window.

    Any agency's inspection counts (``detail["same_agency"]`` tells which case it is); one finding
    per pair, listing every shared category whose window is met.
    """
    if not _alive(candidate):
        return []
    findings: list[Finding] = []
    for other in _others(candidate, history):
        if other.status not in COUNTED_STATUSES or _same_joint(candidate, other):
            continue
        gap = gap_days(candidate, other)
        windows = {
            category: policy.repeat_window_days(category)
            for category in sorted(candidate.categories & other.categories)
        }
        hits = {category: days for category, days in windows.items() if gap <= days}
        if not hits:
            continue
        detail = _base_detail(candidate) | {
            "categories": sorted(hits),
            "window_days": hits,
            "gap_days": gap,
            "other_inspection_id": other.id,
            "other_agency": other.agency_code,
            "other_status": other.status,
            "same_agency": other.agency_code == candidate.agency_code,
            "scope": "any_agency",
        }
        findings.append(
            Finding(
                kind="repeat",
                inspection_ids=frozenset({candidate.id, other.id}),
                enterprise=candidate.uscc,
                detail=detail,
                lead_agency=None,
                policy_version=policy.version,
            )
        )
    return findings


def _mergeable_pair(first: InspectionFact, second: InspectionFact, policy: Policy) -> bool:
    if first.agency_code == second.agency_code or _same_joint(first, second):
        return False
    if first.status not in MERGE_OPEN_STATUSES or second.status not in MERGE_OPEN_STATUSES:
        return False
    if (
        first.premises_id is not None
        and second.premises_id is not None
        and first.premises_id != second.premises_id
    ):
        return False
    if gap_days(first, second) > policy.merge.window_days:
        return False
    return policy.categories_combinable(first.categories, second.categories)


def choose_lead_agency(group: Iterable[InspectionFact], history: Iterable[InspectionFact]) -> str:
    """The group's agency with the most counted or pending inspections in ``history``.

    Ties go to the agency with the earliest window start within the group, then the smallest
    agency code. ``history`` should include the group's own inspections.
    """
    members = list(group)
    if not members:
        raise ValueError("empty group")
    counts: dict[str, set[int]] = {m.agency_code: set() for m in members}
    for fact in [*members, *history]:
        if fact.agency_code in counts and fact.status not in _DEAD_STATUSES:
            counts[fact.agency_code].add(fact.id)
    earliest: dict[str, date] = {}
    for m in members:
        earliest[m.agency_code] = min(earliest.get(m.agency_code, m.window_start), m.window_start)
    return min(counts, key=lambda code: (-len(counts[code]), earliest[code], code))


def mergeable_findings(
    candidate: InspectionFact, history: Iterable[InspectionFact], policy: Policy
) -> list[Finding]:
    """The connected group of open checks by different agencies that could be one joint visit.

    Two open (``scheduled`` or ``pending_request``) inspections are linked when their agencies
    differ, their premises agree (or either is unknown), their gap is at most the merge window and
    their categories are combinable; the finding covers the candidate's whole connected group.
    """
    if candidate.status not in MERGE_OPEN_STATUSES:
        return []
    others = _others(candidate, history)
    pool = [candidate, *(o for o in others if o.status in MERGE_OPEN_STATUSES)]
    group: dict[int, InspectionFact] = {candidate.id: candidate}
    frontier = [candidate]
    while frontier:
        current = frontier.pop()
        for fact in pool:
            if fact.id not in group and _mergeable_pair(current, fact, policy):
                group[fact.id] = fact
                frontier.append(fact)
    if len(group) < 2:
        return []
    members = [group[i] for i in sorted(group)]
    lead = choose_lead_agency(members, [candidate, *others])
    premises = sorted({m.premises_id for m in members if m.premises_id is not None})
    detail = _base_detail(candidate) | {
        "agencies": sorted({m.agency_code for m in members}),
        "categories": sorted(set().union(*(m.categories for m in members))),
        "premises_ids": premises,
        "window_start": _iso(min(m.date_range[0] for m in members)),
        "window_end": _iso(max(m.date_range[1] for m in members)),
        "merge_window_days": policy.merge.window_days,
        "inspections": [
            {
                "id": m.id,
                "agency": m.agency_code,
                "status": m.status,
                "window_start": _iso(m.window_start),
                "window_end": _iso(m.window_end),
                "categories": sorted(m.categories),
            }
            for m in members
        ],
    }
    return [
        Finding(
            kind="mergeable",
            inspection_ids=frozenset(group),
            enterprise=candidate.uscc,
            detail=detail,
            lead_agency=lead,
            policy_version=policy.version,
        )
    ]


def reconcile_mergeable(
    inspection_ids: frozenset[int], open_findings: Mapping[int, frozenset[int]]
) -> MergeDecision:
    """Decide whether a mergeable group is new, grows an open finding, or is already recorded.

    ``open_findings`` maps open mergeable conflict ids to their inspection id sets. An open finding
    with exactly these ids: ``unchanged``. Open findings sharing any id: ``grow`` the one sharing
    most ids (ties: smallest conflict id) to exactly ``inspection_ids`` (this also covers a group
    that lost a member); the other overlapping ones are listed in ``superseded`` to be closed.
    None overlapping: ``new``.
    """
    ids = frozenset(inspection_ids)
    for conflict_id in sorted(open_findings):
        if open_findings[conflict_id] == ids:
            others = tuple(
                c for c in sorted(open_findings) if c != conflict_id and open_findings[c] & ids
            )
            return MergeDecision("unchanged", conflict_id, ids, others)
    overlapping = [c for c in sorted(open_findings) if open_findings[c] & ids]
    if not overlapping:
        return MergeDecision("new", None, ids)
    target = min(overlapping, key=lambda c: (-len(open_findings[c] & ids), c))
    superseded = tuple(c for c in overlapping if c != target)
    return MergeDecision("grow", target, ids, superseded)


def cap_exceeded_findings(
    candidate: InspectionFact,
    history: Iterable[InspectionFact],
    enterprise: EnterpriseFact,
    policy: Policy,
) -> list[Finding]:
    """The candidate's calendar year would hold more inspections than the risk class's cap.

    The year is the candidate's anchor year; the cap is that of the risk class in force on the
    candidate's window start. All agencies count; a joint visit counts once. Candidates whose basis
    is cap-exempt are flagged with ``blocking = False``. No risk class known: no finding.
    """
    if not _alive(candidate):
        return []
    risk_class = enterprise.risk_class_on(candidate.window_start)
    if risk_class is None:
        return []
    cap = policy.cap_for(risk_class)
    year = candidate.anchor.year
    units: dict[tuple[str, int], set[int]] = {}
    counted = [candidate] + [o for o in _others(candidate, history) if o.status in COUNTED_STATUSES]
    for fact in counted:
        if fact.anchor.year != year:
            continue
        unit = ("joint", fact.joint_id) if fact.joint_id is not None else ("inspection", fact.id)
        units.setdefault(unit, set()).add(fact.id)
    count = len(units)
    if count <= cap:
        return []
    detail = _base_detail(candidate) | {
        "year": year,
        "count": count,
        "cap": cap,
        "risk_class": risk_class,
        "basis": candidate.basis,
        "blocking": not policy.is_cap_exempt(candidate.basis),
        "counted_inspection_ids": sorted(set().union(*units.values())),
    }
    return [
        Finding(
            kind="cap_exceeded",
            inspection_ids=frozenset({candidate.id}),
            enterprise=candidate.uscc,
            detail=detail,
            lead_agency=None,
            policy_version=policy.version,
        )
    ]


def inspector_conflict_findings(
    candidate: InspectionFact,
    history: Iterable[InspectionFact],
    policy: Policy,
    inspector_bookings: Iterable[InspectionFact] = (),
) -> list[Finding]:
    """An inspector double-booked at another enterprise on the same day, or same as last time.

    Double booking compares ``booked_day`` (visit date or a one-day window; multi-day windows are
    not a booking) against counted inspections of *other* enterprises in ``inspector_bookings``.
    "Last time" is the latest in-progress or completed inspection of this enterprise anchored
    strictly before the candidate's anchor (ties: highest id).
    """
    if not _alive(candidate) or not candidate.inspector_ids:
        return []
    findings: dict[frozenset[int], Finding] = {}
    day = candidate.booked_day
    if day is not None:
        seen: dict[int, InspectionFact] = {}
        for booking in inspector_bookings:
            if booking.id == candidate.id or booking.uscc == candidate.uscc:
                continue
            if booking.status not in COUNTED_STATUSES:
                continue
            shared = candidate.inspector_ids & booking.inspector_ids
            if not shared or booking.booked_day != day:
                continue
            known = seen.get(booking.id)
            if known is not None and known != booking:
                raise ValueError(f"two different facts for inspection {booking.id}")
            seen[booking.id] = booking
            ids = frozenset({candidate.id, booking.id})
            findings[ids] = Finding(
                kind="inspector_conflict",
                inspection_ids=ids,
                enterprise=candidate.uscc,
                detail=_base_detail(candidate)
                | {
                    "reason": "double_booked",
                    "inspector_ids": sorted(shared),
                    "date": _iso(day),
                    "other_inspection_id": booking.id,
                    "other_enterprise": booking.uscc,
                    "other_agency": booking.agency_code,
                },
                lead_agency=None,
                policy_version=policy.version,
            )
    earlier = [
        o
        for o in _others(candidate, history)
        if o.status in _DONE_STATUSES
        and o.anchor < candidate.anchor
        and not _same_joint(candidate, o)
    ]
    if earlier:
        previous = max(earlier, key=lambda o: (o.anchor, o.id))
        shared = candidate.inspector_ids & previous.inspector_ids
        if shared:
            ids = frozenset({candidate.id, previous.id})
            findings[ids] = Finding(
                kind="inspector_conflict",
                inspection_ids=ids,
                enterprise=candidate.uscc,
                detail=_base_detail(candidate)
                | {
                    "reason": "same_as_previous",
                    "inspector_ids": sorted(shared),
                    "previous_inspection_id": previous.id,
                    "previous_agency": previous.agency_code,
                    "previous_date": _iso(previous.anchor),
                },
                lead_agency=None,
                policy_version=policy.version,
            )
    return [findings[k] for k in sorted(findings, key=sorted)]


def exempt_findings(
    candidate: InspectionFact, enterprise: EnterpriseFact, policy: Policy
) -> list[Finding]:
    """A check (not on a no-disturb override basis) whose dates meet a no-disturb period.

    Periods: the new-business grace period ``[established_on, established_on + N months)`` and the
    no-disturb list (the policy's entries for the enterprise plus the enterprise's own periods).
    The candidate's date range only has to overlap a period. Planned checks have no basis and are
    always subject; by default complaint- and incident-based checks are not.
    """
    if not _alive(candidate) or policy.overrides_no_disturb(candidate.basis):
        return []
    start, end = candidate.date_range
    reasons: list[dict[str, Any]] = []
    months = policy.exemptions.new_business_grace_months
    if enterprise.established_on is not None and months > 0:
        grace_end = policy.new_business_grace_end(enterprise.established_on)
        if start < grace_end:
            reasons.append(
                {
                    "reason": "new_business",
                    "from": _iso(enterprise.established_on),
                    "to": _iso(grace_end - timedelta(days=1)),
                    "grace_months": months,
                }
            )
    periods = sorted(set(policy.no_disturb_periods(candidate.uscc)) | set(enterprise.no_disturb))
    for period_start, period_end in periods:
        if start <= period_end and period_start <= end:
            reasons.append(
                {"reason": "no_disturb", "from": _iso(period_start), "to": _iso(period_end)}
            )
    if not reasons:
        return []
    detail = _base_detail(candidate) | {
        "kind": candidate.kind,
        "basis": candidate.basis,
        "reasons": reasons,
    }
    return [
        Finding(
            kind="exempt",
            inspection_ids=frozenset({candidate.id}),
            enterprise=candidate.uscc,
            detail=detail,
            lead_agency=None,
            policy_version=policy.version,
        )
    ]


def evaluate(
    candidate: InspectionFact,
    history: Iterable[InspectionFact],
    enterprise: EnterpriseFact,
    policy: Policy,
    inspector_bookings: Iterable[InspectionFact] = (),
) -> list[Finding]:
    """Run every rule for one candidate; findings sorted by kind, then inspection ids.

    ``history``: the enterprise's other inspections (any year, any status; others' facts and the
    candidate's own stale copy are ignored). ``inspector_bookings``: inspections of the candidate's
    inspectors at any enterprise. ``policy``: the version in force, normally
    ``book.at(candidate.window_start)``.
    """
    if candidate.uscc != enterprise.uscc:
        raise ValueError("candidate and enterprise differ")
    if not _alive(candidate):
        return []
    facts = list(history)
    findings = [
        *repeat_findings(candidate, facts, policy),
        *mergeable_findings(candidate, facts, policy),
        *cap_exceeded_findings(candidate, facts, enterprise, policy),
        *inspector_conflict_findings(candidate, facts, policy, inspector_bookings),
        *exempt_findings(candidate, enterprise, policy),
    ]
    return sorted(findings, key=lambda f: (_KIND_ORDER[f.kind], sorted(f.inspection_ids)))
