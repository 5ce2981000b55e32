"""The chaos soak's short run: every fault kind once, on real ActiveMQ brokers, and the promise holds.

``benchmarks/soak.py`` starts its own two brokers (primary and standby), simulated servers, fault proxies and
the alarm mirror in a process of its own; this runs it with a fixed seed and fails on any lost event, missed or
spurious resync, a mirror that differs from the truth, a mirror that stopped by itself, or a dead path noticed
later than its configured timeout + 1 s. The long run (50+ faults, several seeds) is a benchmark.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parent.parent.parent / "benchmarks" / "soak.py"
SEED = 20261130
FAULTS = 15  # the number of fault kinds: the first draws are a shuffle of all of them

pytestmark = pytest.mark.integration


@pytest.mark.timeout(420)
def test_the_short_soak_loses_nothing_and_misses_no_resync() -> None:
    result = subprocess.run(
        [sys.executable, str(SOAK), "--faults", str(FAULTS), "--seed", str(SEED)],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    output = result.stdout + result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])

    assert figures["kinds_missing"] == [], output
    assert figures["faults_total"] >= FAULTS, output
    assert figures["lost"] == 0, output
    assert figures["missed_resyncs"] == 0, output
    assert figures["spurious_resyncs"] == 0, output
    assert figures["mirror_equals_truth"], output
    assert figures["mirror_exits"] == [], output
    assert figures["soak_errors"] == [], output
    assert all(d["within"] and d["count"] >= 1 for d in figures["detection_s"].values()), output
    assert figures["goal_met"], output
    assert result.returncode == 0, output
