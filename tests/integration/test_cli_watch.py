"""``nfmp-client`` (the installed console script) against the simulated server on the real broker."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nfmp_client.state import StateStore
from nfmp_client.testing import ActiveMQAdmin, SimulatedServer

from ..conftest import BrokerInfo

pytestmark = pytest.mark.integration

NFMP_CLIENT = Path(sys.executable).parent / "nfmp-client"
EXIT_TERMINATED = 5
EXIT_BROKEN_PIPE = 141


@pytest.fixture
def state_home(tmp_path: Path) -> Path:
    """The $XDG_STATE_HOME of the command (its default state directory is state_home/nfmp_client); its
    $TMPDIR is the empty directory next to it, state_home.parent / "tmp"."""
    (tmp_path / "tmp").mkdir()
    return tmp_path / "xdg"


@pytest.fixture
def client_id() -> str:
    return f"watch-{uuid.uuid4().hex[:8]}@1"


def command(state_home: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    assert NFMP_CLIENT.exists(), f"{NFMP_CLIENT}: the package is not installed with its console scripts"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NFMP_")}
    env["XDG_STATE_HOME"] = str(state_home)
    env["TMPDIR"] = str(state_home.parent / "tmp")
    return [str(NFMP_CLIENT), *args], env


def start(state_home: Path, *args: str) -> subprocess.Popen[str]:
    argv, env = command(state_home, *args)
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def run(state_home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv, env = command(state_home, *args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, env=env)


def watch(broker: BrokerInfo, state_home: Path, client_id: str, *options: str) -> subprocess.Popen[str]:
    """`nfmp-client watch` on the test broker, its output captured."""
    return start(
        state_home,
        *("watch", "--server", f"{broker.host}:{broker.port}", "--client-id", client_id),
        *options,
    )


def until_line(process: subprocess.Popen[str], text: str, *, timeout: float) -> str:
    """Read *process*'s output until a line holds *text* (or *timeout* seconds passed); return what was read."""
    assert process.stdout is not None
    read, deadline = "", time.monotonic() + timeout
    while text not in read and time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = process.stdout.readline()
        if not line:
            break
        read += line
    return read


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def durables(admin: ActiveMQAdmin, client_id: str) -> list[str]:
    return [s.subscription_name for s in admin.durable_subscriptions() if s.client_id == client_id]


def test_watch_prints_events_resyncs_and_connections_as_json(
    broker: BrokerInfo,
    server: SimulatedServer,
    state_home: Path,
    client_id: str,
    processes: list[subprocess.Popen[str]],
) -> None:
    """--json: one object per line: the connection, the INITIAL resync, the events in order; exit 0."""
    processes.append(process := watch(broker, state_home, client_id, "--seconds", "4", "--json"))
    server.wait_for_subscriber(client_id, timeout=10)
    sent = server.generate(3)
    stdout, stderr = process.communicate(timeout=30)

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


def test_watch_leaves_nothing_behind(
    broker: BrokerInfo,
    server: SimulatedServer,
    admin: ActiveMQAdmin,
    state_home: Path,
    client_id: str,
    processes: list[subprocess.Popen[str]],
) -> None:
    """By default: a non-durable subscription (none left on the broker to collect events) and no resync
    baseline in the default state directory (a durable one, and a baseline marked in sync, were left)."""
    processes.append(process := watch(broker, state_home, client_id, "--seconds", "2"))
    subscriber = server.wait_for_subscriber(client_id, timeout=10)
    stdout, stderr = process.communicate(timeout=30)
    server.generate(3)
    server.sync()

    assert process.returncode == 0, stderr
    assert not subscriber.durable
    assert "(non-durable subscription)" in stdout
    assert durables(admin, client_id) == []
    assert not StateStore(state_home / "nfmp_client").path_for(client_id).exists()
    assert not list((state_home.parent / "tmp").iterdir())  # the temporary state directory is gone


