"""Plans (年度抽查计划), their verifiable draws (双随机抽取) and the draw records (一公开).

A plan is filed as a draft, submitted (items frozen; one secret seed per item is generated and
only its SHA-256 commitment is shown), drawn (per item: population built in SQL, `plans.draw`
selects enterprises and inspectors, one scheduled inspection per selected enterprise) and
published. The draw is all-or-nothing: an infeasible item leaves nothing written.
"""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from inspection_hub.agencies.models import Agency, Matter
from inspection_hub.agencies.models import Inspector as InspectorRow
from inspection_hub.audit.service import record
from inspection_hub.auth.principal import Principal
from inspection_hub.config import Settings
from inspection_hub.db.session import driver_connection
from inspection_hub.errors import NotFound, PreconditionFailed, ValidationFailed
from inspection_hub.events import types as ev
from inspection_hub.events.outbox import emit
from inspection_hub.inspections.service import create_inspections_bulk, keyring_for
from inspection_hub.kit.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from inspection_hub.kit.timeutil import local_today, utcnow
from inspection_hub.plans import draw as dr
from inspection_hub.plans.models import Draw, Plan, PlanItem
from inspection_hub.plans.schemas import DrawRead, PlanCreate, PlanItemRead, PlanRead
from inspection_hub.plans.state import PlanStatus, next_status
from inspection_hub.policy import Policy, PolicyBook, policy_in_force

# zlib level of the stored population: level 6 costs ~2x the time of level 1 for <1 % smaller.
_POPULATION_ZLIB_LEVEL = 6


def policy_book(settings: Settings) -> PolicyBook:
    """The policy file in force (re-read when it changes)."""
    return policy_in_force(settings.policy_path())


def closed_year(year: int, today: date | None = None) -> bool:
    """A plan year is closed once it has ended (year < the current year, Asia/Shanghai)."""
    return year < (today or local_today()).year


# --- create ----------------------------------------------------------------------------------


def _sampling_dict(
    raw: Any, policy: Policy, field: str, errors: list[dict[str, Any]]
) -> dict[str, Any]:
    given = [k for k in ("ratios", "fixed_count", "counts") if getattr(raw, k) is not None]
    if len(given) > 1:
        errors.append({"field": field, "detail": "give only one of ratios, fixed_count, counts"})
        return {}
    try:
        if raw.ratios is not None:
            bad = False
            for rc, ratio in raw.ratios.items():
                if rc not in dr.RISK_CLASSES:
                    errors.append({"field": f"{field}.ratios.{rc}", "detail": "unknown risk class"})
                    bad = True
                elif not ratio.is_finite() or ratio < 0 or ratio > 1:
                    errors.append(
                        {"field": f"{field}.ratios.{rc}", "detail": "ratio must be between 0 and 1"}
                    )
                    bad = True
            if bad:
                return {}
            return dr.Sampling.by_ratio(dict(raw.ratios)).to_dict()
        if raw.fixed_count is not None:
            return dr.Sampling.by_fixed_total(raw.fixed_count).to_dict()
        if raw.counts is not None:
            return dr.Sampling.by_fixed_counts(dict(raw.counts)).to_dict()
    except dr.DrawError as exc:
        errors.append({"field": field, "detail": str(exc)})
        return {}
    ratios: dict[str, Decimal | str | int] = {
        rc: Decimal(str(r)) for rc, r in policy.sampling_ratios.items()
    }
    return dr.Sampling.by_ratio(ratios).to_dict()


