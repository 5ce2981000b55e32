"""Shared pytest configuration and fixtures."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from nfmp_client.testing import ActiveMQAdmin, SimulatedServer

# ======================================================================================================
# ActiveMQ test broker (tests marked `integration`)
#
# Every broker is a real ActiveMQ Classic run by scripts/broker (see `scripts/broker --help`) in its own
# temporary data dir on free ports, so test runs never touch a developer's broker or each other.
# ======================================================================================================

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def _private_state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Clients keep their resync baselines under $XDG_STATE_HOME: a test session uses its own."""
    saved = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state-home"))
    yield
    if saved is None:
        del os.environ["XDG_STATE_HOME"]
    else:
        os.environ["XDG_STATE_HOME"] = saved


BROKER_SCRIPT = REPO_ROOT / "scripts" / "broker"
BROKER_HOST = "127.0.0.1"
BROKER_START_TIMEOUT = 300.0  # seconds; includes a first-time `apt-get install activemq` (about 30 s)
BROKER_COMMAND_TIMEOUT = 120.0  # seconds, any other scripts/broker command


class BrokerScriptError(RuntimeError):
    """scripts/broker exited with a non-zero code; the message holds the command and its output."""

    def __init__(self, result: subprocess.CompletedProcess[str]) -> None:
        command = " ".join(str(arg) for arg in result.args[1:])
        super().__init__(f"`{command}` exited with code {result.returncode}:\n{result.stdout}")
        self.result = result


