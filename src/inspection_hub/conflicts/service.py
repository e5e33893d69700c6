"""Conflict detection, resolution, joint inspections and the burden ledger (cap ledger)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.audit.service import record
from inspection_hub.auth.principal import Principal, Role
from inspection_hub.conflicts import facts as fact_loader
from inspection_hub.conflicts import repository as repo
from inspection_hub.conflicts.models import Conflict, JointProposal, JointProposalConsent
from inspection_hub.conflicts.rules import (
    COUNTED_STATUSES,
    EnterpriseFact,
    Finding,
    InspectionFact,
    evaluate,
    reconcile_mergeable,
)
from inspection_hub.db.locking import xact_lock
from inspection_hub.errors import Conflict as ConflictError
from inspection_hub.errors import Forbidden, NotFound, PreconditionFailed, ValidationFailed
from inspection_hub.events import types as ev
from inspection_hub.events.outbox import emit
from inspection_hub.inspections.codes import CodeKeyring
from inspection_hub.inspections.models import Inspection, InspectionInspector, InspectionMatter
from inspection_hub.inspections.service import create_inspection
from inspection_hub.inspections.state import next_status
from inspection_hub.kit.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from inspection_hub.kit.timeutil import local_today
from inspection_hub.policy import (
    PolicyBook,
    PolicyNotInForceError,
    default_policy_path,
    load_policy,
)

LOCK_NAMESPACE = "conflicts"
RESOLUTIONS = ("merged", "justified", "cancelled", "dismissed")
_LIVE_STATUSES = ("scheduled", "in_progress", "completed")


@lru_cache(maxsize=8)
def _book_at(path: Path, mtime_ns: int) -> PolicyBook:
    return load_policy(path)


def policy_book(path: Path | None = None) -> PolicyBook:
    """The policy file in force (reloaded when the file changes)."""
    resolved = (path or default_policy_path()).resolve()
    return _book_at(resolved, resolved.stat().st_mtime_ns)


# -- detection --------------------------------------------------------------------------------


@dataclass
class DetectionResult:
    """What one detection pass did."""

    detected: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    superseded: list[int] = field(default_factory=list)


def _finding_agencies(
    finding: Finding, agencies: dict[int, frozenset[str]], facts: dict[int, InspectionFact]
) -> set[str]:
    codes: set[str] = set()
    ids = set(finding.inspection_ids)
    if finding.kind == "cap_exceeded":
        ids |= set(finding.detail.get("counted_inspection_ids", []))
    for i in ids:
        codes |= agencies.get(i, frozenset())
        if i in facts:
            codes.add(facts[i].agency_code)
    for key in ("other_agency", "previous_agency"):
        value = finding.detail.get(key)
        if isinstance(value, str):
            codes.add(value)
    return codes


def _event_payload(conflict_id: int, finding: Finding, agencies: Iterable[str]) -> dict[str, Any]:
    return {
        "conflict_id": conflict_id,
        "kind": finding.kind,
        "enterprise": finding.enterprise,
        "inspection_ids": sorted(finding.inspection_ids),
        "agencies": sorted(set(agencies)),
        "lead_agency": finding.lead_agency,
        "policy_version": finding.policy_version,
        "detail": finding.detail,
    }


async def detect_for_enterprise(
    session: AsyncSession,
    uscc: str,
    book: PolicyBook,
    inspection_ids: Iterable[int] | None = None,
) -> DetectionResult:
    """Run the rules for inspections of one enterprise and record findings idempotently.

    ``inspection_ids=None`` re-evaluates every live inspection of the enterprise's recent years.
    Serialised per enterprise by an advisory lock, so concurrent passes yield one finding.
    """
    result = DetectionResult()
    wanted = set(inspection_ids) if inspection_ids is not None else None
    loaded = await load_locked(session, uscc, wanted)
    if loaded is None:
        return result
    by_id = {f.id: f for f in loaded.history}
    if wanted is not None and not wanted <= by_id.keys():
        # An old candidate: look at the enterprise's whole history.
        loaded = await fact_loader.load_facts(session, uscc, date(1, 1, 1), candidate_ids=wanted)
        if loaded is None:
            return result
    await detect_loaded(session, loaded, wanted, book, result)
    return result


async def load_locked(
    session: AsyncSession, uscc: str, wanted: set[int] | None
) -> fact_loader.EnterpriseFacts | None:
    """Take the enterprise's detection lock and load its recent facts (one round trip).

    Bookings are loaded for the ``wanted`` inspections, or every live one when None.
    """
    return await fact_loader.load_facts(
        session,
        uscc,
        fact_loader.history_start(local_today().year),
        candidate_ids=wanted or (),
        all_live=wanted is None,
        lock_namespace=LOCK_NAMESPACE,
    )


async def detect_loaded(
    session: AsyncSession,
    loaded: fact_loader.EnterpriseFacts,
    wanted: set[int] | None,
    book: PolicyBook,
    result: DetectionResult,
) -> None:
    """Run the rules for the wanted (None: every live) inspections of loaded facts; record."""
    history, agencies = loaded.history, loaded.agencies
    by_id = {f.id: f for f in history}
    if wanted is None:
        candidates = [f for f in history if f.status in _LIVE_STATUSES]
    else:
        candidates = [by_id[i] for i in sorted(wanted) if i in by_id]
    for candidate in candidates:
        await _detect_one(
            session,
            loaded.enterprise,
            candidate,
            history,
            agencies,
            by_id,
            book,
            result,
            loaded.bookings,
        )


async def _detect_one(
    session: AsyncSession,
    enterprise: EnterpriseFact,
    candidate: InspectionFact,
    history: list[InspectionFact],
    agencies: dict[int, frozenset[str]],
    by_id: dict[int, InspectionFact],
    book: PolicyBook,
    result: DetectionResult,
    bookings: list[InspectionFact],
) -> None:
    try:
        policy = book.at(candidate.window_start)
    except PolicyNotInForceError:
        return
    # ``bookings`` holds every candidate's bookings; the rule keeps those on this one's day
    # sharing one of its inspectors.
    for finding in evaluate(candidate, history, enterprise, policy, bookings):
        codes = _finding_agencies(finding, agencies, by_id)
        if finding.kind == "mergeable":
            await _record_mergeable(session, finding, codes, result)
            continue
        conflict_id = await repo.insert_finding(session, finding, sorted(codes))
        if conflict_id is not None:
            result.detected.append(conflict_id)
            await emit(
                session,
                ev.CONFLICT_DETECTED,
                conflict_id,
                _event_payload(conflict_id, finding, codes),
                enterprise_uscc=finding.enterprise,
                agency_codes=sorted(codes),
            )


async def _record_mergeable(
    session: AsyncSession, finding: Finding, codes: set[str], result: DetectionResult
) -> None:
    uscc = finding.enterprise
    decision = reconcile_mergeable(finding.inspection_ids, await repo.open_mergeable(session, uscc))
    if decision.superseded:
        closed = await repo.resolve_system(
            session,
            uscc,
            decision.superseded,
            "dismissed",
            f"superseded by conflict {decision.conflict_id}" if decision.conflict_id else "",
        )
        result.superseded.extend(closed)
        for conflict_id in closed:
            await _emit_resolved(session, uscc, conflict_id, None)
    if decision.action == "unchanged":
        return
    if decision.action == "grow" and decision.conflict_id is not None:
        taken = (
            await session.execute(
                text(
                    "SELECT id FROM conflict WHERE enterprise_uscc = CAST(:u AS bpchar) "
                    "AND finding_key = :k "
                    "AND id <> :id"
                ),
                {"u": uscc, "k": finding.key, "id": decision.conflict_id},
            )
        ).first()
        if taken is not None:  # this exact group was recorded and resolved before
            return
        await repo.grow_mergeable(session, uscc, decision.conflict_id, finding, sorted(codes))
        result.updated.append(decision.conflict_id)
        await emit(
            session,
            ev.CONFLICT_UPDATED,
            decision.conflict_id,
            _event_payload(decision.conflict_id, finding, codes),
            enterprise_uscc=uscc,
            agency_codes=sorted(codes),
        )
        return
    new_id = await repo.insert_finding(session, finding, sorted(codes))
    if new_id is not None:
        result.detected.append(new_id)
        await emit(
            session,
            ev.CONFLICT_DETECTED,
            new_id,
            _event_payload(new_id, finding, codes),
            enterprise_uscc=uscc,
            agency_codes=sorted(codes),
        )


async def settle_inspection_gone(
    session: AsyncSession, uscc: str, inspection_id: int, book: PolicyBook, reason: str
) -> list[int]:
    """An inspection was cancelled or merged: close the open findings that no longer stand.

    A mergeable group with more than two members shrinks (re-detected for its other members);
    every other open finding naming the inspection is resolved by the system.
    """
    await xact_lock(session, LOCK_NAMESPACE, uscc)
    rows = (
        await session.execute(
            text(
                "SELECT id, kind, inspection_ids FROM conflict "
                "WHERE enterprise_uscc = CAST(:u AS bpchar) "
                "AND status = 'open' AND inspection_ids @> ARRAY[CAST(:i AS bigint)]"
            ),
            {"u": uscc, "i": inspection_id},
        )
    ).all()
    to_close: list[int] = []
    redetect: set[int] = set()
    for row in rows:
        members = {int(i) for i in row.inspection_ids} - {inspection_id}
        if row.kind == "mergeable" and len(members) >= 2:
            redetect |= members
        elif row.kind in ("repeat", "mergeable", "cap_exceeded", "inspector_conflict", "exempt"):
            to_close.append(int(row.id))
    closed = await repo.resolve_system(
        session, uscc, to_close, reason, f"inspection {inspection_id} {reason}"
    )
    for conflict_id in closed:
        await _emit_resolved(session, uscc, conflict_id, None)
    if redetect:
        await detect_for_enterprise(session, uscc, book, redetect)
    return closed


async def record_external_finding(
    session: AsyncSession,
    *,
    kind: str,
    uscc: str,
    inspection_ids: Sequence[int],
    agency_codes: Sequence[str],
    detail: dict[str, Any],
    policy_version: str | None = None,
    key_suffix: str = "",
) -> int | None:
    """Record a finding raised elsewhere (emergency_unapproved, survey_discrepancy, ...).

    Idempotent on (kind, inspection ids, key_suffix); returns the new id or None if known.
    """
    await xact_lock(session, LOCK_NAMESPACE, uscc)
    finding = Finding(
        kind=kind,  # type: ignore[arg-type]  # the stored kinds extend the rules' kinds
        inspection_ids=frozenset(inspection_ids),
        enterprise=uscc,
        detail=detail,
        lead_agency=None,
        policy_version=policy_version or "",
    )
    key = finding.key + (f":{key_suffix}" if key_suffix else "")
    conflict_id = await repo.insert_finding(session, finding, agency_codes, key=key)
    if conflict_id is not None:
        await emit(
            session,
            ev.CONFLICT_DETECTED,
            conflict_id,
            _event_payload(conflict_id, finding, agency_codes),
            enterprise_uscc=uscc,
            agency_codes=sorted(set(agency_codes)),
        )
    return conflict_id


async def enterprises_of_inspections(
    session: AsyncSession, inspection_ids: Iterable[int]
) -> dict[str, set[int]]:
    """Group inspection ids by their enterprise."""
    ids = sorted(set(inspection_ids))
    if not ids:
        return {}
    rows = (
        await session.execute(
            text(
                "SELECT enterprise_uscc, id FROM inspection WHERE id = ANY(CAST(:ids AS bigint[]))"
            ),
            {"ids": ids},
        )
    ).all()
    out: dict[str, set[int]] = {}
    for row in rows:
        out.setdefault(row.enterprise_uscc, set()).add(int(row.id))
    return out


async def inspections_of_batch(
    session: AsyncSession, *, plan_id: int | None = None, draw_id: int | None = None
) -> dict[str, set[int]]:
    """Live inspections created by a plan or a draw, grouped by enterprise."""
    if plan_id is None and draw_id is None:
        return {}
    column = "draw_id" if draw_id is not None else "plan_id"
    rows = (
        await session.execute(
            text(
                f"SELECT enterprise_uscc, id FROM inspection WHERE {column} = :v "
                "AND status IN ('scheduled', 'in_progress', 'completed')"
            ),
            {"v": draw_id if draw_id is not None else plan_id},
        )
    ).all()
    out: dict[str, set[int]] = {}
    for row in rows:
        out.setdefault(row.enterprise_uscc, set()).add(int(row.id))
    return out


# -- reading and resolving ----------------------------------------------------------------


async def list_conflicts(
    session: AsyncSession,
    principal: Principal,
    *,
    status: str | None,
    kind: str | None,
    enterprise: str | None,
    agency: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Conflict], str | None]:
    """Findings newest first; agency roles see only those involving their own agency."""
    limit = max(1, min(limit, MAX_LIMIT))
    stmt = select(Conflict).order_by(Conflict.id.desc()).limit(limit + 1)
    if status:
        stmt = stmt.where(Conflict.status == status)
    if kind:
        stmt = stmt.where(Conflict.kind == kind)
    if enterprise:
        stmt = stmt.where(Conflict.enterprise_uscc == enterprise.upper())
    if agency:
        stmt = stmt.where(Conflict.agency_codes.contains([agency]))
    if not principal.sees_everything:
        stmt = stmt.where(Conflict.agency_codes.contains([principal.agency_code or ""]))
    after = decode_cursor(cursor)
    if after:
        stmt = stmt.where(Conflict.id < int(after[0]))
    items = list((await session.execute(stmt)).scalars())
    next_cursor = encode_cursor([items[limit - 1].id]) if len(items) > limit else None
    return items[:limit], next_cursor


async def get_conflict(session: AsyncSession, principal: Principal, conflict_id: int) -> Conflict:
    """One finding, or 404; 403 when the caller's agency is not involved."""
    found = (
        await session.execute(select(Conflict).where(Conflict.id == conflict_id))
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"Conflict {conflict_id} does not exist.")
    principal.ensure_any_agency(set(found.agency_codes))
    return found


