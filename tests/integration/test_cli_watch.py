"""``nfmp-client watch`` against the simulated server on the real broker."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from nfmp_client.testing import SimulatedServer

from ..conftest import BrokerInfo

pytestmark = pytest.mark.integration


def watch(broker: BrokerInfo, client_id: str, state_dir: Path, *options: str) -> subprocess.Popen[str]:
    """`nfmp-client watch` on the test broker, its output captured."""
    return subprocess.Popen(
        [
            sys.executable,
            *("-m", "nfmp_client._cli", "watch"),
            *("--server", f"{broker.host}:{broker.port}"),
            *("--client-id", client_id),
            *("--state-dir", str(state_dir)),
            *options,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_watch_prints_events_resyncs_and_connections_as_json(
    broker: BrokerInfo, server: SimulatedServer, tmp_path: Path
) -> None:
    """--json: one object per line: the connection, the INITIAL resync, the events in order; exit 0."""
    client_id = f"watch-{uuid.uuid4().hex[:8]}@1"
    process = watch(broker, client_id, tmp_path, "--seconds", "4", "--json")
    try:
        server.wait_for_subscriber(client_id, timeout=10)
        sent = server.generate(3)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()

    assert process.returncode == 0, stderr
    lines = [json.loads(line) for line in stdout.splitlines()]
    kinds = [line["kind"] for line in lines]
    assert kinds[0] == "connection-restored"
    assert "resync" in kinds
    resync = next(line for line in lines if line["kind"] == "resync")
    assert resync["reason"] == "initial"
    events = [line for line in lines if line["kind"] == "event"]
    assert [e["event"] for e in events] == [type(e).__name__ for e in sent]
    assert {e["epoch"] for e in events} <= {0, 1}  # before the first resync request, or after it


def test_watch_ends_when_an_administrator_terminates_the_session(
    broker: BrokerInfo, server: SimulatedServer, tmp_path: Path
) -> None:
    """TerminateClientSession: `watch` (no --seconds) exits by itself, non-zero, saying why; it used to hang."""
    client_id = f"watch-{uuid.uuid4().hex[:8]}@1"
    process = watch(broker, client_id, tmp_path)
    try:
        server.wait_for_subscriber(client_id, timeout=10)
        server.terminate(client_id)
        _stdout, stderr = process.communicate(timeout=20)
    finally:
        process.kill()

    assert process.returncode != 0
    assert "terminated the session" in stderr
