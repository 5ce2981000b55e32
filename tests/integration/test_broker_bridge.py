"""nfmp-broker's JMS bridge, OpenWire connector, virtual topics and network link.

The bridge file's reading and what nfmp-broker writes for a start are tested without a broker; the rest
against real ActiveMQ brokers: an upstream one (``--openwire-port``, standing in for NFM-P's JMS server and
reached through ActiveMQ's own JNDI), a bridge broker (``--bridge``), and a pair linked by ``--network-to``
through a FaultProxy that kills the link silently.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import stomp

from nfmp_client.selector import SYSTEM_OBJECT_TYPES, build_selector, validate_client_id
from nfmp_client.testing import _broker
from nfmp_client.testing._broker import BrokerError, read_bridge_file
from tests.conftest import BRIDGE_PASSWORD, NFMP_TOPIC, free_ports, process_alive, run_broker_script
from tests.integration.test_broker_script import Recorder

if TYPE_CHECKING:
    from tests.conftest import BridgeFactory, BrokerFactory, BrokerInfo

WAIT = 10.0  # seconds: longest wait for one message
PASSWORD = "s3cret ${x} #\u00fc"  # noqa: S105 -- made up; a '${' that Spring must not resolve
BEANS = "{http://www.springframework.org/schema/beans}"
CORE = "{http://activemq.apache.org/schema/core}"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ======================================================================================================
# The bridge file and what a start writes, without a broker
# ======================================================================================================


@pytest.fixture
def bridge_dir(tmp_path: Path) -> Path:
    """A folder with a password file (pw.txt) and a folder of jars (jars/)."""
    write(tmp_path / "pw.txt", f"{PASSWORD}\nsecond line\n")
    (tmp_path / "jars").mkdir()
    write(tmp_path / "jars" / "nfmp-client.jar", "")
    return tmp_path


MINIMAL = "[nfmp]\nprovider_url = remote://nfmp-a:8080 , remote://nfmp-b:8080\nclient_id = oss7@3\n"


@pytest.mark.parametrize("client_id", ["oss1@1", "a.b-c_d:e@f:1", "X@Y"])
def test_the_default_selector_is_the_clients_own(client_id: str) -> None:
    """The bridge's default selector is exactly what nfmp_client subscribes with for the same client id."""
    assert _broker.default_selector(client_id) == build_selector(client_id)
    assert _broker.SYSTEM_OBJECT_TYPES == SYSTEM_OBJECT_TYPES


@pytest.mark.parametrize("client_id", ["oss1@1", "a.b-c_d:e@f:1", "oss1", "a@b@c", "o'ss@1", "os s@1", "@1"])
def test_client_ids_are_checked_as_the_client_checks_them(client_id: str) -> None:
    """The launcher accepts exactly the client ids nfmp_client's configuration accepts."""
    try:
        validate_client_id(client_id)
        valid = True
    except ValueError:
        valid = False
    assert bool(_broker.CLIENT_ID.fullmatch(client_id)) == valid


def test_defaults_of_a_minimal_file(tmp_path: Path) -> None:
    """provider_url and client_id alone: NFM-P's JNDI names, Nokia's basic selector, VirtualTopic.<topic>,
    2 s fixed reconnect delay, no credentials, no jars."""
    bridge = read_bridge_file(write(tmp_path / "b.ini", MINIMAL))

    assert bridge.provider_url == "remote://nfmp-a:8080,remote://nfmp-b:8080"
    assert bridge.initial_context_factory == "org.wildfly.naming.client.WildFlyInitialContextFactory"
    assert bridge.connection_factory_name == "external/5620SamJMSServer/SAMConnectionFactory"
    assert bridge.subscription_name == "oss7-bridge"
    assert bridge.topic == "5620-SAM-topic-xml"
    assert bridge.local_topic == "VirtualTopic.5620-SAM-topic-xml"
    assert bridge.selector == build_selector("oss7@3")
    assert bridge.reconnect_delay == 2.0
    assert (bridge.user, bridge.password, bridge.jars, bridge.jndi) == (None, None, None, ())
    assert "user" not in bridge.settings()  # absent, so that the connection is made without credentials
    assert bridge.settings()["reconnect_delay_ms"] == "2000"