def test_sigterm_ends_a_watch_as_ctrl_c_does(
    broker: BrokerInfo,
    server: SimulatedServer,
    state_home: Path,
    client_id: str,
    processes: list[subprocess.Popen[str]],
) -> None:
    """SIGTERM (`kill`, `timeout`): the watcher stops, exit 0 (it had connected), nothing left in $TMPDIR."""
    processes.append(process := watch(broker, state_home, client_id))
    server.wait_for_subscriber(client_id, timeout=10)
    # The broker has the subscription before the watcher has its confirmation: wait until it says so.
    seen = until_line(process, "connected to ", timeout=10)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=20)

    assert "connected to " in seen, seen

    assert process.returncode == 0, stderr
    assert stderr == ""
    assert not list((state_home.parent / "tmp").iterdir())


def test_durable_watch_then_unsubscribe(
    broker: BrokerInfo,
    server: SimulatedServer,
    admin: ActiveMQAdmin,
    state_home: Path,
    client_id: str,
    processes: list[subprocess.Popen[str]],
) -> None:
    """--durable leaves a durable subscription that collects events; `nfmp-client unsubscribe` removes it."""
    processes.append(process := watch(broker, state_home, client_id, "--durable", "--seconds", "2"))
    assert server.wait_for_subscriber(client_id, timeout=10).durable
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    server.generate(2)
    server.sync()
    assert durables(admin, client_id) == [client_id]

    removed = run(
        state_home, "unsubscribe", "--server", f"{broker.host}:{broker.port}", "--client-id", client_id
    )

    assert removed.returncode == 0, removed.stderr
    assert f"durable subscription {client_id} of {client_id}: removed" in removed.stdout
    assert durables(admin, client_id) == []


def test_watch_refuses_an_application_client_id(
    broker: BrokerInfo, server: SimulatedServer, state_home: Path, client_id: str
) -> None:
    """A client id with a baseline in the default state directory: exit 6 before connecting."""
    del server
    StateStore(state_home / "nfmp_client").path_for(client_id).parent.mkdir(parents=True)
    StateStore(state_home / "nfmp_client").path_for(client_id).write_text("{}")

    result = run(
        state_home,
        *("watch", "--server", f"{broker.host}:{broker.port}", "--client-id", client_id, "--durable"),
    )

    assert result.returncode == 6
    assert "an application uses it" in result.stderr
    assert result.stdout == ""


def test_reader_going_away_ends_the_watch_quietly(
    broker: BrokerInfo,
    server: SimulatedServer,
    state_home: Path,
    client_id: str,
    processes: list[subprocess.Popen[str]],
) -> None:
    """`nfmp-client watch | head -2`: once the pipe is closed the watcher stops, exit 141, no traceback
    (it printed a storm of BrokenPipeError tracebacks and went on)."""
    processes.append(process := watch(broker, state_home, client_id))
    server.wait_for_subscriber(client_id, timeout=10)
    assert process.stdout is not None
    head = [process.stdout.readline(), process.stdout.readline()]
    process.stdout.close()  # what `head` does after its lines
    server.generate(5)  # lines to write, besides the keep-alives

    started = time.monotonic()
    returncode = process.wait(timeout=20)
    assert process.stderr is not None
    stderr = process.stderr.read()

    assert all(head)
    assert returncode == EXIT_BROKEN_PIPE, stderr
    assert stderr == ""
    assert time.monotonic() - started < 10


def test_watch_ends_when_an_administrator_terminates_the_session(
    broker: BrokerInfo,
    server: SimulatedServer,
    state_home: Path,
    client_id: str,
    processes: list[subprocess.Popen[str]],
) -> None:
    """TerminateClientSession: `watch` (no --seconds) exits by itself with its own code and one message."""
    processes.append(process := watch(broker, state_home, client_id))
    server.wait_for_subscriber(client_id, timeout=10)
    server.terminate(client_id)
    stdout, stderr = process.communicate(timeout=20)

    assert process.returncode == EXIT_TERMINATED
    assert len(stderr.splitlines()) == 1, stderr
    assert "terminated the session" in stderr
    assert "terminate" not in stdout.lower()
