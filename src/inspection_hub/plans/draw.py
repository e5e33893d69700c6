"""The verifiable double-random draw (双随机抽取): pure functions over plain data.

Nothing here touches a database, a clock or a file: the caller supplies the seed, the population,
the roster and the recusals, and gets back a `DrawResult`. `export_draw` turns inputs and result
into a JSON-serialisable document from which `verify_export` (or anyone else, see below) recomputes
the draw and reports whether it matches.

Algorithm ``dr-hmac-sha256/1``, as an outsider would re-implement it:

1. Seed: 32 random bytes, written as 64 hex digits. Commitment = ``sha256(seed bytes)`` in hex,
   published when the plan is submitted; the seed is revealed at draw time.
2. Population digest: one line per candidate, ``"{uscc},{risk_class}\\n"`` (ASCII/UTF-8, LF after
   every line including the last), lines sorted by USCC in byte order; the digest is the hex
   SHA-256 of the concatenated lines. (For a CSV file of ``uscc,risk_class`` lines without header:
   ``LC_ALL=C sort file.csv | sha256sum``.)
3. Strata: risk classes A, B, C, D. Sample size k per stratum (n = stratum size):
   - ratio mode: ``k = ceil(ratio * n)`` in exact decimal arithmetic, at least 1 when n > 0 and
     ratio > 0, 0 when the ratio is 0 (a class missing from the ratios has ratio 0);
   - fixed total T: if T >= N (population size) everything is taken; otherwise the quota of a
     stratum is ``T * n / N``; each stratum gets the integer part, and the seats left over go one
     each to the strata with the largest fractional part (Hamilton / largest remainder), ties going
     to the higher-risk class (D before C before B before A);
   - fixed per stratum: ``k = min(count, n)``; a missing class counts 0.
4. Enterprise rank: ``HMAC-SHA256(key=seed bytes, msg=UTF-8(uscc))``; per stratum the k candidates
   with the smallest rank (as bytes; ties broken by USCC) are selected.
5. Inspectors: the roster is restricted to the plan's agencies (when given) and to certificates
   valid for the whole window (``certificate_valid_until >= window end``). Selected enterprises are
   processed in ascending (rank, uscc) order over all strata. For each, an inspector is eligible
   unless recused for that enterprise or already at the workload cap of this draw. Eligible
   inspectors are ranked by ``HMAC-SHA256(key=seed, msg=UTF-8(uscc) || UTF-8(certificate_no))``
   (ties by certificate number). For a joint plan, first the best-ranked eligible inspector of each
   agency (agencies in code order) is taken, then the remaining places are filled from the best
   ranked of the rest; otherwise simply the ``inspectors_per_check`` best ranked. If any enterprise
   cannot be covered, the draw fails with `DrawInfeasible` listing every such enterprise.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from fractions import Fraction
from itertools import compress, islice
from operator import attrgetter, eq, itemgetter, lt, methodcaller
from typing import Any, Literal

ALGORITHM_VERSION = "dr-hmac-sha256/1"
EXPORT_FORMAT = "inspection-hub/draw-export"
EXPORT_FORMAT_VERSION = 1
# Version 2 carries the population as ``population_text`` (the digest text itself) instead of a
# list of [uscc, risk_class] pairs; `verify_export` reads both.
EXPORT_FORMAT_VERSION_COMPACT = 2
RISK_CLASSES: tuple[str, ...] = ("A", "B", "C", "D")
DEFAULT_RATIOS: Mapping[str, Decimal] = {
    "A": Decimal("0.01"),
    "B": Decimal("0.02"),
    "C": Decimal("0.10"),
    "D": Decimal("0.30"),
}
SEED_BYTES = 32
_MAX_DIFFERENCES_PER_KIND = 20
# A population line of an 18-character USCC: "uscc,C\n" (the fast path of `parse_population`).
_USCC_WIDTH = 18
_LINE_WIDTH = _USCC_WIDTH + 3
_CLASS_CODES = b"".join(rc.encode("ascii") for rc in RISK_CLASSES)

SamplingMode = Literal["ratio", "fixed_total", "fixed_per_stratum"]


class DrawError(Exception):
    """Base class of the errors the draw raises on bad input or an impossible draw."""


class SeedCommitmentMismatch(DrawError):
    """The revealed seed does not hash to the published commitment."""


@dataclass(frozen=True, slots=True)
class CoverageFailure:
    """Why one selected enterprise could not get enough inspectors."""

    uscc: str
    reasons: tuple[str, ...]
    detail: str


class DrawInfeasible(DrawError):
    """The roster cannot cover every selected enterprise; `failures` lists each one."""

    def __init__(self, failures: Sequence[CoverageFailure]) -> None:
        self.failures: tuple[CoverageFailure, ...] = tuple(failures)
        shown = "; ".join(f"{f.uscc}: {f.detail}" for f in self.failures[:5])
        more = f" (and {len(self.failures) - 5} more)" if len(self.failures) > 5 else ""
        super().__init__(
            f"{len(self.failures)} selected enterprise(s) cannot be covered: {shown}{more}"
        )


@dataclass(frozen=True, slots=True)
class Candidate:
    """One enterprise of the population: its USCC and its risk class 'A'..'D'."""

    uscc: str
    risk_class: str


@dataclass(frozen=True, slots=True)
class Inspector:
    """One roster entry (执法检查人员) with its enforcement certificate (执法证)."""

    id: str
    agency_code: str
    certificate_no: str
    certificate_valid_until: date


@dataclass(frozen=True)
class Sampling:
    """How many enterprises each risk stratum contributes; build it with the class methods."""

    mode: SamplingMode = "ratio"
    ratios: Mapping[str, Decimal] = field(default_factory=lambda: dict(DEFAULT_RATIOS))
    total: int = 0
    counts: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def by_ratio(cls, ratios: Mapping[str, Decimal | str | int] | None = None) -> Sampling:
        """Sample each stratum at its ratio (defaults A 0.01, B 0.02, C 0.10, D 0.30)."""
        if ratios is None:
            return cls(mode="ratio", ratios=dict(DEFAULT_RATIOS))
        parsed: dict[str, Decimal] = {}
        for risk_class, raw in ratios.items():
            _check_risk_class(risk_class)
            try:
                ratio = Decimal(raw)
            except (InvalidOperation, TypeError, ValueError) as exc:
                raise DrawError(f"ratio for {risk_class} is not a number: {raw!r}") from exc
            if not ratio.is_finite() or ratio < 0 or ratio > 1:
                raise DrawError(f"ratio for {risk_class} must be between 0 and 1, got {raw}")
            parsed[risk_class] = ratio
        return cls(mode="ratio", ratios=parsed)

    @classmethod
    def by_fixed_total(cls, total: int) -> Sampling:
        """Sample `total` enterprises, split across strata by largest remainder."""
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise DrawError(f"fixed total must be a non-negative integer, got {total!r}")
        return cls(mode="fixed_total", ratios={}, total=total)

    @classmethod
    def by_fixed_counts(cls, counts: Mapping[str, int]) -> Sampling:
        """Sample a fixed number of enterprises per stratum (capped at the stratum size)."""
        parsed: dict[str, int] = {}
        for risk_class, count in counts.items():
            _check_risk_class(risk_class)
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise DrawError(f"count for {risk_class} must be a non-negative integer")
            parsed[risk_class] = count
        return cls(mode="fixed_per_stratum", ratios={}, counts=parsed)

    def sample_sizes(self, population_size: Mapping[str, int]) -> dict[str, int]:
        """Return k per risk class for the given stratum sizes."""
        sizes = {rc: population_size.get(rc, 0) for rc in RISK_CLASSES}
        if self.mode == "ratio":
            return {
                rc: _ratio_sample_size(self.ratios.get(rc, Decimal(0)), sizes[rc]) for rc in sizes
            }
        if self.mode == "fixed_per_stratum":
            return {rc: min(self.counts.get(rc, 0), sizes[rc]) for rc in sizes}
        return _largest_remainder(self.total, sizes)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form used in exports."""
        if self.mode == "ratio":
            return {
                "mode": "ratio",
                "ratios": {rc: str(r) for rc, r in sorted(self.ratios.items())},
            }
        if self.mode == "fixed_total":
            return {"mode": "fixed_total", "total": self.total}
        return {"mode": "fixed_per_stratum", "counts": dict(sorted(self.counts.items()))}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Sampling:
        """Parse the JSON form produced by `to_dict`."""
        mode = data.get("mode")
        if mode == "ratio":
            return cls.by_ratio({str(k): str(v) for k, v in dict(data["ratios"]).items()})
        if mode == "fixed_total":
            return cls.by_fixed_total(data["total"])
        if mode == "fixed_per_stratum":
            return cls.by_fixed_counts(dict(data["counts"]))
        raise DrawError(f"unknown sampling mode {mode!r}")


