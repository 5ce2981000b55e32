"""Shared pytest configuration and fixtures."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from nfmp_client.testing import ActiveMQAdmin, DurableSubscription, SimulatedServer

# A shell's background job (`nohup ... &`) starts with SIGINT ignored, and its children inherit that: a Python
# child then installs no KeyboardInterrupt handler, and a test that presses Ctrl-C on an example or a command
# waits in vain. A handler here makes every child start with SIGINT's default again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

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
    openwire_port: int | None = None
    """OpenWire on 127.0.0.1 (`scripts/broker --openwire-port`), None: no OpenWire connector."""
    bridge: Path | None = None
    """The JMS bridge's INI file (`scripts/broker --bridge`; see `write_bridge_file`), None: no bridge."""
    network_to: str | None = None
    """HOST:PORT of the broker this one links to (`scripts/broker --network-to`), None: no link."""
    network_inactivity: int | None = None
    """With `network_to`: OpenWire's inactivity limit on the link in ms (None: 30000); a silently dead link is
    noticed after 2 to 3 times it, then re-dialled every second."""

    @classmethod
    def on_free_ports(
        cls,
        data_dir: Path,
        *,
        link_stealing: bool = False,
        tls: bool = False,
        tls_client_auth: bool = False,
        openwire: bool = False,
        bridge: Path | None = None,
        network_to: BrokerInfo | int | str | None = None,
        network_inactivity: int | None = None,
    ) -> BrokerInfo:
        """A (not yet started) broker in `data_dir` on currently free ports; `tls_client_auth` implies `tls`.

        `openwire` adds an OpenWire connector; `network_to` links to another broker's OpenWire: a BrokerInfo
        (started with `openwire=True`), a port on 127.0.0.1, or "HOST:PORT".
        """
        tls = tls or tls_client_auth
        port, jmx_port, tls_port, openwire_port = free_ports(4)
        if isinstance(network_to, BrokerInfo):
            assert network_to.openwire_port is not None, "network_to names a broker without OpenWire"
            network_to = network_to.openwire_port
        return cls(
            host=BROKER_HOST,
            port=port,
            jmx_port=jmx_port,
            jmx_url=f"service:jmx:rmi:///jndi/rmi://{BROKER_HOST}:{jmx_port}/jmxrmi",
            data_dir=data_dir,
            link_stealing=link_stealing,
            tls_port=tls_port if tls else None,
            tls_client_auth=tls_client_auth,
            openwire_port=openwire_port if openwire else None,
            bridge=bridge,
            network_to=f"{BROKER_HOST}:{network_to}" if isinstance(network_to, int) else network_to,
            network_inactivity=network_inactivity,
        )

    @property
    def openwire_url(self) -> str:
        """``tcp://127.0.0.1:<openwire_port>``: for JMS clients, ActiveMQ's JNDI and a JMS bridge's upstream."""
        assert self.openwire_port is not None, "this broker has no OpenWire connector (openwire=True)"
        return f"tcp://{self.host}:{self.openwire_port}"

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
        optional = [*tls]
        if self.openwire_port is not None:
            optional += ["--openwire-port", str(self.openwire_port)]
        if self.bridge is not None:
            optional += ["--bridge", str(self.bridge)]
        if self.network_to is not None:
            optional += ["--network-to", self.network_to]
        if self.network_inactivity is not None:
            optional += ["--network-inactivity", str(self.network_inactivity)]
        return [
            "--data",
            str(self.data_dir),
            "--port",
            str(self.port),
            "--jmx-port",
            str(self.jmx_port),
            f"--link-stealing={str(self.link_stealing).lower()}",
            *optional,
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
    `tls_client_auth=True` (which implies `tls`) makes it require a client certificate. `openwire=True` adds
    an OpenWire connector (`BrokerInfo.openwire_port`, `.openwire_url`). `bridge=path` runs a JMS bridge as
    that INI file says (see `write_bridge_file`, or the `bridge_factory` fixture for the whole topology).
    `network_to` links the broker to another one's OpenWire (a BrokerInfo started with `openwire=True`, a
    port on 127.0.0.1 or "HOST:PORT"): its consumers of `/queue/Consumer.<app>.VirtualTopic.<name>` read
    what is published to `/topic/VirtualTopic.<name>` there; `network_inactivity` (ms, at least 1000) is
    OpenWire's inactivity limit on that link: a silently dead link is noticed after 2 to 3 times it and
    re-dialled (default 30000).
    """

    def __call__(
        self,
        *,
        link_stealing: bool = False,
        tls: bool = False,
        tls_client_auth: bool = False,
        openwire: bool = False,
        bridge: Path | None = None,
        network_to: BrokerInfo | int | str | None = None,
        network_inactivity: int | None = None,
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
    """Start extra brokers (for tests that stop, wipe or reconfigure one, or that build a bridge or network
    topology: see BrokerFactory); all stopped after the test."""
    started: list[BrokerInfo] = []

    def start(
        *,
        link_stealing: bool = False,
        tls: bool = False,
        tls_client_auth: bool = False,
        openwire: bool = False,
        bridge: Path | None = None,
        network_to: BrokerInfo | int | str | None = None,
        network_inactivity: int | None = None,
    ) -> BrokerInfo:
        info = BrokerInfo.on_free_ports(
            tmp_path_factory.mktemp("broker"),
            link_stealing=link_stealing,
            tls=tls,
            tls_client_auth=tls_client_auth,
            openwire=openwire,
            bridge=bridge,
            network_to=network_to,
            network_inactivity=network_inactivity,
        )
        started.append(info)
        return start_or_fail(info)

    yield start
    stop_all(started)


# ------------------------------------------------------------------------------------ JMS bridge topology

NFMP_TOPIC = "5620-SAM-topic-xml"
JNDI_CONTEXT = "external/5620SamJMSServer"  # what NFM-P's JNDI binds the connection factory under
BRIDGE_WAIT = 30.0  # seconds: longest wait for a bridge to hold its subscription upstream
BRIDGE_PASSWORD = "bridge-${secret}-\u00fc"  # noqa: S105 -- made up (the stand-in checks none); ${ as text


def write_bridge_file(
    directory: Path,
    upstream: BrokerInfo,
    *,
    client_id: str = "oss1@1",
    password: str = BRIDGE_PASSWORD,
    subscription_name: str | None = None,
    selector: str | None = None,
    topic: str = NFMP_TOPIC,
    local_topic: str | None = None,
    context: str = JNDI_CONTEXT,
    reconnect_delay: float = 1.0,
) -> Path:
    """Write `directory`/bridge.ini (and its password file, mode 0600) for a bridge from `upstream`.

    `upstream` (started with `openwire=True`) stands in for NFM-P's JMS server: the bridge finds its
    connection factory in ActiveMQ's own JNDI (``ActiveMQInitialContextFactory``, provider URL its OpenWire
    URL), bound as ``<context>/SAMConnectionFactory`` like NFM-P's, with the topic `topic` bound under its
    name. User ``oss`` with `password` (the stand-in does not check it). None for `subscription_name`,
    `selector` or `local_topic` leaves the launcher's default (``<name>-bridge``, Nokia's basic selector for
    `client_id`, ``VirtualTopic.<topic>``). Returns the INI file's path.
    """
    directory.mkdir(parents=True, exist_ok=True)
    secret = directory / "bridge-password"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    factory = f"{context}/SAMConnectionFactory" if context else "SAMConnectionFactory"
    optional = {"subscription_name": subscription_name, "selector": selector, "local_topic": local_topic}
    lines = [
        "[nfmp]",
        f"provider_url = {upstream.openwire_url}",
        "initial_context_factory = org.apache.activemq.jndi.ActiveMQInitialContextFactory",
        f"context = {context}",
        "user = oss",
        f"password_file = {secret.name}",
        f"client_id = {client_id}",
        f"topic = {topic}",
        f"reconnect_delay = {reconnect_delay:g}",
        *(f"{key} = {value}" for key, value in optional.items() if value is not None),
        "",
        "[jndi]",  # ActiveMQ's JNDI binds what these entries name
        f"connectionFactoryNames = {factory}",
        f"topic.{topic} = {topic}",
    ]
    path = directory / "bridge.ini"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclasses.dataclass(frozen=True)
class BridgeTopology:
    """An upstream broker standing in for NFM-P's JMS server, and a bridge broker pulling its topic.

    Publish NFM-P-like messages over STOMP to `upstream` (`upstream.hosts`, destination `upstream_topic`);
    applications consume from `bridge` (`bridge.hosts`), each from its own `queue(app)`. The bridge holds a
    durable subscription on `upstream` under `client_id` (`upstream_admin`), selected by Nokia's basic
    selector for that id unless told otherwise. A simulated NFM-P server serves on `upstream`:
    ``SimulatedServer(upstream.host, upstream.port, admin=topology.upstream_admin, ...)``.
    """

    upstream: BrokerInfo
    bridge: BrokerInfo
    bridge_file: Path
    client_id: str
    subscription_name: str
    topic: str
    local_topic: str

    @property
    def upstream_topic(self) -> str:
        """The STOMP destination that NFM-P's events are published to on `upstream`."""
        return f"/topic/{self.topic}"

    @property
    def upstream_admin(self) -> ActiveMQAdmin:
        """JMX controls of `upstream` (its durable subscriptions, client connections)."""
        return ActiveMQAdmin(self.upstream.jmx_url)

    def queue(self, app: str) -> str:
        """The STOMP destination of application `app`'s queue on `bridge`: Consumer.<app>.<local topic>.

        The queue exists from its first SUBSCRIBE on: what arrives before is not kept for `app`.
        """
        return f"/queue/Consumer.{app}.{self.local_topic}"

    def wait_connected(self, timeout: float = BRIDGE_WAIT) -> DurableSubscription:
        """Return the bridge's durable subscription on `upstream` once it is active (the bridge connected).

        Raises:
            AssertionError: Not active within `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            subscriptions = [
                sub
                for sub in self.upstream_admin.durable_subscriptions()
                if sub.client_id == self.client_id and sub.subscription_name == self.subscription_name
            ]
            if subscriptions and subscriptions[0].active:
                return subscriptions[0]
            assert time.monotonic() < deadline, (
                f"the bridge's subscription {self.client_id}/{self.subscription_name} is not active on the "
                f"upstream broker after {timeout:g} s: {subscriptions}; see {self.bridge.data_dir / 'console.log'}"
            )
            time.sleep(0.2)


class BridgeFactory(Protocol):
    """Starts an upstream broker and a bridge broker (see BridgeTopology); both stopped after the test.

    Returns once the bridge's durable subscription is active upstream. `client_id`, `subscription_name`,
    `selector`, `topic`, `local_topic`, `context` and `reconnect_delay` go into the bridge file (see
    `write_bridge_file`; None: the launcher's default). `openwire=True` gives the bridge broker an OpenWire
    connector, for a consumers' broker: ``broker_factory(network_to=topology.bridge)``.
    """

    def __call__(
        self,
        *,
        client_id: str = "oss1@1",
        subscription_name: str | None = None,
        selector: str | None = None,
        topic: str = NFMP_TOPIC,
        local_topic: str | None = None,
        context: str = JNDI_CONTEXT,
        reconnect_delay: float = 1.0,
        openwire: bool = False,
    ) -> BridgeTopology: ...


@pytest.fixture
def bridge_factory(broker_factory: BrokerFactory, tmp_path_factory: pytest.TempPathFactory) -> BridgeFactory:
    """Start JMS bridge topologies: an upstream broker (NFM-P's JMS server) and a bridge broker pulling its
    topic into a virtual topic; all stopped after the test (by `broker_factory`)."""

    def start(
        *,
        client_id: str = "oss1@1",
        subscription_name: str | None = None,
        selector: str | None = None,
        topic: str = NFMP_TOPIC,
        local_topic: str | None = None,
        context: str = JNDI_CONTEXT,
        reconnect_delay: float = 1.0,
        openwire: bool = False,
    ) -> BridgeTopology:
        upstream = broker_factory(openwire=True)
        path = write_bridge_file(
            tmp_path_factory.mktemp("bridge-conf"),
            upstream,
            client_id=client_id,
            subscription_name=subscription_name,
            selector=selector,
            topic=topic,
            local_topic=local_topic,
            context=context,
            reconnect_delay=reconnect_delay,
        )
        topology = BridgeTopology(
            upstream=upstream,
            bridge=broker_factory(bridge=path, openwire=openwire),
            bridge_file=path,
            client_id=client_id,
            subscription_name=subscription_name or client_id.partition("@")[0] + "-bridge",
            topic=topic,
            local_topic=local_topic or f"VirtualTopic.{topic.rpartition('/')[2]}",
        )
        topology.wait_connected()
        return topology

    return start


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
