"""Trace checks (平台留痕核查): the platform's own records of each completed inspection.

Each rule is one set-based query over a year's completed inspections; every failing
inspection gets one finding per rule (`trace_check_failed`, or `unregistered_visit`), keyed by
inspection and rule, so running the checks again adds nothing.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.policy import Policy, PolicyNotInForceError, load_policy
from inspection_hub.surveys.findings import record_findings_from

_BASE = "FROM inspection i WHERE i.year = :year AND i.status = 'completed'"

RULES: dict[str, tuple[str, str]] = {
    # rule: (finding kind, SELECT enterprise_uscc, inspection_id, agency_code, detail)
    "inspectors_certified": (
        "trace_check_failed",
        """
        SELECT i.enterprise_uscc, i.id, i.agency_code,
               jsonb_build_object('certified_present', c.n,
                                  'required', CAST(:min_inspectors AS integer),
                                  'message', '到场持证执法人员不足 / fewer than the required '
                                  'certified inspectors present')
        FROM inspection i
        CROSS JOIN LATERAL (
            SELECT count(*) AS n FROM inspection_inspector ii
            JOIN inspector p ON p.id = ii.inspector_id
            WHERE ii.enterprise_uscc = i.enterprise_uscc AND ii.inspection_id = i.id
              AND ii.present IS TRUE AND p.certificate_valid_until >= i.visit_date) c
        WHERE i.year = :year AND i.status = 'completed' AND c.n < CAST(:min_inspectors AS integer)
        """,
    ),
    "visit_in_window": (
        "trace_check_failed",
        """
        SELECT i.enterprise_uscc, i.id, i.agency_code,
               jsonb_build_object('visit_date', i.visit_date, 'window_start', i.window_start,
                                  'window_end', i.window_end,
                                  'message', '检查日期不在计划时间窗内 / visit outside the window')
        """
        + _BASE
        + " AND (i.visit_date IS NULL OR i.visit_date NOT BETWEEN i.window_start AND i.window_end)",
    ),
    "unplanned_approved": (
        # Unplanned: an approved check request, decided before the visit started (or, without
        # a recorded start, by the end of the visit day); an emergency: approved within the
        # policy's hours of its submission (the request's emergency_due_at).
        "trace_check_failed",
        """
        SELECT i.enterprise_uscc, i.id, i.agency_code,
               jsonb_build_object('check_request_id', i.check_request_id,
                                  'request_status', r.status, 'emergency', r.emergency,
                                  'decided_at', r.decided_at,
                                  'message', CASE WHEN r.emergency
                                      THEN '紧急检查未在时限内获批 / emergency check not '
                                           'approved within the time limit'
                                      ELSE '计划外检查未在检查前获批 / unplanned check not '
                                           'approved before the visit' END)
        FROM inspection i
        LEFT JOIN check_request r
          ON r.enterprise_uscc = i.enterprise_uscc AND r.id = i.check_request_id
        WHERE i.year = :year AND i.status = 'completed' AND i.kind = 'unplanned'
          AND (r.id IS NULL OR r.status <> 'approved' OR r.decided_at IS NULL
               OR (NOT r.emergency AND r.decided_at > COALESCE(i.started_at,
                       CAST(i.visit_date + 1 AS timestamp) AT TIME ZONE 'Asia/Shanghai'))
               OR (r.emergency AND r.decided_at > COALESCE(r.emergency_due_at,
                       r.submitted_at + make_interval(hours => CAST(:emergency_hours AS integer)))))
        """,
    ),
    "outcome_in_time": (
        "trace_check_failed",
        """
        SELECT i.enterprise_uscc, i.id, i.agency_code,
               jsonb_build_object('visit_date', i.visit_date, 'completed_at', i.completed_at,
                                  'deadline_days', CAST(:outcome_days AS integer),
                                  'message', '检查结果未按期录入 / outcome not recorded in time')
        """
        + _BASE
        + """ AND (i.outcome IS NULL OR i.completed_at IS NULL OR i.visit_date IS NULL
                   OR (i.completed_at AT TIME ZONE 'Asia/Shanghai')::date - i.visit_date
                      > CAST(:outcome_days AS integer))""",
    ),
    "results_published": (
        "trace_check_failed",
        """
        SELECT i.enterprise_uscc, i.id, i.agency_code,
               jsonb_build_object('plan_id', i.plan_id, 'plan_status', p.status,
                                  'outcome_recorded', i.outcome IS NOT NULL,
                                  'message', '抽查结果未公开（计划未公布或结果未录入） / the '
                                  'result is not public: plan not published or no outcome')
        FROM inspection i JOIN plan p ON p.id = i.plan_id
        WHERE i.year = :year AND i.status = 'completed' AND i.plan_id IS NOT NULL
          AND (p.status <> 'published' OR i.outcome IS NULL)
        """,
    ),
    "registered": (
        "unregistered_visit",
        """
        SELECT i.enterprise_uscc, i.id, i.agency_code,
               jsonb_build_object('message', '检查码未扫描且未登记 / the inspection code was '
                                  'never scanned and the visit never registered')
        """
        + _BASE
        + " AND NOT i.offsite AND i.code_scanned_at IS NULL AND i.started_at IS NULL",
    ),
}


def _policy_for(year: int, policy_path: str | None) -> Policy | None:
    book = load_policy(policy_path)
    for day in (min(date.today(), date(year, 12, 31)), date(year, 12, 31), date(year, 1, 1)):
        try:
            return book.at(day)
        except PolicyNotInForceError:
            continue
    return None


async def run_trace_checks(
    session: AsyncSession, year: int, *, policy_path: str | None = None
) -> dict[str, int]:
    """Check every completed inspection of a year; returns new findings per rule."""
    policy = _policy_for(year, policy_path)
    params = {
        "year": year,
        "min_inspectors": policy.inspectors.min_per_inspection if policy else 2,
        "outcome_days": policy.trace_checks.outcome_deadline_days if policy else 7,
        "emergency_hours": policy.check_requests.emergency_approval_hours if policy else 24,
    }
    counts: dict[str, int] = {}
    for rule, (kind, sql) in RULES.items():
        used = {k: v for k, v in params.items() if f":{k}" in sql}
        counts[rule] = await record_findings_from(session, kind, rule, sql, used)
    return counts
