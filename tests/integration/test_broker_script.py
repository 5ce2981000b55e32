"""scripts/broker (nfmp-broker) and the `broker` fixtures against a real ActiveMQ, driven with plain stomp.py 9."""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import stomp

from tests.conftest import BROKER_SCRIPT, REPO_ROOT, free_ports, process_alive, run_broker_script

if TYPE_CHECKING:
    from stomp.utils import Frame

    from tests.conftest import BrokerFactory, BrokerInfo

pytestmark = pytest.mark.integration

TOPIC = "/topic/5620-SAM-topic-xml"
WAIT = 10.0  # seconds; upper bound of every wait for the broker


class Recorder(stomp.ConnectionListener):  # type: ignore[misc]
    """Puts what stomp.py's receiver thread sees on queues; the test thread waits on them."""

    def __init__(self) -> None:
        self.connected: queue.Queue[Frame] = queue.Queue()
        self.messages: queue.Queue[Frame] = queue.Queue()
        self.receipts: queue.Queue[str] = queue.Queue()
        self.errors: queue.Queue[Frame] = queue.Queue()
        self.disconnected = threading.Event()

    def on_connected(self, frame: Frame) -> None:
        self.connected.put(frame)

    def on_message(self, frame: Frame) -> None:
        self.messages.put(frame)

    def on_receipt(self, frame: Frame) -> None:
        self.receipts.put(frame.headers["receipt-id"])

    def on_error(self, frame: Frame) -> None:
        self.errors.put(frame)

    def on_disconnected(self) -> None:
        self.disconnected.set()

    def wait_receipt(self, receipt: str) -> None:
        assert self.receipts.get(timeout=WAIT) == receipt
        assert self.errors.empty(), self.errors.get()


class Client:
    """One stomp.py 1.2 connection with its Recorder; `tls=True`: to the TLS port, trusting the broker's test
    CA and showing its client certificate."""

    def __init__(
        self,
        broker: BrokerInfo,
        *,
        client_id: str | None = None,
        heartbeats: tuple[int, int] = (0, 0),
        tls: bool = False,
    ) -> None:
        hosts = broker.hosts
        if tls:
            assert broker.tls_port is not None
            hosts = [(broker.host, broker.tls_port)]
        self.conn = stomp.Connection12(hosts, heartbeats=heartbeats, reconnect_attempts_max=1, timeout=WAIT)
        if tls:
            self.conn.set_ssl(
                for_hosts=hosts,
                ca_certs=str(broker.ca_file),
                cert_file=str(broker.client_cert_file),
                key_file=str(broker.client_key_file),
            )
        self.recorder = Recorder()
        self.conn.set_listener("recorder", self.recorder)
        # connect(wait=True) waits without a time limit; wait for CONNECTED (or ERROR) here instead
        self.conn.connect(wait=False, headers={"client-id": client_id} if client_id else {})
        deadline = time.monotonic() + WAIT
        while True:
            assert self.recorder.errors.empty(), self.recorder.errors.get().headers.get("message")
            try:
                self.connected: Frame = self.recorder.connected.get(timeout=0.05)
                break
            except queue.Empty:
                assert time.monotonic() < deadline, f"no CONNECTED within {WAIT} s"

    def subscribe_durable(self, name: str, **headers: str) -> None:
        """Attach the durable subscription `name` (ack client-individual); returns once the broker has it."""
        self.conn.subscribe(
            TOPIC,
            id=name,
            ack="client-individual",
            headers={"activemq.subscriptionName": name, "receipt": f"sub-{name}", **headers},
        )
        self.recorder.wait_receipt(f"sub-{name}")

    def send(self, body: str, **headers: str) -> None:
        """Publish a persistent message on TOPIC; returns once the broker has stored it."""
        receipt = f"send-{uuid.uuid4()}"
        self.conn.send(TOPIC, body, headers={"persistent": "true", "receipt": receipt, **headers})
        self.recorder.wait_receipt(receipt)

    def next_message(self) -> Frame:
        return self.recorder.messages.get(timeout=WAIT)

    def close(self) -> None:
        """DISCONNECT and wait until the broker has closed the connection."""
        if self.conn.is_connected():
            self.conn.disconnect()  # without a receipt argument stomp.py does not wait (unbounded)
            assert self.recorder.disconnected.wait(WAIT)


