"""Report figures against a hand-built data set where every number is known."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import text

from inspection_hub.kit.synth import make_uscc
from inspection_hub.reports.service import execution_report
from tests.surveys import factories

TODAY = date(2026, 7, 1)

# (id, agency, enterprise, kind, status, window_start, window_end, outcome)
INSPECTIONS = [
    (1, "SCJG", "e1", "planned", "completed", "2026-03-01", "2026-03-31", "no_issue"),
    (2, "SCJG", "e2", "planned", "completed", "2026-03-01", "2026-03-31", "rectification_ordered"),
    (3, "SCJG", "e3", "planned", "scheduled", "2026-04-01", "2026-04-30", None),
    (4, "SCJG", "e3", "planned", "scheduled", "2026-12-01", "2026-12-31", None),
    (5, "SCJG", "e1", "unplanned", "completed", "2026-05-01", "2026-05-10", "penalized"),
    (6, "SCJG", "e2", "planned", "merged", "2026-03-01", "2026-03-31", None),
    (7, "SCJG", "e3", "planned", "cancelled", "2026-03-01", "2026-03-31", None),
    (8, "YJGL", "e1", "planned", "completed", "2026-03-01", "2026-03-31", "no_issue"),
    (9, "YJGL", "e2", "joint", "completed", "2026-03-01", "2026-03-31", "no_issue"),
    (10, "YJGL", "e2", "planned", "completed", "2025-03-01", "2025-03-31", "penalized"),
]
# (inspection id, status, discrepancies)
SURVEYS = [
    (1, "answered", ["visit_denied"]),
    (5, "answered", []),
    (2, "expired", []),
    (8, "pending", []),
]
# (inspection id, kind, rule, resolution)
FINDINGS = [
    (5, "trace_check_failed", "visit_in_window", None),
    (5, "trace_check_failed", "outcome_in_time", "justified"),
    (5, "unregistered_visit", "registered", None),
    (2, "trace_check_failed", "visit_in_window", "dismissed"),
    (1, "survey_discrepancy", None, None),
]
# (id, year, agencies (lead first), status, items)
PLANS = [
    (1, 2026, ["SCJG"], "published", 3),
    (2, 2026, ["YJGL", "SCJG"], "drawn", 2),
    (3, 2026, ["SCJG"], "withdrawn", 1),
    (4, 2025, ["SCJG"], "published", 4),
]


# SCJG check requests: (status, submitted_at, hours until decided)
REQUESTS = [
    ("approved", datetime(2026, 3, 1, 0, 0, tzinfo=UTC), 2),
    ("approved", datetime(2026, 3, 2, 0, 0, tzinfo=UTC), 4),
    ("rejected", datetime(2026, 3, 3, 0, 0, tzinfo=UTC), 12),
    ("expired", datetime(2026, 3, 4, 0, 0, tzinfo=UTC), None),
    ("pending", datetime(2026, 6, 30, 0, 0, tzinfo=UTC), None),
    # 2026-01-01 01:00 in Beijing: this year's.
    ("withdrawn", datetime(2025, 12, 31, 17, 0, tzinfo=UTC), None),
    # 2025-12-31 23:00 in Beijing: last year's (it would move the median to 7 h).
    ("approved", datetime(2025, 12, 31, 15, 0, tzinfo=UTC), 10),
]


@pytest.fixture
async def dataset(sessionmaker: Any, two_agencies: Any) -> dict[str, str]:
    usccs = {
        "e1": make_uscc("350102", 901),
        "e2": make_uscc("350102", 902),
        "e3": make_uscc("350102", 903),
    }
    risk = {"e1": "A", "e2": "B", "e3": "B"}
    async with sessionmaker() as s, s.begin():
        for key, uscc in usccs.items():
            await s.execute(
                text(
                    "INSERT INTO enterprise (uscc, name, district_code, industry_code, "
                    "risk_class) VALUES (:u, :n, '350102', '5211', :r)"
                ),
                {"u": uscc, "n": key, "r": risk[key]},
            )
        for iid, agency, ent, kind, status, ws, we, outcome in INSPECTIONS:
            await s.execute(
                text(
                    "INSERT INTO inspection (enterprise_uscc, id, kind, status, agency_code, "
                    "year, window_start, window_end, outcome, visit_date) VALUES (:u, :id, :k, "
                    ":s, :a, :y, :ws, :we, :o, :vd)"
                ),
                {
                    "u": usccs[ent],
                    "id": iid,
                    "k": kind,
                    "s": status,
                    "a": agency,
                    "y": int(ws[:4]),
                    "ws": date.fromisoformat(ws),
                    "we": date.fromisoformat(we),
                    "o": outcome,
                    "vd": date.fromisoformat(ws),
                },
            )
        ent_of = {i[0]: usccs[i[2]] for i in INSPECTIONS}
        agency_of = {i[0]: i[1] for i in INSPECTIONS}
        for iid, status, disc in SURVEYS:
            await s.execute(
                text(
                    "INSERT INTO survey (enterprise_uscc, inspection_id, agency_code, year, "
                    "inspection_kind, status, due_at, discrepancies) VALUES (:u, :i, :a, 2026, "
                    "'planned', :s, now(), CAST(:d AS varchar[]))"
                ),
                {"u": ent_of[iid], "i": iid, "a": agency_of[iid], "s": status, "d": disc},
            )
        for iid, kind, rule, resolution in FINDINGS:
            await s.execute(
                text(
                    "INSERT INTO conflict (enterprise_uscc, kind, finding_key, inspection_ids, "
                    "agency_codes, detail, status, resolution, resolved_at) VALUES (:u, :k, "
                    ":key, ARRAY[CAST(:i AS bigint)], '{}', '{}', :st, :res, "
                    "CASE WHEN CAST(:res AS varchar) IS NULL THEN NULL ELSE now() END)"
                ),
                {
                    "u": ent_of[iid],
                    "k": kind,
                    "key": f"{kind}:{iid}:{rule}",
                    "i": iid,
                    "st": "open" if resolution is None else "resolved",
                    "res": resolution,
                },
            )
        # A detector finding naming inspections of both agencies counts for each of them.
        await s.execute(
            text(
                "INSERT INTO conflict (enterprise_uscc, kind, finding_key, inspection_ids, "
                "agency_codes, status, resolution, resolved_at) VALUES (:u, 'mergeable', "
                "'mergeable:2,9', '{2,9}', '{SCJG,YJGL}', 'resolved', 'merged', now())"
            ),
            {"u": usccs["e2"]},
        )
        # A finding about last year's inspection is not this year's.
        await s.execute(
            text(
                "INSERT INTO conflict (enterprise_uscc, kind, finding_key, inspection_ids) "
                "VALUES (:u, 'trace_check_failed', 'trace_check_failed:10:x', '{10}')"
            ),
            {"u": usccs["e2"]},
        )
        for plan_id, year, agencies, status, items in PLANS:
            await s.execute(
                text(
                    "INSERT INTO plan (id, year, title, agency_code, agencies, status) "
                    "VALUES (:id, :y, :t, :a, CAST(:ag AS varchar[]), :s)"
                ),
                {
                    "id": plan_id,
                    "y": year,
                    "t": f"plan {plan_id}",
                    "a": agencies[0],
                    "ag": agencies,
                    "s": status,
                },
            )
            for pos in range(items):
                await s.execute(
                    text(
                        "INSERT INTO plan_item (plan_id, position, matters, sampling, "
                        "window_start, window_end, inspectors_per_check) VALUES (:p, :pos, "
                        "'{SCJG-001}', '{}', '2026-03-01', '2026-03-31', 2)"
                    ),
                    {"p": plan_id, "pos": pos},
                )
        # Check requests: (status, submitted at, hours to the decision)
        for status, submitted, hours in REQUESTS:
            await factories.check_request(
                s,
                uscc=usccs["e1"],
                status=status,
                submitted_at=submitted,
                decided_at=None if hours is None else submitted + timedelta(hours=hours),
            )
    return usccs


async def test_execution_figures(sessionmaker: Any, dataset: Any) -> None:
    async with sessionmaker() as s:
        rows = {r["agency"]: r for r in await execution_report(s, 2026, today=TODAY)}
    scjg, yjgl = rows["SCJG"], rows["YJGL"]
    assert (scjg["planned_total"], scjg["planned_due"], scjg["planned_done"]) == (4, 3, 2)
    assert scjg["planned_overdue"] == 1
    assert scjg["execution_rate"] == 0.6667
    assert (scjg["unplanned"], scjg["inspections"], scjg["unplanned_share"]) == (1, 5, 0.2)
    assert (scjg["completed"], scjg["hit_rate"]) == (3, 0.6667)
    assert scjg["avoided_by_merging"] == 1
    assert scjg["enterprises_over_cap"] == 1
    assert scjg["inspections_per_enterprise"] == {"1": 1, "2": 2, "3": 0, "4+": 0}
    assert (scjg["surveys_planned"], scjg["surveys_sent"], scjg["surveys_answered"]) == (3, 3, 2)
    assert scjg["survey_response_rate"] == 0.6667
    assert scjg["survey_discrepancy_rate"] == 0.5
    assert scjg["trace_check_failures"] == 4
    # Inspections 5 and 2 failed a check, of 3 completed.
    assert scjg["trace_check_failure_rate"] == 0.6667
    assert scjg["findings"] == {
        "trace_check_failed": {
            "total": 3,
            "open": 1,
            "resolved": 2,
            "resolutions": {"justified": 1, "dismissed": 1},
        },
        "unregistered_visit": {"total": 1, "open": 1, "resolved": 0, "resolutions": {}},
        "survey_discrepancy": {"total": 1, "open": 1, "resolved": 0, "resolutions": {}},
        "mergeable": {"total": 1, "open": 0, "resolved": 1, "resolutions": {"merged": 1}},
    }
    assert scjg["plan_items"] == {
        "plans": 2,
        "published_plans": 1,
        "items": 5,
        "published_items": 3,
    }
    assert yjgl["plan_items"] == {
        "plans": 1,
        "published_plans": 0,
        "items": 2,
        "published_items": 0,
    }
    assert scjg["requests"] == {
        "submitted": 6,
        "approved": 2,
        "rejected": 1,
        "expired": 1,
        "withdrawn": 1,
        "pending": 1,
        "median_decision_hours": 4.0,
    }
    assert yjgl["requests"] == {
        "submitted": 0,
        "approved": 0,
        "rejected": 0,
        "expired": 0,
        "withdrawn": 0,
        "pending": 0,
        "median_decision_hours": None,
    }
    assert yjgl["findings"] == {
        "mergeable": {"total": 1, "open": 0, "resolved": 1, "resolutions": {"merged": 1}},
    }
    assert (yjgl["planned_total"], yjgl["planned_due"], yjgl["planned_done"]) == (1, 1, 1)
    assert (yjgl["execution_rate"], yjgl["unplanned_share"], yjgl["hit_rate"]) == (1.0, 0.0, 0.0)
    assert yjgl["joint"] == 1
    assert yjgl["enterprises_over_cap"] == 1
    assert yjgl["inspections_per_enterprise"] == {"1": 2, "2": 0, "3": 0, "4+": 0}
    assert (yjgl["surveys_sent"], yjgl["survey_response_rate"]) == (0, None)
    assert yjgl["trace_check_failures"] == 0


async def test_scoping_csv_and_assessment(client: Any, dataset: Any, make_headers: Any) -> None:
    sup = await make_headers("supervisor")
    scjg = await make_headers("scheduler", "SCJG")
    r = await client.get("/v1/reports/execution?year=2026", headers=scjg)
    assert [row["agency"] for row in r.json()["items"]] == ["SCJG"]
    assert (
        await client.get("/v1/reports/execution?year=2026&agency=YJGL", headers=scjg)
    ).status_code == 403
    r = await client.get("/v1/reports/execution?year=2026", headers={**sup, "Accept": "text/csv"})
    assert r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert [row["agency"] for row in table] == ["SCJG", "YJGL"]
    assert table[0]["inspections_per_enterprise.2"] == "2"
    assert (await client.get("/v1/reports/assessment?year=2026", headers=scjg)).status_code == 403
    items = (await client.get("/v1/reports/assessment?year=2026", headers=sup)).json()["items"]
    assert [(i["agency"], i["rank"]) for i in items] == [("YJGL", 1), ("SCJG", 2)]
    assert items[0]["total"] == pytest.approx(
        (30 * 100 + 15 * 100 + 15 * 100 + 10 * 0) / 70, abs=0.01
    )
    assert items[0]["indicators"]["survey_response_rate"]["score"] is None
    expected = (30 * 66.67 + 15 * 80 + 10 * 66.67 + 20 * 50 + 15 * 33.33 + 10 * 66.67) / 100
    assert items[1]["total"] == pytest.approx(expected, abs=0.01)
    x = await client.get("/v1/reports/assessment?year=2026&format=xlsx", headers=sup)
    ws = load_workbook(io.BytesIO(x.content)).active
    assert ws is not None
    header = [c.value for c in ws[1]]
    assert header[:2] == ["agency", "agency_name"]
    assert ws.cell(row=2, column=1).value == "YJGL"
    assert ws.cell(row=2, column=header.index("rank") + 1).value == 1


async def test_xlsx_export_survives_control_characters_in_names(
    client: Any, sessionmaker: Any, make_headers: Any
) -> None:
    # An agency registered with a control character in its name (the schema allows any
    # text) made the XLSX export fail with a 500; the cell drops the character instead.
    admin = await make_headers("admin")
    created = await client.post(
        "/v1/agencies", json={"code": "CTRL", "name": "市场\x02监管局"}, headers=admin
    )
    assert created.status_code == 201, created.text
    x = await client.get("/v1/reports/execution?year=2026&format=xlsx", headers=admin)
    assert x.status_code == 200, x.text
    ws = load_workbook(io.BytesIO(x.content)).active
    assert ws is not None
    header = [c.value for c in ws[1]]
    names = [row[header.index("agency_name")] for row in ws.iter_rows(min_row=2, values_only=True)]
    assert "市场监管局" in names