def test_every_key_is_read(bridge_dir: Path) -> None:
    """Each key of [nfmp] lands where it belongs; [jndi] entries pass verbatim, case kept; relative paths are
    the file's folder's; a selector may go on continuation lines; '%' is text."""
    bridge = read_bridge_file(
        write(
            bridge_dir / "b.ini",
            "[nfmp]\n"
            "provider_url = tcp://127.0.0.1:1\n"
            "initial_context_factory = org.apache.activemq.jndi.ActiveMQInitialContextFactory\n"
            "context =\n"
            "connection_factory = CF\n"
            "user = oss\n"
            "password_file = pw.txt\n"
            "client_id = oss1@1\n"
            "subscription_name = sub-1\n"
            "topic = topic/5620-SAM-topic-xml-fault\n"
            "selector = ALA_clientId in ('oss1@1','')\n"
            "   AND ALA_category LIKE 'EQ%'\n"
            "local_topic = VirtualTopic.faults\n"
            "jars = jars\n"
            "reconnect_delay = 0.5\n"
            "[jndi]\n"
            "connectionFactoryNames = CF\n",
        )
    )

    assert bridge.connection_factory_name == "CF"
    assert bridge.user == "oss"
    assert bridge.password == PASSWORD  # the first line
    assert bridge.subscription_name == "sub-1"
    assert bridge.topic == "topic/5620-SAM-topic-xml-fault"
    assert bridge.selector == "ALA_clientId in ('oss1@1','') AND ALA_category LIKE 'EQ%'"
    assert bridge.local_topic == "VirtualTopic.faults"
    assert bridge.jars == bridge_dir / "jars"
    assert bridge.settings()["reconnect_delay_ms"] == "500"
    assert bridge.jndi_environment() == {
        "java.naming.factory.initial": "org.apache.activemq.jndi.ActiveMQInitialContextFactory",
        "java.naming.provider.url": "tcp://127.0.0.1:1",
        "java.naming.security.principal": "oss",
        "java.naming.security.credentials": PASSWORD,
        "connectionFactoryNames": "CF",
    }
    assert "s3cret" not in repr(bridge)