def publish(broker: BrokerInfo, body: str, **headers: str) -> None:
    """Publish one persistent message on TOPIC from a short-lived connection."""
    publisher = Client(broker)
    try:
        publisher.send(body, **headers)
    finally:
        publisher.close()


def stomp_over_tls(
    port: int, context: ssl.SSLContext, server_hostname: str = "127.0.0.1"
) -> tuple[bytes, dict[str, object]]:
    """(The reply to a STOMP CONNECT, the broker's certificate) over TLS to 127.0.0.1:`port`.

    Raises:
        OSError: The TLS handshake failed or the broker closed the connection (ssl.SSLError is one).
    """
    with (
        socket.create_connection(("127.0.0.1", port), timeout=WAIT) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as sock,
    ):
        certificate = sock.getpeercert()
        sock.sendall(b"CONNECT\naccept-version:1.2\nhost:localhost\n\n\x00")
        reply = b""
        while b"\x00" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        if reply.startswith(b"CONNECTED"):
            sock.sendall(b"DISCONNECT\n\n\x00")
    return reply, dict(certificate or {})


def read_after_handshake(port: int, context: ssl.SSLContext) -> bytes:
    """TLS handshake with 127.0.0.1:`port`, then wait for the broker to say something (STOMP brokers do not
    speak first). TLS 1.3 completes the client's side of the handshake before the broker has checked the
    client's certificate: a refusal comes as an alert on this first read (ssl.SSLError)."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=WAIT) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        return sock.recv(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def broker_pid(info: BrokerInfo) -> int:
    pid = info.pid()
    assert pid is not None, f"no broker.json in {info.data_dir}"
    return pid


class TestSessionBroker:
    def test_heart_beats_are_negotiated(self, broker: BrokerInfo) -> None:
        """A STOMP 1.2 CONNECT asking for 1000,1000 heart-beats gets a CONNECTED with non-zero heart-beats."""
        client = Client(broker, heartbeats=(1000, 1000))
        try:
            assert client.connected.headers["version"] == "1.2"
            send_ms, receive_ms = (int(v) for v in client.connected.headers["heart-beat"].split(","))
            assert send_ms > 0
            assert receive_ms > 0
        finally:
            client.close()

    def test_durable_subscription_receives_message_published_while_offline(self, broker: BrokerInfo) -> None:
        """A persistent message published while a durable subscriber was away is delivered on its return."""
        client_id, name = unique("oss-durable"), unique("sub")
        first = Client(broker, client_id=client_id)
        first.subscribe_durable(name)
        first.close()

        publish(broker, "<while-away/>")

        second = Client(broker, client_id=client_id)
        try:
            second.subscribe_durable(name)
            frame = second.next_message()
            assert frame.body == "<while-away/>"
            assert frame.headers["persistent"] == "true"
            second.conn.ack(frame.headers["ack"])
            # detach, then delete the durable subscription
            second.conn.unsubscribe(name, headers={"receipt": "detach"})
            second.recorder.wait_receipt("detach")
            second.conn.unsubscribe(name, headers={"activemq.subscriptionName": name, "receipt": "delete"})
            second.recorder.wait_receipt("delete")
        finally:
            second.close()

    def test_selector_filters_on_alarm_client_id(self, broker: BrokerInfo) -> None:
        """The selector ALA_clientId in ('oss1@1','') lets oss1@1 and '' through and holds back oss2@1."""
        consumer = Client(broker)
        publisher = Client(broker)
        try:
            consumer.conn.subscribe(
                TOPIC,
                id="sel",
                ack="auto",
                headers={"selector": "ALA_clientId in ('oss1@1','')", "receipt": "sel"},
            )
            consumer.recorder.wait_receipt("sel")
            for body, alarm_client_id in [
                ("oss1", "oss1@1"),
                ("empty", ""),
                ("oss2", "oss2@1"),
                ("end", "oss1@1"),
            ]:
                publisher.send(body, ALA_clientId=alarm_client_id)
            # one producer, one topic: delivery is in order, so "end" comes after anything that got through
            bodies = [consumer.next_message().body]
            while bodies[-1] != "end":
                bodies.append(consumer.next_message().body)
            assert bodies == ["oss1", "empty", "end"]
        finally:
            publisher.close()
            consumer.close()

    def test_admin_lists_closes_and_removes_durable_subscription(self, broker: BrokerInfo) -> None:
        """`admin list` shows a durable subscription, `close` drops its client and `rmsub` deletes it."""
        client_id, name = unique("oss-admin"), unique("sub")
        client = Client(broker, client_id=client_id)
        try:
            client.subscribe_durable(name)
            listing = broker.admin("list")
            assert f"conn clientId={client_id} " in listing
            assert f"durable clientId={client_id} sub={name} topic=5620-SAM-topic-xml active=true" in listing

            assert f"clientId={client_id}" in broker.admin("close", client_id)
            assert client.recorder.disconnected.wait(WAIT), "on_disconnected did not fire after admin close"

            assert f"sub={name}" in broker.admin("rmsub", client_id, name)
            listing = broker.admin("list")
            assert f"sub={name} " not in listing
            assert f"clientId={client_id} " not in listing
        finally:
            client.close()

    def test_second_start_reuses_running_broker(self, broker: BrokerInfo) -> None:
        """`start` with the data dir and ports of a running broker reuses it instead of starting another."""
        pid = broker_pid(broker)
        output = broker.start()
        assert "reus" in output
        assert broker_pid(broker) == pid
        assert process_alive(pid)
        assert broker.status() == 0

    def test_broker_json_describes_the_running_broker(self, broker: BrokerInfo) -> None:
        """broker.json names the broker's pid, ports, JMX URL and data dir."""
        state = json.loads((broker.data_dir / "broker.json").read_text())
        assert state["stomp_port"] == broker.port
        assert state["jmx_port"] == broker.jmx_port
        assert state["jmx_url"] == broker.jmx_url
        assert state["data"] == str(broker.data_dir)
        assert process_alive(state["pid"])


