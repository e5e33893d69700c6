"""Property and unit tests of the pure double-random draw (no database)."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import hmac
import json
from collections import Counter
from collections.abc import Mapping, Set
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, TypedDict, Unpack

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspection_hub.plans.draw import (
    ALGORITHM_VERSION,
    RISK_CLASSES,
    Candidate,
    DrawError,
    DrawInfeasible,
    DrawInput,
    Inspector,
    Sampling,
    SeedCommitmentMismatch,
    check_seed,
    export_draw,
    make_ranker,
    population_digest,
    run_draw,
    seed_commitment,
    verify_export,
)

WINDOW_START = date(2025, 3, 1)
WINDOW_END = date(2025, 6, 30)
SEED = "11" * 32

usccs = st.text(alphabet="0123456789ABCDEFGHJKLMNPQRTUWXY", min_size=18, max_size=18)
populations = st.lists(
    st.tuples(usccs, st.sampled_from(RISK_CLASSES)), max_size=120, unique_by=lambda t: t[0]
).map(lambda pairs: [Candidate(u, rc) for u, rc in pairs])
seeds = st.binary(min_size=32, max_size=32).map(bytes.hex)
samplings = st.one_of(
    st.just(Sampling.by_ratio()),
    st.dictionaries(
        st.sampled_from(RISK_CLASSES), st.decimals(0, 1, places=2, allow_nan=False)
    ).map(Sampling.by_ratio),
    st.integers(0, 60).map(Sampling.by_fixed_total),
    st.dictionaries(st.sampled_from(RISK_CLASSES), st.integers(0, 30)).map(
        Sampling.by_fixed_counts
    ),
)
fast = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_roster(
    n: int, agencies: tuple[str, ...] = ("AG1",), expired_every: int = 0
) -> list[Inspector]:
    """Return n inspectors over the agencies; every `expired_every`-th certificate expires early."""
    roster = []
    for i in range(n):
        expired = expired_every and i % expired_every == 0
        roster.append(
            Inspector(
                id=f"insp-{i:03d}",
                agency_code=agencies[i % len(agencies)],
                certificate_no=f"JZ{i:06d}",
                certificate_valid_until=WINDOW_END - timedelta(days=1)
                if expired
                else WINDOW_END + timedelta(days=365),
            )
        )
    return roster


class DrawOptions(TypedDict, total=False):
    """DrawInput's fields that have defaults, as make_input passes them on."""

    inspectors_per_check: int
    workload_cap: int | None
    recusals: Mapping[str, Set[str]]
    agencies: tuple[str, ...]
    population_text: bytes | None


def make_input(
    population: list[Candidate],
    sampling: Sampling | None = None,
    seed: str = SEED,
    roster: list[Inspector] | None = None,
    **kwargs: Unpack[DrawOptions],
) -> DrawInput:
    """Build a draw input with a generous roster unless one is given."""
    return DrawInput(
        seed=seed,
        commitment=seed_commitment(seed),
        population=population,
        sampling=sampling or Sampling.by_ratio(),
        roster=roster if roster is not None else make_roster(40, expired_every=7),
        window_start=WINDOW_START,
        window_end=WINDOW_END,
        **kwargs,
    )


def sample_population(n: int = 400) -> list[Candidate]:
    """Return a deterministic population with all four risk classes."""
    return [Candidate(f"91320402{i:09d}X", RISK_CLASSES[i % 4]) for i in range(n)]


# --- seed and commitment ---------------------------------------------------------------------


def test_commitment_is_sha256_of_seed_bytes() -> None:
    assert seed_commitment(SEED) == hashlib.sha256(bytes.fromhex(SEED)).hexdigest()
    assert check_seed(SEED, seed_commitment(SEED))
    assert check_seed(SEED, seed_commitment(SEED).upper())


@given(seeds, seeds)
def test_wrong_seed_is_refused(seed: str, other: str) -> None:
    if seed == other:
        return
    assert not check_seed(other, seed_commitment(seed))
    draw_input = make_input(sample_population(20), seed=other)
    draw_input = dataclasses.replace(draw_input, commitment=seed_commitment(seed))
    with pytest.raises(SeedCommitmentMismatch):
        run_draw(draw_input)


@pytest.mark.parametrize("bad", ["", "zz" * 32, "11" * 31, "11" * 33])
def test_malformed_seed_is_refused(bad: str) -> None:
    assert not check_seed(bad, seed_commitment(SEED))
    with pytest.raises(DrawError):
        seed_commitment(bad)


def test_ranker_is_hmac_sha256() -> None:
    rank = make_ranker(SEED)
    for message in ("91320402MA1MXXXX1X", "91320402MA1MXXXX1XJZ000001", "", "统一"):
        expected = hmac.new(bytes.fromhex(SEED), message.encode(), hashlib.sha256).digest()
        assert rank(message) == expected