def test_the_example_file_is_a_valid_bridge_file(tmp_path: Path) -> None:
    """`bridge-example` prints a file that reads as it is (given the password file and jars it names)."""
    result = run_broker_script("bridge-example")
    assert result.returncode == 0, result.stdout
    write(tmp_path / "nfmp-password.txt", "pw\n")
    (tmp_path / "nfmp-client-jars").mkdir()
    write(tmp_path / "nfmp-client-jars" / "a.jar", "")

    bridge = read_bridge_file(write(tmp_path / "example.ini", result.stdout))

    assert bridge.client_id == "oss1@1"
    for key in _broker.BRIDGE_KEYS:  # every key is documented in it
        assert f"{key} = " in result.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no [nfmp] section"),
        ("[nfmp\n", "not a valid INI file"),
        (MINIMAL + "[jms]\n", "unknown section [jms]"),
        (MINIMAL + "clinet_id = x@1\n", "[nfmp] clinet_id: unknown key (did you mean client_id?)"),
        (MINIMAL + "client_id = oss1@1\n", "not a valid INI file"),  # twice
        ("[nfmp]\nclient_id = oss1@1\n", "[nfmp] provider_url: missing"),
        ("[nfmp]\nprovider_url = tcp://h:1\n", "[nfmp] client_id: missing"),
        (
            "[nfmp]\nprovider_url = tcp://h:1\nclient_id = oss1\n",
            "[nfmp] client_id: 'oss1' is not a client id",
        ),
        (MINIMAL + "topic =\n", "[nfmp] topic: is empty"),
        (MINIMAL + "topic = a\n  b\n", "[nfmp] topic: must be on one line"),
        (MINIMAL + "local_topic = VirtualTopic.>\n", "[nfmp] local_topic: 'VirtualTopic.>' is not a topic"),
        (MINIMAL + "user = oss\n", "[nfmp] password_file: missing: user 'oss' needs password_file or"),
        (MINIMAL + "password_file = pw.txt\n", "[nfmp] user: missing"),
        (MINIMAL + "user = oss\npassword_file = none.txt\n", "[nfmp] password_file: no such file: "),
        (MINIMAL + "user = oss\npassword_file = empty.txt\n", "empty.txt is empty"),
        (
            MINIMAL + "user = oss\npassword_file = pw.txt\npassword_env = PW\n",
            "give password_file or password_env, not both",
        ),
        (
            MINIMAL + "user = oss\npassword_env = NFMP_TEST_UNSET_PASSWORD\n",
            "[nfmp] password_env: the environment variable NFMP_TEST_UNSET_PASSWORD is not set",
        ),
        (MINIMAL + "reconnect_delay = soon\n", "[nfmp] reconnect_delay: 'soon' is not a number"),
        (MINIMAL + "reconnect_delay = 0\n", "[nfmp] reconnect_delay: 0 is not between"),
        (MINIMAL + "jars = pw.txt\n", "[nfmp] jars: "),
        (MINIMAL + "jars = nothing\n", "nothing is not a folder"),
        (MINIMAL + "jars = .\n", "holds no .jar files"),
        (
            MINIMAL + "[jndi]\njava.naming.provider.url = x\n",
            "[jndi] java.naming.provider.url: set by [nfmp]",
        ),
    ],
)
def test_a_bad_file_is_refused_naming_the_file_and_the_key(bridge_dir: Path, text: str, message: str) -> None:
    """Each mistake is a usage error (exit code 2) whose message names the file and what is wrong where."""
    write(bridge_dir / "empty.txt", "")
    path = write(bridge_dir / "bridge.ini", text)

    with pytest.raises(BrokerError) as caught:
        read_bridge_file(path, environ={})

    assert caught.value.code == 2
    assert str(caught.value).startswith(f"bridge file {path}: ")
    assert message in str(caught.value)


def test_a_missing_bridge_file_stops_start_with_a_usage_error(tmp_path: Path) -> None:
    """`start --bridge` with a missing file or a bad one: exit 2, one line naming the file, nothing started."""
    port, jmx_port = free_ports(2)
    for path in (tmp_path / "missing.ini", write(tmp_path / "bad.ini", MINIMAL + "user = oss\n")):
        result = run_broker_script(
            "start", "--data", str(tmp_path / "b"), "--port", str(port), "--jmx-port", str(jmx_port),
            "--bridge", str(path),
        )  # fmt: skip

        assert result.returncode == 2, result.stdout
        assert f"bridge file {path}: " in result.stdout
        assert "Traceback" not in result.stdout
        assert not (tmp_path / "b" / "broker.json").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--openwire-port", "{port}"], "the OpenWire and STOMP ports are both"),
        (["--openwire-port", "{jmx_port}"], "the OpenWire and JMX ports are both"),
        (["--network-inactivity", "3000"], "--network-inactivity needs a link (--network-to HOST:PORT)"),
        (["--network-to", "localhost:{port}"], "is this broker itself"),
        (["--network-to", "nowhere"], "not HOST:PORT"),
        (["--network-to", "h:1", "--network-inactivity", "10"], "at least 1000"),
    ],
)
def test_option_mistakes_are_usage_errors(tmp_path: Path, options: list[str], message: str) -> None:
    """Clashing ports, a link without a target or to itself, a bad address: exit 2 before anything starts."""
    port, jmx_port = free_ports(2)
    filled = [option.format(port=port, jmx_port=jmx_port) for option in options]

    result = run_broker_script(
        "start", "--data", str(tmp_path / "b"), "--port", str(port), "--jmx-port", str(jmx_port), *filled
    )

    assert result.returncode == 2, result.stdout
    assert message in result.stdout
    assert not (tmp_path / "b" / "broker.json").exists()


