"""Benchmark of the pure draw: ``python -m bench.draw_bench --n 1000000``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
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
    population_text,
    run_draw,
    seed_commitment,
    stratify,
    verify_export,
)


def peak_rss_mib() -> float:
    """Return this process's peak resident set size in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Timer:
    """Wall and CPU seconds of a block, printed with the peak RSS and the load average."""

    def __init__(self, label: str) -> None:
        self.label = label

    def __enter__(self) -> Timer:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        print(
            f"{self.label:<40} {wall:7.2f} s (CPU {cpu:6.2f} s)   peak RSS "
            f"{peak_rss_mib():6.0f} MiB   load {os.getloadavg()[0]:.2f}",
            flush=True,
        )


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
    with Timer("baseline (after generation)"):
        pass
    with Timer("population digest alone (sorts 1M)"):
        population_digest(population)
    with Timer("population text (as the service reads it)"):
        draw_input = dataclasses.replace(draw_input, population_text=population_text(population))
    with Timer("draw (run_draw)"):
        result = run_draw(draw_input)
    with Timer("export_draw (pairs, format 1)"):
        export = export_draw(draw_input, result)
    with Timer("verify_export (pairs)"):
        outcome = verify_export(export)
    print(f"match={outcome.match} differences={len(outcome.differences)}")
    with Timer("json round trip + verify (pairs)"):
        outcome = verify_export(json.loads(json.dumps(export)))
    print(f"match={outcome.match}")
    del export
    with Timer("json round trip + verify (compact)"):
        compact = json.dumps(export_draw(draw_input, result, compact=True))
        outcome = verify_export(json.loads(compact))
    print(f"match={outcome.match}")


if __name__ == "__main__":
    main()
