"""Execution report and annual assessment, computed in SQL (one aggregate query per part).

Per agency and year: planned inspections due / done / overdue, unplanned share, merges, caps,
inspections per enterprise, hit rate, plans and items, check requests and decision times,
surveys, findings and trace checks. Findings are read from the one conflict store (`conflict`).
The monthly split (`findings_by_month`) counts the same findings and completed inspections.
"""

from __future__ import annotations

import tomllib
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.errors import NotFound
from inspection_hub.kit.timeutil import LOCAL_TZ
from inspection_hub.paths import config_dir
from inspection_hub.policy import RISK_CLASSES, PolicyNotInForceError, policy_in_force

LIVE = "i.status NOT IN ('cancelled', 'merged')"
TRACE_KINDS = ("trace_check_failed", "unregistered_visit")


def _agency_clause(column: str, agency: str | None) -> str:
    """`AND column = :agency` when one agency is asked for; nothing otherwise.

    Built into the SQL rather than `CAST(:agency) IS NULL OR ...`, which makes the planner
    keep both branches and forgo the index on the agency column.
    """
    return f" AND {column} = :agency" if agency is not None else ""


def _inspections_sql(agency: str | None) -> str:
    # One pass over the year's inspections; every figure is a FILTER aggregate.
    return f"""
    SELECT i.agency_code,
      count(*) FILTER (WHERE i.kind = 'planned' AND {LIVE}) AS planned_total,
      count(*) FILTER (WHERE i.kind = 'planned' AND {LIVE}
                       AND (i.status = 'completed' OR i.window_end < :today)) AS planned_due,
      count(*) FILTER (WHERE i.kind = 'planned' AND i.status = 'completed') AS planned_done,
      count(*) FILTER (WHERE i.kind = 'planned' AND i.status IN ('scheduled', 'in_progress')
                       AND i.window_end < :today) AS planned_overdue,
      count(*) FILTER (WHERE i.kind = 'unplanned' AND {LIVE}) AS unplanned,
      count(*) FILTER (WHERE i.kind = 'joint' AND {LIVE}) AS joint,
      count(*) FILTER (WHERE {LIVE}) AS inspections,
      count(*) FILTER (WHERE i.status = 'completed') AS completed,
      count(*) FILTER (WHERE i.status = 'completed' AND i.outcome IS NOT NULL
                       AND i.outcome <> 'no_issue') AS with_problem,
      count(*) FILTER (WHERE i.status = 'merged') AS avoided_by_merging
    FROM inspection i
    WHERE i.year = :year{_agency_clause("i.agency_code", agency)}
    GROUP BY i.agency_code
    """


def _distribution_sql(agency: str | None) -> str:
    # Live inspections per (enterprise, agency), read in (year, enterprise, agency) index order
    # so the grouping streams; the enterprise's all-agency total (the cap counts every agency)
    # is a window sum over the same ordered rows. With one agency asked for, only the
    # enterprises that agency inspected are totalled.
    if agency is None:
        scope = ""
    else:
        scope = """
          AND i.enterprise_uscc IN (SELECT j.enterprise_uscc FROM inspection j
                                    WHERE j.year = :year AND j.agency_code = :agency
                                      AND j.status NOT IN ('cancelled', 'merged'))"""
    # Over the cap: only an enterprise whose total exceeds the smallest cap can be, so only those
    # look up their risk class (one primary-key probe each). Joining every enterprise instead
    # hashed the whole enterprise table: 57 s of a 10 M-enterprise year, against 12 s now.
    return f"""
    WITH per AS (
        SELECT i.enterprise_uscc, i.agency_code, count(*) AS n,
               sum(count(*)) OVER (PARTITION BY i.enterprise_uscc) AS total
        FROM inspection i
        WHERE i.year = :year AND {LIVE}{scope}
        GROUP BY i.enterprise_uscc, i.agency_code
    )
    SELECT per.agency_code,
           count(*) FILTER (WHERE per.n = 1) AS one, count(*) FILTER (WHERE per.n = 2) AS two,
           count(*) FILTER (WHERE per.n = 3) AS three,
           count(*) FILTER (WHERE per.n >= 4) AS four_plus,
           count(*) AS enterprises,
           count(*) FILTER (WHERE CASE WHEN per.total > :min_cap THEN per.total > (
               SELECT c.cap FROM enterprise e
               JOIN unnest(CAST(:classes AS varchar[]), CAST(:caps AS integer[])) AS c(rc, cap)
                 ON c.rc = e.risk_class
               WHERE e.uscc = per.enterprise_uscc) ELSE FALSE END) AS over_cap
    FROM per
    WHERE TRUE{_agency_clause("per.agency_code", agency)}
    GROUP BY per.agency_code
    """