class TestSeparateBrokers:
    def test_stop_ends_only_its_own_broker(self, broker: BrokerInfo, broker_factory: BrokerFactory) -> None:
        """`stop` ends exactly its data dir's broker (`status` 0, then 3) and no other broker."""
        doomed, bystander = broker_factory(), broker_factory()
        doomed_pid, bystander_pid = broker_pid(doomed), broker_pid(bystander)
        assert doomed.status() == 0

        assert "stopped" in doomed.stop()
        assert not process_alive(doomed_pid)
        assert doomed.pid() is None
        assert doomed.status() == 3
        assert "not running" in doomed.stop()

        assert process_alive(bystander_pid)
        assert bystander.status() == 0
        assert broker.status() == 0
        Client(bystander).close()

    def test_wipe_refuses_directory_without_marker(self, tmp_path: Path) -> None:
        """`wipe` refuses a directory that scripts/broker did not create, and deletes nothing in it."""
        precious = tmp_path / "kahadb" / "precious.txt"
        precious.parent.mkdir()
        precious.write_text("user data")

        result = run_broker_script("wipe", "--data", str(tmp_path))

        assert result.returncode != 0
        assert ".nfmp-broker" in result.stdout
        assert "refus" in result.stdout
        assert "Traceback" not in result.stdout
        assert precious.read_text() == "user data"

    def test_wipe_deletes_stored_durable_messages(self, broker_factory: BrokerFactory) -> None:
        """After `wipe` and a new `start`, a stored message of an offline durable subscription is gone."""
        wiped = broker_factory()
        client_id, name = unique("oss-wipe"), unique("sub")
        subscriber = Client(wiped, client_id=client_id)
        subscriber.subscribe_durable(name)
        subscriber.close()
        publish(wiped, "<stored/>")
        assert f"sub={name} topic=5620-SAM-topic-xml active=false pending=1 " in wiped.admin("list")

        result = run_broker_script("wipe", "--data", str(wiped.data_dir))
        assert result.returncode == 0, result.stdout
        assert not (wiped.data_dir / "kahadb").exists()
        wiped.start()

        assert f"sub={name}" not in wiped.admin("list")
        subscriber = Client(wiped, client_id=client_id)
        try:
            subscriber.subscribe_durable(name)
            publish(wiped, "<after-wipe/>")
            assert subscriber.next_message().body == "<after-wipe/>"
        finally:
            subscriber.close()

    def test_restart_keeps_persistent_messages_and_restart_wipe_drops_them(
        self, broker_factory: BrokerFactory
    ) -> None:
        """A stored message for an offline durable subscriber survives `restart`, not `restart(wipe=True)`."""
        restarted = broker_factory()
        client_id, name = unique("oss-restart"), unique("sub")
        subscriber = Client(restarted, client_id=client_id)
        subscriber.subscribe_durable(name)
        subscriber.close()
        publish(restarted, "<kept/>")
        old_pid = broker_pid(restarted)

        restarted.restart()
        assert broker_pid(restarted) != old_pid
        assert not process_alive(old_pid)
        assert f"sub={name} topic=5620-SAM-topic-xml active=false pending=1 " in restarted.admin("list")

        restarted.restart(wipe=True)
        assert f"sub={name}" not in restarted.admin("list")

    def test_start_fails_on_a_busy_port(self, tmp_path: Path) -> None:
        """`start` on a STOMP port another program listens on fails at once with a message naming the port."""
        (jmx_port,) = free_ports(1)
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            busy = listener.getsockname()[1]
            data = tmp_path / "busy"

            result = run_broker_script(
                "start", "--data", str(data), "--port", str(busy), "--jmx-port", str(jmx_port)
            )

        assert result.returncode != 0
        assert f"port {busy}" in result.stdout
        assert "--port" in result.stdout
        assert "Traceback" not in result.stdout
        assert not (data / "broker.json").exists()
        assert run_broker_script("status", "--data", str(data)).returncode == 3


