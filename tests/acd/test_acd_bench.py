"""The routing benchmark runs end to end and reports what it promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "acd_bench.py"


def test_benchmark_smoke() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--agents",
            "60",
            "--queues",
            "8",
            "--interactions",
            "600",
            "--reference-decisions",
            "20",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["agents"], result["queues"], result["interactions"]) == (60, 8, 600)
    assert result["routed_per_s"] > 0 and result["decisions"] >= 600
    assert result["routed_per_cpu_s"] > 0 and result["cpu_s"] > 0
    assert result["agent_side_decisions"] > 0  # both routing paths ran
    assert 0 < result["p50_us"] <= result["p99_us"]
    assert result["reference"]["naive_scan_p50_us"] > 0
    assert result["max_not_connected"] < 60  # steady state, not an ever-growing queue