def _surveys_sql(agency: str | None) -> str:
    return f"""
    SELECT s.agency_code, count(*) AS planned,
           count(*) FILTER (WHERE s.status <> 'pending') AS sent,
           count(*) FILTER (WHERE s.status = 'answered') AS answered,
           count(*) FILTER (WHERE s.status = 'expired') AS expired,
           count(*) FILTER (WHERE s.status = 'answered' AND cardinality(s.discrepancies) > 0)
             AS with_discrepancy
    FROM survey s
    WHERE s.year = :year{_agency_clause("s.agency_code", agency)}
    GROUP BY s.agency_code
    """


def _findings_sql(agency: str | None) -> str:
    # Every finding of the one conflict store, counted for each agency whose inspection of the
    # year it names (a survey discrepancy carries no agency codes; its inspection does).
    # The (agency) grouping set counts the distinct inspections that failed a trace check.
    return f"""
    SELECT i.agency_code, f.kind, f.resolution,
           count(DISTINCT f.id) AS n,
           count(DISTINCT i.id) FILTER (WHERE f.kind IN ('trace_check_failed',
                                                          'unregistered_visit'))
             AS failed_inspections,
           GROUPING(f.kind) AS agency_total
    FROM (SELECT c.id, c.kind, c.resolution, c.enterprise_uscc,
                 unnest(c.inspection_ids) AS inspection_id
          FROM conflict c) f
    -- One primary-key probe per finding (OFFSET 0 keeps it a probe: the planner would rather
    -- hash the whole year of inspections than the findings).
    CROSS JOIN LATERAL (
        SELECT i.id, i.agency_code FROM inspection i
        WHERE i.enterprise_uscc = f.enterprise_uscc AND i.id = f.inspection_id
          AND i.year = :year{_agency_clause("i.agency_code", agency)}
        OFFSET 0) i
    GROUP BY GROUPING SETS ((i.agency_code, f.kind, f.resolution), (i.agency_code))
    """


def _plans_sql(agency: str | None) -> str:
    # Plans of the year an agency takes part in (joint plans count for every agency), by status.
    scope = " AND p.agencies @> ARRAY[CAST(:agency AS varchar)]" if agency is not None else ""
    return f"""
    SELECT a.code AS agency_code,
           count(DISTINCT p.id) FILTER (WHERE p.status <> 'withdrawn') AS plans,
           count(DISTINCT p.id) FILTER (WHERE p.status = 'published') AS published,
           count(pi.id) FILTER (WHERE p.status <> 'withdrawn') AS items,
           count(pi.id) FILTER (WHERE p.status = 'published') AS published_items
    FROM plan p
    JOIN LATERAL unnest(p.agencies) AS a(code) ON TRUE
    LEFT JOIN plan_item pi ON pi.plan_id = p.id
    WHERE p.year = :year{scope}{_agency_clause("a.code", agency)}
    GROUP BY a.code
    """


def _requests_sql(agency: str | None) -> str:
    # Check requests submitted in the year (local time): outcomes and the median time from
    # submission to decision (approved or rejected), in hours.
    return f"""
    SELECT r.agency_code,
           count(*) AS submitted,
           count(*) FILTER (WHERE r.status = 'approved') AS approved,
           count(*) FILTER (WHERE r.status = 'rejected') AS rejected,
           count(*) FILTER (WHERE r.status = 'expired') AS expired,
           count(*) FILTER (WHERE r.status = 'withdrawn') AS withdrawn,
           count(*) FILTER (WHERE r.status = 'pending') AS pending,
           percentile_cont(0.5) WITHIN GROUP (
               ORDER BY extract(epoch FROM r.decided_at - r.submitted_at) / 3600.0)
             FILTER (WHERE r.status IN ('approved', 'rejected') AND r.decided_at IS NOT NULL)
             AS median_decision_hours
    FROM check_request r
    WHERE r.submitted_at >= CAST(:year_from AS timestamptz)
      AND r.submitted_at < CAST(:year_to AS timestamptz){_agency_clause("r.agency_code", agency)}
    GROUP BY r.agency_code
    """