class TestTls:
    def test_tls_connector_with_the_test_ca_and_client_certificates(
        self, broker_factory: BrokerFactory
    ) -> None:
        """`--tls-port --tls-client-auth`: STOMP over TLS with a certificate for 127.0.0.1 and localhost from
        the data dir's CA, client certificate required; `status` and broker.json tell where the PEM files are."""
        tls = broker_factory(tls_client_auth=True)
        assert tls.tls_port is not None
        trusting = ssl.create_default_context(cafile=str(tls.ca_file))
        with_certificate = ssl.create_default_context(cafile=str(tls.ca_file))
        with_certificate.load_cert_chain(str(tls.client_cert_file), str(tls.client_key_file))

        for name in ("127.0.0.1", "localhost"):  # both in the certificate's subjectAltName
            reply, certificate = stomp_over_tls(tls.tls_port, with_certificate, server_hostname=name)
            assert reply.startswith(b"CONNECTED"), reply
        assert ("IP Address", "127.0.0.1") in certificate["subjectAltName"]  # type: ignore[operator]
        assert ("DNS", "localhost") in certificate["subjectAltName"]  # type: ignore[operator]
        with pytest.raises(ssl.SSLError, match="certificate"):  # the broker wants a client certificate
            read_after_handshake(tls.tls_port, trusting)
        with pytest.raises(ssl.SSLCertVerificationError):  # the test CA is no public one
            stomp_over_tls(tls.tls_port, ssl.create_default_context())

        status = run_broker_script("status", "--data", str(tls.data_dir))
        assert status.returncode == 0, status.stdout
        assert f"stomp+ssl://127.0.0.1:{tls.tls_port}" in status.stdout
        assert "client certificate required" in status.stdout
        for path in (tls.ca_file, tls.client_cert_file, tls.client_key_file):
            assert str(path) in status.stdout
        assert tls.client_key_file.stat().st_mode & 0o077 == 0
        state = json.loads((tls.data_dir / "broker.json").read_text())
        assert state["tls"] == {
            "port": tls.tls_port,
            "client_auth": True,
            "ca_file": str(tls.ca_file),
            "cert_file": str(tls.client_cert_file),
            "key_file": str(tls.client_key_file),
        }

        # stomp.py's own TLS (set_ssl) receives what a plain connection publishes
        subscriber = Client(tls, client_id=unique("oss-tls"), tls=True)
        try:
            subscriber.subscribe_durable(unique("sub"))
            publish(tls, "<over-tls/>")
            assert subscriber.next_message().body == "<over-tls/>"
        finally:
            subscriber.close()

        # the CA is made once per data dir: a restart without client auth keeps it, and lets clients in
        # with no certificate of their own
        ca = tls.ca_file.read_bytes()
        dataclasses.replace(tls, tls_client_auth=False).restart()
        assert tls.ca_file.read_bytes() == ca
        reply, _ = stomp_over_tls(tls.tls_port, trusting)
        assert reply.startswith(b"CONNECTED"), reply
        assert (
            "client certificate not required"
            in run_broker_script("status", "--data", str(tls.data_dir)).stdout
        )

    def test_broker_without_tls_records_none(self, broker: BrokerInfo) -> None:
        """Without --tls-port there is no TLS connector: broker.json says `"tls": null`, no tls/ is made."""
        assert json.loads((broker.data_dir / "broker.json").read_text())["tls"] is None
        assert not broker.tls_dir.exists()
        assert not (broker.data_dir / "activemq-tls.xml").exists()

    @pytest.mark.parametrize("clash", ["port", "jmx-port"])
    def test_tls_port_must_differ_from_the_other_ports(self, tmp_path: Path, clash: str) -> None:
        """A TLS port equal to the STOMP or the JMX port is a usage error (exit 2), before anything starts."""
        port, jmx_port = free_ports(2)
        same = port if clash == "port" else jmx_port
        data = tmp_path / "clash"

        result = run_broker_script(
            "start",
            "--data",
            str(data),
            "--port",
            str(port),
            "--jmx-port",
            str(jmx_port),
            "--tls-port",
            str(same),
        )

        assert result.returncode == 2, result.stdout
        assert f"both {same}" in result.stdout
        assert not (data / "broker.json").exists()

    def test_client_auth_needs_a_tls_port(self, tmp_path: Path) -> None:
        """--tls-client-auth without a TLS port is a usage error (exit 2)."""
        port, jmx_port = free_ports(2)

        result = run_broker_script(
            "start",
            "--data",
            str(tmp_path / "b"),
            "--port",
            str(port),
            "--jmx-port",
            str(jmx_port),
            "--tls-client-auth",
        )

        assert result.returncode == 2, result.stdout
        assert "--tls-port" in result.stdout

    def test_start_fails_on_a_busy_tls_port(self, tmp_path: Path) -> None:
        """`start` with a TLS port another program listens on fails at once, naming the port and the option."""
        port, jmx_port = free_ports(2)
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            busy = listener.getsockname()[1]
            data = tmp_path / "busy-tls"

            result = run_broker_script(
                "start",
                "--data",
                str(data),
                "--port",
                str(port),
                "--jmx-port",
                str(jmx_port),
                "--tls-port",
                str(busy),
            )

        assert result.returncode == 1, result.stdout
        assert f"TLS port {busy}" in result.stdout
        assert "--tls-port" in result.stdout
        assert "Traceback" not in result.stdout
        assert not (data / "broker.json").exists()