async def create_plan(
    session: AsyncSession, actor: Principal, data: PlanCreate, policy: Policy
) -> Plan:
    """File a draft plan; 422 naming every bad field."""
    errors: list[dict[str, Any]] = []
    agencies = sorted(set(data.agencies or ([actor.agency_code] if actor.agency_code else [])))
    if not agencies:
        errors.append({"field": "agencies", "detail": "name the plan's agency (or agencies)"})
    known = set(
        (await session.execute(select(Agency.code).where(Agency.code.in_(agencies)))).scalars()
    )
    for code in agencies:
        if code not in known:
            errors.append({"field": "agencies", "detail": f"unknown agency {code}"})
    if agencies and not actor.sees_everything and actor.agency_code not in agencies:
        from inspection_hub.errors import Forbidden

        raise Forbidden(
            f"Agency {actor.agency_code} is not among the plan's agencies {', '.join(agencies)}."
        )
    if closed_year(data.year):
        errors.append(
            {"field": "year", "detail": f"年度已结束 / the year {data.year} is already closed"}
        )
    codes = sorted({m for item in data.items for m in item.matters})
    matters = {
        m.code: m
        for m in (await session.execute(select(Matter).where(Matter.code.in_(codes)))).scalars()
    }
    joint = len(agencies) > 1
    items: list[PlanItem] = []
    for idx, item in enumerate(data.items):
        f = f"items.{idx}"
        for pos, code in enumerate(item.matters):
            matter = matters.get(code)
            if matter is None:
                errors.append({"field": f"{f}.matters.{pos}", "detail": f"unknown matter {code}"})
            elif matter.agency_code not in agencies:
                errors.append(
                    {
                        "field": f"{f}.matters.{pos}",
                        "detail": f"matter {code} belongs to agency {matter.agency_code}, "
                        "not to the plan's agencies",
                    }
                )
        if len(set(item.matters)) != len(item.matters):
            errors.append({"field": f"{f}.matters", "detail": "a matter is listed twice"})
        if joint:
            present = {matters[c].agency_code for c in item.matters if c in matters}
            for code in agencies:
                if code not in present:
                    errors.append(
                        {
                            "field": f"{f}.matters",
                            "detail": f"a joint plan item needs a matter of agency {code}",
                        }
                    )
        start, end = item.window.start, item.window.end
        if end < start:
            errors.append({"field": f"{f}.window", "detail": "the window ends before it starts"})
        for name, day in (("start", start), ("end", end)):
            if day.year != data.year:
                errors.append(
                    {"field": f"{f}.window.{name}", "detail": f"{day} is outside the year"}
                )
        if item.inspectors_per_check < 2:
            errors.append(
                {"field": f"{f}.inspectors_per_check", "detail": "at least 2 inspectors per check"}
            )
        elif joint and item.inspectors_per_check < len(agencies):
            errors.append(
                {
                    "field": f"{f}.inspectors_per_check",
                    "detail": f"a joint plan needs at least one inspector of each of the "
                    f"{len(agencies)} agencies per check",
                }
            )
        sampling = _sampling_dict(item.sampling, policy, f"{f}.sampling", errors)
        for name, values, pattern in (
            ("districts", item.filter.districts, r"^\d{6}$"),
            ("industry_prefixes", item.filter.industry_prefixes, r"^[A-Za-z0-9]{1,8}$"),
        ):
            for pos, value in enumerate(values):
                if not re.match(pattern, value):
                    errors.append(
                        {"field": f"{f}.filter.{name}.{pos}", "detail": f"malformed {value!r}"}
                    )
        items.append(
            PlanItem(
                position=idx + 1,
                matters=list(item.matters),
                districts=sorted(set(item.filter.districts)),
                industry_prefixes=sorted({p.upper() for p in item.filter.industry_prefixes}),
                risk_classes=sorted(set(item.filter.risk_classes)),
                sampling=sampling,
                window_start=start,
                window_end=end,
                inspectors_per_check=item.inspectors_per_check,
                offsite=item.offsite,
            )
        )
    if errors:
        raise ValidationFailed(f"{len(errors)} problem(s) in the plan.", errors=errors)
    lead = actor.agency_code if actor.agency_code in agencies else agencies[0]
    plan = Plan(
        year=data.year,
        title=data.title,
        agency_code=lead,
        agencies=agencies,
        status=PlanStatus.draft.value,
        version=1,
        created_by=actor.user_id,
    )
    session.add(plan)
    await session.flush()
    for item_row in items:
        item_row.plan_id = plan.id
        session.add(item_row)
    await session.flush()
    read = plan_read(plan, items, {})
    after = read.model_dump(mode="json")
    await record(session, actor, "plan.create", "plan", plan.id, after=after)
    await emit(
        session,
        ev.PLAN_CREATED,
        plan.id,
        {"plan_id": plan.id, "year": plan.year, "agencies": agencies, "items": len(items)},
        agency_codes=agencies,
    )
    return plan