@pytest.mark.integration  # it finds (or installs) ActiveMQ before it checks the ports
def test_a_busy_openwire_port_is_named(tmp_path: Path) -> None:
    """`start` with an OpenWire port another program listens on fails at once, naming the port and option."""
    port, jmx_port = free_ports(2)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        result = run_broker_script(
            "start", "--data", str(tmp_path / "b"), "--port", str(port), "--jmx-port", str(jmx_port),
            "--openwire-port", str(busy),
        )  # fmt: skip

    assert result.returncode == 1, result.stdout
    assert f"OpenWire port {busy}" in result.stdout
    assert "--openwire-port PORT or NFMP_BROKER_OPENWIRE_PORT" in result.stdout
    assert not (tmp_path / "b" / "broker.json").exists()


def test_the_openwire_port_may_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """NFMP_BROKER_OPENWIRE_PORT sets the OpenWire port like the other NFMP_BROKER_*_PORT variables."""
    monkeypatch.setenv("NFMP_BROKER_OPENWIRE_PORT", "61616")
    assert settings_for().openwire_port == 61616
    assert settings_for("--openwire-port", "61617").openwire_port == 61617
    monkeypatch.setenv("NFMP_BROKER_OPENWIRE_PORT", "many")
    with pytest.raises(BrokerError, match="NFMP_BROKER_OPENWIRE_PORT='many'"):
        settings_for()


def settings_for(*options: str) -> _broker.Settings:
    """The Settings of `nfmp-broker start OPTIONS` on fixed ports."""
    args = _broker.build_parser().parse_args(["start", "--port", "1", "--jmx-port", "2", *options])
    return _broker.resolve_settings(args)


INSTALLATION = _broker.Installation(
    java="/usr/bin/java", home=Path("/usr/share/activemq"), extra_jars=(), jms_api_jar=None
)


def test_the_password_is_only_in_the_private_files(bridge_dir: Path, tmp_path: Path) -> None:
    """A start with a bridge writes the password into the two properties files (mode 0600), escaped for
    Java's Properties; it is not in the configuration nor on the java command line."""
    path = write(
        bridge_dir / "b.ini", MINIMAL + "user = oss\npassword_file = pw.txt\njars = jars\n[jndi]\nx.Y = z\n"
    )
    data = tmp_path / "data"
    data.mkdir()
    settings = settings_for("--bridge", str(path))

    config = _broker.prepare_config(settings, data)
    command = _broker.java_command(settings, data, config, INSTALLATION)

    assert config == data / "activemq-run.xml"
    assert not [arg for arg in command if "s3cret" in arg]
    assert f"-Dnfmp.bridge={path}" in command
    assert "s3cret" not in config.read_text()
    settings_file, jndi_file = data / "bridge.properties", data / "bridge-jndi.properties"
    for private in (settings_file, jndi_file):
        assert private.stat().st_mode & 0o777 == 0o600
    escaped = r"s3cret ${x} \#\u00fc"
    assert f"password={escaped}" in settings_file.read_text().splitlines()
    assert f"java.naming.security.credentials={escaped}" in jndi_file.read_text().splitlines()
    assert "x.Y=z" in jndi_file.read_text().splitlines()
    assert (data / "lib" / "nfmp-client.jar").resolve() == bridge_dir / "jars" / "nfmp-client.jar"

    _broker.stop_locked(data, 1.0)  # nothing runs: the files go all the same (they are left by `fg`)
    assert not settings_file.exists()
    assert not jndi_file.exists()


def test_jar_links_follow_the_bridge_file(bridge_dir: Path, tmp_path: Path) -> None:
    """The jars of the file's folder are linked into <data>/lib; a start without them removes those links,
    and a jar put there by hand stays."""
    data = tmp_path / "data"
    (data / "lib").mkdir(parents=True)
    write(data / "lib" / "jms-2.0-api.jar", "by hand")
    path = write(bridge_dir / "b.ini", MINIMAL + "jars = jars\n")

    _broker.prepare_config(settings_for("--bridge", str(path)), data)
    assert sorted(p.name for p in (data / "lib").glob("*.jar")) == ["jms-2.0-api.jar", "nfmp-client.jar"]

    assert _broker.prepare_config(settings_for(), data) == _broker.ACTIVEMQ_XML
    assert sorted(p.name for p in (data / "lib").glob("*.jar")) == ["jms-2.0-api.jar"]
    assert not (data / "activemq-run.xml").exists()


