"""The examples run, unchanged, against the real broker."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from nfmp_client.testing import SimulatedServer

from ..conftest import BrokerInfo

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"
pytestmark = pytest.mark.integration


def test_demo(broker: BrokerInfo) -> None:
    """The README's demo decodes every event, reports the malformed one, loses nothing, leaves nothing."""
    client_id = f"demo-{uuid.uuid4().hex[:8]}@1"
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo.py"), "--port", str(broker.port), "--client-id", client_id],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "10 events decoded, 1 malformed message reported and kept, 0 lost" in result.stdout
    assert "other@9" not in result.stdout  # the selector kept out the event for another client
    assert client_id not in broker.admin("list")  # the demo removed its durable subscription


def test_quickstart(broker: BrokerInfo, server: SimulatedServer) -> None:
    """The quickstart prints the events the simulated server sends, then stops and removes its subscription."""
    client_id = f"quick-{uuid.uuid4().hex[:8]}@1"
    process = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLES / "quickstart.py"),
            *("--server", f"{broker.host}:{broker.port}"),
            *("--client-id", client_id),
            *("--seconds", "4"),
            "--decommission",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        server.wait_for_subscriber(client_id, timeout=10)
        sent = server.generate(3)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()

    assert process.returncode == 0, stdout + stderr
    assert stdout.startswith("up      "), stdout
    assert "system  SystemInfoEvent" in stdout
    assert stdout.count("event   ") == len(sent)
    assert "stopped after 3 events" in stdout
    assert client_id not in broker.admin("list")