# --- reading ---------------------------------------------------------------------------------


def plan_read(plan: Plan, items: Sequence[PlanItem], draws: Mapping[int, int]) -> PlanRead:
    """Present a plan; item seeds only once drawn."""
    revealed = plan.status in (PlanStatus.drawn, PlanStatus.published)
    return PlanRead(
        id=plan.id,
        year=plan.year,
        title=plan.title,
        agency_code=plan.agency_code,
        agencies=list(plan.agencies),
        joint=len(plan.agencies) > 1,
        status=plan.status,
        version=plan.version,
        submitted_at=plan.submitted_at,
        drawn_at=plan.drawn_at,
        published_at=plan.published_at,
        withdrawn_at=plan.withdrawn_at,
        created_at=plan.created_at,
        items=[
            PlanItemRead(
                id=i.id,
                position=i.position,
                matters=list(i.matters),
                filter={
                    "districts": list(i.districts),
                    "industry_prefixes": list(i.industry_prefixes),
                    "risk_classes": list(i.risk_classes),
                },
                sampling=dict(i.sampling),
                window={"start": i.window_start, "end": i.window_end},
                inspectors_per_check=i.inspectors_per_check,
                offsite=i.offsite,
                seed_commitment=i.seed_commitment,
                seed=i.seed if revealed else None,
                draw_id=draws.get(i.id),
            )
            for i in sorted(items, key=lambda x: x.position)
        ],
    )


async def load_items(session: AsyncSession, plan_ids: Sequence[int]) -> dict[int, list[PlanItem]]:
    """Items of several plans, by plan id."""
    out: dict[int, list[PlanItem]] = {pid: [] for pid in plan_ids}
    if not plan_ids:
        return out
    rows = await session.execute(
        select(PlanItem).where(PlanItem.plan_id.in_(list(plan_ids))).order_by(PlanItem.position)
    )
    for item in rows.scalars():
        out[item.plan_id].append(item)
    return out


async def draw_ids(session: AsyncSession, plan_ids: Sequence[int]) -> dict[int, int]:
    """Draw id per plan item id for several plans."""
    if not plan_ids:
        return {}
    rows = await session.execute(
        select(Draw.plan_item_id, Draw.id).where(Draw.plan_id.in_(list(plan_ids)))
    )
    return {int(r[0]): int(r[1]) for r in rows}


async def read_plans(session: AsyncSession, plans: Sequence[Plan]) -> list[PlanRead]:
    """Present several plans with their items and draw ids."""
    ids = [p.id for p in plans]
    items = await load_items(session, ids)
    draws = await draw_ids(session, ids)
    return [plan_read(p, items[p.id], draws) for p in plans]


async def get_plan(
    session: AsyncSession, actor: Principal, plan_id: int, *, for_update: bool = False
) -> Plan:
    """The plan if the caller may see it (own agency's, or every plan for admin/supervisor)."""
    stmt = select(Plan).where(Plan.id == plan_id)
    if for_update:
        stmt = stmt.with_for_update()
    plan = (await session.execute(stmt)).scalar_one_or_none()
    if plan is None or not (actor.sees_everything or actor.agency_code in plan.agencies):
        raise NotFound(f"Plan {plan_id} does not exist or is not visible to you.")
    return plan


