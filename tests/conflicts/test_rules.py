"""Tests of the pure conflict rules."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspection_hub.conflicts.rules import (
    EnterpriseFact,
    Finding,
    InspectionFact,
    MergeDecision,
    cap_exceeded_findings,
    choose_lead_agency,
    evaluate,
    exempt_findings,
    finding_key,
    gap_days,
    inspector_conflict_findings,
    mergeable_findings,
    reconcile_mergeable,
    repeat_findings,
)
from inspection_hub.policy import (
    CombinableCategories,
    Exemptions,
    NoDisturbEntry,
    Policy,
    RepeatRules,
)

USCC = "91350100M000100Y43"
OTHER_USCC = "91110000100000000X"
POLICY = Policy(version="test.1", effective_from=date(2020, 1, 1))


def fact(
    id: int,
    start: date,
    end: date | None = None,
    *,
    agency: str = "AMR",
    categories: frozenset[str] | set[str] = frozenset({"food"}),
    status: str = "scheduled",
    kind: str = "planned",
    basis: str | None = None,
    premises: int | None = None,
    visit: date | None = None,
    inspectors: frozenset[int] | set[int] = frozenset(),
    uscc: str = USCC,
    is_request: bool = False,
    joint_id: int | None = None,
) -> InspectionFact:
    return InspectionFact(
        id=id,
        agency_code=agency,
        uscc=uscc,
        premises_id=premises,
        categories=frozenset(categories),
        kind=kind,  # type: ignore[arg-type]
        basis=basis,
        status=status,  # type: ignore[arg-type]
        window_start=start,
        window_end=end if end is not None else start,
        visit_date=visit,
        inspector_ids=frozenset(inspectors),
        is_request=is_request,
        joint_id=joint_id,
    )


def ent(
    risk: str = "B",
    *,
    history: tuple[tuple[date, str], ...] | None = None,
    established: date | None = date(2010, 1, 1),
    no_disturb: tuple[tuple[date, date], ...] = (),
) -> EnterpriseFact:
    classes = history if history is not None else ((date(2000, 1, 1), risk),)
    return EnterpriseFact(
        uscc=USCC,
        risk_classes=classes,  # type: ignore[arg-type]
        established_on=established,
        no_disturb=no_disturb,
    )


def kinds(findings: list[Finding]) -> list[str]:
    return [f.kind for f in findings]


def of_kind(findings: list[Finding], kind: str) -> list[Finding]:
    return [f for f in findings if f.kind == kind]


D = date


# --- facts --------------------------------------------------------------------------------------


def test_fact_rejects_reversed_window_and_normalises_sets() -> None:
    with pytest.raises(ValueError, match="window_end"):
        fact(1, D(2026, 3, 2), D(2026, 3, 1))
    f = InspectionFact(
        id=1,
        agency_code="A",
        uscc=USCC,
        premises_id=None,
        categories={"x"},  # type: ignore[arg-type]
        kind="planned",
        basis=None,
        status="scheduled",
        window_start=D(2026, 1, 1),
        window_end=D(2026, 1, 2),
        inspector_ids=[3, 4],  # type: ignore[arg-type]
    )
    assert f.categories == frozenset({"x"})
    assert f.inspector_ids == frozenset({3, 4})
    hash(f)


def test_fact_dates() -> None:
    planned = fact(1, D(2026, 3, 1), D(2026, 3, 31))
    assert planned.date_range == (D(2026, 3, 1), D(2026, 3, 31))
    assert planned.anchor == D(2026, 3, 1)
    assert planned.booked_day is None
    visited = replace(planned, visit_date=D(2026, 3, 20), status="completed")
    assert visited.date_range == (D(2026, 3, 20), D(2026, 3, 20))
    assert visited.anchor == D(2026, 3, 20)
    assert visited.booked_day == D(2026, 3, 20)
    assert fact(2, D(2026, 4, 1)).booked_day == D(2026, 4, 1)


def test_enterprise_fact_validation_and_risk_history() -> None:
    with pytest.raises(ValueError, match="risk class"):
        EnterpriseFact(uscc=USCC, risk_classes=((D(2026, 1, 1), "E"),))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no-disturb"):
        EnterpriseFact(uscc=USCC, no_disturb=((D(2026, 2, 1), D(2026, 1, 1)),))
    e = EnterpriseFact(
        uscc=USCC,
        risk_classes=((D(2026, 7, 1), "D"), (D(2025, 1, 1), "A")),
    )
    assert e.risk_classes[0] == (D(2025, 1, 1), "A")
    assert e.risk_class_on(D(2024, 6, 1)) == "A"  # before the first: earliest known
    assert e.risk_class_on(D(2026, 6, 30)) == "A"
    assert e.risk_class_on(D(2026, 7, 1)) == "D"
    assert EnterpriseFact(uscc=USCC).risk_class_on(D(2026, 1, 1)) is None


# --- gap ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "gap"),
    [
        ((D(2026, 1, 1), D(2026, 1, 10)), (D(2026, 1, 5), D(2026, 1, 20)), 0),
        ((D(2026, 1, 1), D(2026, 1, 10)), (D(2026, 1, 10), D(2026, 1, 20)), 0),
        ((D(2026, 1, 1), D(2026, 1, 10)), (D(2026, 1, 11), D(2026, 1, 20)), 1),
        ((D(2026, 1, 1), D(2026, 1, 10)), (D(2026, 2, 9), D(2026, 2, 9)), 30),
        ((D(2026, 1, 1), D(2026, 12, 31)), (D(2026, 6, 1), D(2026, 6, 1)), 0),
        ((D(2025, 12, 31), D(2025, 12, 31)), (D(2026, 1, 1), D(2026, 1, 1)), 1),
    ],
)
def test_gap_days(a: tuple[date, date], b: tuple[date, date], gap: int) -> None:
    x = fact(1, *a)
    y = fact(2, *b)
    assert gap_days(x, y) == gap
    assert gap_days(y, x) == gap


def test_gap_uses_visit_date() -> None:
    done = fact(1, D(2026, 1, 1), D(2026, 3, 31), visit=D(2026, 1, 5), status="completed")
    later = fact(2, D(2026, 2, 1), D(2026, 2, 28))
    assert gap_days(done, later) == 27


# --- finding key --------------------------------------------------------------------------------


def test_finding_key_stable() -> None:
    assert finding_key("mergeable", {30, 4, 100}) == "mergeable:4,30,100"
    assert finding_key("mergeable", [100, 4, 30, 4]) == finding_key("mergeable", (4, 30, 100))
    assert finding_key("repeat", frozenset({1, 2})) != finding_key("mergeable", {1, 2})
    f = Finding("repeat", frozenset({2, 1}), USCC, {}, None, "v")
    assert f.key == "repeat:1,2"
    hash(f)


# --- repeat ---------------------------------------------------------------------------------------


def test_repeat_window_boundary_exact_and_plus_one() -> None:
    base = fact(1, D(2026, 1, 1), D(2026, 1, 10), status="completed", visit=D(2026, 1, 10))
    at_window = fact(2, D(2026, 1, 10) + timedelta(days=180), agency="TAX")
    past_window = fact(3, D(2026, 1, 10) + timedelta(days=181), agency="TAX")
    found = repeat_findings(at_window, [base], POLICY)
    assert len(found) == 1
    assert found[0].inspection_ids == {1, 2}
    assert found[0].detail["gap_days"] == 180
    assert found[0].detail["window_days"] == {"food": 180}
    assert found[0].detail["same_agency"] is False
    assert found[0].detail["other_agency"] == "AMR"
    assert found[0].lead_agency is None
    assert found[0].policy_version == "test.1"
    assert repeat_findings(past_window, [base], POLICY) == []


def test_repeat_backwards_in_time_too() -> None:
    later = fact(1, D(2026, 6, 30))  # 180 days after 1 Jan
    earlier = fact(2, D(2026, 1, 1))
    assert len(repeat_findings(earlier, [later], POLICY)) == 1
    assert (
        repeat_findings(
            earlier, [replace(later, window_start=D(2026, 7, 1), window_end=D(2026, 7, 1))], POLICY
        )
        == []
    )


def test_repeat_needs_same_category() -> None:
    a = fact(1, D(2026, 3, 1), categories={"food"})
    b = fact(2, D(2026, 3, 1), categories={"fire"})
    assert repeat_findings(a, [b], POLICY) == []


def test_repeat_per_category_windows() -> None:
    policy = Policy(
        version="p",
        effective_from=D(2020, 1, 1),
        repeat=RepeatRules(window_days=180, category_window_days={"food": 30}),
    )
    a = fact(1, D(2026, 1, 1), categories={"food", "fire"})
    b = fact(2, D(2026, 3, 1), categories={"food", "fire"})  # 59 days apart
    found = repeat_findings(a, [b], policy)
    assert len(found) == 1
    assert found[0].detail["categories"] == ["fire"]
    c = fact(3, D(2026, 1, 31), categories={"food"})  # exactly 30
    d = fact(4, D(2026, 2, 1), categories={"food"})  # 31
    assert repeat_findings(a, [c], policy)[0].detail["categories"] == ["food"]
    assert repeat_findings(a, [d], policy) == []
    both = repeat_findings(a, [c], policy)[0]
    assert both.detail["window_days"] == {"food": 30}


def test_repeat_same_agency_noted() -> None:
    a = fact(1, D(2026, 3, 1))
    b = fact(2, D(2026, 4, 1))
    found = repeat_findings(a, [b], POLICY)
    assert found[0].detail["same_agency"] is True
    assert found[0].detail["scope"] == "any_agency"


@pytest.mark.parametrize("status", ["cancelled", "merged", "pending_request"])
def test_repeat_ignores_dead_and_pending(status: str) -> None:
    a = fact(1, D(2026, 3, 1))
    b = fact(2, D(2026, 3, 1), status=status)
    assert repeat_findings(a, [b], POLICY) == []


@pytest.mark.parametrize("status", ["scheduled", "in_progress", "completed"])
def test_repeat_counts_live(status: str) -> None:
    a = fact(1, D(2026, 3, 1))
    b = fact(2, D(2026, 3, 1), status=status)
    assert len(repeat_findings(a, [b], POLICY)) == 1


def test_repeat_dead_candidate_and_same_joint_and_other_enterprise() -> None:
    a = fact(1, D(2026, 3, 1), joint_id=9)
    b = fact(2, D(2026, 3, 1), joint_id=9, agency="TAX")
    c = fact(3, D(2026, 3, 1), uscc=OTHER_USCC)
    assert repeat_findings(a, [b, c], POLICY) == []
    assert repeat_findings(replace(a, status="cancelled"), [fact(4, D(2026, 3, 2))], POLICY) == []


def test_request_candidate_repeat() -> None:
    request = fact(
        -7,
        D(2026, 3, 1),
        kind="unplanned",
        basis="tip_off",
        is_request=True,
        status="pending_request",
    )
    done = fact(2, D(2026, 2, 1), status="completed", visit=D(2026, 2, 3))
    found = repeat_findings(request, [done], POLICY)
    assert found[0].inspection_ids == {-7, 2}
    assert found[0].detail["candidate_is_request"] is True


def test_history_duplicates() -> None:
    a = fact(1, D(2026, 3, 1))
    b = fact(2, D(2026, 3, 1))
    assert len(repeat_findings(a, [b, b, a], POLICY)) == 1
    with pytest.raises(ValueError, match="two different facts"):
        repeat_findings(a, [b, replace(b, agency_code="X")], POLICY)


# --- mergeable -----------------------------------------------------------------------------------


def test_mergeable_two_agencies_overlapping() -> None:
    a = fact(1, D(2026, 3, 1), D(2026, 3, 31), agency="AMR")
    b = fact(2, D(2026, 3, 15), D(2026, 4, 15), agency="FIRE", categories={"fire"})
    found = mergeable_findings(a, [b], POLICY)
    assert len(found) == 1
    f = found[0]
    assert f.inspection_ids == {1, 2}
    assert f.detail["agencies"] == ["AMR", "FIRE"]
    assert f.detail["categories"] == ["fire", "food"]
    assert f.detail["window_start"] == "2026-03-01"
    assert f.detail["window_end"] == "2026-04-15"
    assert [i["id"] for i in f.detail["inspections"]] == [1, 2]
    assert f.lead_agency == "AMR"  # tie on counts, earlier window start


def test_mergeable_merge_window_boundary() -> None:
    a = fact(1, D(2026, 3, 1), D(2026, 3, 10), agency="AMR")
    at = fact(2, D(2026, 4, 9), agency="FIRE")  # gap 30
    past = fact(3, D(2026, 4, 10), agency="FIRE")  # gap 31
    assert len(mergeable_findings(a, [at], POLICY)) == 1
    assert mergeable_findings(a, [past], POLICY) == []


def test_mergeable_same_agency_not_merged() -> None:
    a = fact(1, D(2026, 3, 1), agency="AMR")
    b = fact(2, D(2026, 3, 1), agency="AMR")
    assert mergeable_findings(a, [b], POLICY) == []


@pytest.mark.parametrize("status", ["completed", "in_progress", "cancelled", "merged"])
def test_mergeable_only_open(status: str) -> None:
    a = fact(1, D(2026, 3, 1), agency="AMR")
    b = fact(2, D(2026, 3, 1), agency="TAX", status=status)
    assert mergeable_findings(a, [b], POLICY) == []
    assert (
        mergeable_findings(
            fact(1, D(2026, 3, 1), status=status), [replace(b, status="scheduled")], POLICY
        )
        == []
    )


def test_mergeable_with_pending_request() -> None:
    request = fact(
        -3,
        D(2026, 3, 5),
        agency="TAX",
        status="pending_request",
        is_request=True,
        kind="unplanned",
        basis="tip_off",
    )
    a = fact(1, D(2026, 3, 1), agency="AMR")
    assert mergeable_findings(request, [a], POLICY)[0].inspection_ids == {-3, 1}
    assert mergeable_findings(a, [request], POLICY)[0].inspection_ids == {-3, 1}


def test_mergeable_premises() -> None:
    a = fact(1, D(2026, 3, 1), agency="AMR", premises=10)
    same = fact(2, D(2026, 3, 1), agency="TAX", premises=10)
    other = fact(3, D(2026, 3, 1), agency="FIRE", premises=11)
    unknown = fact(4, D(2026, 3, 1), agency="EPA", premises=None)
    assert mergeable_findings(a, [same], POLICY)[0].inspection_ids == {1, 2}
    assert mergeable_findings(a, [other], POLICY) == []
    assert mergeable_findings(a, [unknown], POLICY)[0].detail["premises_ids"] == [10]


def test_mergeable_combinable_categories() -> None:
    policy = Policy(
        version="groups",
        effective_from=D(2020, 1, 1),
        combinable_categories=CombinableCategories(
            any_different=False, groups=(frozenset({"fire", "production"}),)
        ),
    )
    a = fact(1, D(2026, 3, 1), agency="AMR", categories={"fire"})
    b = fact(2, D(2026, 3, 1), agency="EMB", categories={"production"})
    c = fact(3, D(2026, 3, 1), agency="HEALTH", categories={"hygiene"})
    d = fact(4, D(2026, 3, 1), agency="FIRE", categories={"fire"})
    assert mergeable_findings(a, [b], policy)[0].inspection_ids == {1, 2}
    assert mergeable_findings(a, [c], policy) == []
    assert mergeable_findings(a, [d], policy)[0].inspection_ids == {1, 4}  # same category
    assert mergeable_findings(a, [c], POLICY)[0].inspection_ids == {1, 3}  # default: any


def test_third_agency_grows_the_group() -> None:
    a = fact(1, D(2026, 3, 1), D(2026, 3, 10), agency="AMR")
    b = fact(2, D(2026, 3, 20), D(2026, 3, 25), agency="TAX")
    first = mergeable_findings(b, [a], POLICY)[0]
    assert first.inspection_ids == {1, 2}
    # Third agency meets only b (a is 40+ days away) - the group still grows transitively.
    c = fact(3, D(2026, 4, 20), agency="FIRE")
    assert gap_days(a, c) > POLICY.merge.window_days
    grown = mergeable_findings(c, [a, b], POLICY)[0]
    assert grown.inspection_ids == {1, 2, 3}
    # Every member sees the same group and lead.
    for member, rest in ((a, [b, c]), (b, [a, c]), (c, [a, b])):
        f = mergeable_findings(member, rest, POLICY)[0]
        assert f.inspection_ids == {1, 2, 3}
        assert f.lead_agency == grown.lead_agency
    decision = reconcile_mergeable(grown.inspection_ids, {500: first.inspection_ids})
    assert decision == MergeDecision("grow", 500, frozenset({1, 2, 3}), ())


def test_mergeable_unrelated_group_not_included() -> None:
    a = fact(1, D(2026, 3, 1), agency="AMR")
    b = fact(2, D(2026, 3, 2), agency="TAX")
    far = fact(3, D(2026, 9, 1), agency="FIRE")
    far2 = fact(4, D(2026, 9, 2), agency="EPA")
    assert mergeable_findings(a, [b, far, far2], POLICY)[0].inspection_ids == {1, 2}
    assert mergeable_findings(far, [a, b, far2], POLICY)[0].inspection_ids == {3, 4}


def test_lead_agency_most_frequent() -> None:
    a = fact(1, D(2026, 3, 5), agency="TAX")
    b = fact(2, D(2026, 3, 1), agency="AMR")
    tax_past = [
        fact(10, D(2025, 3, 1), agency="TAX", status="completed", visit=D(2025, 3, 1)),
        fact(11, D(2025, 9, 1), agency="TAX", status="completed", visit=D(2025, 9, 1)),
    ]
    amr_cancelled = [
        fact(12 + i, D(2025, 5, 1), agency="AMR", status="cancelled") for i in range(5)
    ]
    found = mergeable_findings(a, [b, *tax_past, *amr_cancelled], POLICY)[0]
    assert found.inspection_ids == {1, 2}
    assert found.lead_agency == "TAX"


def test_lead_agency_tie_breaks() -> None:
    a = fact(1, D(2026, 3, 5), agency="TAX")
    b = fact(2, D(2026, 3, 1), agency="AMR")
    assert choose_lead_agency([a, b], [a, b]) == "AMR"  # earlier window start
    c = fact(3, D(2026, 3, 1), agency="FIRE")
    b2 = replace(b, window_start=D(2026, 3, 1))
    assert choose_lead_agency([c, b2], []) == "AMR"  # same start: smaller code
    with pytest.raises(ValueError, match="empty"):
        choose_lead_agency([], [])


def test_reconcile_mergeable() -> None:
    ids = frozenset({1, 2, 3})
    assert reconcile_mergeable(ids, {}) == MergeDecision("new", None, ids)
    assert reconcile_mergeable(ids, {7: frozenset({8, 9})}).action == "new"
    same = reconcile_mergeable(ids, {7: frozenset({3, 2, 1})})
    assert same == MergeDecision("unchanged", 7, ids, ())
    grow = reconcile_mergeable(ids, {7: frozenset({1, 2}), 8: frozenset({3, 4}), 9: frozenset({5})})
    assert grow == MergeDecision("grow", 7, ids, (8,))
    tie = reconcile_mergeable(ids, {8: frozenset({1}), 7: frozenset({2})})
    assert tie == MergeDecision("grow", 7, ids, (8,))
    shrink = reconcile_mergeable(frozenset({1, 2}), {7: frozenset({1, 2, 3})})
    assert shrink == MergeDecision("grow", 7, frozenset({1, 2}), ())
    exact_plus = reconcile_mergeable(ids, {7: frozenset({1}), 9: ids})
    assert exact_plus == MergeDecision("unchanged", 9, ids, (7,))


# --- cap ------------------------------------------------------------------------------------------


def done(id: int, day: date, agency: str = "AMR", **kw: Any) -> InspectionFact:
    return fact(id, day, status="completed", visit=day, agency=agency, **kw)


def test_cap_b_class_third_inspection_flagged() -> None:
    history = [done(1, D(2026, 2, 1)), done(2, D(2026, 5, 1), agency="TAX")]
    cand = fact(3, D(2026, 9, 1), agency="FIRE", categories={"fire"})
    found = cap_exceeded_findings(cand, history, ent("B"), POLICY)
    assert len(found) == 1
    d = found[0].detail
    assert (d["count"], d["cap"], d["risk_class"], d["year"]) == (3, 2, "B", 2026)
    assert d["blocking"] is True
    assert d["counted_inspection_ids"] == [1, 2, 3]
    assert found[0].inspection_ids == {3}
    assert cap_exceeded_findings(cand, history[:1], ent("B"), POLICY) == []


@pytest.mark.parametrize(("risk", "cap"), [("A", 1), ("B", 2), ("C", 3), ("D", 6)])
def test_cap_per_class_boundary(risk: str, cap: int) -> None:
    history = [done(i, D(2026, 1, 1) + timedelta(days=10 * i)) for i in range(1, cap)]
    at_cap = fact(100, D(2026, 12, 1))
    assert cap_exceeded_findings(at_cap, history, ent(risk), POLICY) == []
    over = [*history, done(cap, D(2026, 11, 1))]
    assert len(cap_exceeded_findings(at_cap, over, ent(risk), POLICY)) == 1


def test_cap_year_boundary() -> None:
    history = [done(1, D(2025, 12, 31))]
    jan1 = fact(2, D(2027, 1, 1) - timedelta(days=365))  # 2026-01-01
    assert jan1.window_start == D(2026, 1, 1)
    assert cap_exceeded_findings(jan1, history, ent("A"), POLICY) == []
    dec31 = fact(3, D(2025, 12, 31))
    assert len(cap_exceeded_findings(dec31, history, ent("A"), POLICY)) == 1
    # A window spanning the new year is dated by its start.
    spanning = fact(4, D(2025, 12, 20), D(2026, 1, 10))
    assert len(cap_exceeded_findings(spanning, history, ent("A"), POLICY)) == 1
    # Once visited, by its visit date.
    visited = replace(spanning, status="completed", visit_date=D(2026, 1, 5))
    assert cap_exceeded_findings(visited, history, ent("A"), POLICY) == []


def test_cap_risk_class_changes_mid_year() -> None:
    e = ent(history=((D(2020, 1, 1), "D"), (D(2026, 7, 1), "A")))
    history = [done(1, D(2026, 2, 1)), done(2, D(2026, 3, 1))]
    before = fact(3, D(2026, 6, 30))
    after = fact(4, D(2026, 7, 1))
    assert cap_exceeded_findings(before, history, e, POLICY) == []
    found = cap_exceeded_findings(after, history, e, POLICY)
    assert found[0].detail["risk_class"] == "A"
    assert found[0].detail["cap"] == 1


@pytest.mark.parametrize(
    ("basis", "blocking"),
    [
        ("complaint", False),
        ("incident", False),
        ("assigned_by_superior", False),
        ("tip_off", True),
        ("referral", True),
        ("other", True),
        (None, True),
    ],
)
def test_cap_exempt_bases_flagged_not_blocking(basis: str | None, blocking: bool) -> None:
    cand = fact(2, D(2026, 6, 1), kind="planned" if basis is None else "unplanned", basis=basis)
    found = cap_exceeded_findings(cand, [done(1, D(2026, 1, 5))], ent("A"), POLICY)
    assert len(found) == 1
    assert found[0].detail["blocking"] is blocking
    assert found[0].detail["basis"] == basis


@pytest.mark.parametrize("status", ["cancelled", "merged", "pending_request"])
def test_cap_ignores_dead_and_pending_history(status: str) -> None:
    history = [fact(1, D(2026, 1, 5), status=status)]
    assert cap_exceeded_findings(fact(2, D(2026, 6, 1)), history, ent("A"), POLICY) == []


def test_cap_joint_counts_once() -> None:
    joint = [
        fact(1, D(2026, 4, 1), agency="AMR", joint_id=77, kind="joint"),
        fact(2, D(2026, 4, 1), agency="TAX", joint_id=77, kind="joint"),
        fact(3, D(2026, 4, 1), agency="FIRE", joint_id=77, kind="joint"),
    ]
    cand = fact(4, D(2026, 9, 1))
    found = cap_exceeded_findings(cand, joint, ent("B"), POLICY)
    assert found == []
    # Merged originals plus the joint visit: still one.
    merged = [fact(10 + i, D(2026, 4, 1), status="merged") for i in range(3)]
    assert cap_exceeded_findings(cand, joint + merged, ent("B"), POLICY) == []
    found = cap_exceeded_findings(cand, [*joint, done(5, D(2026, 2, 1))], ent("B"), POLICY)
    assert found[0].detail["count"] == 3
    assert found[0].detail["counted_inspection_ids"] == [1, 2, 3, 4, 5]


def test_cap_candidate_request_counts_itself_and_other_enterprises_ignored() -> None:
    request = fact(
        -1,
        D(2026, 6, 1),
        status="pending_request",
        is_request=True,
        kind="unplanned",
        basis="tip_off",
    )
    history = [done(1, D(2026, 1, 5)), done(2, D(2026, 1, 6), uscc=OTHER_USCC)]
    found = cap_exceeded_findings(request, history, ent("A"), POLICY)
    assert found[0].detail["count"] == 2
    assert found[0].detail["counted_inspection_ids"] == [-1, 1]


def test_cap_unknown_risk_class_and_moratorium() -> None:
    e = EnterpriseFact(uscc=USCC)
    assert cap_exceeded_findings(fact(1, D(2026, 6, 1)), [], e, POLICY) == []
    moratorium = Policy(
        version="m", effective_from=D(2020, 1, 1), caps={"A": 0, "B": 0, "C": 0, "D": 0}
    )
    found = cap_exceeded_findings(fact(1, D(2026, 6, 1)), [], ent("D"), moratorium)
    assert found[0].detail["cap"] == 0
    assert found[0].policy_version == "m"


def test_cap_cancelled_candidate() -> None:
    history = [done(1, D(2026, 1, 5))]
    cand = fact(2, D(2026, 6, 1), status="cancelled")
    assert cap_exceeded_findings(cand, history, ent("A"), POLICY) == []


def test_cap_stale_copy_of_candidate_in_history_not_double_counted() -> None:
    cand = fact(2, D(2026, 6, 1))
    stale = replace(cand, window_start=D(2026, 5, 1), window_end=D(2026, 5, 1))
    history = [done(1, D(2026, 1, 5)), stale]
    found = cap_exceeded_findings(cand, history, ent("B"), POLICY)
    assert found == []


# --- inspector conflicts --------------------------------------------------------------------------


def test_inspector_double_booked_same_day_other_enterprise() -> None:
    cand = fact(1, D(2026, 3, 10), inspectors={7, 8})
    elsewhere = fact(50, D(2026, 3, 10), uscc=OTHER_USCC, agency="TAX", inspectors={8, 9})
    other_day = fact(51, D(2026, 3, 11), uscc=OTHER_USCC, inspectors={7})
    cancelled = fact(52, D(2026, 3, 10), uscc=OTHER_USCC, inspectors={7}, status="cancelled")
    disjoint = fact(53, D(2026, 3, 10), uscc=OTHER_USCC, inspectors={99})
    long_window = fact(54, D(2026, 3, 1), D(2026, 3, 31), uscc=OTHER_USCC, inspectors={7})
    found = inspector_conflict_findings(
        cand, [], POLICY, [elsewhere, other_day, cancelled, disjoint, long_window, cand]
    )
    assert len(found) == 1
    assert found[0].inspection_ids == {1, 50}
    assert found[0].detail["reason"] == "double_booked"
    assert found[0].detail["inspector_ids"] == [8]
    assert found[0].detail["date"] == "2026-03-10"
    assert found[0].detail["other_enterprise"] == OTHER_USCC


def test_inspector_double_booked_by_visit_date() -> None:
    cand = fact(
        1, D(2026, 3, 1), D(2026, 3, 31), visit=D(2026, 3, 12), inspectors={7}, status="completed"
    )
    elsewhere = fact(
        50,
        D(2026, 3, 1),
        D(2026, 3, 31),
        visit=D(2026, 3, 12),
        uscc=OTHER_USCC,
        inspectors={7},
        status="in_progress",
    )
    assert len(inspector_conflict_findings(cand, [], POLICY, [elsewhere])) == 1
    unbooked = replace(cand, visit_date=None, status="scheduled")
    assert inspector_conflict_findings(unbooked, [], POLICY, [elsewhere]) == []


def test_inspector_same_enterprise_same_day_is_not_double_booking() -> None:
    cand = fact(1, D(2026, 3, 10), inspectors={7})
    same_firm = fact(2, D(2026, 3, 10), inspectors={7}, agency="TAX")
    found = inspector_conflict_findings(cand, [], POLICY, [same_firm])
    assert found == []


def test_inspector_same_as_previous() -> None:
    prev_old = done(1, D(2025, 1, 10), inspectors={3})
    prev = done(2, D(2025, 9, 10), inspectors={7, 4}, agency="TAX")
    future = done(3, D(2026, 9, 10), inspectors={7})
    cancelled = fact(4, D(2026, 1, 10), inspectors={7}, status="cancelled")
    scheduled = fact(5, D(2026, 2, 1), inspectors={7})
    cand = fact(6, D(2026, 3, 1), inspectors={7, 8})
    found = inspector_conflict_findings(
        cand, [prev_old, prev, future, cancelled, scheduled], POLICY
    )
    assert len(found) == 1
    f = found[0]
    assert f.inspection_ids == {2, 6}
    assert f.detail["reason"] == "same_as_previous"
    assert f.detail["inspector_ids"] == [7]
    assert f.detail["previous_date"] == "2025-09-10"
    assert f.detail["previous_agency"] == "TAX"
    # Only the latest previous one matters: inspector 3 was two visits ago.
    assert (
        inspector_conflict_findings(
            replace(cand, inspector_ids=frozenset({3})), [prev_old, prev], POLICY
        )
        == []
    )


def test_inspector_both_reasons_and_none_without_inspectors() -> None:
    cand = fact(6, D(2026, 3, 1), inspectors={7})
    prev = done(2, D(2025, 9, 10), inspectors={7})
    elsewhere = fact(50, D(2026, 3, 1), uscc=OTHER_USCC, inspectors={7})
    found = inspector_conflict_findings(cand, [prev], POLICY, [elsewhere])
    assert [f.detail["reason"] for f in found] == ["same_as_previous", "double_booked"]
    assert [sorted(f.inspection_ids) for f in found] == [[2, 6], [6, 50]]
    request = replace(cand, inspector_ids=frozenset(), status="pending_request", is_request=True)
    assert inspector_conflict_findings(request, [prev], POLICY, [elsewhere]) == []


def test_inspector_bookings_duplicates() -> None:
    cand = fact(1, D(2026, 3, 10), inspectors={7})
    b = fact(50, D(2026, 3, 10), uscc=OTHER_USCC, inspectors={7})
    assert len(inspector_conflict_findings(cand, [], POLICY, [b, b])) == 1
    with pytest.raises(ValueError, match="two different facts"):
        inspector_conflict_findings(cand, [], POLICY, [b, replace(b, agency_code="Z")])


# --- exempt ---------------------------------------------------------------------------------------


def test_exempt_new_business_grace() -> None:
    e = ent(established=D(2025, 9, 15))
    inside = fact(1, D(2026, 3, 14))
    boundary = fact(2, D(2026, 3, 15))  # grace = [2025-09-15, 2026-03-15)
    found = exempt_findings(inside, e, POLICY)
    assert len(found) == 1
    assert found[0].detail["reasons"] == [
        {"reason": "new_business", "from": "2025-09-15", "to": "2026-03-14", "grace_months": 6}
    ]
    assert exempt_findings(boundary, e, POLICY) == []
    spanning = fact(3, D(2026, 3, 1), D(2026, 4, 30))
    assert len(exempt_findings(spanning, e, POLICY)) == 1
    no_grace = Policy(
        version="g0",
        effective_from=D(2020, 1, 1),
        exemptions=Exemptions(new_business_grace_months=0),
    )
    assert exempt_findings(inside, e, no_grace) == []
    assert exempt_findings(inside, ent(established=None), POLICY) == []


def test_exempt_no_disturb_list_from_policy_and_enterprise() -> None:
    policy = Policy(
        version="nd",
        effective_from=D(2020, 1, 1),
        exemptions=Exemptions(
            no_disturb=(
                NoDisturbEntry(uscc=USCC, from_date=D(2026, 5, 1), to_date=D(2026, 5, 31)),
                NoDisturbEntry(uscc=OTHER_USCC, from_date=D(2026, 1, 1), to_date=D(2026, 12, 31)),
            )
        ),
    )
    e = ent(no_disturb=((D(2026, 8, 1), D(2026, 8, 10)),))
    assert exempt_findings(fact(1, D(2026, 4, 30)), e, policy) == []
    assert len(exempt_findings(fact(1, D(2026, 5, 1)), e, policy)) == 1
    assert len(exempt_findings(fact(1, D(2026, 5, 31)), e, policy)) == 1
    assert exempt_findings(fact(1, D(2026, 6, 1)), e, policy) == []
    assert len(exempt_findings(fact(1, D(2026, 7, 20), D(2026, 8, 1)), e, policy)) == 1
    both = exempt_findings(fact(1, D(2026, 5, 20), D(2026, 8, 5)), e, policy)
    assert [r["from"] for r in both[0].detail["reasons"]] == ["2026-05-01", "2026-08-01"]


@pytest.mark.parametrize(
    ("kind", "basis", "flagged"),
    [
        ("planned", None, True),
        ("joint", None, True),
        ("unplanned", "complaint", False),
        ("unplanned", "incident", False),
        ("unplanned", "tip_off", True),
        ("unplanned", "assigned_by_superior", True),
    ],
)
def test_exempt_bases(kind: str, basis: str | None, flagged: bool) -> None:
    e = ent(no_disturb=((D(2026, 1, 1), D(2026, 12, 31)),))
    found = exempt_findings(fact(1, D(2026, 6, 1), kind=kind, basis=basis), e, POLICY)
    assert bool(found) is flagged


# --- evaluate -------------------------------------------------------------------------------------


def test_evaluate_all_kinds_sorted_and_json_ready() -> None:
    e = ent("A", established=D(2026, 1, 10))
    prev = done(1, D(2026, 1, 20), agency="TAX", inspectors={7})
    open_fire = fact(2, D(2026, 3, 1), D(2026, 3, 31), agency="FIRE", categories={"fire"})
    cand = fact(3, D(2026, 3, 5), agency="AMR", inspectors={7})
    elsewhere = fact(90, D(2026, 3, 5), uscc=OTHER_USCC, inspectors={7})
    found = evaluate(cand, [prev, open_fire], e, POLICY, [elsewhere])
    assert kinds(found) == [
        "repeat",
        "mergeable",
        "cap_exceeded",
        "inspector_conflict",
        "inspector_conflict",
        "exempt",
    ]
    for f in found:
        assert f.enterprise == USCC
        assert f.policy_version == "test.1"
        assert 3 in f.inspection_ids
        json.dumps(f.detail)
    assert len({f.key for f in found}) == len(found)


def test_evaluate_dead_candidate_and_wrong_enterprise() -> None:
    e = ent("A", no_disturb=((D(2026, 1, 1), D(2026, 12, 31)),))
    for status in ("cancelled", "merged"):
        assert (
            evaluate(fact(1, D(2026, 6, 1), status=status), [done(2, D(2026, 1, 1))], e, POLICY)
            == []
        )
    with pytest.raises(ValueError, match="differ"):
        evaluate(fact(1, D(2026, 6, 1), uscc=OTHER_USCC), [], e, POLICY)


def test_evaluate_accepts_generators_once() -> None:
    e = ent("A")
    history = (f for f in [done(1, D(2026, 1, 5))])
    found = evaluate(fact(2, D(2026, 2, 1)), history, e, POLICY)
    assert kinds(found) == ["repeat", "cap_exceeded"]


def test_evaluate_clean_case() -> None:
    e = ent("D")
    history = [done(1, D(2025, 1, 5), categories={"fire"}, inspectors={1})]
    assert evaluate(fact(2, D(2026, 2, 1), inspectors={2}), history, e, POLICY) == []


# --- properties -----------------------------------------------------------------------------------

AGENCIES = ["AMR", "TAX", "FIRE", "EPA"]
CATEGORIES = ["food", "fire", "labels"]
STATUSES = ["scheduled", "in_progress", "completed", "cancelled", "merged", "pending_request"]


@st.composite
def facts(draw: st.DrawFn, id: int) -> InspectionFact:
    start = D(2025, 10, 1) + timedelta(days=draw(st.integers(0, 500)))
    length = draw(st.integers(0, 40))
    status = draw(st.sampled_from(STATUSES))
    visit = None
    if status in ("completed", "in_progress"):
        visit = start + timedelta(days=draw(st.integers(0, length)))
    return fact(
        id,
        start,
        start + timedelta(days=length),
        agency=draw(st.sampled_from(AGENCIES)),
        categories=frozenset(draw(st.sets(st.sampled_from(CATEGORIES), min_size=1))),
        status=status,
        premises=draw(st.sampled_from([None, 1, 2])),
        visit=visit,
        inspectors=frozenset(draw(st.sets(st.integers(1, 4), max_size=2))),
        basis=draw(st.sampled_from([None, "complaint", "tip_off"])),
        joint_id=draw(st.sampled_from([None, None, None, 1])),
        uscc=draw(st.sampled_from([USCC, USCC, USCC, OTHER_USCC])),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[InspectionFact, list[InspectionFact]]:
    n = draw(st.integers(0, 8))
    cand = replace(draw(facts(0)), uscc=USCC)
    return cand, [draw(facts(i)) for i in range(1, n + 1)]


ENTERPRISE = ent(
    history=((D(2020, 1, 1), "B"), (D(2026, 4, 1), "A")),
    established=D(2025, 8, 1),
    no_disturb=((D(2026, 6, 1), D(2026, 6, 30)),),
)


def _canon(findings: list[Finding]) -> list[tuple[str, str, str | None, str]]:
    return [(f.kind, f.key, f.lead_agency, json.dumps(f.detail, sort_keys=True)) for f in findings]


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False))
def test_findings_independent_of_input_order(
    scenario: tuple[InspectionFact, list[InspectionFact]], rnd: random.Random
) -> None:
    cand, history = scenario
    bookings = [f for f in history if f.uscc == OTHER_USCC]
    first = evaluate(cand, history, ENTERPRISE, POLICY, bookings)
    shuffled = list(history)
    rnd.shuffle(shuffled)
    rnd.shuffle(bookings)
    second = evaluate(cand, shuffled + shuffled[:2], ENTERPRISE, POLICY, bookings)
    assert _canon(first) == _canon(second)
    for f in first:
        assert cand.id in f.inspection_ids
        json.dumps(f.detail)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_mergeable_group_same_from_every_member(
    scenario: tuple[InspectionFact, list[InspectionFact]],
) -> None:
    cand, history = scenario
    everyone = {f.id: f for f in [cand, *history]}
    found = mergeable_findings(cand, history, POLICY)
    if not found:
        return
    group = found[0].inspection_ids
    assert len({everyone[i].agency_code for i in group}) >= 2
    for member_id in group:
        member = everyone[member_id]
        rest = [f for f in everyone.values() if f.id != member_id]
        again = mergeable_findings(member, rest, POLICY)
        assert again[0].inspection_ids == group
        assert again[0].lead_agency == found[0].lead_agency


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_repeat_is_symmetric(scenario: tuple[InspectionFact, list[InspectionFact]]) -> None:
    cand, history = scenario
    for f in repeat_findings(cand, history, POLICY):
        (other_id,) = f.inspection_ids - {cand.id}
        other = next(h for h in history if h.id == other_id)
        if cand.status in ("scheduled", "in_progress", "completed"):
            back = repeat_findings(other, [cand], POLICY)
            assert [b.key for b in back] == [f.key]
            assert back[0].detail["categories"] == f.detail["categories"]


@settings(max_examples=200, deadline=None)
@given(scenarios(), facts(99))
def test_cap_count_monotone(
    scenario: tuple[InspectionFact, list[InspectionFact]], extra: InspectionFact
) -> None:
    cand, history = scenario
    before = cap_exceeded_findings(cand, history, ENTERPRISE, POLICY)
    after = cap_exceeded_findings(cand, [*history, extra], ENTERPRISE, POLICY)
    if before:
        assert after
        assert after[0].detail["count"] >= before[0].detail["count"]


def test_dead_candidate_has_no_inspector_or_exempt_findings() -> None:
    e = ent(no_disturb=((D(2026, 1, 1), D(2026, 12, 31)),))
    dead = fact(1, D(2026, 3, 10), inspectors={7}, status="merged")
    elsewhere = fact(50, D(2026, 3, 10), uscc=OTHER_USCC, inspectors={7})
    assert inspector_conflict_findings(dead, [], POLICY, [elsewhere]) == []
    assert exempt_findings(dead, e, POLICY) == []
    assert mergeable_findings(dead, [fact(2, D(2026, 3, 10), agency="TAX")], POLICY) == []
