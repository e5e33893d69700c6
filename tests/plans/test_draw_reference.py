"""The optimised draw against a naive, line-by-line reading of the published algorithm."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspection_hub.plans.draw import (
    RISK_CLASSES,
    Candidate,
    DrawError,
    DrawInfeasible,
    DrawInput,
    Inspector,
    Sampling,
    export_draw,
    pairs_text,
    parse_population,
    population_digest,
    population_text,
    run_draw,
    seed_commitment,
    verify_export,
)

WINDOW_START = date(2025, 3, 1)
WINDOW_END = date(2025, 6, 30)

# 18-character codes (the sliced fast path) and codes of any length, some non-ASCII (the other).
fixed_usccs = st.text(alphabet="0123456789ABCDEFGHJKLMNPQRTUWXY", min_size=18, max_size=18)
free_usccs = st.text(alphabet="0123456789AXY统一码 !", min_size=1, max_size=22)
populations = st.lists(
    st.tuples(st.one_of(fixed_usccs, free_usccs), st.sampled_from(RISK_CLASSES)),
    max_size=150,
    unique_by=lambda t: t[0],
).map(lambda pairs: [Candidate(u, rc) for u, rc in pairs])
fixed_populations = st.lists(
    st.tuples(fixed_usccs, st.sampled_from(RISK_CLASSES)), max_size=150, unique_by=lambda t: t[0]
).map(lambda pairs: [Candidate(u, rc) for u, rc in pairs])
seeds = st.binary(min_size=32, max_size=32).map(bytes.hex)
samplings = st.one_of(
    st.just(Sampling.by_ratio()),
    st.dictionaries(
        st.sampled_from(RISK_CLASSES), st.decimals(0, 1, places=2, allow_nan=False)
    ).map(Sampling.by_ratio),
    st.integers(0, 80).map(Sampling.by_fixed_total),
)
fast = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _hmac(seed: str, message: str) -> bytes:
    return hmac.new(bytes.fromhex(seed), message.encode("utf-8"), hashlib.sha256).digest()


def reference_draw(draw_input: DrawInput) -> dict[str, Any]:
    """The draw as an outsider would write it from the module docstring, without shortcuts."""
    seed = draw_input.seed.lower()
    ordered = sorted(draw_input.population, key=lambda c: c.uscc)
    text = "".join(f"{c.uscc},{c.risk_class}\n" for c in ordered)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    strata = {rc: [c.uscc for c in ordered if c.risk_class == rc] for rc in RISK_CLASSES}
    sizes = {rc: len(v) for rc, v in strata.items()}
    k = draw_input.sampling.sample_sizes(sizes)
    selected = {rc: sorted((_hmac(seed, u), u) for u in strata[rc])[: k[rc]] for rc in RISK_CLASSES}
    required = sorted(set(draw_input.agencies))
    valid = [
        i
        for i in draw_input.roster
        if (not required or i.agency_code in required)
        and i.certificate_valid_until >= draw_input.window_end
    ]
    load = {i.id: 0 for i in valid}
    cap = draw_input.workload_cap
    assignments: dict[str, list[tuple[str, str]]] = {}
    failed: list[str] = []
    for _rank, uscc in sorted(e for rc in RISK_CLASSES for e in selected[rc]):
        recused = draw_input.recusals.get(uscc, set())
        ranked = sorted(
            (_hmac(seed, uscc + i.certificate_no), i.certificate_no, i)
            for i in valid
            if i.id not in recused and (cap is None or load[i.id] < cap)
        )
        chosen: list[tuple[bytes, str, Inspector]] = []
        for agency in required:
            own = [r for r in ranked if r[2].agency_code == agency]
            if own:
                chosen.append(own[0])
        rest = [r for r in ranked if r not in chosen]
        chosen += rest[: draw_input.inspectors_per_check - len(chosen)]
        if len(chosen) < draw_input.inspectors_per_check or len(
            {r[2].agency_code for r in chosen} & set(required)
        ) < len(required):
            failed.append(uscc)
            continue
        chosen.sort(key=lambda r: (r[0], r[1]))
        for r in chosen:
            load[r[2].id] += 1
        assignments[uscc] = [(r[2].id, r[0].hex()) for r in chosen]
    return {
        "digest": digest,
        "sizes": sizes,
        "k": k,
        "selected": {rc: [(u, r.hex()) for r, u in selected[rc]] for rc in RISK_CLASSES},
        "assignments": assignments,
        "failed": sorted(failed),
    }


def optimised_draw(draw_input: DrawInput) -> dict[str, Any]:
    """The module's draw, in the reference's shape."""
    try:
        result = run_draw(draw_input)
    except DrawInfeasible as exc:
        return {"failed": sorted(f.uscc for f in exc.failures)}
    return {
        "digest": result.population_digest,
        "sizes": dict(result.population_size),
        "k": dict(result.sample_size),
        "selected": {rc: [(e.uscc, e.rank) for e in result.selected[rc]] for rc in RISK_CLASSES},
        "assignments": {
            u: [(a.inspector_id, a.rank) for a in people]
            for u, people in result.assignments.items()
        },
        "failed": [],
    }


def _roster(n: int, agencies: tuple[str, ...]) -> list[Inspector]:
    return [
        Inspector(
            id=f"insp-{i:03d}",
            agency_code=agencies[i % len(agencies)],
            certificate_no=f"JZ{(i * 7919) % 1000:06d}",
            certificate_valid_until=WINDOW_END + timedelta(days=-1 if i % 9 == 0 else 30),
        )
        for i in range(n)
    ]


def _input(
    population: list[Candidate],
    seed: str,
    sampling: Sampling,
    roster: list[Inspector],
    **kwargs: Any,
) -> DrawInput:
    return DrawInput(
        seed=seed,
        commitment=seed_commitment(seed),
        population=population,
        sampling=sampling,
        roster=roster,
        window_start=WINDOW_START,
        window_end=WINDOW_END,
        **kwargs,
    )


@fast
@given(populations, seeds, samplings, st.integers(6, 40), st.integers(1, 6), st.data())
def test_single_agency_draw_equals_the_reference(
    population: list[Candidate],
    seed: str,
    sampling: Sampling,
    roster_size: int,
    cap: int,
    data: st.DataObject,
) -> None:
    roster = _roster(roster_size, ("AG1",))
    recused = data.draw(st.sets(st.sampled_from([i.id for i in roster]), max_size=5))
    recusals = {c.uscc: recused for c in population[::3]}
    draw_input = _input(population, seed, sampling, roster, workload_cap=cap, recusals=recusals)
    expected = reference_draw(draw_input)
    actual = optimised_draw(draw_input)
    if expected["failed"]:
        assert actual["failed"] == expected["failed"]
    else:
        assert actual == expected


@fast
@given(fixed_populations, seeds, samplings, st.integers(4, 30), st.integers(1, 8))
def test_joint_draw_equals_the_reference(
    population: list[Candidate], seed: str, sampling: Sampling, roster_size: int, cap: int
) -> None:
    roster = _roster(roster_size, ("AG1", "AG2", "AG3"))
    draw_input = _input(
        population,
        seed,
        sampling,
        roster,
        workload_cap=cap,
        inspectors_per_check=3,
        agencies=("AG2", "AG1"),
        recusals={c.uscc: {"insp-001", "insp-005"} for c in population[::2]},
    )
    expected = reference_draw(draw_input)
    actual = optimised_draw(draw_input)
    if expected["failed"]:
        assert actual["failed"] == expected["failed"]
    else:
        assert actual == expected


@fast
@given(populations)
def test_text_round_trips_and_is_the_digest_text(population: list[Candidate]) -> None:
    text = population_text(population)
    ordered = sorted(population, key=lambda c: c.uscc)
    assert text == "".join(f"{c.uscc},{c.risk_class}\n" for c in ordered).encode()
    assert population_digest(population) == hashlib.sha256(text).hexdigest()
    strata = parse_population(text)
    for rc in RISK_CLASSES:
        assert [u.decode() for u in strata[rc]] == [c.uscc for c in ordered if c.risk_class == rc]
    assert pairs_text([[c.uscc, c.risk_class] for c in reversed(population)]) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"91320402MA1MXXXX1X,A\n91320402MA1MXXXX1X,B\n", "more than once"),
        (b"91320402MA1MXXXX2X,A\n91320402MA1MXXXX1X,B\n", "not sorted"),
        (b"91320402MA1MXXXX1X,E\n", "risk class"),
        (b"X1,A\nX1,B\n", "more than once"),
        (b"X2,A\nX1,B\n", "not sorted"),
        (b"X1,AB\n", "risk class"),
        (b"X,1,A\n", "','"),
        (b"X1,A", "line break"),
        (b",A\n", "empty USCC"),
        (b"91320402MA1MXXX,1X,A\n", "','"),
    ],
)
def test_malformed_population_text_is_refused(text: bytes, message: str) -> None:
    with pytest.raises(DrawError, match=message):
        parse_population(text)


def test_compact_export_verifies_and_detects_tampering() -> None:
    population = [Candidate(f"91320402{i:09d}X", RISK_CLASSES[i % 4]) for i in range(300)]
    draw_input = _input(population, "33" * 32, Sampling.by_fixed_total(30), _roster(20, ("AG1",)))
    result = run_draw(draw_input)
    compact: dict[str, Any] = json.loads(json.dumps(export_draw(draw_input, result, compact=True)))
    assert compact["format_version"] == 2
    assert "population" not in compact
    assert verify_export(compact).match
    pairs: dict[str, Any] = json.loads(json.dumps(export_draw(draw_input, result)))
    assert pairs["format_version"] == 1
    assert pairs_text(pairs["population"]) == compact["population_text"].encode()

    tampered = dict(compact)
    tampered["population_text"] = compact["population_text"].replace(",A\n", ",B\n", 1)
    outcome = verify_export(tampered)
    assert not outcome.match
    assert any("population digest mismatch" in d for d in outcome.differences)

    both = dict(pairs, population_text=tampered["population_text"])
    outcome = verify_export(both)
    assert not outcome.match
    assert any("different populations" in d for d in outcome.differences)