async def list_plans(
    session: AsyncSession,
    actor: Principal,
    *,
    year: int | None,
    agency: str | None,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Plan], str | None]:
    """Plans visible to the caller, newest first, cursor-paginated."""
    limit = max(1, min(limit, MAX_LIMIT))
    stmt = select(Plan).order_by(Plan.id.desc()).limit(limit + 1)
    if not actor.sees_everything:
        stmt = stmt.where(Plan.agencies.contains([actor.agency_code or ""]))
    if agency:
        stmt = stmt.where(Plan.agencies.contains([agency]))
    if year is not None:
        stmt = stmt.where(Plan.year == year)
    if status:
        stmt = stmt.where(Plan.status == status)
    after = decode_cursor(cursor)
    if after:
        stmt = stmt.where(Plan.id < int(after[0]))
    plans = list((await session.execute(stmt)).scalars())
    next_cursor = encode_cursor([plans[limit - 1].id]) if len(plans) > limit else None
    return plans[:limit], next_cursor


# --- transitions -----------------------------------------------------------------------------


def _check_version(plan: Plan, if_match: int | None) -> None:
    if if_match is not None and if_match != plan.version:
        raise PreconditionFailed(f"Plan {plan.id} is at version {plan.version}, not {if_match}.")


async def _transition(
    session: AsyncSession,
    actor: Principal,
    plan_id: int,
    action: str,
    if_match: int | None,
) -> tuple[Plan, str, PlanStatus]:
    plan = await get_plan(session, actor, plan_id, for_update=True)
    _check_version(plan, if_match)
    before = plan.status
    target = next_status(plan.status, action)
    return plan, before, target


async def _finish_transition(
    session: AsyncSession,
    actor: Principal,
    plan: Plan,
    before: str,
    action: str,
    event: ev.EventType,
    extra: dict[str, Any] | None = None,
) -> None:
    plan.version += 1
    plan.updated_at = utcnow()
    await session.flush()
    payload = {
        "plan_id": plan.id,
        "year": plan.year,
        "agency": plan.agency_code,
        "agencies": list(plan.agencies),
        "status": plan.status,
        **(extra or {}),
    }
    await record(
        session,
        actor,
        f"plan.{action}",
        "plan",
        plan.id,
        before={"status": before},
        after=payload,
    )
    await emit(session, event, plan.id, payload, agency_codes=list(plan.agencies))


async def submit_plan(
    session: AsyncSession, actor: Principal, plan_id: int, if_match: int | None
) -> Plan:
    """Freeze the items, generate one secret seed per item and publish its commitment."""
    plan, before, target = await _transition(session, actor, plan_id, "submit", if_match)
    if closed_year(plan.year):
        raise ValidationFailed(
            f"年度已结束 / the year {plan.year} is already closed.",
            errors=[{"field": "year", "detail": "closed"}],
        )
    items = (await load_items(session, [plan.id]))[plan.id]
    commitments = {}
    for item in items:
        item.seed = dr.new_seed()
        item.seed_commitment = dr.seed_commitment(item.seed)
        commitments[str(item.id)] = item.seed_commitment
    plan.status = target.value
    plan.submitted_at = utcnow()
    await _finish_transition(
        session, actor, plan, before, "submit", ev.PLAN_SUBMITTED, {"seed_commitments": commitments}
    )
    return plan


async def withdraw_plan(
    session: AsyncSession, actor: Principal, plan_id: int, if_match: int | None
) -> Plan:
    """Withdraw a draft plan."""
    plan, before, target = await _transition(session, actor, plan_id, "withdraw", if_match)
    plan.status = target.value
    plan.withdrawn_at = utcnow()
    await _finish_transition(session, actor, plan, before, "withdraw", ev.PLAN_WITHDRAWN)
    return plan


async def publish_plan(
    session: AsyncSession, actor: Principal, plan_id: int, if_match: int | None
) -> Plan:
    """Publish a drawn plan (一公开): it and its completed inspections become public."""
    plan, before, target = await _transition(session, actor, plan_id, "publish", if_match)
    plan.status = target.value
    plan.published_at = utcnow()
    await _finish_transition(session, actor, plan, before, "publish", ev.PLAN_PUBLISHED)
    return plan