@dataclass(frozen=True)
class DrawInput:
    """Everything the draw depends on; the recusals map USCC to inspector ids to exclude."""

    seed: str
    commitment: str
    population: Sequence[Candidate]
    sampling: Sampling
    roster: Sequence[Inspector]
    window_start: date
    window_end: date
    inspectors_per_check: int = 2
    workload_cap: int | None = None
    recusals: Mapping[str, Set[str]] = field(default_factory=dict)
    agencies: tuple[str, ...] = ()
    # The population as its digest text (sorted ``uscc,risk_class\n`` lines); when given it is
    # used instead of `population` (the service keeps the text it read from PostgreSQL).
    population_text: bytes | None = None


@dataclass(frozen=True, slots=True)
class SelectedEnterprise:
    """A drawn enterprise with its rank (hex HMAC)."""

    uscc: str
    risk_class: str
    rank: str


@dataclass(frozen=True, slots=True)
class AssignedInspector:
    """An inspector drawn for one enterprise, with the rank that placed them (hex HMAC)."""

    inspector_id: str
    certificate_no: str
    agency_code: str
    rank: str


@dataclass(frozen=True)
class DrawResult:
    """The outcome of a draw; `selected` is per stratum in rank order, `assignments` by USCC."""

    algorithm: str
    seed: str
    commitment: str
    population_digest: str
    population_size: Mapping[str, int]
    sample_size: Mapping[str, int]
    selected: Mapping[str, tuple[SelectedEnterprise, ...]]
    assignments: Mapping[str, tuple[AssignedInspector, ...]]

    def selected_usccs(self) -> list[str]:
        """Return every selected USCC, stratum by stratum in rank order."""
        return [e.uscc for rc in RISK_CLASSES for e in self.selected.get(rc, ())]


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of re-running a draw from its export."""

    match: bool
    differences: tuple[str, ...]
    recomputed: DrawResult | None = None


# --- seed -------------------------------------------------------------------------------------


def new_seed() -> str:
    """Return a fresh 32-byte seed as 64 hex digits (from the OS CSPRNG)."""
    return secrets.token_hex(SEED_BYTES)


def _seed_bytes(seed_hex: str) -> bytes:
    try:
        raw = bytes.fromhex(seed_hex)
    except (ValueError, TypeError) as exc:
        raise DrawError("seed must be hexadecimal") from exc
    if len(raw) != SEED_BYTES:
        raise DrawError(f"seed must be {SEED_BYTES} bytes ({2 * SEED_BYTES} hex digits)")
    return raw


def seed_commitment(seed_hex: str) -> str:
    """Return the commitment to a seed: hex SHA-256 of the seed bytes."""
    return hashlib.sha256(_seed_bytes(seed_hex)).hexdigest()


def check_seed(seed_hex: str, commitment: str) -> bool:
    """Return True if the revealed seed matches the published commitment."""
    try:
        actual = seed_commitment(seed_hex)
    except DrawError:
        return False
    return hmac.compare_digest(actual, commitment.strip().lower())


def require_seed(seed_hex: str, commitment: str) -> None:
    """Raise `SeedCommitmentMismatch` unless the seed matches the commitment."""
    if not check_seed(seed_hex, commitment):
        raise SeedCommitmentMismatch("the revealed seed does not match the commitment")


# --- population ------------------------------------------------------------------------------


def population_text(population: Iterable[Candidate]) -> bytes:
    """Return the digest text: ``uscc,risk_class\\n`` lines sorted by USCC (see module doc)."""
    return pairs_text(list(map(attrgetter("uscc", "risk_class"), population)))


def pairs_text(pairs: Sequence[Sequence[str]]) -> bytes:
    """Return the digest text of ``(uscc, risk_class)`` pairs (sorted here when they are not)."""
    n = len(pairs)
    if not n:
        return b""
    usccs = list(map(itemgetter(0), pairs))
    if not all(map(lt, usccs, islice(usccs, 1, None))):
        pairs = sorted(pairs, key=itemgetter(0))
    del usccs
    text = "\n".join(map(",".join, pairs)) + "\n"
    if text.count(",") != n or text.count("\n") != n:
        raise DrawError("a USCC or risk class contains ',' or a line break")
    return text.encode("utf-8")


def population_digest(population: Iterable[Candidate]) -> str:
    """Return hex SHA-256 over the ``uscc,risk_class\\n`` lines sorted by USCC (see module doc)."""
    return hashlib.sha256(population_text(population)).hexdigest()


def parse_population(text: bytes) -> dict[str, list[bytes]]:
    """Split digest text into UTF-8 USCCs per risk class, in USCC order.

    Refuses a text that is not exactly sorted, distinct ``uscc,risk_class\\n`` lines with a known
    class, so that SHA-256 of the text is the population digest.
    """
    size = len(text)
    n = size // _LINE_WIDTH
    if (
        size == n * _LINE_WIDTH
        and text[_USCC_WIDTH::_LINE_WIDTH] == b"," * n
        and text[_USCC_WIDTH + 2 :: _LINE_WIDTH] == b"\n" * n
        and text.count(b",") == n
        and text.count(b"\n") == n
    ):
        # Every line is an 18-byte USCC, a comma, one class byte and LF: slice, don't split.
        classes = text[_USCC_WIDTH + 1 :: _LINE_WIDTH]
        bounds = map(slice, range(0, size, _LINE_WIDTH), range(_USCC_WIDTH, size, _LINE_WIDTH))
        usccs = list(map(text.__getitem__, bounds))
    else:
        usccs, classes = _parse_lines(text)
    unknown = classes.translate(None, _CLASS_CODES)
    if unknown:
        bad = bytes(unknown[:1]).decode("utf-8", "replace")
        raise DrawError(f"unknown risk class {bad!r}")
    if not all(map(lt, usccs, islice(usccs, 1, None))):
        if any(map(eq, usccs, islice(usccs, 1, None))):
            raise DrawError("the population contains a USCC more than once")
        raise DrawError("the population lines are not sorted by USCC")
    if usccs and not usccs[0]:
        raise DrawError("the population contains an empty USCC")
    return {rc: list(compress(usccs, map(ord(rc).__eq__, classes))) for rc in RISK_CLASSES}


def _parse_lines(text: bytes) -> tuple[list[bytes], bytes]:
    if not text:
        return [], b""
    if not text.endswith(b"\n"):
        raise DrawError("the population text must end with a line break")
    lines = text.split(b"\n")
    lines.pop()
    usccs: list[bytes] = []
    classes = bytearray()
    for line in lines:
        uscc, comma, risk_class = line.partition(b",")
        if not comma or b"," in risk_class:
            raise DrawError("a USCC or risk class contains ',' or a line break")
        if len(risk_class) != 1:
            bad = risk_class.decode("utf-8", "replace")
            raise DrawError(f"unknown risk class {bad!r}")
        usccs.append(uscc)
        classes += risk_class
    return usccs, bytes(classes)


def stratify(population: Iterable[Candidate]) -> dict[str, list[str]]:
    """Split the population into USCC lists per risk class; refuse unknown classes, duplicates."""
    strata = parse_population(population_text(population))
    return {rc: [u.decode("utf-8") for u in usccs] for rc, usccs in strata.items()}


# --- ranking ---------------------------------------------------------------------------------


def _hmac_states(key: bytes) -> tuple[Callable[[], Any], Callable[[], Any]]:
    # HMAC-SHA256 from precomputed pad states: twice as fast as hmac.new().copy() per message.
    padded = key.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))
    return inner.copy, outer.copy


def _bytes_ranker(seed_hex: str) -> Callable[[bytes], bytes]:
    inner_copy, outer_copy = _hmac_states(_seed_bytes(seed_hex))

    def rank(message: bytes) -> bytes:
        inner = inner_copy()
        inner.update(message)
        outer = outer_copy()
        outer.update(inner.digest())
        digest: bytes = outer.digest()
        return digest

    return rank


def make_ranker(seed_hex: str) -> Callable[[str], bytes]:
    """Return a function computing HMAC-SHA256(seed, UTF-8(message)) as raw bytes."""
    rank_bytes = _bytes_ranker(seed_hex)

    def rank(message: str) -> bytes:
        return rank_bytes(message.encode("utf-8"))

    return rank


@dataclass(frozen=True, slots=True)
class Selection:
    """The enterprise half of a draw: population digest, stratum and sample sizes, selection."""

    population_digest: str
    population_size: dict[str, int]
    sample_size: dict[str, int]
    selected: dict[str, tuple[SelectedEnterprise, ...]]


def select_population(seed_hex: str, text: bytes, sampling: Sampling) -> Selection:
    """Digest, stratify and sample a population given as its digest text (see module doc)."""
    strata = parse_population(text)
    population_size = {rc: len(strata[rc]) for rc in RISK_CLASSES}
    sample_size = sampling.sample_sizes(population_size)
    digest = hashlib.sha256(text).hexdigest()
    selected = select_enterprises(seed_hex, strata, sample_size)
    return Selection(digest, population_size, sample_size, selected)


def select_enterprises(
    seed_hex: str,
    strata: Mapping[str, Sequence[str]] | Mapping[str, Sequence[bytes]],
    sample_size: Mapping[str, int],
) -> dict[str, tuple[SelectedEnterprise, ...]]:
    """Per stratum, take the k USCCs with the smallest HMAC(seed, uscc), in rank order."""
    rank = _bytes_ranker(seed_hex)
    selected: dict[str, tuple[SelectedEnterprise, ...]] = {}
    for rc in RISK_CLASSES:
        given = strata.get(rc, ())
        k = sample_size.get(rc, 0)
        if k <= 0 or not given:
            selected[rc] = ()
            continue
        usccs: Sequence[bytes] = (
            list(map(methodcaller("encode", "utf-8"), given))
            if isinstance(given[0], str)
            else given  # type: ignore[assignment]
        )
        ranks = list(map(rank, usccs))
        if k < len(ranks):
            # The k-th smallest rank, then only the candidates at or below it (ties by USCC).
            kth = heapq.nsmallest(k, ranks)[-1] if k * 4 < len(ranks) else sorted(ranks)[k - 1]
            best = sorted(compress(zip(ranks, usccs, strict=True), map(kth.__ge__, ranks)))[:k]
        else:
            best = sorted(zip(ranks, usccs, strict=True))
        del ranks
        selected[rc] = tuple(SelectedEnterprise(u.decode("utf-8"), rc, r.hex()) for r, u in best)
    return selected


# --- inspectors ------------------------------------------------------------------------------


def assign_inspectors(
    seed_hex: str,
    selected: Iterable[SelectedEnterprise],
    roster: Sequence[Inspector],
    *,
    window_end: date,
    inspectors_per_check: int = 2,
    workload_cap: int | None = None,
    recusals: Mapping[str, Set[str]] | None = None,
    agencies: Sequence[str] = (),
) -> dict[str, tuple[AssignedInspector, ...]]:
    """Draw inspectors for each selected enterprise or raise `DrawInfeasible` (see module doc)."""
    _check_inspector_rules(roster, inspectors_per_check, workload_cap, agencies)
    required = tuple(sorted(set(agencies)))
    recusals = recusals or {}
    in_scope = [i for i in roster if not required or i.agency_code in required]
    valid = sorted(
        (i for i in in_scope if i.certificate_valid_until >= window_end),
        key=attrgetter("certificate_no"),
    )
    expired = len(in_scope) - len(valid)
    valid_agencies = {i.agency_code for i in valid}
    inner_copy, outer_copy = _hmac_states(_seed_bytes(seed_hex))
    certs = [i.certificate_no for i in valid]
    cert_bytes = [c.encode("utf-8") for c in certs]
    agency_of = [i.agency_code for i in valid]
    index_of = {i.id: idx for idx, i in enumerate(valid)}
    load = [0] * len(valid)
    cap = workload_cap if workload_cap is not None else -1
    # Inspectors below the workload cap, by index into `valid` (certificate order).
    available = list(range(len(valid)))
    order = sorted(selected, key=lambda e: (bytes.fromhex(e.rank), e.uscc))
    assignments: dict[str, tuple[AssignedInspector, ...]] = {}
    failures: list[CoverageFailure] = []

    for enterprise in order:
        uscc = enterprise.uscc
        recused = recusals.get(uscc)
        eligible = available
        if recused:
            skip = {index_of[i] for i in recused if i in index_of}
            if skip:
                eligible = [idx for idx in available if idx not in skip]
        prefix = inner_copy()
        prefix.update(uscc.encode("utf-8"))
        rank = _suffix_ranker(prefix.copy, outer_copy)
        ranks = list(map(rank, map(cert_bytes.__getitem__, eligible)))
        chosen: list[tuple[bytes, str, int]] = []
        missing_agencies: list[str] = []
        ranked: list[tuple[bytes, str, int]] = []
        top = heapq.nsmallest(inspectors_per_check, ranks) if not required else []
        if (
            len(top) == inspectors_per_check
            and len(set(top)) == len(top)
            and ranks.count(top[-1]) == 1
        ):
            # The common case: compare the digests alone (no tuple per inspector); the
            # certificate tie-break only matters when a digest repeats, handled below.
            for digest in top:
                idx = eligible[ranks.index(digest)]
                chosen.append((digest, certs[idx], idx))
        else:
            ranked = list(zip(ranks, map(certs.__getitem__, eligible), eligible, strict=True))
        if required:
            for agency in required:
                own = [r for r in ranked if agency_of[r[2]] == agency]
                if own:
                    chosen.append(min(own))
                else:
                    missing_agencies.append(agency)
            taken = {r[2] for r in chosen}
            rest = [r for r in ranked if r[2] not in taken]
            chosen.extend(heapq.nsmallest(inspectors_per_check - len(chosen), rest))
        elif not chosen:
            chosen = heapq.nsmallest(inspectors_per_check, ranked)

        if missing_agencies or len(chosen) < inspectors_per_check:
            recused_ids = recused or frozenset()
            failures.append(
                _coverage_failure(
                    uscc,
                    needed=inspectors_per_check,
                    eligible=len(ranks),
                    roster_size=len(in_scope),
                    expired=expired,
                    recused=sum(1 for i in valid if i.id in recused_ids),
                    capped=sum(
                        1
                        for idx, i in enumerate(valid)
                        if i.id not in recused_ids and load[idx] == cap
                    ),
                    workload_cap=workload_cap,
                    window_end=window_end,
                    missing_agencies=missing_agencies,
                    agencies_without_valid=[a for a in missing_agencies if a not in valid_agencies],
                )
            )
            continue
        chosen.sort()
        full = False
        for _, _, idx in chosen:
            load[idx] += 1
            full = full or load[idx] == cap
        if full:
            available = [idx for idx in available if load[idx] != cap]
        assignments[uscc] = tuple(
            AssignedInspector(
                valid[idx].id, valid[idx].certificate_no, valid[idx].agency_code, digest.hex()
            )
            for digest, _, idx in chosen
        )
    if failures:
        raise DrawInfeasible(failures)
    return assignments


def _suffix_ranker(
    prefix_copy: Callable[[], Any], outer_copy: Callable[[], Any]
) -> Callable[[bytes], bytes]:
    # HMAC of (the message already in the inner state `prefix`) || suffix.
    def rank(suffix: bytes) -> bytes:
        inner = prefix_copy()
        inner.update(suffix)
        outer = outer_copy()
        outer.update(inner.digest())
        digest: bytes = outer.digest()
        return digest

    return rank


def _coverage_failure(
    uscc: str,
    *,
    needed: int,
    eligible: int,
    roster_size: int,
    expired: int,
    recused: int,
    capped: int,
    workload_cap: int | None,
    window_end: date,
    missing_agencies: Sequence[str],
    agencies_without_valid: Sequence[str],
) -> CoverageFailure:
    reasons: list[str] = []
    parts = [f"needs {needed} inspectors, {eligible} eligible of {roster_size} on the roster"]
    if expired:
        reasons.append("no_valid_certificate")
        parts.append(f"{expired} without a certificate valid until {window_end.isoformat()}")
    if recused:
        reasons.append("recused")
        parts.append(f"{recused} recused (inspected it within the recusal period)")
    if capped:
        reasons.append("workload_cap")
        parts.append(f"{capped} at the workload cap of {workload_cap}")
    for agency in missing_agencies:
        reasons.append(f"agency_without_eligible_inspector:{agency}")
        why = "no valid certificate" if agency in agencies_without_valid else "none eligible"
        parts.append(f"agency {agency} has no eligible inspector ({why})")
    if not reasons:
        reasons.append("roster_too_small")
        parts.append("the roster is too small")
    return CoverageFailure(uscc, tuple(reasons), "; ".join(parts))


# --- the whole draw --------------------------------------------------------------------------


def run_draw(draw_input: DrawInput) -> DrawResult:
    """Run the draw; raise `SeedCommitmentMismatch`, `DrawInfeasible` or `DrawError`."""
    require_seed(draw_input.seed, draw_input.commitment)
    return _compute(draw_input)


def _compute(draw_input: DrawInput) -> DrawResult:
    if draw_input.window_end < draw_input.window_start:
        raise DrawError("the window ends before it starts")
    seed = draw_input.seed.lower()
    text = draw_input.population_text
    if text is None:
        text = population_text(draw_input.population)
    selection = select_population(seed, text, draw_input.sampling)
    del text
    selected = selection.selected
    assignments = assign_inspectors(
        seed,
        (e for rc in RISK_CLASSES for e in selected[rc]),
        draw_input.roster,
        window_end=draw_input.window_end,
        inspectors_per_check=draw_input.inspectors_per_check,
        workload_cap=draw_input.workload_cap,
        recusals=draw_input.recusals,
        agencies=draw_input.agencies,
    )
    return DrawResult(
        algorithm=ALGORITHM_VERSION,
        seed=seed,
        commitment=draw_input.commitment.strip().lower(),
        population_digest=selection.population_digest,
        population_size=selection.population_size,
        sample_size=selection.sample_size,
        selected=selected,
        assignments=assignments,
    )


# --- export and verification -----------------------------------------------------------------


def result_to_dict(result: DrawResult) -> dict[str, Any]:
    """Return the JSON form of a draw result."""
    return {
        "algorithm": result.algorithm,
        "population_digest": result.population_digest,
        "population_size": dict(result.population_size),
        "sample_size": dict(result.sample_size),
        "selected": {
            rc: [{"uscc": e.uscc, "rank": e.rank} for e in result.selected.get(rc, ())]
            for rc in RISK_CLASSES
        },
        "assignments": {
            uscc: [
                {
                    "inspector_id": a.inspector_id,
                    "certificate_no": a.certificate_no,
                    "agency_code": a.agency_code,
                    "rank": a.rank,
                }
                for a in assigned
            ]
            for uscc, assigned in sorted(result.assignments.items())
        },
    }


def population_pairs(text: bytes) -> list[list[str]]:
    """Return the ``[uscc, risk_class]`` pairs of a population's digest text, in USCC order."""
    lines = text.decode("utf-8").split("\n")
    lines.pop()  # the text ends with a line break
    return list(map(methodcaller("split", ",", 1), lines))


