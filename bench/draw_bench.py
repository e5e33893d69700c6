"""Benchmark of the pure draw: ``python -m bench.draw_bench --n 1000000``."""

from __future__ import annotations

import argparse
import math
import resource
import time
from datetime import date, timedelta

from bench.datagen import generate_candidates
from inspection_hub.plans.draw import (
    Candidate,
    DrawInput,
    Inspector,
    Sampling,
    export_draw,
    new_seed,
    population_digest,
    run_draw,
    seed_commitment,
    stratify,
    verify_export,
)


def peak_rss_mib() -> float:
    """Return this process's peak resident set size in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(label: str, seconds: float) -> None:
    """Print one timing line with the peak RSS so far."""
    print(f"{label:<34} {seconds:8.2f} s   peak RSS {peak_rss_mib():8.0f} MiB", flush=True)


def main() -> None:
    """Generate a population and roster, run the draw and verify its export."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000, help="population size")
    parser.add_argument("--inspectors", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1, help="data generator seed")
    parser.add_argument("--fixed-total", type=int, default=None, help="fixed total sample size")
    args = parser.parse_args()

    started = time.perf_counter()
    population = [Candidate(u, rc) for u, rc in generate_candidates(args.n, args.seed)]
    window_start, window_end = date(2025, 3, 1), date(2025, 6, 30)
    roster = [
        Inspector(
            id=f"insp-{i:04d}",
            agency_code="320404-SCJG",
            certificate_no=f"JS3204{i:08d}",
            # one in twenty has a certificate that lapses inside the window
            certificate_valid_until=window_end + timedelta(days=-10 if i % 20 == 0 else 400),
        )
        for i in range(args.inspectors)
    ]
    sampling = Sampling.by_ratio()
    if args.fixed_total is not None:
        sampling = Sampling.by_fixed_total(args.fixed_total)
    sizes = {rc: len(v) for rc, v in stratify(population).items()}
    k = sampling.sample_sizes(sizes)
    eligible = sum(1 for i in roster if i.certificate_valid_until >= window_end)
    cap = math.ceil(2 * sum(k.values()) / eligible * 1.1) + 1
    seed = new_seed()
    print(f"population {args.n:,} {sizes}; sample {k}; roster {len(roster)} ({eligible} valid)")
    print(f"workload cap {cap}; generated in {time.perf_counter() - started:.1f} s")
    draw_input = DrawInput(
        seed=seed,
        commitment=seed_commitment(seed),
        population=population,
        sampling=sampling,
        roster=roster,
        window_start=window_start,
        window_end=window_end,
        inspectors_per_check=2,
        workload_cap=cap,
        recusals={population[i].uscc: {"insp-0001", "insp-0002"} for i in range(0, args.n, 50)},
    )
    report("baseline (after generation)", 0.0)

    t = time.perf_counter()
    population_digest(population)
    report("population digest alone", time.perf_counter() - t)

    t = time.perf_counter()
    result = run_draw(draw_input)
    report("draw (run_draw)", time.perf_counter() - t)

    t = time.perf_counter()
    export = export_draw(draw_input, result)
    report("export_draw", time.perf_counter() - t)

    t = time.perf_counter()
    outcome = verify_export(export)
    report("verify_export", time.perf_counter() - t)
    print(f"match={outcome.match} differences={len(outcome.differences)}")


if __name__ == "__main__":
    main()
