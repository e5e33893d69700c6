"""Findings by month: local months, twelve of them, adding up to the execution report."""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import text

from inspection_hub.reports.service import execution_report, findings_by_month
from tests.reports import monthly_data as data
from tests.reports.monthly_data import EXPECTED_ALL, EXPECTED_SCJG, KINDS, YEAR, month_row


async def test_months_in_shanghai_time_with_zeros(sessionmaker: Any, two_agencies: Any) -> None:
    await data.build(sessionmaker)
    async with sessionmaker() as s:
        monthly = await findings_by_month(s, YEAR)
    assert (monthly["year"], monthly["agency"], monthly["kinds"]) == (YEAR, None, KINDS)
    assert [i["month"] for i in monthly["items"]] == list(range(1, 13))
    got = {i["month"]: (i["findings"], i["inspections_completed"]) for i in monthly["items"]}
    assert got == EXPECTED_ALL
    for item in monthly["items"]:
        assert item["findings_total"] == sum(item["findings"].values())
    # 23:30 on 31 January in Shanghai is 15:30 UTC: January's, and the finding an hour later
    # (00:30 on 1 February in Shanghai, still 31 January in UTC) is February's.
    assert month_row(monthly["items"], 1)["findings"]["trace_check_failed"] == 1
    assert month_row(monthly["items"], 2)["findings"]["trace_check_failed"] == 1
    # Recorded before the year (January) or after it (December), and said so.
    outside = {
        i["month"]: (i["findings_recorded_outside_year"], i["inspections_completed_outside_year"])
        for i in monthly["items"]
        if i["findings_recorded_outside_year"] or i["inspections_completed_outside_year"]
    }
    assert outside == {1: (1, 0), 12: (1, 1)}


async def test_one_agency(sessionmaker: Any, two_agencies: Any) -> None:
    await data.build(sessionmaker)
    async with sessionmaker() as s:
        scjg = await findings_by_month(s, YEAR, "SCJG")
        yjgl = await findings_by_month(s, YEAR, "YJGL")
        empty = await findings_by_month(s, YEAR - 2, "SCJG")
    assert scjg["kinds"] == ["mergeable", "repeat", "survey_discrepancy", "trace_check_failed"]
    got = {
        i["month"]: (i["findings_total"], i["inspections_completed"])
        for i in scjg["items"]
        if i["findings_total"] or i["inspections_completed"]
    }
    assert got == EXPECTED_SCJG
    assert month_row(yjgl["items"], 5)["findings"] == {
        "cap_exceeded": 0,
        "exempt": 1,
        "mergeable": 1,
        "survey_discrepancy": 0,
    }
    assert [i["findings_total"] for i in yjgl["items"]] == [1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1]
    assert [i["inspections_completed"] for i in yjgl["items"]] == [0] * 5 + [1] + [0] * 5 + [1]
    # A year without data still has its twelve months.
    assert empty["kinds"] == []
    assert [(i["month"], i["findings_total"]) for i in empty["items"]] == [
        (m, 0) for m in range(1, 13)
    ]


async def test_months_add_up_to_the_execution_report(sessionmaker: Any, two_agencies: Any) -> None:
    await data.build(sessionmaker)
    async with sessionmaker() as s:
        report = await execution_report(s, YEAR)
        per_agency = {code: await findings_by_month(s, YEAR, code) for code in ("SCJG", "YJGL")}
        district = await findings_by_month(s, YEAR)
    assert [r["agency"] for r in report] == ["SCJG", "YJGL"]
    for row in report:
        monthly = per_agency[row["agency"]]
        by_kind: Counter[str] = Counter()
        for item in monthly["items"]:
            by_kind.update(item["findings"])
        assert +by_kind == {kind: f["total"] for kind, f in row["findings"].items()}
        assert sum(i["inspections_completed"] for i in monthly["items"]) == row["completed"]
    all_kinds: Counter[str] = Counter()
    for item in district["items"]:
        all_kinds.update(item["findings"])
    report_kinds: Counter[str] = Counter()
    for row in report:
        report_kinds.update({kind: f["total"] for kind, f in row["findings"].items()})
    assert +all_kinds == report_kinds
    assert sum(report_kinds.values()) == 10  # every finding but the one about 2025 only
    assert sum(i["inspections_completed"] for i in district["items"]) == sum(
        r["completed"] for r in report
    )