def conflict_view(c: Conflict) -> dict[str, Any]:
    """A finding as JSON (audit rows and events)."""
    return {
        "id": c.id,
        "enterprise": c.enterprise_uscc,
        "kind": c.kind,
        "status": c.status,
        "inspection_ids": sorted(c.inspection_ids),
        "agencies": sorted(c.agency_codes),
        "resolution": c.resolution,
        "resolution_note": c.resolution_note,
        "version": c.version,
    }


async def _emit_resolved(
    session: AsyncSession, uscc: str, conflict_id: int, actor: Principal | None
) -> None:
    row = (
        await session.execute(
            text(
                "SELECT id, kind, inspection_ids, agency_codes, resolution, resolution_note "
                "FROM conflict WHERE enterprise_uscc = CAST(:u AS bpchar) AND id = :id"
            ),
            {"u": uscc, "id": conflict_id},
        )
    ).one()
    payload = {
        "conflict_id": conflict_id,
        "enterprise": uscc,
        "kind": row.kind,
        "inspection_ids": sorted(int(i) for i in row.inspection_ids),
        "resolution": row.resolution,
        "note": row.resolution_note,
        "resolved_by": actor.username if actor else "system",
    }
    await record(session, actor, "conflict.resolve", "conflict", conflict_id, after=payload)
    await emit(
        session,
        ev.CONFLICT_RESOLVED,
        conflict_id,
        payload,
        enterprise_uscc=uscc,
        agency_codes=sorted(row.agency_codes),
    )