def parse(text: str) -> ET.Element:
    return ET.fromstring(text)  # noqa: S314 -- the project's own configuration


def test_each_optional_part_turns_its_block_on(bridge_dir: Path) -> None:
    """With all parts on, the configuration is valid XML with the bridge connector (reading its settings with
    Spring expressions), the network connector and the OpenWire connector; without, none of them. The virtual
    topic (selector-aware, with its selector cache) is always there."""
    everything = parse(_broker.render_config(settings_for(
        "--bridge", str(write(bridge_dir / "b.ini", MINIMAL)), "--openwire-port", "3", "--tls-port", "4",
        "--network-to", "h:5",
    ).optional_parts))  # fmt: skip
    plain = parse(_broker.render_config(()))

    broker = everything.find(f"{CORE}broker")
    assert broker is not None
    connector = broker.find(f"{CORE}jmsBridgeConnectors/{BEANS}bean")
    assert connector is not None
    assert connector.get("class") == "org.apache.activemq.network.jms.JmsTopicConnector"
    values = {p.get("name"): p.get("value") for p in connector.iter(f"{BEANS}property")}
    assert values["outboundClientId"] == "#{nfmpBridge['client_id']}"
    assert values["consumerName"] == "#{nfmpBridge['subscription_name']}"
    assert values["useExponentialBackOff"] == "false"
    network = broker.find(f"{CORE}networkConnectors/{CORE}networkConnector")
    assert network is not None
    assert network.get("duplex") == "true"
    assert "${network.wireformat}" in (network.get("uri") or "")
    names = [c.get("name") for c in broker.iter(f"{CORE}transportConnector")]
    assert names == ["openwire", "stomp-tls", "stomp"]

    for config in (everything, plain):
        (virtual,) = config.iter(f"{CORE}virtualTopic")
        assert (virtual.get("name"), virtual.get("prefix"), virtual.get("selectorAware")) == (
            "VirtualTopic.>",
            "Consumer.*.",
            "true",
        )
        assert len(list(config.iter(f"{CORE}virtualSelectorCacheBrokerPlugin"))) == 1
    assert not list(plain.iter(f"{CORE}jmsBridgeConnectors"))
    assert not list(plain.iter(f"{CORE}networkConnectors"))
    assert [c.get("name") for c in plain.iter(f"{CORE}transportConnector")] == ["stomp"]


# ======================================================================================================
# Against ActiveMQ
# ======================================================================================================


class Inbox(Recorder):
    """A STOMP 1.2 connection (bodies as bytes) whose messages, receipts and errors land on queues."""

    def __init__(self, broker: BrokerInfo, *, text: bool = False) -> None:
        super().__init__()
        # auto_content_length=False: a SEND without content-length is a JMS TextMessage, as NFM-P sends
        self.conn = stomp.Connection12(
            broker.hosts, auto_decode=False, auto_content_length=not text, reconnect_attempts_max=1
        )
        self.conn.set_listener("inbox", self)
        self.conn.connect(wait=True)

    def subscribe(self, destination: str, **headers: str) -> None:
        receipt = f"sub-{uuid.uuid4()}"
        self.conn.subscribe(destination, id=receipt, ack="auto", headers={"receipt": receipt, **headers})
        self.wait_receipt(receipt)

    def send(self, destination: str, body: str | bytes, **headers: str) -> None:
        receipt = f"send-{uuid.uuid4()}"
        self.conn.send(destination, body, headers={"persistent": "true", "receipt": receipt, **headers})
        self.wait_receipt(receipt)

    def bodies_until(self, last: bytes, timeout: float = WAIT) -> list[bytes]:
        """The bodies received up to and including `last`."""
        bodies: list[bytes] = []
        while not bodies or bodies[-1] != last:
            bodies.append(self.messages.get(timeout=timeout).body)
        return bodies

    def close(self) -> None:
        """DISCONNECT and wait until the broker has closed the connection (its consumers are gone)."""
        if self.conn.is_connected():
            self.conn.disconnect()
            assert self.disconnected.wait(WAIT)


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