def _month_of(instant: str) -> str:
    # The local month of an instant, by binary search among the local starts of February ..
    # December (no time zone conversion per row). An instant before the year falls in January,
    # one after it in December: the months of a finding or completion recorded outside the
    # year it belongs to, so that the twelve add up to the execution report's yearly figures.
    return f"(width_bucket({instant}, CAST(:month_starts AS timestamptz[])) + 1)"


def _outside_year(instant: str) -> str:
    return (
        f"({instant} < CAST(:year_from AS timestamptz) "
        f"OR {instant} >= CAST(:year_to AS timestamptz))"
    )


def _monthly_sql(agency: str | None) -> str:
    # `found` is the execution report's finding set (see _findings_sql): one row per finding and
    # agency whose inspection of the year it names, with the instant it was recorded.
    # `done` is the report's `completed`, at the instant of completion (else the local start of
    # the visit day, else of the window's last day, for rows without a completion time).
    # Twelve rows, months without anything included.
    agency_clause = _agency_clause("i.agency_code", agency)
    return f"""
    WITH found AS (
        SELECT DISTINCT f.id, f.kind, i.agency_code, f.created_at AS at
        FROM (SELECT c.id, c.kind, c.created_at, c.enterprise_uscc,
                     unnest(c.inspection_ids) AS inspection_id
              FROM conflict c) f
        CROSS JOIN LATERAL (
            SELECT i.agency_code FROM inspection i
            WHERE i.enterprise_uscc = f.enterprise_uscc AND i.id = f.inspection_id
              AND i.year = :year{agency_clause}
            OFFSET 0) i
    ),
    by_kind AS (
        SELECT {_month_of("found.at")} AS month, found.kind, count(*) AS n,
               count(*) FILTER (WHERE {_outside_year("found.at")}) AS outside
        FROM found
        GROUP BY 1, found.kind
    ),
    findings AS (
        SELECT by_kind.month, jsonb_object_agg(by_kind.kind, by_kind.n) AS by_kind,
               sum(by_kind.n) AS total, sum(by_kind.outside) AS outside
        FROM by_kind
        GROUP BY by_kind.month
    ),
    done AS (
        SELECT {_month_of("d.at")} AS month, count(*) AS n,
               count(*) FILTER (WHERE {_outside_year("d.at")}) AS outside
        FROM (SELECT COALESCE(i.completed_at,
                              CAST(COALESCE(i.visit_date, i.window_end) AS timestamp)
                                AT TIME ZONE CAST(:tz AS text)) AS at
              FROM inspection i
              WHERE i.year = :year AND i.status = 'completed'{agency_clause}) d
        GROUP BY 1
    )
    SELECT m.month,
           COALESCE(done.n, 0) AS inspections_completed,
           COALESCE(done.outside, 0) AS inspections_completed_outside_year,
           COALESCE(findings.total, 0) AS findings_total,
           COALESCE(findings.outside, 0) AS findings_recorded_outside_year,
           COALESCE(findings.by_kind, CAST('{{}}' AS jsonb)) AS findings
    FROM generate_series(1, 12) AS m(month)
    LEFT JOIN done ON done.month = m.month
    LEFT JOIN findings ON findings.month = m.month
    ORDER BY m.month
    """


def _num(row: Any, key: str) -> int:
    return int(row.get(key) or 0)


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _caps(year: int) -> dict[str, int]:
    book = policy_in_force()
    for day in (date(year, 12, 31), date(year, 1, 1)):
        try:
            policy = book.at(day)
            return {rc: policy.cap_for(rc) for rc in RISK_CLASSES}
        except PolicyNotInForceError:
            continue
    return {"A": 1, "B": 2, "C": 3, "D": 6}


async def _by_agency(session: AsyncSession, sql: str, params: dict[str, Any]) -> dict[str, Any]:
    used = {k: v for k, v in params.items() if f":{k}" in sql}
    return {r["agency_code"]: r for r in (await session.execute(text(sql), used)).mappings()}


def _findings(rows: Any) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    by_agency: dict[str, dict[str, Any]] = {}
    failed: dict[str, int] = {}
    for r in rows:
        if r["agency_total"]:
            failed[r["agency_code"]] = int(r["failed_inspections"])
            continue
        part = by_agency.setdefault(r["agency_code"], {}).setdefault(
            r["kind"], {"total": 0, "open": 0, "resolved": 0, "resolutions": {}}
        )
        part["total"] += r["n"]
        if r["resolution"] is None:
            part["open"] += r["n"]
        else:
            part["resolved"] += r["n"]
            part["resolutions"][r["resolution"]] = r["n"]
    return by_agency, failed


