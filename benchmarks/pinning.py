"""The project's broker for the benchmarks: start it, find it, pin it and the benchmark to cores of their own.

On a machine with few cores the broker and the consumer compete for CPU, and any CPU the consumer spends also
slows the broker down: the figures then measure the machine's scheduling as much as the consumer. Production
runs the broker on another host; pinning the two to separate cores is the closest a single machine gets.
Used by the benchmarks that consume from the broker (throughput, latency, memory, detection).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PORT = int(os.environ.get("NFMP_BROKER_PORT", "61613"))


def ensure_broker() -> None:
    """Start the project's broker unless it runs (``scripts/broker start`` reuses a running one)."""
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "broker"), "start"], check=True, capture_output=True
    )


def broker_pid() -> int | None:
    """The process id of the project's broker (``scripts/broker status``) if it serves NFMP_BROKER_PORT."""
    status = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "broker"), "status"],
        check=False,
        capture_output=True,
        text=True,
    )
    found = re.search(r"stomp://[^\s]+:(\d+) \(pid (\d+)", status.stdout)
    if found is None or int(found.group(1)) != PORT:
        return None
    return int(found.group(2))


def _affinity(pid: int) -> str | None:
    shown = subprocess.run(["taskset", "-pc", str(pid)], check=False, capture_output=True, text=True)
    found = re.search(r"list: (\S+)", shown.stdout)
    return found.group(1) if shown.returncode == 0 and found else None


@contextlib.contextmanager
def pinned(enabled: bool = True) -> Iterator[str]:
    """Pin the broker (every thread) to the first core and this process to the others; yield why not, or "".

    Threads this process starts later inherit its affinity. Both affinities are restored on exit.
    """
    cores = sorted(os.sched_getaffinity(0))
    pid = broker_pid()
    why = (
        "turned off (--no-pin)"
        if not enabled
        else "fewer than 2 cores"
        if len(cores) < 2
        else "the broker is not running"
        if pid is None
        else "taskset not found"
        if shutil.which("taskset") is None
        else ""
    )
    if why:
        yield why
        return
    assert pid is not None
    before = _affinity(pid)
    mine = os.sched_getaffinity(0)
    done = subprocess.run(
        ["taskset", "-a", "-pc", str(cores[0]), str(pid)], check=False, capture_output=True, text=True
    )
    if done.returncode != 0 or before is None:
        yield f"taskset refused: {done.stderr.strip() or done.stdout.strip()}"
        return
    os.sched_setaffinity(0, set(cores[1:]))
    try:
        yield ""
    finally:
        os.sched_setaffinity(0, mine)
        subprocess.run(
            ["taskset", "-a", "-pc", before, str(pid)], check=False, capture_output=True, text=True
        )