async def test_scoping_formats_and_errors(
    client: Any, sessionmaker: Any, two_agencies: Any, make_headers: Any
) -> None:
    await data.build(sessionmaker)
    url = f"/v1/reports/findings-by-month?year={YEAR}"
    sup = await make_headers("supervisor")
    scheduler = await make_headers("scheduler", "SCJG")
    approver = await make_headers("approver", "YJGL")

    # An agency's officials get their own agency, whatever they leave out ...
    r = await client.get(url, headers=scheduler)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["agency"] == "SCJG"
    assert {
        i["month"]: (i["findings_total"], i["inspections_completed"])
        for i in body["items"]
        if i["findings_total"] or i["inspections_completed"]
    } == EXPECTED_SCJG
    assert (await client.get(url + "&agency=SCJG", headers=scheduler)).json() == body
    r = await client.get(url, headers=approver)
    assert (r.json()["agency"], r.json()["items"][0]["findings_total"]) == ("YJGL", 1)
    # ... and never another agency's.
    r = await client.get(url + "&agency=YJGL", headers=scheduler)
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    assert (await client.get(url + "&agency=SCJG", headers=approver)).status_code == 403

    # Supervisors see every agency, or the one they ask for.
    everything = (await client.get(url, headers=sup)).json()
    assert everything["agency"] is None
    months = {i["month"]: (i["findings"], i["inspections_completed"]) for i in everything["items"]}
    assert months == EXPECTED_ALL
    r = await client.get(url + "&agency=YJGL", headers=sup)
    assert [i["findings_total"] for i in r.json()["items"]][4] == 2
    r = await client.get(url + "&agency=NOPE", headers=sup)
    assert (r.status_code, r.json()["type"].rsplit("/", 1)[-1]) == (404, "not-found")
    bare = "/v1/reports/findings-by-month"
    assert (await client.get(bare + "?year=1999", headers=sup)).status_code == 422
    assert (await client.get(bare, headers=sup)).status_code == 422
    assert (await client.get(url)).status_code == 401

    # CSV: the JSON's months as rows, flattened like the execution report's columns.
    r = await client.get(url, headers={**sup, "Accept": "text/csv"})
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="findings-by-month-2026.csv"' in r.headers["content-disposition"]
    assert r.text.startswith("\ufeff")
    table = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert [row["month"] for row in table] == [str(m) for m in range(1, 13)]
    assert list(table[0])[:3] == ["month", "inspections_completed", "findings_total"]
    assert [c for c in table[0] if c.startswith("findings.")] == [f"findings.{k}" for k in KINDS]
    for row, item in zip(table, everything["items"], strict=True):
        assert int(row["inspections_completed"]) == item["inspections_completed"]
        assert int(row["findings_total"]) == item["findings_total"]
        assert {k: int(row[f"findings.{k}"]) for k in KINDS} == item["findings"]
    assert table[4]["findings.mergeable"] == "2"
    scoped = list(
        csv.DictReader(
            io.StringIO(
                (await client.get(url + "&format=csv", headers=scheduler)).text.lstrip("\ufeff")
            )
        )
    )
    assert [int(row["findings_total"]) for row in scoped] == [1, 1, 1, 0, 1, 0, 1, 0, 1, 0, 0, 0]

    x = await client.get(url + "&format=xlsx", headers=sup)
    ws = load_workbook(io.BytesIO(x.content)).active
    assert ws is not None
    header = [c.value for c in ws[1]]
    assert ws.max_row == 13
    assert ws.cell(row=6, column=header.index("findings.mergeable") + 1).value == 2


async def test_openapi_describes_the_route(client: Any) -> None:
    spec = (await client.get("/openapi.json")).json()
    op = spec["paths"]["/v1/reports/findings-by-month"]["get"]
    assert {p["name"] for p in op["parameters"]} >= {"year", "agency", "format"}
    content = op["responses"]["200"]["content"]
    assert set(content) == {
        "application/json",
        "text/csv",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    }
    schema = spec["components"]["schemas"]["FindingsByMonth"]
    assert set(schema["properties"]) == {"year", "agency", "kinds", "items"}
    assert "404" in op["responses"]


async def test_a_month_starts_at_local_midnight(sessionmaker: Any, two_agencies: Any) -> None:
    """00:00 on 1 April in Shanghai (16:00 UTC the day before) is April's; a microsecond
    earlier is March's."""
    uscc = data.usccs()["e1"]
    midnight = datetime(2026, 3, 31, 16, 0, tzinfo=UTC)
    async with sessionmaker() as s, s.begin():
        await s.execute(
            text(
                "INSERT INTO enterprise (uscc, name, district_code, industry_code, risk_class) "
                "VALUES (:u, 'e1', '350102', '5211', 'B')"
            ),
            {"u": uscc},
        )
        for iid, at in ((1, midnight), (2, midnight - timedelta(microseconds=1))):
            await s.execute(
                text(
                    "INSERT INTO inspection (enterprise_uscc, id, kind, status, agency_code, "
                    "year, window_start, window_end, visit_date, completed_at) VALUES (:u, :id, "
                    "'planned', 'completed', 'SCJG', 2026, '2026-03-01', '2026-04-30', "
                    "'2026-03-31', :at)"
                ),
                {"u": uscc, "id": iid, "at": at},
            )
            await s.execute(
                text(
                    "INSERT INTO conflict (enterprise_uscc, kind, finding_key, inspection_ids, "
                    "created_at) VALUES (:u, 'repeat', :key, ARRAY[CAST(:id AS bigint)], :at)"
                ),
                {"u": uscc, "key": f"repeat:{iid}", "id": iid, "at": at},
            )
    async with sessionmaker() as s:
        items = (await findings_by_month(s, YEAR))["items"]
    assert [(i["findings_total"], i["inspections_completed"]) for i in items[2:4]] == [
        (1, 1),
        (1, 1),
    ]
    assert sum(i["findings_total"] for i in items) == 2