def export_population(text: bytes, *, compact: bool = False) -> dict[str, Any]:
    """The export's population fields: pairs (format 1) or the digest text itself (format 2)."""
    if compact:
        return {
            "format_version": EXPORT_FORMAT_VERSION_COMPACT,
            "population_text": text.decode("utf-8"),
        }
    return {"format_version": EXPORT_FORMAT_VERSION, "population": population_pairs(text)}


def export_draw(
    draw_input: DrawInput, result: DrawResult, *, compact: bool = False
) -> dict[str, Any]:
    """Return the self-contained, JSON-serialisable record from which the draw can be re-run.

    `compact` writes the population as ``population_text`` (format version 2, much faster to
    read back) instead of a list of ``[uscc, risk_class]`` pairs.
    """
    text = draw_input.population_text
    if text is None:
        text = population_text(draw_input.population)
    population = export_population(text, compact=compact)
    return {
        "format": EXPORT_FORMAT,
        "format_version": population.pop("format_version"),
        "algorithm": result.algorithm,
        "seed": result.seed,
        "commitment": result.commitment,
        "window": {
            "start": draw_input.window_start.isoformat(),
            "end": draw_input.window_end.isoformat(),
        },
        "sampling": draw_input.sampling.to_dict(),
        "inspectors_per_check": draw_input.inspectors_per_check,
        "workload_cap": draw_input.workload_cap,
        "agencies": sorted(set(draw_input.agencies)),
        **population,
        "roster": [
            {
                "id": i.id,
                "agency_code": i.agency_code,
                "certificate_no": i.certificate_no,
                "certificate_valid_until": i.certificate_valid_until.isoformat(),
            }
            for i in sorted(draw_input.roster, key=attrgetter("id"))
        ],
        "recusals": {uscc: sorted(ids) for uscc, ids in sorted(draw_input.recusals.items()) if ids},
        "result": result_to_dict(result),
    }