async def execution_report(
    session: AsyncSession, year: int, agency: str | None = None, today: date | None = None
) -> list[dict[str, Any]]:
    """One row per agency (or the one agency): what was planned, done, found and verified."""
    today = today or date.today()
    caps = _caps(year)
    params: dict[str, Any] = {
        "year": year,
        "agency": agency,
        "today": today,
        "classes": list(caps),
        "caps": [caps[c] for c in caps],
        "min_cap": min(caps.values()),
        "year_from": datetime(year, 1, 1, tzinfo=LOCAL_TZ),
        "year_to": datetime(year + 1, 1, 1, tzinfo=LOCAL_TZ),
    }
    # One report is a handful of large aggregates: sort and hash in memory, and skip JIT
    # compilation (it cost more than it saved on every query here; see bench/report_bench.py).
    await session.execute(text("SET LOCAL work_mem = '64MB'"))
    await session.execute(text("SET LOCAL jit = off"))
    agencies = (
        await session.execute(
            text(
                f"SELECT code, name FROM agency WHERE TRUE{_agency_clause('code', agency)} "
                "ORDER BY code"
            ),
            {"agency": agency} if agency is not None else {},
        )
    ).all()
    insp = await _by_agency(session, _inspections_sql(agency), params)
    dist = await _by_agency(session, _distribution_sql(agency), params)
    surveys = await _by_agency(session, _surveys_sql(agency), params)
    plans = await _by_agency(session, _plans_sql(agency), params)
    requests = await _by_agency(session, _requests_sql(agency), params)
    findings, failed = _findings(
        (await session.execute(text(_findings_sql(agency)), _only(params, "year", "agency")))
        .mappings()
        .all()
    )
    rows: list[dict[str, Any]] = []
    for code, name in agencies:
        i: Any = insp.get(code) or {}
        s: Any = surveys.get(code) or {}
        d: Any = dist.get(code) or {}
        pl: Any = plans.get(code) or {}
        rq: Any = requests.get(code) or {}
        median = rq.get("median_decision_hours")
        f = findings.get(code, {})
        rows.append(
            {
                "agency": code,
                "agency_name": name,
                "year": year,
                "plan_items": {
                    "plans": _num(pl, "plans"),
                    "published_plans": _num(pl, "published"),
                    "items": _num(pl, "items"),
                    "published_items": _num(pl, "published_items"),
                },
                "planned_total": _num(i, "planned_total"),
                "planned_due": _num(i, "planned_due"),
                "planned_done": _num(i, "planned_done"),
                "planned_overdue": _num(i, "planned_overdue"),
                "execution_rate": _rate(_num(i, "planned_done"), _num(i, "planned_due")),
                "unplanned": _num(i, "unplanned"),
                "joint": _num(i, "joint"),
                "inspections": _num(i, "inspections"),
                "unplanned_share": _rate(_num(i, "unplanned"), _num(i, "inspections")),
                "requests": {
                    "submitted": _num(rq, "submitted"),
                    "approved": _num(rq, "approved"),
                    "rejected": _num(rq, "rejected"),
                    "expired": _num(rq, "expired"),
                    "withdrawn": _num(rq, "withdrawn"),
                    "pending": _num(rq, "pending"),
                    "median_decision_hours": None if median is None else round(float(median), 2),
                },
                "findings": f,
                "avoided_by_merging": _num(i, "avoided_by_merging"),
                "enterprises_over_cap": _num(d, "over_cap"),
                "inspections_per_enterprise": {
                    "1": _num(d, "one"),
                    "2": _num(d, "two"),
                    "3": _num(d, "three"),
                    "4+": _num(d, "four_plus"),
                },
                "completed": _num(i, "completed"),
                "hit_rate": _rate(_num(i, "with_problem"), _num(i, "completed")),
                "surveys_planned": _num(s, "planned"),
                "surveys_sent": _num(s, "sent"),
                "surveys_answered": _num(s, "answered"),
                "surveys_expired": _num(s, "expired"),
                "survey_response_rate": _rate(_num(s, "answered"), _num(s, "sent")),
                "survey_discrepancy_rate": _rate(_num(s, "with_discrepancy"), _num(s, "answered")),
                "trace_check_failures": sum(f.get(k, {}).get("total", 0) for k in TRACE_KINDS),
                "trace_check_failure_rate": _rate(failed.get(code, 0), _num(i, "completed")),
            }
        )
    return rows