DEBIAN_HOME = Path("/usr/share/activemq")


def apache_layout_home(root: Path) -> Path:
    """An ActiveMQ installation laid out like Apache's binary distribution (xstream and jettison in
    lib/optional/, as versioned jars), made of links to Debian's installation (the one the tests run)."""
    home = root / "apache-activemq-5.17.6"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "activemq.jar").symlink_to((DEBIAN_HOME / "bin" / "activemq.jar").resolve())
    for jar in [*DEBIAN_HOME.glob("lib/*.jar"), *DEBIAN_HOME.glob("lib/*/*.jar")]:
        target = home / jar.relative_to(DEBIAN_HOME)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(jar.resolve())
    for name, version in (("xstream", "1.4.20"), ("jettison", "1.5.3")):
        (home / "lib" / "optional" / f"{name}-{version}.jar").symlink_to(
            Path(f"/usr/share/java/{name}.jar").resolve()
        )
    return home


def broker_argv(info: BrokerInfo) -> list[str]:
    raw = Path(f"/proc/{broker_pid(info)}/cmdline").read_bytes()
    return [arg.decode() for arg in raw.split(b"\0")[:-1]]


class TestInstallation:
    def test_the_script_runs_with_a_bare_interpreter(self, tmp_path: Path) -> None:
        """scripts/broker needs no virtualenv: an isolated interpreter without site-packages runs it."""
        result = subprocess.run(
            [sys.executable, "-I", "-S", str(BROKER_SCRIPT), "status", "--data", str(tmp_path / "none")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert result.returncode == 3, result.stdout + result.stderr
        assert "not running" in result.stdout

    def test_help_tells_a_non_debian_user_what_to_install(self) -> None:
        """--help names what is needed (Java 11+, ActiveMQ Classic 5.x) and the variable to point at it."""
        result = run_broker_script("--help")

        assert result.returncode == 0
        for needed in (
            "Java 11",
            "ActiveMQ Classic 5.x",
            "NFMP_ACTIVEMQ_HOME",
            "activemq.apache.org",
            "JAVA_HOME",
        ):
            assert needed in result.stdout

    def test_a_wrong_activemq_home_is_named(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """NFMP_ACTIVEMQ_HOME naming a folder without ActiveMQ: `start` fails at once, naming the variable and
        what it lacks, and starts nothing (no apt-get either: the variable chose the installation)."""
        port, jmx_port = free_ports(2)
        wrong = tmp_path / "not-activemq"
        wrong.mkdir()
        monkeypatch.setenv("NFMP_ACTIVEMQ_HOME", str(wrong))
        data = tmp_path / "b"

        result = run_broker_script(
            "start", "--data", str(data), "--port", str(port), "--jmx-port", str(jmx_port)
        )

        assert result.returncode == 1, result.stdout
        assert f"NFMP_ACTIVEMQ_HOME={wrong} has no bin/activemq.jar" in result.stdout
        assert "Traceback" not in result.stdout
        assert "apt-get install" not in result.stdout
        assert not (data / "broker.json").exists()

    def test_a_broker_from_an_apache_layout_installation(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broker_factory: BrokerFactory
    ) -> None:
        """NFMP_ACTIVEMQ_HOME pointing at an installation laid out like Apache's: the broker runs from it, with
        the xstream and jettison of its lib/optional/ (none added), and advisories reach STOMP subscribers."""
        home = apache_layout_home(tmp_path)
        monkeypatch.setenv("NFMP_ACTIVEMQ_HOME", str(home))

        info = broker_factory()

        argv = broker_argv(info)
        assert f"-Dactivemq.home={home}" in argv
        assert f"-Dactivemq.classpath={REPO_ROOT / 'nfmp_client' / 'testing' / 'activemq'}" in argv
        watcher = Client(info)
        try:
            watcher.conn.subscribe(
                "/topic/ActiveMQ.Advisory.Connection", id="advisory", ack="auto", headers={"receipt": "adv"}
            )
            watcher.recorder.wait_receipt("adv")
            Client(info, client_id=unique("oss-advised")).close()
            advisory = watcher.next_message()
            assert advisory.headers["destination"] == "/topic/ActiveMQ.Advisory.Connection"
            assert watcher.conn.is_connected()
        finally:
            watcher.close()

    def test_debian_installation_gets_the_advisory_jars_added(self, broker: BrokerInfo) -> None:
        """With Debian's installation, xstream and jettison (left off its class path) are added to it."""
        argv = broker_argv(broker)
        (classpath,) = [arg for arg in argv if arg.startswith("-Dactivemq.classpath=")]

        assert "/usr/share/java/xstream.jar" in classpath
        assert "/usr/share/java/jettison.jar" in classpath

    def test_nfmp_broker_keeps_its_broker_in_the_users_state_dir(self, tmp_path: Path) -> None:
        """The module behind the nfmp-broker command uses $XDG_STATE_HOME/nfmp-broker without --data."""
        env = {name: value for name, value in os.environ.items() if not name.startswith("NFMP_BROKER_")}
        env["XDG_STATE_HOME"] = str(tmp_path)

        result = subprocess.run(
            [sys.executable, "-m", "nfmp_client.testing._broker", "status"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert result.returncode == 3, result.stdout + result.stderr
        assert f"not running (data {tmp_path / 'nfmp-broker'})" in result.stdout