def draw_input_from_export(data: Mapping[str, Any]) -> DrawInput:
    """Rebuild the draw's input from an export; raise `DrawError` if it is malformed."""
    try:
        window = data["window"]
        return DrawInput(
            seed=str(data["seed"]),
            commitment=str(data["commitment"]),
            population=(),
            population_text=_export_population_text(data),
            sampling=Sampling.from_dict(data["sampling"]),
            roster=[
                Inspector(
                    id=str(i["id"]),
                    agency_code=str(i["agency_code"]),
                    certificate_no=str(i["certificate_no"]),
                    certificate_valid_until=date.fromisoformat(i["certificate_valid_until"]),
                )
                for i in data["roster"]
            ],
            window_start=date.fromisoformat(window["start"]),
            window_end=date.fromisoformat(window["end"]),
            inspectors_per_check=int(data["inspectors_per_check"]),
            workload_cap=None if data.get("workload_cap") is None else int(data["workload_cap"]),
            recusals={
                str(u): frozenset(str(i) for i in ids)
                for u, ids in dict(data.get("recusals") or {}).items()
            },
            agencies=tuple(str(a) for a in data.get("agencies") or ()),
        )
    except DrawError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DrawError(f"malformed export: {exc!r}") from exc


def _export_population_text(data: Mapping[str, Any]) -> bytes:
    """The digest text of an export's population: ``population_text``, or the pairs' text."""
    text = data.get("population_text")
    pairs = data.get("population")
    if text is None and pairs is None:
        raise DrawError("malformed export: no population")
    if text is not None and not isinstance(text, str):
        raise DrawError("malformed export: population_text is not a string")
    if pairs is not None:
        if not isinstance(pairs, list):
            raise DrawError("malformed export: population is not a list")
        from_pairs = pairs_text(pairs)
        if text is not None and text.encode("utf-8") != from_pairs:
            raise DrawError("population and population_text describe different populations")
        return from_pairs
    assert text is not None
    return text.encode("utf-8")


