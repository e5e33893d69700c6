"""Execution report and annual assessment, computed in SQL (one aggregate query per part).

Per agency and year: planned inspections due / done / overdue, unplanned share, merges, caps,
inspections per enterprise, hit rate, surveys, findings and trace checks. Parts that need
tables of other areas (plans, check requests, the conflicts store) are filled once those land;
until then they are reported as null.
"""

from __future__ import annotations

import tomllib
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.paths import config_dir
from inspection_hub.policy import RISK_CLASSES, PolicyNotInForceError, load_policy
from inspection_hub.surveys.findings import FINDINGS_TABLE

_INSPECTIONS = text(
    """
    SELECT i.agency_code,
      count(*) FILTER (WHERE i.kind = 'planned' AND i.status NOT IN ('cancelled', 'merged'))
        AS planned_total,
      count(*) FILTER (WHERE i.kind = 'planned' AND i.status NOT IN ('cancelled', 'merged')
                       AND (i.status = 'completed' OR i.window_end < :today)) AS planned_due,
      count(*) FILTER (WHERE i.kind = 'planned' AND i.status = 'completed') AS planned_done,
      count(*) FILTER (WHERE i.kind = 'planned' AND i.status IN ('scheduled', 'in_progress')
                       AND i.window_end < :today) AS planned_overdue,
      count(*) FILTER (WHERE i.kind = 'unplanned' AND i.status NOT IN ('cancelled', 'merged'))
        AS unplanned,
      count(*) FILTER (WHERE i.kind = 'joint' AND i.status NOT IN ('cancelled', 'merged'))
        AS joint,
      count(*) FILTER (WHERE i.status NOT IN ('cancelled', 'merged')) AS inspections,
      count(*) FILTER (WHERE i.status = 'completed') AS completed,
      count(*) FILTER (WHERE i.status = 'completed' AND i.outcome IS NOT NULL
                       AND i.outcome <> 'no_issue') AS with_problem,
      count(*) FILTER (WHERE i.status = 'merged') AS avoided_by_merging
    FROM inspection i
    WHERE i.year = :year AND (CAST(:agency AS varchar) IS NULL OR i.agency_code = :agency)
    GROUP BY i.agency_code
    """
)

_PER_ENTERPRISE = text(
    """
    WITH per AS (
        SELECT agency_code, enterprise_uscc, count(*) AS n FROM inspection
        WHERE year = :year AND status NOT IN ('cancelled', 'merged')
          AND (CAST(:agency AS varchar) IS NULL OR agency_code = :agency)
        GROUP BY agency_code, enterprise_uscc
    )
    SELECT agency_code,
           count(*) FILTER (WHERE n = 1) AS one, count(*) FILTER (WHERE n = 2) AS two,
           count(*) FILTER (WHERE n = 3) AS three, count(*) FILTER (WHERE n >= 4) AS four_plus,
           count(*) AS enterprises
    FROM per GROUP BY agency_code
    """
)

_OVER_CAP = text(
    """
    WITH totals AS (
        SELECT i.enterprise_uscc, count(*) AS n FROM inspection i
        WHERE i.year = :year AND i.status NOT IN ('cancelled', 'merged')
        GROUP BY i.enterprise_uscc
    ), over AS (
        SELECT t.enterprise_uscc FROM totals t JOIN enterprise e ON e.uscc = t.enterprise_uscc
        JOIN unnest(CAST(:classes AS varchar[]), CAST(:caps AS integer[])) AS c(rc, cap)
          ON c.rc = e.risk_class
        WHERE t.n > c.cap
    )
    SELECT i.agency_code, count(DISTINCT i.enterprise_uscc) AS over_cap
    FROM inspection i JOIN over o ON o.enterprise_uscc = i.enterprise_uscc
    WHERE i.year = :year AND i.status NOT IN ('cancelled', 'merged')
      AND (CAST(:agency AS varchar) IS NULL OR i.agency_code = :agency)
    GROUP BY i.agency_code
    """
)

_SURVEYS = text(
    """
    SELECT agency_code, count(*) AS planned,
           count(*) FILTER (WHERE status <> 'pending') AS sent,
           count(*) FILTER (WHERE status = 'answered') AS answered,
           count(*) FILTER (WHERE status = 'expired') AS expired,
           count(*) FILTER (WHERE status = 'answered' AND cardinality(discrepancies) > 0)
             AS with_discrepancy
    FROM survey
    WHERE year = :year AND (CAST(:agency AS varchar) IS NULL OR agency_code = :agency)
    GROUP BY agency_code
    """
)

_FINDINGS = text(
    f"""
    SELECT i.agency_code, f.kind, f.status, count(*) AS n,
           count(*) FILTER (WHERE f.resolution IS NOT NULL) AS resolved
    FROM {FINDINGS_TABLE} f
    JOIN inspection i ON i.enterprise_uscc = f.enterprise_uscc AND i.id = f.inspection_ids[1]
    WHERE i.year = :year AND (CAST(:agency AS varchar) IS NULL OR i.agency_code = :agency)
    GROUP BY i.agency_code, f.kind, f.status
    """
)