@pytest.mark.integration
class TestBridge:
    def test_the_bridge_brings_its_selection_of_nfmp_events_to_each_application_queue(
        self, bridge_factory: BridgeFactory
    ) -> None:
        """Through the JMS bridge: the durable subscription on the upstream server is the bridge's, under
        NFM-P's client id with Nokia's basic selector (the connection factory found in JNDI under
        external/5620SamJMSServer/); an event for another client is filtered there; what passes reaches the
        application's queue with its properties as headers and its body byte for byte. The password is on no
        command line and in no log or configuration, and its files are gone once the broker runs."""
        topology = bridge_factory()

        subscription = topology.wait_connected()
        assert (subscription.client_id, subscription.subscription_name) == ("oss1@1", "oss1-bridge")
        assert subscription.topic == NFMP_TOPIC
        assert subscription.selector == build_selector("oss1@1")

        app = Inbox(topology.bridge)
        nfmp = Inbox(topology.upstream, text=True)
        try:
            app.subscribe(topology.queue("t"))
            body = '<alarm name="\u00fc \u2013 ÆØÅ 東京 ✓ &amp; \t">\r\n</alarm>'
            nfmp.send(
                topology.upstream_topic,
                body,
                ALA_clientId="oss1@1",
                MTOSI_objectType="AlarmEvent",
                MTOSI_osTime="1700000000123",
            )
            nfmp.send(
                topology.upstream_topic, "<other/>", ALA_clientId="oss2@1", MTOSI_objectType="AlarmEvent"
            )
            nfmp.send(topology.upstream_topic, "<keepalive/>", MTOSI_objectType="KeepAliveEvent")

            first = app.messages.get(timeout=WAIT)
            # one publisher, one subscription: in order, so <other/> would have come before the keep-alive
            assert app.bodies_until(b"<keepalive/>") == [b"<keepalive/>"]
        finally:
            app.close()
            nfmp.close()

        assert first.body == body.encode()
        assert first.headers["ALA_clientId"] == "oss1@1"
        assert first.headers["MTOSI_objectType"] == "AlarmEvent"
        assert first.headers["MTOSI_osTime"] == "1700000000123"
        assert first.headers["original-destination"] == f"/topic/VirtualTopic.{NFMP_TOPIC}"

        bridge = topology.bridge
        password = BRIDGE_PASSWORD
        assert password in (topology.bridge_file.parent / "bridge-password").read_text()
        pid = bridge.pid()
        assert pid is not None
        assert password not in cmdline(pid)
        assert password not in (bridge.data_dir / "console.log").read_text()
        assert password not in (bridge.data_dir / "activemq-run.xml").read_text()
        assert not (bridge.data_dir / "bridge.properties").exists()
        assert not (bridge.data_dir / "bridge-jndi.properties").exists()
        assert json.loads((bridge.data_dir / "broker.json").read_text())["bridge"] == str(
            topology.bridge_file
        )
        status = run_broker_script("status", "--data", str(bridge.data_dir))
        assert status.returncode == 0, status.stdout
        assert f"bridge: as {topology.bridge_file} says" in status.stdout