def verify_export(data: Mapping[str, Any]) -> VerifyResult:
    """Re-run the draw recorded in an export and list every difference from the recorded result."""
    differences: list[str] = []
    try:
        draw_input = draw_input_from_export(data)
        recorded = data["result"]
        if not isinstance(recorded, Mapping):
            raise DrawError("malformed export: result is not an object")
    except (DrawError, KeyError) as exc:
        return VerifyResult(False, (f"malformed export: {exc}",))

    for algorithm in {data.get("algorithm"), recorded.get("algorithm")}:
        if algorithm != ALGORITHM_VERSION:
            differences.append(
                f"algorithm {algorithm!r} is not {ALGORITHM_VERSION!r}, the one this verifier runs"
            )
    try:
        commitment_ok = check_seed(draw_input.seed, draw_input.commitment)
        actual_commitment = seed_commitment(draw_input.seed)
    except DrawError as exc:
        return VerifyResult(False, (*differences, f"seed: {exc}"))
    if not commitment_ok:
        differences.append(
            f"seed does not match the commitment: sha256(seed) = {actual_commitment}, "
            f"recorded commitment {draw_input.commitment}"
        )
    try:
        recomputed = _compute(draw_input)
    except DrawInfeasible as exc:
        differences.append(f"recomputation is infeasible: {exc}")
        return VerifyResult(False, tuple(differences))
    except DrawError as exc:
        differences.append(f"recomputation failed: {exc}")
        return VerifyResult(False, tuple(differences))

    differences.extend(_compare(recorded, result_to_dict(recomputed)))
    return VerifyResult(not differences, tuple(differences), recomputed)