_TRACE_FAILED_INSPECTIONS = text(
    f"""
    SELECT i.agency_code, count(DISTINCT i.id) AS failed_inspections
    FROM {FINDINGS_TABLE} f
    JOIN inspection i ON i.enterprise_uscc = f.enterprise_uscc AND i.id = f.inspection_ids[1]
    WHERE f.kind IN ('trace_check_failed', 'unregistered_visit')
      AND i.year = :year AND (CAST(:agency AS varchar) IS NULL OR i.agency_code = :agency)
    GROUP BY i.agency_code
    """
)


def _num(row: Any, key: str) -> int:
    return int(row.get(key) or 0)


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _caps(year: int) -> dict[str, int]:
    book = load_policy()
    for day in (date(year, 12, 31), date(year, 1, 1)):
        try:
            policy = book.at(day)
            return {rc: policy.cap_for(rc) for rc in RISK_CLASSES}
        except PolicyNotInForceError:
            continue
    return {"A": 1, "B": 2, "C": 3, "D": 6}


async def execution_report(
    session: AsyncSession, year: int, agency: str | None = None, today: date | None = None
) -> list[dict[str, Any]]:
    """One row per agency (or the one agency): what was planned, done, found and verified."""
    today = today or date.today()
    params: dict[str, Any] = {"year": year, "agency": agency}
    caps = _caps(year)
    agencies = (
        await session.execute(
            text(
                "SELECT code, name FROM agency WHERE (CAST(:agency AS varchar) IS NULL "
                "OR code = :agency) ORDER BY code"
            ),
            {"agency": agency},
        )
    ).all()
    insp = {
        r["agency_code"]: r
        for r in (await session.execute(_INSPECTIONS, {**params, "today": today})).mappings()
    }
    per = {r["agency_code"]: r for r in (await session.execute(_PER_ENTERPRISE, params)).mappings()}
    over = {
        r["agency_code"]: r["over_cap"]
        for r in (
            await session.execute(
                _OVER_CAP,
                {**params, "classes": list(caps), "caps": [caps[c] for c in caps]},
            )
        ).mappings()
    }
    surveys = {r["agency_code"]: r for r in (await session.execute(_SURVEYS, params)).mappings()}
    findings: dict[str, dict[str, dict[str, int]]] = {}
    for r in (await session.execute(_FINDINGS, params)).mappings():
        by_kind = findings.setdefault(r["agency_code"], {}).setdefault(
            r["kind"], {"total": 0, "open": 0, "resolved": 0}
        )
        by_kind["total"] += r["n"]
        by_kind["resolved"] += r["resolved"]
        by_kind["open"] += r["n"] - r["resolved"]
    trace = {
        r["agency_code"]: r["failed_inspections"]
        for r in (await session.execute(_TRACE_FAILED_INSPECTIONS, params)).mappings()
    }
    rows: list[dict[str, Any]] = []
    for code, name in agencies:
        i: Any = insp.get(code) or {}
        s: Any = surveys.get(code) or {}
        p: Any = per.get(code) or {}
        f = findings.get(code, {})
        trace_kinds = ("trace_check_failed", "unregistered_visit")
        rows.append(
            {
                "agency": code,
                "agency_name": name,
                "year": year,
                "plan_items": None,  # needs the plans tables
                "planned_total": _num(i, "planned_total"),
                "planned_due": _num(i, "planned_due"),
                "planned_done": _num(i, "planned_done"),
                "planned_overdue": _num(i, "planned_overdue"),
                "execution_rate": _rate(_num(i, "planned_done"), _num(i, "planned_due")),
                "unplanned": _num(i, "unplanned"),
                "joint": _num(i, "joint"),
                "inspections": _num(i, "inspections"),
                "unplanned_share": _rate(_num(i, "unplanned"), _num(i, "inspections")),
                "requests": None,  # needs check_request: approved/rejected/expired, median time
                "findings": f,
                "avoided_by_merging": _num(i, "avoided_by_merging"),
                "enterprises_over_cap": int(over.get(code, 0)),
                "inspections_per_enterprise": {
                    "1": int(p.get("one") or 0),
                    "2": int(p.get("two") or 0),
                    "3": int(p.get("three") or 0),
                    "4+": int(p.get("four_plus") or 0),
                },
                "completed": _num(i, "completed"),
                "hit_rate": _rate(_num(i, "with_problem"), _num(i, "completed")),
                "surveys_planned": _num(s, "planned"),
                "surveys_sent": _num(s, "sent"),
                "surveys_answered": _num(s, "answered"),
                "surveys_expired": _num(s, "expired"),
                "survey_response_rate": _rate(_num(s, "answered"), _num(s, "sent")),
                "survey_discrepancy_rate": _rate(_num(s, "with_discrepancy"), _num(s, "answered")),
                "trace_check_failures": sum(f.get(k, {}).get("total", 0) for k in trace_kinds),
                "trace_check_failure_rate": _rate(int(trace.get(code, 0)), _num(i, "completed")),
            }
        )
    return rows


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