# --- the draw --------------------------------------------------------------------------------


@dataclass
class ItemDraw:
    """A computed (not yet stored) draw of one plan item."""

    item: PlanItem
    population_compressed: bytes
    population_size: dict[str, int]
    draw_input: dr.DrawInput
    result: dr.DrawResult
    exemptions: dict[str, Any]


async def _population(
    session: AsyncSession, plan: Plan, item: PlanItem, policy: Policy
) -> tuple[bytes, dict[str, Any]]:
    """The item's population as sorted ``uscc,risk_class`` lines (COPY), and the exemptions."""
    ex = policy.exemptions
    no_disturb = sorted(
        {
            e.uscc
            for e in ex.no_disturb
            if e.from_date <= item.window_end and e.to_date >= item.window_start
        }
    )
    categories = sorted(
        {
            f"{m.agency_code}/{m.category}"
            for m in (
                await session.execute(select(Matter).where(Matter.code.in_(list(item.matters))))
            ).scalars()
        }
    )
    exemptions: dict[str, Any] = {
        "policy_version": policy.version,
        "new_business_grace_months": ex.new_business_grace_months,
        "no_disturb": no_disturb,
        "exclude_inspected_same_category_same_agency_this_year": (
            ex.exclude_inspected_same_category_same_agency_this_year
        ),
        "agency_categories": categories,
    }
    conds = ["TRUE"]
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if item.districts:
        conds.append(f"e.district_code = ANY({arg(list(item.districts))}::varchar[])")
    if item.industry_prefixes:
        conds.append(
            f"e.industry_code LIKE ANY({arg([p + '%' for p in item.industry_prefixes])}::varchar[])"
        )
    if item.risk_classes:
        conds.append(f"e.risk_class = ANY({arg(list(item.risk_classes))}::varchar[])")
    if ex.new_business_grace_months > 0:
        conds.append(
            "(e.established_on IS NULL OR (e.established_on + "
            f"make_interval(months => {arg(ex.new_business_grace_months)}::int))::date "
            f"<= {arg(item.window_start)}::date)"
        )
    if no_disturb:
        conds.append(f"NOT (e.uscc = ANY({arg(no_disturb)}::char(18)[]))")
    if ex.exclude_inspected_same_category_same_agency_this_year and categories:
        conds.append(
            "NOT EXISTS (SELECT 1 FROM inspection i JOIN inspection_matter im "
            "ON im.enterprise_uscc = i.enterprise_uscc AND im.inspection_id = i.id "
            "WHERE i.enterprise_uscc = e.uscc AND i.status NOT IN ('cancelled', 'merged') "
            f"AND i.year = {arg(plan.year)}::smallint "
            f"AND (im.agency_code || '/' || im.category) = ANY({arg(categories)}::text[]))"
        )
    query = (
        "SELECT e.uscc, e.risk_class FROM enterprise e WHERE "
        + " AND ".join(conds)
        + ' ORDER BY e.uscc COLLATE "C"'
    )
    raw: Any = await driver_connection(session)
    chunks: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        chunks.append(bytes(chunk))

    await raw.copy_from_query(query, *args, output=sink, format="csv")
    return b"".join(chunks), exemptions


async def _roster(session: AsyncSession, agencies: Sequence[str]) -> list[dr.Inspector]:
    rows = await session.execute(
        select(
            InspectorRow.id,
            InspectorRow.agency_code,
            InspectorRow.certificate_no,
            InspectorRow.certificate_valid_until,
        ).where(InspectorRow.agency_code.in_(list(agencies)))
    )
    return [dr.Inspector(str(r[0]), r[1], r[2], r[3]) for r in rows]