def _compare(recorded: Mapping[str, Any], actual: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    if recorded.get("population_digest") != actual["population_digest"]:
        out.append(
            f"population digest mismatch: recorded {recorded.get('population_digest')}, "
            f"recomputed {actual['population_digest']}"
        )
    for key in ("population_size", "sample_size"):
        if _as_dict(recorded.get(key)) != actual[key]:
            out.append(f"{key} mismatch: recorded {recorded.get(key)}, recomputed {actual[key]}")

    rec_selected = _as_dict(recorded.get("selected"))
    for rc in RISK_CLASSES:
        rec = _entries(rec_selected.get(rc), "uscc")
        act = _entries(actual["selected"][rc], "uscc")
        lines: list[str] = []
        lines += [
            f"stratum {rc}: {u} recorded as selected but not selected by the recomputation"
            for u in sorted(rec.keys() - act.keys())
        ]
        lines += [
            f"stratum {rc}: {u} selected by the recomputation but missing from the record"
            for u in sorted(act.keys() - rec.keys())
        ]
        lines += [
            f"stratum {rc}: {u} recorded rank {rec[u].get('rank')} but recomputed {act[u]['rank']}"
            for u in sorted(rec.keys() & act.keys())
            if rec[u].get("rank") != act[u]["rank"]
        ]
        out.extend(_capped(lines))

    rec_assign = _as_dict(recorded.get("assignments"))
    act_assign: Mapping[str, Any] = actual["assignments"]
    lines = []
    for uscc in sorted(rec_assign.keys() | act_assign.keys()):
        rec_people = _people(rec_assign.get(uscc))
        act_people = _people(act_assign.get(uscc))
        if rec_people != act_people:
            lines.append(
                f"inspectors for {uscc}: recorded {_describe(rec_people)}, "
                f"recomputed {_describe(act_people)}"
            )
    out.extend(_capped(lines))
    return out


def _as_dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _entries(value: Any, key: str) -> dict[str, Mapping[str, Any]]:
    if not isinstance(value, list):
        return {}
    return {str(e.get(key)): e for e in value if isinstance(e, Mapping)}


def _people(value: Any) -> list[tuple[str, str, str]]:
    if not isinstance(value, list):
        return []
    return [
        (str(p.get("inspector_id")), str(p.get("certificate_no")), str(p.get("rank")))
        for p in value
        if isinstance(p, Mapping)
    ]


def _describe(people: Sequence[tuple[str, str, str]]) -> str:
    if not people:
        return "none"
    return ", ".join(f"{pid} ({cert})" for pid, cert, _ in people)


def _capped(lines: list[str]) -> list[str]:
    if len(lines) <= _MAX_DIFFERENCES_PER_KIND:
        return lines
    extra = len(lines) - _MAX_DIFFERENCES_PER_KIND
    return [*lines[:_MAX_DIFFERENCES_PER_KIND], f"... and {extra} more like the above"]


# --- helpers ---------------------------------------------------------------------------------


def _check_risk_class(risk_class: str) -> None:
    if risk_class not in RISK_CLASSES:
        raise DrawError(f"unknown risk class {risk_class!r}")


def _ratio_sample_size(ratio: Decimal, n: int) -> int:
    if n <= 0 or ratio <= 0:
        return 0
    k = int((ratio * n).to_integral_value(rounding=ROUND_CEILING))
    return min(n, max(1, k))


def _largest_remainder(total: int, sizes: Mapping[str, int]) -> dict[str, int]:
    population = sum(sizes.values())
    if total >= population:
        return dict(sizes)
    quotas = {rc: Fraction(total * n, population) for rc, n in sizes.items()}
    base = {rc: int(q) for rc, q in quotas.items()}
    left = total - sum(base.values())
    # Higher risk first among equal remainders: D before C before B before A.
    order = sorted(sizes, key=lambda rc: (-(quotas[rc] - base[rc]), -RISK_CLASSES.index(rc)))
    for rc in order[:left]:
        base[rc] += 1
    return base


def _check_inspector_rules(
    roster: Sequence[Inspector],
    inspectors_per_check: int,
    workload_cap: int | None,
    agencies: Sequence[str],
) -> None:
    if inspectors_per_check < 2:
        raise DrawError("at least 2 inspectors per check are required")
    if workload_cap is not None and workload_cap < 1:
        raise DrawError("the workload cap must be at least 1")
    if len(set(agencies)) > inspectors_per_check:
        raise DrawError("a joint plan needs at least one inspector per agency per check")
    if len({i.id for i in roster}) != len(roster):
        raise DrawError("an inspector id appears twice on the roster")
    if len({i.certificate_no for i in roster}) != len(roster):
        raise DrawError("a certificate number appears twice on the roster")