def run_broker_script(
    *args: str, timeout: float = BROKER_COMMAND_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run `scripts/broker ARGS` with this interpreter; stdout holds stdout and stderr, in order.

    The exit code is not checked; see `check_broker_script`. The script's NFMP_BROKER_* settings are taken
    out of its environment: a test broker is configured by its options alone (a developer's
    NFMP_BROKER_TLS_PORT, say, must not give every test broker the same TLS port).
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("NFMP_BROKER_")}
    return subprocess.run(
        [sys.executable, str(BROKER_SCRIPT), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


def check_broker_script(*args: str, timeout: float = BROKER_COMMAND_TIMEOUT) -> str:
    """Run `scripts/broker ARGS` and return its output; raise BrokerScriptError on a non-zero exit code."""
    result = run_broker_script(*args, timeout=timeout)
    if result.returncode != 0:
        raise BrokerScriptError(result)
    return result.stdout


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports that are free on 127.0.0.1 right now (all held open while choosing)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((BROKER_HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def process_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (a stopped, detached broker can stay a zombie for a while:
    it is reaped by init, and some container inits never reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


@dataclasses.dataclass(frozen=True)
class BrokerInfo:
    """Where a test broker listens, and how to control it through scripts/broker."""

    host: str
    port: int
    jmx_port: int
    jmx_url: str
    data_dir: Path
    link_stealing: bool = False
    tls_port: int | None = None
    """STOMP over TLS (`scripts/broker --tls-port`), None: no TLS connector."""
    tls_client_auth: bool = False
    """The TLS connector refuses clients without a certificate of the data dir's test CA."""

    @classmethod
    def on_free_ports(
        cls, data_dir: Path, *, link_stealing: bool = False, tls: bool = False, tls_client_auth: bool = False
    ) -> BrokerInfo:
        """A (not yet started) broker in `data_dir` on currently free ports; `tls_client_auth` implies `tls`."""
        tls = tls or tls_client_auth
        port, jmx_port, *tls_port = free_ports(3 if tls else 2)
        return cls(
            host=BROKER_HOST,
            port=port,
            jmx_port=jmx_port,
            jmx_url=f"service:jmx:rmi:///jndi/rmi://{BROKER_HOST}:{jmx_port}/jmxrmi",
            data_dir=data_dir,
            link_stealing=link_stealing,
            tls_port=tls_port[0] if tls_port else None,
            tls_client_auth=tls_client_auth,
        )

    @property
    def hosts(self) -> list[tuple[str, int]]:
        """The `host_and_ports` argument of stomp.py's connection classes."""
        return [(self.host, self.port)]

    @property
    def tls_dir(self) -> Path:
        """The TLS test material scripts/broker made: `ca.pem` (the CA to trust), `client.pem` and
        `client.key` (a client certificate of that CA and its unencrypted key), the broker's stores."""
        return self.data_dir / "tls"

    @property
    def ca_file(self) -> Path:
        return self.tls_dir / "ca.pem"

    @property
    def client_cert_file(self) -> Path:
        return self.tls_dir / "client.pem"

    @property
    def client_key_file(self) -> Path:
        return self.tls_dir / "client.key"

    def _options(self) -> list[str]:
        tls = (
            []
            if self.tls_port is None
            else ["--tls-port", str(self.tls_port), f"--tls-client-auth={str(self.tls_client_auth).lower()}"]
        )
        return [
            "--data",
            str(self.data_dir),
            "--port",
            str(self.port),
            "--jmx-port",
            str(self.jmx_port),
            f"--link-stealing={str(self.link_stealing).lower()}",
            *tls,
        ]

    def start(self) -> str:
        """Start the broker (or reuse it if already running) and return the script's output.

        Raises:
            BrokerScriptError: the broker did not come up; the message holds the end of its log.
        """
        return check_broker_script("start", *self._options(), timeout=BROKER_START_TIMEOUT)

    def stop(self) -> str:
        """Stop the broker (SIGTERM, clean KahaDB close; no-op if not running) and return the output."""
        return check_broker_script("stop", "--data", str(self.data_dir))

    def restart(self, wipe: bool = False) -> str:
        """Stop and start again; `wipe=True` starts with no stored messages or durable subscriptions."""
        return check_broker_script(
            "restart", *self._options(), *(["--wipe"] if wipe else []), timeout=BROKER_START_TIMEOUT
        )

    def admin(self, *args: str) -> str:
        """Output of `scripts/broker admin ARGS` (list | close CLIENT_ID | rmsub CLIENT_ID SUBNAME)."""
        return check_broker_script("admin", *args, "--data", str(self.data_dir))

    def status(self) -> int:
        """Exit code of `scripts/broker status`: 0 running, 3 not running, 1 running but not answering."""
        return run_broker_script("status", "--data", str(self.data_dir)).returncode

    def pid(self) -> int | None:
        """The broker's pid from its broker.json, None if that file is absent."""
        try:
            state = json.loads((self.data_dir / "broker.json").read_text())
        except FileNotFoundError:
            return None
        return int(state["pid"])


class BrokerFactory(Protocol):
    """Starts an extra broker in a fresh temporary data dir on free ports; stopped after the test.

    `tls=True` adds a STOMP over TLS connector (`BrokerInfo.tls_port`, PEM files in `BrokerInfo.tls_dir`);
    `tls_client_auth=True` (which implies `tls`) makes it require a client certificate.
    """

    def __call__(
        self, *, link_stealing: bool = False, tls: bool = False, tls_client_auth: bool = False
    ) -> BrokerInfo: ...


def start_or_fail(info: BrokerInfo) -> BrokerInfo:
    """Start `info`'s broker; a broker that cannot start fails the test (never skips it)."""
    try:
        info.start()
    except (BrokerScriptError, subprocess.TimeoutExpired) as exc:
        # Never skip: integration tests must not silently vanish when the broker cannot run.
        pytest.fail(f"cannot start the ActiveMQ test broker:\n{exc}", pytrace=False)
    return info


def stop_all(brokers: list[BrokerInfo]) -> None:
    """Stop every broker (each attempted), then fail the test if any could not be stopped."""
    failures = []
    for info in brokers:
        try:
            info.stop()
        except (BrokerScriptError, subprocess.TimeoutExpired) as exc:
            failures.append(str(exc))
    if failures:
        pytest.fail("cannot stop the ActiveMQ test broker:\n" + "\n".join(failures), pytrace=False)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerInfo]:
    """One ActiveMQ broker for the whole session (link stealing off), stopped at the end."""
    info = start_or_fail(BrokerInfo.on_free_ports(tmp_path_factory.mktemp("broker")))
    yield info
    stop_all([info])


@pytest.fixture
def broker_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerFactory]:
    """Start extra brokers (for tests that stop, wipe or reconfigure one); all stopped after the test."""
    started: list[BrokerInfo] = []

    def start(*, link_stealing: bool = False, tls: bool = False, tls_client_auth: bool = False) -> BrokerInfo:
        info = BrokerInfo.on_free_ports(
            tmp_path_factory.mktemp("broker"),
            link_stealing=link_stealing,
            tls=tls,
            tls_client_auth=tls_client_auth,
        )
        started.append(info)
        return start_or_fail(info)

    yield start
    stop_all(started)


# end of the ActiveMQ test broker section =============================================================


# ======================================================================================================
# The simulated NFM-P server on the session broker (tests marked `integration`)
# ======================================================================================================


@pytest.fixture
def admin(broker: BrokerInfo) -> ActiveMQAdmin:
    """Broker-side controls (JMX) of the session broker."""
    return ActiveMQAdmin(broker.jmx_url)


@pytest.fixture
def server(broker: BrokerInfo, admin: ActiveMQAdmin) -> Iterator[SimulatedServer]:
    """A simulated NFM-P server with fast keep-alives (0.2 s) and its own client id; stopped after the test."""
    sim = SimulatedServer(
        broker.host,
        broker.port,
        admin=admin,
        seed=7,
        keepalive_interval=0.2,
        client_id=f"sim-{uuid.uuid4().hex[:8]}",
        terminate_grace=0.2,
    )
    with sim:
        yield sim