async def _recusals(
    session: AsyncSession, usccs: Sequence[str], since: date
) -> dict[str, frozenset[str]]:
    """Inspectors who inspected (or are booked at) each enterprise since `since`."""
    if not usccs:
        return {}
    rows = await session.execute(
        text(
            """
            SELECT ii.enterprise_uscc, array_agg(DISTINCT ii.inspector_id::text)
            FROM inspection_inspector ii
            JOIN inspection i ON i.enterprise_uscc = ii.enterprise_uscc AND i.id = ii.inspection_id
            WHERE ii.enterprise_uscc = ANY(CAST(:usccs AS char(18)[]))
              AND i.status NOT IN ('cancelled', 'merged')
              AND ii.present IS NOT FALSE
              AND COALESCE(i.visit_date, i.window_end) >= :since
            GROUP BY ii.enterprise_uscc
            """
        ),
        {"usccs": list(usccs), "since": since},
    )
    return {str(r[0]): frozenset(r[1]) for r in rows}


async def compute_item_draw(
    session: AsyncSession, plan: Plan, item: PlanItem, policy: Policy
) -> ItemDraw:
    """Build the population and roster in SQL and run the draw (raises `DrawInfeasible`)."""
    if item.seed is None or item.seed_commitment is None:
        raise ValidationFailed("The plan item has no seed; submit the plan first.")
    dr.require_seed(item.seed, item.seed_commitment)
    population_text, exemptions = await _population(session, plan, item, policy)
    # Compress the stored copy on another core while this one ranks (zlib releases the GIL).
    compressing = asyncio.get_running_loop().run_in_executor(
        None, zlib.compress, population_text, _POPULATION_ZLIB_LEVEL
    )
    try:
        sampling = dr.Sampling.from_dict(item.sampling)
        seed = item.seed.lower()
        selection = dr.select_population(seed, population_text, sampling)
    finally:
        population_compressed = await compressing
    del population_text
    population_size, sample_size = selection.population_size, selection.sample_size
    selected = selection.selected
    digest = selection.population_digest
    selected_usccs = [e.uscc for rc in dr.RISK_CLASSES for e in selected[rc]]
    roster = await _roster(session, plan.agencies)
    recusal_since = date.fromordinal(item.window_start.toordinal() - policy.inspectors.recusal_days)
    recusals = await _recusals(session, selected_usccs, recusal_since)
    agencies = tuple(sorted(plan.agencies))
    workload_cap = policy.inspectors.workload_cap_per_draw
    assignments = dr.assign_inspectors(
        seed,
        (e for rc in dr.RISK_CLASSES for e in selected[rc]),
        roster,
        window_end=item.window_end,
        inspectors_per_check=item.inspectors_per_check,
        workload_cap=workload_cap,
        recusals=recusals,
        agencies=agencies,
    )
    result = dr.DrawResult(
        algorithm=dr.ALGORITHM_VERSION,
        seed=seed,
        commitment=item.seed_commitment.lower(),
        population_digest=digest,
        population_size=population_size,
        sample_size=sample_size,
        selected=selected,
        assignments=assignments,
    )
    draw_input = dr.DrawInput(
        seed=seed,
        commitment=item.seed_commitment,
        population=(),  # the stored text is the population; see `export_draw_record`
        sampling=sampling,
        roster=roster,
        window_start=item.window_start,
        window_end=item.window_end,
        inspectors_per_check=item.inspectors_per_check,
        workload_cap=workload_cap,
        recusals=recusals,
        agencies=agencies,
    )
    return ItemDraw(item, population_compressed, population_size, draw_input, result, exemptions)


def _roster_json(roster: Sequence[dr.Inspector]) -> list[dict[str, Any]]:
    return [
        {
            "id": i.id,
            "agency_code": i.agency_code,
            "certificate_no": i.certificate_no,
            "certificate_valid_until": i.certificate_valid_until.isoformat(),
        }
        for i in sorted(roster, key=lambda x: x.id)
    ]