async def findings_by_month(
    session: AsyncSession, year: int, agency: str | None = None
) -> dict[str, Any]:
    """Findings by kind and inspections completed, per local month of the year (每月发现问题).

    The same findings and completed inspections as the execution report, so the twelve months
    add up to its yearly figures (over all agencies: to the sum of its rows, a finding naming
    two agencies' inspections counting once for each). A month is the Asia/Shanghai month the
    finding was recorded or the inspection completed, held inside the year.
    """
    if agency is not None:
        known = await session.execute(text("SELECT 1 FROM agency WHERE code = :a"), {"a": agency})
        if known.first() is None:
            raise NotFound(f"There is no agency {agency}.")
    # As the report: aggregate in memory (the planner cannot know there are only twelve
    # months and would otherwise sort a year of completions to disk), no JIT compilation.
    await session.execute(text("SET LOCAL work_mem = '64MB'"))
    await session.execute(text("SET LOCAL jit = off"))
    params: dict[str, Any] = {
        "year": year,
        "tz": LOCAL_TZ.key,
        "month_starts": [datetime(year, m, 1, tzinfo=LOCAL_TZ) for m in range(2, 13)],
        "year_from": datetime(year, 1, 1, tzinfo=LOCAL_TZ),
        "year_to": datetime(year + 1, 1, 1, tzinfo=LOCAL_TZ),
    }
    if agency is not None:
        params["agency"] = agency
    months = (await session.execute(text(_monthly_sql(agency)), params)).mappings().all()
    kinds = sorted({kind for m in months for kind in m["findings"]})
    return {
        "year": year,
        "agency": agency,
        "kinds": kinds,
        "items": [
            {
                "month": m["month"],
                "inspections_completed": int(m["inspections_completed"]),
                "findings_total": int(m["findings_total"]),
                "findings": {kind: int(m["findings"].get(kind, 0)) for kind in kinds},
                "findings_recorded_outside_year": int(m["findings_recorded_outside_year"]),
                "inspections_completed_outside_year": int(m["inspections_completed_outside_year"]),
            }
            for m in months
        ],
    }


def _only(params: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: params[k] for k in keys if params.get(k) is not None}


def flatten(row: dict[str, Any]) -> dict[str, Any]:
    """One flat dict per row for CSV and Excel (nested parts become `part.key` columns)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            for sub, v in flatten(value).items():
                out[f"{key}.{sub}"] = v
        else:
            out[key] = value
    return out


@lru_cache
def load_assessment(path: str | None = None) -> dict[str, dict[str, Any]]:
    """The indicator table from config/assessment.toml."""
    resolved = Path(path) if path else config_dir() / "assessment.toml"
    with resolved.open("rb") as fh:
        indicators: dict[str, dict[str, Any]] = tomllib.load(fh)["indicators"]
    for key, spec in indicators.items():
        if spec.get("direction") not in ("higher", "lower") or float(spec.get("weight", 0)) < 0:
            raise ValueError(f"assessment indicator {key}: direction or weight invalid")
    return indicators


def assess(
    rows: list[dict[str, Any]], indicators: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Score each agency's report row, total by weight and rank (ties share a rank)."""
    table: list[dict[str, Any]] = []
    for row in rows:
        scores: dict[str, Any] = {}
        weighted = 0.0
        weight_sum = 0.0
        for key, spec in indicators.items():
            value = row.get(key)
            if value is None:
                scores[key] = {"value": None, "score": None, "weight": spec["weight"]}
                continue
            score = 100 * value if spec["direction"] == "higher" else 100 * (1 - value)
            scores[key] = {"value": value, "score": round(score, 2), "weight": spec["weight"]}
            weighted += float(spec["weight"]) * score
            weight_sum += float(spec["weight"])
        total = round(weighted / weight_sum, 2) if weight_sum else None
        table.append(
            {
                "agency": row["agency"],
                "agency_name": row["agency_name"],
                "indicators": scores,
                "total": total,
            }
        )
    ordered = sorted((t["total"] for t in table if t["total"] is not None), reverse=True)
    for t in table:
        t["rank"] = ordered.index(t["total"]) + 1 if t["total"] is not None else None
    table.sort(key=lambda t: (t["rank"] is None, t["rank"] or 0, t["agency"]))
    return table


async def assessment(session: AsyncSession, year: int) -> list[dict[str, Any]]:
    """The district's assessment table for a year."""
    return assess(await execution_report(session, year), load_assessment())
