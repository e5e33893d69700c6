"""The write benchmarks' alternating slices add up to one run: mean rate, median p50, worst p99,
failures summed, CPU per request weighted by the requests each slice answered."""

from __future__ import annotations

import pytest
from bench.approval_bench import combined as combined_loads
from bench.checkrequest_bench import combined as combined_figures
from bench.common import Load


def test_approval_slices_combine_into_one_run() -> None:
    slices = [
        (Load(rps=600.0, p50_ms=20.0, p99_ms=50.0, requests=600, errors=0, non_2xx=0),
         {"server_cpu_ms": 1.0, "db_cpu_ms": 1.0}),
        (Load(rps=900.0, p50_ms=10.0, p99_ms=90.0, requests=900, errors=1, non_2xx=100),
         {"server_cpu_ms": 2.0, "db_cpu_ms": 0.5}),
        (Load(rps=750.0, p50_ms=15.0, p99_ms=40.0, requests=750, errors=0, non_2xx=0),
         {"server_cpu_ms": 1.5, "db_cpu_ms": 0.75}),
    ]  # fmt: skip
    load, cpu = combined_loads(slices)
    assert load.rps == pytest.approx(750.0)
    assert (load.p50_ms, load.p99_ms) == (15.0, 90.0)
    assert (load.requests, load.errors, load.non_2xx) == (2_250, 1, 100)
    # weighted by 2xx answers: 600, 800 and 750
    server = (600 * 1.0 + 800 * 2.0 + 750 * 1.5) / 2_150
    db = (600 * 1.0 + 800 * 0.5 + 750 * 0.75) / 2_150
    assert cpu == {"server_cpu_ms": pytest.approx(server, abs=0.01),
                   "db_cpu_ms": pytest.approx(db, abs=0.01)}  # fmt: skip


def test_submission_slices_combine_into_one_run() -> None:
    slices = [
        {"rps": 500.0, "p50_ms": 30.0, "p99_ms": 70.0, "errors": 2.0, "non_2xx": 2.0,
         "server_cpu_ms": 1.2, "db_cpu_ms": 0.8},
        {"rps": 1_500.0, "p50_ms": 10.0, "p99_ms": 20.0, "errors": 0.0,
         "server_cpu_ms": 0.8, "db_cpu_ms": 0.4},
    ]  # fmt: skip
    out = combined_figures(slices)
    assert out["rps"] == pytest.approx(1_000.0)
    assert (out["p50_ms"], out["p99_ms"]) == (20.0, 70.0)
    assert (out["errors"], out["non_2xx"]) == (2.0, 2.0)
    assert out["server_cpu_ms"] == pytest.approx((500 * 1.2 + 1_500 * 0.8) / 2_000, abs=0.01)
    assert out["db_cpu_ms"] == pytest.approx((500 * 0.8 + 1_500 * 0.4) / 2_000, abs=0.01)
