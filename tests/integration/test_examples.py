"""The examples run, unchanged, against the real broker."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import IO

import pytest

from nfmp_client.testing import SimulatedServer, SnapshotServer
from nfmp_client.xmlapi import XMLAPI_PATH

from ..conftest import BrokerInfo

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"
pytestmark = pytest.mark.integration


def test_demo(broker: BrokerInfo) -> None:
    """The README's demo plays the whole story and the mirror holds through it (exit 0, says so)."""
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "demo.py"),
            *("--port", str(broker.port), "--jmx-port", str(broker.jmx_port), "--pace", "0"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "noticed after" in out
    assert "heartbeat-timeout" in out
    assert "resync (server-restarted)" in out
    assert "resync (missed-events)" in out
    assert "TerminateClientSession: the client stops" in out
    assert out.count("the mirror equals the server's truth") == 4
    assert "The mirror held through the whole story" in out


def test_codec_tour(broker: BrokerInfo) -> None:
    """codec_tour.py decodes every event, reports the malformed one, loses nothing, leaves nothing."""
    client_id = f"demo-{uuid.uuid4().hex[:8]}@1"
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "codec_tour.py"),
            "--port",
            str(broker.port),
            "--client-id",
            client_id,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "10 events decoded, 1 malformed message reported and kept, 0 lost" in result.stdout
    assert "other@9" not in result.stdout  # the selector kept out the event for another client
    assert client_id not in broker.admin("list")  # the tour removed its durable subscription


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


def test_alarm_mirror_equals_the_truth_after_the_scenarios(
    broker: BrokerInfo, server: SimulatedServer, tmp_path: Path
) -> None:
    """alarm_mirror.py's SQLite table equals the simulator's alarms after events, a server restart and an
    overflow (events lost while connected), each followed by its resync."""
    client_id = f"mirror-{uuid.uuid4().hex[:8]}@1"
    db, errors = tmp_path / "alarms.sqlite", tmp_path / "stderr.txt"
    with errors.open("w") as errors_file, SnapshotServer(server.model) as snapshot:
        process = subprocess.Popen(
            [
                sys.executable,
                str(EXAMPLES / "alarm_mirror.py"),
                *("--server", f"{broker.host}:{broker.port}"),
                *("--xmlapi", snapshot.url.removesuffix(XMLAPI_PATH)),
                *("--client-id", client_id),
                *("--db", str(db)),
                *("--state-dir", str(tmp_path / "state")),
                *("--seconds", "60"),
                *("--resync-min-interval", "0.2"),
            ],
            stdout=subprocess.PIPE,
            stderr=errors_file,
            text=True,
            env={**os.environ, "PYTHONFAULTHANDLER": "1"},  # SIGABRT dumps every thread (see below)
        )
        output = _Output(process)
        try:
            server.wait_for_subscriber(client_id, timeout=10)
            server.generate(12)
            output.wait_for("resync #1 (initial)")
            server.restart()
            server.wait_for_subscriber(client_id, timeout=10)
            server.generate(6)
            output.wait_for("(server-restarted)")  # each fault after the last one's resync
            server.generate(3)
            server.overflow(client_id, 4)  # these never reach the mirror: JmsMissedEvents, then a resync
            output.wait_for("(missed-events)")
            process.send_signal(signal.SIGINT)  # Ctrl-C: the mirror stops and says how many alarms it has
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGABRT)  # where every thread is, into stderr
                process.wait(timeout=10)
                pytest.fail(f"no exit 40 s after Ctrl-C:\n{output.rest()}\n{errors.read_text()}")
        finally:
            process.kill()
            process.wait()
        stdout, stderr = output.rest(), errors.read_text()

    assert process.returncode == 0, stdout + stderr
    assert "resync #1 (initial)" in stdout
    assert "(server-restarted)" in stdout
    assert "(missed-events)" in stdout
    with contextlib.closing(sqlite3.connect(db)) as connection:
        mirrored = {
            row[0]: json.loads(row[1])
            for row in connection.execute("SELECT full_name, attributes FROM alarms")
        }
    truth = {alarm.full_name: dict(alarm.attributes) for alarm in server.model.alarms()}
    assert mirrored == truth
    assert truth  # the scenario did raise alarms


