"""The examples run, unchanged, against the real broker."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

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