async def draw_plan(
    session: AsyncSession,
    actor: Principal,
    plan_id: int,
    if_match: int | None,
    settings: Settings,
) -> tuple[Plan, list[Draw]]:
    """Draw every item of a submitted plan; all-or-nothing (422 naming uncovered enterprises)."""
    plan, before, target = await _transition(session, actor, plan_id, "draw", if_match)
    policy = policy_book(settings).at(local_today())
    items = (await load_items(session, [plan.id]))[plan.id]
    computed: list[ItemDraw] = []
    failures: list[dict[str, Any]] = []
    for item in items:
        try:
            computed.append(await compute_item_draw(session, plan, item, policy))
        except dr.DrawInfeasible as exc:
            failures.extend(
                {
                    "field": f"items.{item.position - 1}",
                    "item_id": item.id,
                    "uscc": f.uscc,
                    "reasons": list(f.reasons),
                    "detail": f.detail,
                }
                for f in exc.failures
            )
        except dr.DrawError as exc:
            failures.append(
                {"field": f"items.{item.position - 1}", "item_id": item.id, "detail": str(exc)}
            )
    if failures:
        n = len({f.get("uscc") for f in failures if "uscc" in f})
        raise ValidationFailed(
            f"抽取无法完成：{n} 家被抽中企业无法配齐执法人员 / the draw is infeasible: "
            f"{n} selected enterprise(s) cannot be covered by the roster; nothing was written.",
            errors=failures,
        )
    keyring = keyring_for(settings.data_dir)
    joint = len(plan.agencies) > 1
    draws: list[Draw] = []
    total = 0
    for c in computed:
        result_json = dr.result_to_dict(c.result)
        draw = Draw(
            plan_id=plan.id,
            plan_item_id=c.item.id,
            algorithm=c.result.algorithm,
            seed=c.result.seed,
            seed_commitment=c.result.commitment,
            population_digest=c.result.population_digest,
            population_size=dict(c.result.population_size),
            population=c.population_compressed,
            sampling=c.draw_input.sampling.to_dict(),
            window_start=c.item.window_start,
            window_end=c.item.window_end,
            inspectors_per_check=c.item.inspectors_per_check,
            workload_cap=c.draw_input.workload_cap,
            agencies=list(c.draw_input.agencies),
            roster=_roster_json(c.draw_input.roster),
            recusals={u: sorted(ids) for u, ids in sorted(c.draw_input.recusals.items()) if ids},
            exemptions=c.exemptions,
            policy_version=policy.version,
            result=result_json,
            selected_count=len(c.result.assignments),
            drawn_by=actor.user_id,
        )
        session.add(draw)
        await session.flush()
        draws.append(draw)
        order = c.result.selected_usccs()
        assignments = [
            (uscc, [int(a.inspector_id) for a in c.result.assignments[uscc]]) for uscc in order
        ]
        ids = await create_inspections_bulk(
            session,
            actor,
            keyring=keyring,
            agency_code=plan.agency_code,
            kind="joint" if joint else "planned",
            matter_codes=list(c.item.matters),
            window_start=c.item.window_start,
            window_end=c.item.window_end,
            assignments=assignments,
            offsite=c.item.offsite,
            plan_id=plan.id,
            plan_item_id=c.item.id,
            draw_id=draw.id,
        )
        total += len(ids)
        summary = {
            "draw_id": draw.id,
            "plan_id": plan.id,
            "plan_item_id": c.item.id,
            "algorithm": draw.algorithm,
            "seed_commitment": draw.seed_commitment,
            "population_digest": draw.population_digest,
            "population_size": draw.population_size,
            "sample_size": dict(c.result.sample_size),
            "selected": len(ids),
            "agencies": list(plan.agencies),
            "policy_version": policy.version,
        }
        await record(session, actor, "draw.complete", "draw", draw.id, after=summary)
        await emit(session, ev.DRAW_COMPLETED, draw.id, summary, agency_codes=list(plan.agencies))
    plan.status = target.value
    plan.drawn_at = utcnow()
    await _finish_transition(
        session,
        actor,
        plan,
        before,
        "draw",
        ev.PLAN_DRAWN,
        {"draws": [d.id for d in draws], "inspections": total},
    )
    return plan, draws