async def cancel_inspection(
    session: AsyncSession, actor: Principal, uscc: str, inspection_id: int, reason: str
) -> Inspection:
    """Cancel a scheduled inspection of the caller's agency (state machine, audit, event)."""
    inspection = (
        await session.execute(
            select(Inspection)
            .where(Inspection.enterprise_uscc == uscc, Inspection.id == inspection_id)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if inspection is None:
        raise NotFound(f"Inspection {inspection_id} does not exist.")
    actor.ensure_agency(inspection.agency_code)
    before = {"status": inspection.status, "version": inspection.version}
    inspection.status = next_status(inspection.status, "cancel").value
    inspection.version += 1
    await session.flush()
    after = {"status": inspection.status, "version": inspection.version, "reason": reason}
    await record(
        session, actor, "inspection.cancel", "inspection", inspection.id, before=before, after=after
    )
    await emit(
        session,
        ev.INSPECTION_CANCELLED,
        inspection.id,
        {
            "inspection_id": inspection.id,
            "enterprise": uscc,
            "agency": inspection.agency_code,
            "reason": reason,
        },
        enterprise_uscc=uscc,
        agency_codes=[inspection.agency_code],
    )
    return inspection


async def resolve_conflict(
    session: AsyncSession,
    actor: Principal,
    conflict_id: int,
    *,
    resolution: str,
    note: str | None,
    inspection_id: int | None,
    if_match: int | None = None,
) -> Conflict:
    """Resolve an open finding exactly once (409 when already resolved, 412 when stale)."""
    found = await get_conflict(session, actor, conflict_id)
    if resolution == "dismissed" and actor.role is not Role.supervisor:
        raise Forbidden("Only a supervisor may dismiss a finding.")
    if resolution == "justified" and not (note or "").strip():
        raise ValidationFailed(
            "A justified finding needs a reason.",
            errors=[{"field": "note", "detail": "required when resolution is justified"}],
        )
    if resolution == "cancelled":
        if inspection_id is None or inspection_id not in found.inspection_ids:
            raise ValidationFailed(
                "Name one inspection of this finding to cancel.",
                errors=[{"field": "inspection_id", "detail": "must be one of the finding's"}],
            )
    elif inspection_id is not None:
        raise ValidationFailed(
            "inspection_id is only for resolution cancelled.",
            errors=[{"field": "inspection_id", "detail": "only with cancelled"}],
        )
    if found.status != "open":
        raise ConflictError(f"Conflict {conflict_id} is already resolved ({found.resolution}).")
    if if_match is not None and if_match != found.version:
        raise PreconditionFailed(f"Conflict {conflict_id} is at version {found.version}.")
    uscc = found.enterprise_uscc
    before = conflict_view(found)
    updated = (
        await session.execute(
            text(
                """
                UPDATE conflict SET status = 'resolved', resolution = :resolution,
                       resolution_note = :note, resolved_by = :uid, resolved_by_name = :uname,
                       resolved_at = now(), updated_at = now(), version = version + 1
                WHERE enterprise_uscc = CAST(:u AS bpchar) AND id = :id AND status = 'open'
                  AND version = :version
                RETURNING id
                """
            ),
            {
                "resolution": resolution,
                "note": note,
                "uid": actor.user_id,
                "uname": actor.username,
                "u": uscc,
                "id": conflict_id,
                "version": found.version,
            },
        )
    ).first()
    if updated is None:
        raise ConflictError(f"Conflict {conflict_id} was resolved concurrently.")
    if resolution == "cancelled" and inspection_id is not None:
        await cancel_inspection(
            session, actor, uscc, inspection_id, note or f"resolves conflict {conflict_id}"
        )
    await session.refresh(found)
    await record(
        session,
        actor,
        "conflict.resolve",
        "conflict",
        conflict_id,
        before=before,
        after=conflict_view(found),
    )
    await emit(
        session,
        ev.CONFLICT_RESOLVED,
        conflict_id,
        {
            "conflict_id": conflict_id,
            "enterprise": uscc,
            "kind": found.kind,
            "inspection_ids": sorted(found.inspection_ids),
            "resolution": resolution,
            "note": note,
            "resolved_by": actor.username,
            "cancelled_inspection_id": inspection_id,
        },
        enterprise_uscc=uscc,
        agency_codes=sorted(found.agency_codes),
    )
    return found


# -- joint inspections (联合检查) --------------------------------------------------------------


def proposal_view(p: JointProposal, consents: Sequence[JointProposalConsent]) -> dict[str, Any]:
    """A proposal with its consents as JSON."""
    return {
        "id": p.id,
        "enterprise": p.enterprise_uscc,
        "status": p.status,
        "inspection_ids": sorted(p.inspection_ids),
        "agencies": sorted(p.agency_codes),
        "lead_agency": p.lead_agency,
        "date": p.visit_date.isoformat(),
        "joint_inspection_id": p.joint_inspection_id,
        "consents": [
            {
                "agency": c.agency_code,
                "by": c.user_name,
                "role": c.role,
                "at": c.consented_at.isoformat() if c.consented_at else None,
            }
            for c in sorted(consents, key=lambda c: c.agency_code)
        ],
        "decision_note": p.decision_note,
        "version": p.version,
    }


async def _load_inspections(
    session: AsyncSession, ids: Sequence[int], *, lock: bool
) -> list[Inspection]:
    stmt = select(Inspection).where(Inspection.id.in_(list(ids))).order_by(Inspection.id)
    if lock:
        stmt = stmt.with_for_update()
    return list((await session.execute(stmt)).scalars())


async def propose_joint(
    session: AsyncSession,
    actor: Principal,
    inspection_ids: Sequence[int],
    lead_agency: str,
    visit_date: date,
) -> JointProposal:
    """Propose merging scheduled inspections of one enterprise (different agencies) into one."""
    ids = sorted(set(inspection_ids))
    if len(ids) < 2:
        raise ValidationFailed(
            "A joint inspection merges at least two inspections.",
            errors=[{"field": "inspections", "detail": "at least two distinct ids"}],
        )
    inspections = await _load_inspections(session, ids, lock=True)
    missing = sorted(set(ids) - {i.id for i in inspections})
    if missing:
        raise NotFound(f"Unknown inspection(s): {missing}")
    usccs = {i.enterprise_uscc for i in inspections}
    if len(usccs) != 1:
        raise ValidationFailed(
            "All inspections of a joint inspection must concern one enterprise.",
            errors=[{"field": "inspections", "detail": "more than one enterprise"}],
        )
    agencies = [i.agency_code for i in inspections]
    if len(set(agencies)) != len(agencies):
        raise ValidationFailed(
            "A joint inspection merges inspections of different agencies.",
            errors=[{"field": "inspections", "detail": "two inspections of one agency"}],
        )
    if lead_agency not in agencies:
        raise ValidationFailed(
            "The lead agency must be one of the agencies involved.",
            errors=[{"field": "lead_agency", "detail": "not involved"}],
        )
    actor.ensure_any_agency(set(agencies))
    not_scheduled = [i.id for i in inspections if i.status != "scheduled"]
    if not_scheduled:
        raise ConflictError(f"Only scheduled inspections can be merged: {not_scheduled}.")
    uscc = usccs.pop()
    await xact_lock(session, LOCK_NAMESPACE, uscc)
    pending = (
        await session.execute(
            text(
                "SELECT id FROM joint_proposal WHERE enterprise_uscc = CAST(:u AS bpchar) "
                "AND status = 'proposed' "
                "AND inspection_ids && CAST(:ids AS bigint[])"
            ),
            {"u": uscc, "ids": ids},
        )
    ).first()
    if pending is not None:
        raise ConflictError(
            f"Joint proposal {pending.id} already covers some of these inspections."
        )
    proposal = JointProposal(
        enterprise_uscc=uscc,
        status="proposed",
        inspection_ids=ids,
        agency_codes=sorted(agencies),
        lead_agency=lead_agency,
        visit_date=visit_date,
        proposed_by=actor.user_id,
        proposed_by_name=actor.username,
        version=1,
    )
    session.add(proposal)
    await session.flush()
    if actor.role is Role.approver and actor.agency_code in agencies:
        session.add(
            JointProposalConsent(
                enterprise_uscc=uscc,
                proposal_id=proposal.id,
                agency_code=actor.agency_code,
                user_id=actor.user_id,
                user_name=actor.username,
                role=actor.role.value,
            )
        )
        await session.flush()
    view = proposal_view(proposal, await _consents(session, proposal))
    await record(
        session, actor, "joint_inspection.propose", "joint_proposal", proposal.id, after=view
    )
    await emit(
        session,
        ev.JOINT_PROPOSED,
        proposal.id,
        view,
        enterprise_uscc=uscc,
        agency_codes=sorted(agencies),
    )
    return proposal


async def _consents(session: AsyncSession, p: JointProposal) -> list[JointProposalConsent]:
    stmt = select(JointProposalConsent).where(
        JointProposalConsent.enterprise_uscc == p.enterprise_uscc,
        JointProposalConsent.proposal_id == p.id,
    )
    return list((await session.execute(stmt)).scalars())


async def get_proposal(
    session: AsyncSession, actor: Principal, proposal_id: int, *, lock: bool = False
) -> tuple[JointProposal, list[JointProposalConsent]]:
    """A proposal and its consents; 404, or 403 when the caller's agency is not involved."""
    stmt = select(JointProposal).where(JointProposal.id == proposal_id)
    if lock:
        stmt = stmt.with_for_update()
    proposal = (await session.execute(stmt)).scalar_one_or_none()
    if proposal is None:
        raise NotFound(f"Joint proposal {proposal_id} does not exist.")
    actor.ensure_any_agency(set(proposal.agency_codes))
    if lock:
        await session.refresh(proposal)
    return proposal, await _consents(session, proposal)


async def consent_joint(
    session: AsyncSession, actor: Principal, proposal_id: int, keyring: CodeKeyring
) -> JointProposal:
    """An approver consents for their agency; the last consent carries out the merge."""
    proposal, consents = await get_proposal(session, actor, proposal_id, lock=True)
    if actor.role is not Role.approver or actor.agency_code not in proposal.agency_codes:
        raise Forbidden("Only an approver of an involved agency may consent.")
    if proposal.status != "proposed":
        raise ConflictError(f"Joint proposal {proposal_id} is already {proposal.status}.")
    if actor.agency_code in {c.agency_code for c in consents}:
        raise ConflictError(f"Agency {actor.agency_code} has already consented.")
    session.add(
        JointProposalConsent(
            enterprise_uscc=proposal.enterprise_uscc,
            proposal_id=proposal.id,
            agency_code=actor.agency_code,
            user_id=actor.user_id,
            user_name=actor.username,
            role=actor.role.value,
        )
    )
    proposal.version += 1
    await session.flush()
    await record(
        session,
        actor,
        "joint_inspection.consent",
        "joint_proposal",
        proposal.id,
        after={"agency": actor.agency_code},
    )
    consents = await _consents(session, proposal)
    if {c.agency_code for c in consents} >= set(proposal.agency_codes):
        await _carry_out(session, actor, proposal, keyring, note=None)
    return proposal


async def accept_joint(
    session: AsyncSession,
    actor: Principal,
    proposal_id: int,
    keyring: CodeKeyring,
    note: str | None,
) -> JointProposal:
    """A supervisor decides for every agency and the merge is carried out."""
    proposal, consents = await get_proposal(session, actor, proposal_id, lock=True)
    if proposal.status != "proposed":
        raise ConflictError(f"Joint proposal {proposal_id} is already {proposal.status}.")
    have = {c.agency_code for c in consents}
    for code in sorted(set(proposal.agency_codes) - have):
        session.add(
            JointProposalConsent(
                enterprise_uscc=proposal.enterprise_uscc,
                proposal_id=proposal.id,
                agency_code=code,
                user_id=actor.user_id,
                user_name=actor.username,
                role=actor.role.value,
            )
        )
    await session.flush()
    await _carry_out(session, actor, proposal, keyring, note=note)
    return proposal


async def reject_joint(
    session: AsyncSession, actor: Principal, proposal_id: int, note: str | None
) -> JointProposal:
    """An approver of an involved agency (or a supervisor) turns the proposal down."""
    proposal, _ = await get_proposal(session, actor, proposal_id, lock=True)
    if actor.role not in (Role.approver, Role.supervisor):
        raise Forbidden("Only an approver of an involved agency or a supervisor may reject.")
    if proposal.status != "proposed":
        raise ConflictError(f"Joint proposal {proposal_id} is already {proposal.status}.")
    proposal.status = "rejected"
    proposal.decision_note = note
    proposal.decided_at = _now()
    proposal.version += 1
    await session.flush()
    await record(
        session,
        actor,
        "joint_inspection.reject",
        "joint_proposal",
        proposal.id,
        after={"status": "rejected", "note": note},
    )
    return proposal


def _now() -> Any:
    from inspection_hub.kit.timeutil import utcnow

    return utcnow()


async def _carry_out(
    session: AsyncSession,
    actor: Principal,
    proposal: JointProposal,
    keyring: CodeKeyring,
    note: str | None,
) -> None:
    """Merge the originals into one new joint inspection and settle the findings it answers."""
    uscc = proposal.enterprise_uscc
    ids = sorted(proposal.inspection_ids)
    await xact_lock(session, LOCK_NAMESPACE, uscc)
    originals = await _load_inspections(session, ids, lock=True)
    for inspection in originals:
        next_status(inspection.status, "merge")  # 409 if one is no longer scheduled
    matter_rows = (
        await session.execute(
            select(InspectionMatter.matter_code)
            .where(
                InspectionMatter.enterprise_uscc == uscc, InspectionMatter.inspection_id.in_(ids)
            )
            .order_by(InspectionMatter.inspection_id, InspectionMatter.matter_code)
        )
    ).scalars()
    matters = list(dict.fromkeys(matter_rows))
    inspector_rows = (
        await session.execute(
            select(InspectionInspector.inspector_id)
            .where(
                InspectionInspector.enterprise_uscc == uscc,
                InspectionInspector.inspection_id.in_(ids),
            )
            .order_by(InspectionInspector.inspection_id, InspectionInspector.inspector_id)
        )
    ).scalars()
    inspectors = [int(i) for i in dict.fromkeys(inspector_rows)]
    premises = {i.premises_id for i in originals if i.premises_id is not None}
    joint = await create_inspection(
        session,
        actor,
        keyring=keyring,
        enterprise_uscc=uscc,
        agency_code=proposal.lead_agency,
        kind="joint",
        matter_codes=matters,
        window_start=proposal.visit_date,
        window_end=proposal.visit_date,
        inspector_ids=inspectors,
    )
    if len(premises) == 1:
        joint.premises_id = premises.pop()
    for inspection in originals:
        before = {"status": inspection.status, "version": inspection.version}
        inspection.status = next_status(inspection.status, "merge").value
        inspection.merged_into_id = joint.id
        inspection.version += 1
        await session.flush()
        await record(
            session,
            actor,
            "inspection.merge",
            "inspection",
            inspection.id,
            before=before,
            after={"status": inspection.status, "merged_into_id": joint.id},
        )
        await emit(
            session,
            ev.INSPECTION_MERGED,
            inspection.id,
            {
                "inspection_id": inspection.id,
                "enterprise": uscc,
                "agency": inspection.agency_code,
                "merged_into_id": joint.id,
                "joint_proposal_id": proposal.id,
            },
            enterprise_uscc=uscc,
            agency_codes=sorted(proposal.agency_codes),
        )
    settled = (
        await session.execute(
            text(
                """
                UPDATE conflict SET status = 'resolved', resolution = 'merged',
                       resolution_note = :note, resolved_by = :uid, resolved_by_name = :uname,
                       resolved_at = now(), updated_at = now(), version = version + 1
                WHERE enterprise_uscc = CAST(:u AS bpchar) AND status = 'open'
                  AND ((kind = 'mergeable' AND inspection_ids && CAST(:ids AS bigint[]))
                    OR (kind = 'repeat' AND inspection_ids <@ CAST(:ids AS bigint[])))
                RETURNING id
                """
            ),
            {
                "u": uscc,
                "ids": ids,
                "note": f"合并为联合检查 #{joint.id}（联合检查方案 #{proposal.id}）",
                "uid": actor.user_id,
                "uname": actor.username,
            },
        )
    ).scalars()
    for conflict_id in sorted(int(i) for i in settled):
        await _emit_resolved(session, uscc, conflict_id, actor)
    proposal.status = "accepted"
    proposal.joint_inspection_id = joint.id
    proposal.decided_at = _now()
    proposal.decision_note = note
    proposal.version += 1
    await session.flush()
    view = proposal_view(proposal, await _consents(session, proposal))
    await record(
        session, actor, "joint_inspection.accept", "joint_proposal", proposal.id, after=view
    )
    await emit(
        session,
        ev.JOINT_ACCEPTED,
        proposal.id,
        view,
        enterprise_uscc=uscc,
        agency_codes=sorted(proposal.agency_codes),
    )


# -- burden (the cap ledger) ------------------------------------------------------------------


async def burden(session: AsyncSession, uscc: str, year: int, book: PolicyBook) -> dict[str, Any]:
    """The enterprise's yearly cap ledger: done, scheduled, cap, remaining, by agency."""
    enterprise = await fact_loader.load_enterprise(session, uscc)
    if enterprise is None:
        raise NotFound(f"Enterprise {uscc} is not registered.")
    today = local_today()
    day = min(max(today, date(year, 1, 1)), date(year, 12, 31))
    risk_class = enterprise.risk_class_on(day)
    policy = book.at(day)
    cap = policy.cap_for(risk_class) if risk_class is not None else None
    rows = (
        await session.execute(
            text(
                """
                SELECT agency_code, status, count(*) AS n
                FROM inspection
                WHERE enterprise_uscc = CAST(:u AS bpchar)
                  AND status = ANY(CAST(:statuses AS varchar[]))
                  AND coalesce(visit_date, window_start) >= :start
                  AND coalesce(visit_date, window_start) <= :end
                GROUP BY agency_code, status
                """
            ),
            {
                "u": uscc,
                "statuses": sorted(COUNTED_STATUSES),
                "start": date(year, 1, 1),
                "end": date(year, 12, 31),
            },
        )
    ).all()
    by_agency: dict[str, dict[str, int]] = {}
    for row in rows:
        entry = by_agency.setdefault(row.agency_code, {"completed": 0, "scheduled": 0})
        bucket = "completed" if row.status == "completed" else "scheduled"
        entry[bucket] += int(row.n)
    completed = sum(e["completed"] for e in by_agency.values())
    scheduled = sum(e["scheduled"] for e in by_agency.values())
    return {
        "enterprise": uscc,
        "year": year,
        "risk_class": risk_class,
        "risk_class_on": day.isoformat(),
        "policy_version": policy.version,
        "cap": cap,
        "completed": completed,
        "scheduled": scheduled,
        "counted": completed + scheduled,
        "remaining": max(0, cap - completed - scheduled) if cap is not None else None,
        "over_cap": cap is not None and completed + scheduled > cap,
        "by_agency": [
            {"agency": code, **counts, "total": counts["completed"] + counts["scheduled"]}
            for code, counts in sorted(by_agency.items())
        ],
    }
