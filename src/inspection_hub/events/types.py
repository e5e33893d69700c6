"""Every event type, declared once: name, version, aggregate and meaning. Frozen and versioned.

A payload change that is not backwards compatible gets a new version, never an edit in place.
docs/events.md lists the payloads and consumers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EventType:
    """A declared event type."""

    name: str
    version: int
    aggregate: str
    description: str


_REGISTRY: dict[str, EventType] = {}


def declare(name: str, version: int, aggregate: str, description: str) -> EventType:
    """Declare an event type (module import time only)."""
    if name in _REGISTRY:
        raise ValueError(f"event type {name} declared twice")
    et = EventType(name, version, aggregate, description)
    _REGISTRY[name] = et
    return et


def get(name: str) -> EventType:
    """Look up a declared event type."""
    return _REGISTRY[name]


def all_types() -> list[EventType]:
    """Every declared event type, by name."""
    return sorted(_REGISTRY.values(), key=lambda e: e.name)


# Reference data
AGENCY_CREATED = declare("agency.created", 1, "agency", "An agency was registered.")
ENTERPRISES_IMPORTED = declare(
    "enterprises.imported", 1, "enterprise_import", "A batch of enterprises was imported."
)
ENTERPRISE_UPDATED = declare("enterprise.updated", 1, "enterprise", "An enterprise was changed.")

# Plans and draws
PLAN_CREATED = declare("plan.created", 1, "plan", "A draft plan was filed.")
PLAN_SUBMITTED = declare("plan.submitted", 1, "plan", "A plan was submitted; seed committed.")
PLAN_WITHDRAWN = declare("plan.withdrawn", 1, "plan", "A draft plan was withdrawn.")
PLAN_DRAWN = declare("plan.drawn", 1, "plan", "A plan's draws were completed.")
PLAN_PUBLISHED = declare("plan.published", 1, "plan", "A plan was published (一公开).")
DRAW_COMPLETED = declare("draw.completed", 1, "draw", "A draw selected enterprises/inspectors.")

# Inspections
INSPECTION_SCHEDULED = declare("inspection.scheduled", 1, "inspection", "Inspection scheduled.")
INSPECTION_RESCHEDULED = declare(
    "inspection.rescheduled", 1, "inspection", "An inspection's window changed."
)
INSPECTION_STARTED = declare("inspection.started", 1, "inspection", "An inspection started.")
INSPECTION_COMPLETED = declare("inspection.completed", 1, "inspection", "Inspection completed.")
INSPECTION_CANCELLED = declare("inspection.cancelled", 1, "inspection", "Inspection cancelled.")
INSPECTION_MERGED = declare(
    "inspection.merged", 1, "inspection", "An inspection was merged into a joint inspection."
)
INSPECTION_CODE_SCANNED = declare(
    "inspection.code_scanned", 1, "inspection", "The enterprise scanned the inspection code."
)
INSPECTION_CODE_REFUSED = declare(
    "inspection_code.refused", 1, "inspection_code", "A forged/expired/cancelled code was shown."
)

# Check requests (unplanned checks)
CHECK_REQUEST_SUBMITTED = declare(
    "check_request.submitted", 1, "check_request", "An unplanned check was requested."
)
CHECK_REQUEST_APPROVED = declare(
    "check_request.approved", 1, "check_request", "The agency head approved a request."
)
CHECK_REQUEST_REJECTED = declare(
    "check_request.rejected", 1, "check_request", "The agency head rejected a request."
)
CHECK_REQUEST_WITHDRAWN = declare(
    "check_request.withdrawn", 1, "check_request", "The requester withdrew a request."
)
CHECK_REQUEST_ESCALATED = declare(
    "check_request.escalated", 1, "check_request", "A request passed its decision deadline."
)
CHECK_REQUEST_EXPIRED = declare(
    "check_request.expired", 1, "check_request", "A request expired undecided."
)
CHECK_REQUEST_EMERGENCY_UNAPPROVED = declare(
    "check_request.emergency_unapproved",
    1,
    "check_request",
    "An emergency check was not approved in time (emergency_unapproved finding).",
)

# Conflicts and joint inspections
CONFLICT_DETECTED = declare("conflict.detected", 1, "conflict", "The detector raised a finding.")
CONFLICT_UPDATED = declare("conflict.updated", 1, "conflict", "A finding grew to more checks.")
CONFLICT_RESOLVED = declare("conflict.resolved", 1, "conflict", "A finding was resolved.")
JOINT_PROPOSED = declare(
    "joint_inspection.proposed", 1, "joint_proposal", "A joint inspection was proposed."
)
JOINT_ACCEPTED = declare(
    "joint_inspection.accepted", 1, "joint_proposal", "All agencies consented; merged."
)

# Surveys and verification
SURVEY_PLANNED = declare("survey.planned", 1, "survey", "A follow-up survey was planned.")
SURVEY_SENT = declare("survey.sent", 1, "survey", "A survey was sent to the enterprise.")
SURVEY_LINK_ISSUED = declare(
    "survey.link_issued", 1, "survey", "A single-use survey link was issued (for SMS/letter)."
)
SURVEY_ANSWERED = declare("survey.answered", 1, "survey", "The enterprise answered a survey.")
SURVEY_REMINDED = declare("survey.reminded", 1, "survey", "A reminder was sent.")
SURVEY_EXPIRED = declare("survey.expired", 1, "survey", "A survey expired unanswered.")
TRACE_CHECK_FAILED = declare(
    "trace_check.failed", 1, "inspection", "A trace check of a completed inspection failed."
)