# --- draw records ----------------------------------------------------------------------------


async def get_draw(
    session: AsyncSession, actor: Principal | None, draw_id: int, *, full: bool = False
) -> Draw:
    """A draw; officials see their agencies' draws (actor None: the public view).

    `full` also loads the stored population (needed for export and verification).
    """
    stmt = select(Draw).where(Draw.id == draw_id).options(undefer(Draw.result))
    if full:
        stmt = stmt.options(undefer(Draw.population))
    draw = (await session.execute(stmt)).scalar_one_or_none()
    if draw is None or (
        actor is not None and not (actor.sees_everything or actor.agency_code in draw.agencies)
    ):
        raise NotFound(f"Draw {draw_id} does not exist or is not visible to you.")
    return draw


def draw_read(draw: Draw, *, with_result: bool) -> DrawRead:
    """Present a draw record."""
    result = draw.result if with_result else None
    sample = dict(draw.result.get("sample_size", {})) if with_result else {}
    return DrawRead(
        id=draw.id,
        plan_id=draw.plan_id,
        plan_item_id=draw.plan_item_id,
        algorithm=draw.algorithm,
        seed=draw.seed,
        seed_commitment=draw.seed_commitment,
        population_digest=draw.population_digest,
        population_size=dict(draw.population_size),
        sample_size=sample,
        sampling=dict(draw.sampling),
        window={"start": draw.window_start, "end": draw.window_end},
        inspectors_per_check=draw.inspectors_per_check,
        workload_cap=draw.workload_cap,
        agencies=list(draw.agencies),
        policy_version=draw.policy_version,
        exemptions=dict(draw.exemptions),
        selected_count=draw.selected_count,
        drawn_at=draw.drawn_at,
        result=result,
    )


def export_draw_record(draw: Draw, *, compact: bool = False) -> dict[str, Any]:
    """The self-contained export (format of `plans.draw.export_draw`) rebuilt from the record.

    `compact` gives the population as ``population_text`` (format version 2).
    """
    population = dr.export_population(zlib.decompress(draw.population), compact=compact)
    return {
        "format": dr.EXPORT_FORMAT,
        "format_version": population.pop("format_version"),
        "algorithm": draw.algorithm,
        "seed": draw.seed,
        "commitment": draw.seed_commitment,
        "window": {"start": draw.window_start.isoformat(), "end": draw.window_end.isoformat()},
        "sampling": dict(draw.sampling),
        "inspectors_per_check": draw.inspectors_per_check,
        "workload_cap": draw.workload_cap,
        "agencies": sorted(draw.agencies),
        **population,
        "roster": list(draw.roster),
        "recusals": dict(draw.recusals),
        "result": dict(draw.result),
        "draw_id": draw.id,
        "plan_id": draw.plan_id,
        "plan_item_id": draw.plan_item_id,
        "policy_version": draw.policy_version,
        "exemptions": dict(draw.exemptions),
    }


def verify_draw(draw: Draw) -> dr.VerifyResult:
    """Re-run a stored draw from its stored seed, population and roster."""
    return dr.verify_export(export_draw_record(draw, compact=True))


async def public_plans(
    session: AsyncSession, year: int | None, cursor: str | None, limit: int
) -> tuple[list[Plan], str | None]:
    """Published plans (一公开), newest first."""
    limit = max(1, min(limit, MAX_LIMIT))
    stmt = (
        select(Plan)
        .where(Plan.status == PlanStatus.published.value)
        .order_by(Plan.id.desc())
        .limit(limit + 1)
    )
    if year is not None:
        stmt = stmt.where(Plan.year == year)
    after = decode_cursor(cursor)
    if after:
        stmt = stmt.where(Plan.id < int(after[0]))
    plans = list((await session.execute(stmt)).scalars())
    next_cursor = encode_cursor([plans[limit - 1].id]) if len(plans) > limit else None
    return plans[:limit], next_cursor