@pytest.mark.integration
class TestVirtualTopics:
    def test_a_queue_whose_consumer_is_away_keeps_only_what_it_selects(self, broker: BrokerInfo) -> None:
        """Selector-aware virtual topic: while the consumer of Consumer.<app>.VirtualTopic.<name> (with a
        selector) is away, only matching messages are copied into its queue; a second application's queue
        without a selector gets everything."""
        name = f"VirtualTopic.vt-{uuid.uuid4().hex[:8]}"
        picky, greedy = f"/queue/Consumer.picky.{name}", f"/queue/Consumer.greedy.{name}"
        first = Inbox(broker)
        first.subscribe(picky, selector="kind = 'a'")
        first.subscribe(greedy)
        first.close()

        publisher = Inbox(broker)
        try:
            for index, kind in enumerate("abab"):
                publisher.send(f"/topic/{name}", f"{kind}{index}", kind=kind)
        finally:
            publisher.close()

        back = Inbox(broker)
        try:
            back.subscribe(picky, selector="kind = 'a'")
            assert back.bodies_until(b"a2") == [b"a0", b"a2"]
            back.subscribe(greedy)
            assert back.bodies_until(b"b3") == [b"a0", b"b1", b"a2", b"b3"]
            back.subscribe(picky)  # without a selector: nothing else was stored in the picky queue
            with pytest.raises(queue.Empty):
                back.messages.get(timeout=1.0)
        finally:
            back.close()

    def test_the_selectors_survive_a_broker_crash(self, broker_factory: BrokerFactory) -> None:
        """A queue consumer's selector is on disk within about a second: a broker killed with SIGKILL two
        seconds after the consumer left still copies only what it selects into its queue after a restart."""
        crashing = broker_factory()
        name = f"VirtualTopic.crash-{uuid.uuid4().hex[:8]}"
        picky = f"/queue/Consumer.picky.{name}"
        first = Inbox(crashing)
        first.subscribe(picky, selector="kind = 'a'")
        first.close()
        publisher = Inbox(crashing)
        try:  # a stored message makes the queue itself survive the crash (KahaDB's journal)
            publisher.send(f"/topic/{name}", "a0", kind="a")
        finally:
            publisher.close()
        time.sleep(2.0)  # the selector cache is written every second
        pid = crashing.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + WAIT
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        crashing.start()

        publisher = Inbox(crashing)
        try:
            publisher.send(f"/topic/{name}", "b1", kind="b")
            publisher.send(f"/topic/{name}", "a2", kind="a")
        finally:
            publisher.close()
        back = Inbox(crashing)
        try:
            back.subscribe(picky)  # without a selector: b1 was not stored
            assert back.bodies_until(b"a2") == [b"a0", b"a2"]
        finally:
            back.close()

        # `wipe` forgets the selectors with the queues
        assert (crashing.data_dir / "selectorcache.data").exists()
        assert run_broker_script("wipe", "--data", str(crashing.data_dir)).returncode == 0
        assert not (crashing.data_dir / "selectorcache.data").exists()


@pytest.mark.integration
class TestOpenWire:
    def test_start_refuses_to_reuse_a_broker_without_openwire(self, broker: BrokerInfo) -> None:
        """`start` with the options of a running broker plus --openwire-port: the running broker lacks it, so
        `start` says so (use `restart`) instead of reusing it."""
        (openwire,) = free_ports(1)

        result = run_broker_script(
            "start", "--data", str(broker.data_dir), "--port", str(broker.port), "--jmx-port",
            str(broker.jmx_port), "--openwire-port", str(openwire),
        )  # fmt: skip

        assert result.returncode == 1, result.stdout
        assert f"OpenWire port none (requested {openwire})" in result.stdout
        assert "restart" in result.stdout


def test_the_port_probe_never_connects_from_the_port_it_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A free port of the ephemeral range "accepts" a probe the kernel happens to send from that very port
    (TCP's simultaneous open), which then sits in TIME_WAIT: the broker could not bind it for a minute (seen
    once as "JMX port ... is already in use" on a restart). The probe takes another source port."""
    (port,) = free_ports(1)
    sources: list[int] = []

    class FirstPicksThePort(socket.socket):
        def bind(self, address: Any) -> None:
            host, wanted = address
            super().bind((host, port if wanted == 0 and not sources else wanted))
            if wanted == 0:  # a probe's source (not the check that binds the port itself)
                sources.append(self.getsockname()[1])

    monkeypatch.setattr(socket, "socket", FirstPicksThePort)
    assert _broker.port_problem(port, "127.0.0.1") is None
    assert sources[0] == port
    assert port not in sources[1:]
    monkeypatch.undo()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", port))  # still free: no TIME_WAIT left by the probe
        listener.listen()
        assert _broker.port_problem(port, "127.0.0.1") == "is already in use (it accepts connections)"