# --- population digest -----------------------------------------------------------------------


def test_digest_byte_format_is_reproducible_by_an_outsider() -> None:
    population = [Candidate("B2", "C"), Candidate("A1", "A")]
    assert population_digest(population) == hashlib.sha256(b"A1,A\nB2,C\n").hexdigest()


@given(populations)
def test_digest_ignores_order(population: list[Candidate]) -> None:
    assert population_digest(population) == population_digest(list(reversed(population)))


@given(populations.filter(bool), st.data())
def test_changing_one_enterprise_changes_the_digest(
    population: list[Candidate], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(population) - 1))
    old = population[index]
    new_class = data.draw(st.sampled_from([rc for rc in RISK_CLASSES if rc != old.risk_class]))
    changed_class = [*population[:index], Candidate(old.uscc, new_class), *population[index + 1 :]]
    assert population_digest(changed_class) != population_digest(population)
    new_uscc = data.draw(usccs.filter(lambda u: u not in {c.uscc for c in population}))
    changed_uscc = [
        *population[:index],
        Candidate(new_uscc, old.risk_class),
        *population[index + 1 :],
    ]
    assert population_digest(changed_uscc) != population_digest(population)
    assert population_digest(population[:index] + population[index + 1 :]) != population_digest(
        population
    )


def test_duplicate_uscc_and_unknown_class_are_refused() -> None:
    with pytest.raises(DrawError, match="more than once"):
        run_draw(make_input([Candidate("X1", "A"), Candidate("X1", "B")]))
    with pytest.raises(DrawError, match="risk class"):
        run_draw(make_input([Candidate("X1", "E")]))


# --- sample sizes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ratio", "n", "k"),
    [
        ("0.01", 0, 0),
        ("0.01", 1, 1),  # at least one
        ("0.01", 99, 1),
        ("0.01", 100, 1),
        ("0.01", 101, 2),  # ceil
        ("0.10", 30, 3),  # exact decimal: 0.1 * 30 is 3, not 3.0000000000000004
        ("0.30", 10, 3),
        ("0.30", 11, 4),
        ("0", 1000, 0),  # ratio 0 gives 0
        ("1", 7, 7),
    ],
)
def test_ratio_rounding(ratio: str, n: int, k: int) -> None:
    sizes = Sampling.by_ratio({"C": ratio}).sample_sizes({"C": n})
    assert sizes["C"] == k


def test_default_ratios_and_missing_class_is_zero() -> None:
    sizes = Sampling.by_ratio().sample_sizes({"A": 1000, "B": 1000, "C": 1000, "D": 1000})
    assert sizes == {"A": 10, "B": 20, "C": 100, "D": 300}
    assert Sampling.by_ratio({"D": "0.5"}).sample_sizes({"A": 50, "D": 3}) == {
        "A": 0,
        "B": 0,
        "C": 0,
        "D": 2,
    }


@pytest.mark.parametrize("bad", ["-0.1", "1.5", "abc", "NaN"])
def test_bad_ratio_is_refused(bad: str) -> None:
    with pytest.raises(DrawError):
        Sampling.by_ratio({"A": bad})


def test_fixed_total_largest_remainder() -> None:
    # quotas 10*[1/10, 3/10, 5/10, 1/10] = 1, 3, 5, 1 exactly
    assert Sampling.by_fixed_total(10).sample_sizes({"A": 10, "B": 30, "C": 50, "D": 10}) == {
        "A": 1,
        "B": 3,
        "C": 5,
        "D": 1,
    }
    # quotas 2*[1/3, 1/3, 1/3] -> 0.67 each, remainders equal: higher risk first
    assert Sampling.by_fixed_total(2).sample_sizes({"B": 1, "C": 1, "D": 1}) == {
        "A": 0,
        "B": 0,
        "C": 1,
        "D": 1,
    }
    assert Sampling.by_fixed_total(99).sample_sizes({"A": 3, "D": 4}) == {
        "A": 3,
        "B": 0,
        "C": 0,
        "D": 4,
    }


@given(
    st.integers(0, 500),
    st.fixed_dictionaries({rc: st.integers(0, 300) for rc in RISK_CLASSES}),
)
def test_fixed_total_sums_to_total(total: int, sizes: dict[str, int]) -> None:
    ks = Sampling.by_fixed_total(total).sample_sizes(sizes)
    assert sum(ks.values()) == min(total, sum(sizes.values()))
    assert all(0 <= ks[rc] <= sizes[rc] for rc in RISK_CLASSES)