class _Output:
    """What a process prints, line by line as it comes (a thread reads until its stdout ends)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        self.text = ""
        stdout = process.stdout
        assert stdout is not None
        self._stdout = stdout
        self._reader = threading.Thread(target=self._read, args=(stdout,), daemon=True)
        self._reader.start()

    def _read(self, stdout: IO[str]) -> None:
        for line in iter(stdout.readline, ""):
            self._lines.put(line)

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        """Wait until *text* was printed (in a line of its own)."""
        deadline = time.monotonic() + timeout
        while text not in self.text:
            try:
                self.text += self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{text!r} not printed in {timeout:g} s: {self.text}") from None

    def rest(self) -> str:
        """Everything printed (call once the process ended; closes its stdout)."""
        self._reader.join(10)
        self._stdout.close()
        while not self._lines.empty():
            self.text += self._lines.get_nowait()
        return self.text


def run_example(name: str, *args: str, server: SimulatedServer, client_id: str, events: int = 3) -> str:
    """Run examples/NAME for a few seconds against the session broker; publish *events* once it is subscribed."""
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / name), *args, "--client-id", client_id, "--seconds", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        server.wait_for_subscriber(client_id, timeout=10)
        server.generate(events)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stdout + stderr
    return stdout


def test_event_logger_writes_json_lines(broker: BrokerInfo, server: SimulatedServer, tmp_path: Path) -> None:
    """event_logger.py: one JSON object per line: the connection, the resync, the events with attributes."""
    client_id = f"logger-{uuid.uuid4().hex[:8]}@1"
    out = run_example(
        "event_logger.py",
        *("--server", f"{broker.host}:{broker.port}", "--state-dir", str(tmp_path)),
        server=server,
        client_id=client_id,
    )

    lines = [json.loads(line) for line in out.splitlines()]
    kinds = [line["kind"] for line in lines]
    assert kinds[0] == "connection-restored"
    assert "resync" in kinds
    events = [line for line in lines if line["kind"] == "event"]
    assert len(events) == 3
    assert all(e.get("full_name") or e.get("events") for e in events)


def test_asyncio_bridge(broker: BrokerInfo, server: SimulatedServer, tmp_path: Path) -> None:
    """asyncio_bridge.py: the resync coroutine reads the XML API on the event loop's side, the events reach
    the async loop, and the board ends equal to the simulator's active alarms."""
    client_id = f"async-{uuid.uuid4().hex[:8]}@1"
    with SnapshotServer(server.model) as snapshot:
        out = run_example(
            "asyncio_bridge.py",
            *("--server", f"{broker.host}:{broker.port}", "--state-dir", str(tmp_path)),
            *("--xmlapi", snapshot.url.removesuffix(XMLAPI_PATH)),
            server=server,
            client_id=client_id,
            events=6,
        )

    assert "resync #1 (initial) done" in out
    assert "up       " in out
    assert out.count("event    ") == 6
    assert f"stopped: {len(server.model.alarms())} active alarms on the board" in out


def test_inventory_watch_follows_the_ports(
    broker: BrokerInfo, server: SimulatedServer, tmp_path: Path
) -> None:
    """inventory_watch.py lists the ports at its resync and shows what happens to them afterwards."""
    client_id = f"ports-{uuid.uuid4().hex[:8]}@1"
    with SnapshotServer(server.model) as snapshot:
        out = run_example(
            "inventory_watch.py",
            *("--server", f"{broker.host}:{broker.port}", "--state-dir", str(tmp_path)),
            *("--xmlapi", snapshot.url.removesuffix(XMLAPI_PATH)),
            server=server,
            client_id=client_id,
            events=30,
        )

    assert "resync   #1 (initial):" in out
    assert "equipment.PhysicalPort" in out
    assert any(line.startswith(("created ", "changed ", "deleted ")) for line in out.splitlines())