def test_fixed_counts_are_capped_by_stratum() -> None:
    assert Sampling.by_fixed_counts({"A": 5, "D": 2}).sample_sizes({"A": 3, "D": 10}) == {
        "A": 3,
        "B": 0,
        "C": 0,
        "D": 2,
    }


# --- selection properties --------------------------------------------------------------------


@fast
@given(populations, samplings, seeds)
def test_same_inputs_same_result_and_exactly_k(
    population: list[Candidate], sampling: Sampling, seed: str
) -> None:
    roster = make_roster(120)
    first = run_draw(make_input(population, sampling, seed, roster, workload_cap=None))
    second = run_draw(make_input(list(reversed(population)), sampling, seed, roster))
    assert first == second
    counts = Counter(c.risk_class for c in population)
    assert dict(first.population_size) == {rc: counts.get(rc, 0) for rc in RISK_CLASSES}
    assert dict(first.sample_size) == sampling.sample_sizes(counts)
    classes = {c.uscc: c.risk_class for c in population}
    for rc in RISK_CLASSES:
        chosen = first.selected[rc]
        assert len(chosen) == first.sample_size[rc]
        assert all(classes[e.uscc] == rc for e in chosen)
        ranks = [e.rank for e in chosen]
        assert ranks == sorted(ranks)
        # the k smallest: no unselected candidate of the stratum ranks lower than the largest
        if chosen:
            rank = make_ranker(seed)
            others = [c.uscc for c in population if c.risk_class == rc]
            chosen_set = {e.uscc for e in chosen}
            assert all(rank(u).hex() > ranks[-1] for u in others if u not in chosen_set)


@fast
@given(populations, populations, seeds)
def test_exempt_enterprises_are_never_selected(
    population: list[Candidate], exempt: list[Candidate], seed: str
) -> None:
    kept = {c.uscc for c in population}
    exempt_usccs = {c.uscc for c in exempt} - kept
    result = run_draw(
        make_input(
            population, Sampling.by_ratio({rc: 1 for rc in RISK_CLASSES}), seed, make_roster(300)
        )
    )
    assert not exempt_usccs & set(result.selected_usccs())
    assert set(result.selected_usccs()) == kept


@fast
@given(
    populations,
    seeds,
    st.integers(2, 4),
    st.integers(1, 30),
    st.integers(3, 40),
    st.data(),
)
def test_inspector_rules_hold_or_draw_is_infeasible(
    population: list[Candidate],
    seed: str,
    per_check: int,
    cap: int,
    roster_size: int,
    data: st.DataObject,
) -> None:
    roster = make_roster(roster_size, expired_every=5)
    ids = [i.id for i in roster]
    recusals = {
        c.uscc: set(data.draw(st.lists(st.sampled_from(ids), max_size=3))) for c in population[:20]
    }
    draw_input = make_input(
        population,
        Sampling.by_ratio({"C": "0.5", "D": "1"}),
        seed,
        roster,
        inspectors_per_check=per_check,
        workload_cap=cap,
        recusals=recusals,
    )
    by_id = {i.id: i for i in roster}
    try:
        result = run_draw(draw_input)
    except DrawInfeasible as exc:
        failures = exc.failures
        result = None
    if result is None:
        assert failures
        assert all(f.reasons and f.detail for f in failures)
        return
    load: Counter[str] = Counter()
    for uscc in result.selected_usccs():
        people = result.assignments[uscc]
        ids_here = [a.inspector_id for a in people]
        assert len(ids_here) == per_check
        assert len(set(ids_here)) == per_check  # nobody twice at one enterprise
        assert not set(ids_here) & recusals.get(uscc, set())
        for a in people:
            assert by_id[a.inspector_id].certificate_valid_until >= WINDOW_END
        load.update(ids_here)
    assert all(n <= cap for n in load.values())
    assert set(result.assignments) == set(result.selected_usccs())


@fast
@given(populations.filter(bool), seeds, st.integers(2, 4))
def test_joint_plan_has_one_inspector_per_agency(
    population: list[Candidate], seed: str, per_check: int
) -> None:
    agencies = ("AG1", "AG2", "AG3")[: min(per_check, 3)]
    # AG1 dominates the roster, so without the rule joint checks would often lack AG2/AG3
    roster = make_roster(60, ("AG1", "AG1", "AG1", "AG1", *agencies[1:]))
    result = run_draw(
        make_input(
            population,
            Sampling.by_ratio({rc: 1 for rc in RISK_CLASSES}),
            seed,
            roster,
            inspectors_per_check=per_check,
            agencies=agencies,
        )
    )
    for people in result.assignments.values():
        assert {a.agency_code for a in people} == set(agencies)
        assert len(people) == per_check


def test_infeasible_lists_every_enterprise_and_why() -> None:
    population = sample_population(40)
    roster = [
        Inspector("a", "AG1", "C1", WINDOW_END),
        Inspector("b", "AG1", "C2", WINDOW_END),
        Inspector("c", "AG1", "C3", WINDOW_END - timedelta(days=1)),
        Inspector("d", "AG2", "C4", WINDOW_END - timedelta(days=1)),
    ]
    sampling = Sampling.by_fixed_counts({"A": 3})
    with pytest.raises(DrawInfeasible) as info:
        run_draw(make_input(population, sampling, roster=roster, workload_cap=1))
    failures = info.value.failures
    assert len(failures) == 2  # the first enterprise gets a and b, the other two fail
    assert all(
        "workload_cap" in f.reasons and "no_valid_certificate" in f.reasons for f in failures
    )

    selected = run_draw(make_input(population, sampling, roster=make_roster(10))).selected["A"]
    recusals = {selected[0].uscc: {"a"}}
    with pytest.raises(DrawInfeasible) as info:
        run_draw(make_input(population, sampling, roster=roster, recusals=recusals))
    assert [f.uscc for f in info.value.failures] == [selected[0].uscc]
    assert "recused" in info.value.failures[0].reasons

    with pytest.raises(DrawInfeasible) as info:
        run_draw(make_input(population, sampling, roster=roster, agencies=("AG1", "AG2")))
    assert len(info.value.failures) == 3
    assert all("agency_without_eligible_inspector:AG2" in f.reasons for f in info.value.failures)


def test_inspector_rules_are_validated() -> None:
    population = sample_population(8)
    with pytest.raises(DrawError, match="at least 2"):
        run_draw(make_input(population, inspectors_per_check=1))
    with pytest.raises(DrawError, match="twice"):
        run_draw(make_input(population, roster=make_roster(3) + make_roster(1)))


# --- export and verification -----------------------------------------------------------------


@pytest.fixture(scope="module")
def export() -> dict[str, Any]:
    """A realistic export, round-tripped through JSON."""
    population = sample_population(600)
    roster = make_roster(30, ("AG1", "AG2"), expired_every=9)
    recusals = {c.uscc: {"insp-001", "insp-002"} for c in population[::5]}
    draw_input = make_input(
        population, roster=roster, workload_cap=8, recusals=recusals, agencies=("AG1", "AG2")
    )
    result = run_draw(draw_input)
    data: dict[str, Any] = json.loads(json.dumps(export_draw(draw_input, result)))
    return data


def test_untouched_export_matches(export: dict[str, Any]) -> None:
    outcome = verify_export(export)
    assert outcome.match, outcome.differences
    assert outcome.differences == ()
    assert export["algorithm"] == ALGORITHM_VERSION


def _selected(data: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    selected: dict[str, list[dict[str, str]]] = data["result"]["selected"]
    return selected


def test_changed_seed_is_reported(export: dict[str, Any]) -> None:
    data = copy.deepcopy(export)
    data["seed"] = "22" * 32
    outcome = verify_export(data)
    assert not outcome.match
    assert any("seed does not match the commitment" in d for d in outcome.differences)
    assert any("selected" in d for d in outcome.differences)


def test_changed_population_entry_is_reported(export: dict[str, Any]) -> None:
    data = copy.deepcopy(export)
    population = data["population"]
    assert isinstance(population, list)
    population[3] = [population[3][0], "D" if population[3][1] != "D" else "A"]
    outcome = verify_export(data)
    assert not outcome.match
    assert any("population digest mismatch" in d for d in outcome.differences)


def test_changed_selected_uscc_is_reported(export: dict[str, Any]) -> None:
    data = copy.deepcopy(export)
    entry = _selected(data)["C"][0]
    original = entry["uscc"]
    entry["uscc"] = "91320402999999999X"
    outcome = verify_export(data)
    assert not outcome.match
    assert any("91320402999999999X" in d for d in outcome.differences)
    assert any(original in d for d in outcome.differences)


def test_changed_inspector_is_reported(export: dict[str, Any]) -> None:
    data = copy.deepcopy(export)
    assignments = data["result"]["assignments"]
    uscc = sorted(assignments)[0]
    assignments[uscc][0]["inspector_id"] = "insp-999"
    outcome = verify_export(data)
    assert not outcome.match
    assert any(uscc in d and "insp-999" in d for d in outcome.differences)


def test_malformed_export_is_a_mismatch_not_a_crash(export: dict[str, Any]) -> None:
    data = copy.deepcopy(export)
    del data["roster"]
    outcome = verify_export(data)
    assert not outcome.match
    assert outcome.differences[0].startswith("malformed export")


def test_ratios_survive_export_exactly(export: dict[str, Any]) -> None:
    sampling = Sampling.from_dict(export["sampling"])
    assert sampling.ratios["C"] == Decimal("0.10")
