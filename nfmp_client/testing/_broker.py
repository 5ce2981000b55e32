"""nfmp-broker: run a private Apache ActiveMQ Classic broker for nfmp_client development and tests.

The ``nfmp-broker`` command (and ``scripts/broker`` in a clone of the repository, which runs this file).
Standard library only: it runs with any Python 3.10+, before a virtualenv exists and without nfmp_client's
dependencies; the ActiveMQ configuration it starts the broker with ships beside it (``activemq/``).
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import dataclasses
import datetime
import difflib
import errno
import fcntl
import importlib.util
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType

__all__ = [
    "BrokerError",
    "Installation",
    "default_data_dir",
    "find_installation",
    "find_java",
    "find_jms_api_jar",
    "main",
]

PACKAGE_DIR = Path(__file__).resolve().parent
CONF_DIR = PACKAGE_DIR / "activemq"
ACTIVEMQ_XML = CONF_DIR / "activemq.xml"
LOG4J_PROPERTIES = CONF_DIR / "log4j.properties"  # ActiveMQ up to 5.16 and Debian's 5.17 (log4j 1.2)
LOG4J2_PROPERTIES = CONF_DIR / "log4j2.properties"  # Apache's own 5.17 and later (log4j 2)
JMX_TOOL = PACKAGE_DIR / "_jmxtool.py"  # runs AmqAdmin.java, beside it

# Where an ActiveMQ Classic installation is looked for: the folder holding bin/activemq.jar. The environment
# variables win (the first one set is the only place looked at); then the known places, in order.
HOME_VARIABLES = ("NFMP_ACTIVEMQ_HOME", "ACTIVEMQ_HOME")
DEBIAN_HOME = Path("/usr/share/activemq")  # Debian's and Ubuntu's package `activemq`
KNOWN_HOMES = (DEBIAN_HOME, Path("/opt/activemq"), Path("/usr/local/activemq"))
KNOWN_HOME_GLOBS = (Path("/opt"), "apache-activemq-*")  # Apache's binary distribution unpacked in /opt
RUN_JAR = Path("bin") / "activemq.jar"
# ActiveMQ's launcher puts every jar of <home>/lib and its sub-folders (optional/, extra/, ...) on the
# broker's class path. Apache's distribution has xstream and jettison there; Debian's package installs them
# (libxstream-java, libjettison-java) into /usr/share/java but leaves them off the broker's class path.
# Without them every advisory message sent to a STOMP subscriber fails with NoClassDefFoundError and drops
# the connection, so they are added from SHARE_JAVA when <home>/lib lacks them.
ADVISORY_JARS = ("xstream", "jettison")
SHARE_JAVA = Path("/usr/share/java")
# The JMS API, on AmqAdmin's class path so that a JMSException cause ("Durable consumer is in use") can be
# shown; optional (without it AmqAdmin shows the cause's class name only).
JMS_API_JARS = ("geronimo-jms_1.1_spec*.jar", "jakarta.jms-api-*.jar", "javax.jms-api-*.jar")
APT_PACKAGE = "activemq"

# The --help text; {prog} is the command's name, {data} its default data directory, {conf} CONF_DIR.
HELP = """\
Run a private Apache ActiveMQ Classic broker for nfmp_client development and tests.

The broker is an installed ActiveMQ Classic 5.x, started directly with java from the configuration that
ships with nfmp_client -- not a system instance, no systemd, no root needed to run it. It serves STOMP
(with heart-beats) on 127.0.0.1 only, optionally STOMP over TLS too (--tls-port) and OpenWire
(--openwire-port), JMX for `admin`, and keeps its KahaDB store, logs and state under one data directory.
Virtual topics: what is sent to the topic VirtualTopic.<name> is copied into every queue
Consumer.<app>.VirtualTopic.<name> (one per application; selector-aware: only what a consumer of that queue
selects, also while it is away). Optionally it pulls NFM-P's event topic into such a virtual topic through
ActiveMQ's JMS bridge (--bridge FILE; see `{prog} bridge-example`), and links to another broker of the
kind (--network-to) so that consumers there read those queues.
  configuration:   {conf}
  data directory:  {data} (the default)

what it needs:
  Python 3.10+ (standard library only), Java 11 or newer, and ActiveMQ Classic 5.x (tested: 5.17).
  Debian, Ubuntu: `{prog} install` installs both (the package `activemq`, which brings java and the
    xstream and jettison jars; as root, or with passwordless sudo); `start` does it too when they are missing.
  Elsewhere: install a Java 11+ runtime (java on PATH, or JAVA_HOME set) and unpack Apache's binary
    distribution of ActiveMQ Classic 5.x (apache-activemq-5.x-bin.tar.gz from activemq.apache.org), then
    point NFMP_ACTIVEMQ_HOME (or ACTIVEMQ_HOME) at the folder that holds bin/activemq.jar, e.g.
      export NFMP_ACTIVEMQ_HOME=$HOME/apache-activemq-5.18.7
  Looked for, in order: $NFMP_ACTIVEMQ_HOME, $ACTIVEMQ_HOME (either, when set, is the only place looked
  at), /usr/share/activemq (Debian), /opt/activemq, /usr/local/activemq, /opt/apache-activemq-* (the
  newest). `{prog} install` shows what was found, or what is missing.

commands:
  install                 install ActiveMQ and java if missing (Debian/Ubuntu), show what is used
  start                   start the broker in the background and wait until STOMP answers;
                          reuses an already running broker of the same data dir
  stop                    stop the broker of the data dir (SIGTERM, SIGKILL after --timeout)
  status                  show state, ports and TLS files; exit 0 if running and answering STOMP (and
                          STOMP over TLS, if on), 3 if not running, 1 if the process runs but does not
                          answer
  restart                 stop, then start with the given options
  wipe                    stop, then delete the stored messages, subscriptions and logs of the data dir
  admin list              list client connections and durable subscriptions (JMX)
  admin close CLIENT_ID   drop the connection(s) of a client-id, like an NFM-P activity switch does
  admin rmsub CLIENT_ID SUBNAME
                          delete an inactive durable subscription
  fg                      run the broker in the foreground (logs on the terminal), for debugging
  bridge-example          print a commented example of the --bridge file (every key, its default)

settings (option > environment > default):
  --port       NFMP_BROKER_PORT       STOMP port (default 61613)
  --jmx-port   NFMP_BROKER_JMX_PORT   JMX port (default 11099; its RMI registry binds all interfaces)
  --tls-port   NFMP_BROKER_TLS_PORT   STOMP over TLS port (default: none, no TLS); its certificate names
                                      IP:127.0.0.1 and DNS:localhost, signed by the data dir's test CA
  --tls-client-auth[=true|false]      with --tls-port: refuse TLS clients without a certificate signed by
                                      that CA (default false)
  --openwire-port  NFMP_BROKER_OPENWIRE_PORT
                                      also serve OpenWire (ActiveMQ's JMS protocol) on this port of
                                      127.0.0.1 (default: none): for JMS clients, e.g. a stand-in for
                                      NFM-P's JMS server, and for another broker's --network-to
  --bridge FILE                       run a JMS bridge from NFM-P's JMS server into this broker, as FILE
                                      (an INI file) describes; `{prog} bridge-example` shows every key.
                                      The password is read from a file or a variable FILE names, and is
                                      never on a command line or in a log.
  --network-to HOST:PORT              a duplex network link to another broker's OpenWire connector: its
                                      Consumer.*.VirtualTopic.> queues are read from here, on demand
  --network-inactivity MS             with --network-to: OpenWire's inactivity limit on the link (default
                                      30000): a link that died silently (no FIN, no RST) is noticed after
                                      2 to 3 times MS of silence, then re-dialled every second
  --data       NFMP_BROKER_DATA       data directory (default {data})
  NFMP_ACTIVEMQ_HOME, ACTIVEMQ_HOME   the ActiveMQ installation (see above); JAVA_HOME: the java to use

files in the data directory: broker.json (pid, ports, JMX URL, TLS port and PEM paths of the running
broker), console.log (the broker's log; the previous run's is console.log.1), kahadb/ (message store),
selectorcache.data (the selectors of the virtual topics' queue consumers), tmp/, .nfmp-broker (marks the
directory as created by this command: `wipe` refuses directories without it), broker.lock. With any of
--tls-port, --openwire-port, --bridge, --network-to also activemq-run.xml: the configuration's activemq.xml
with the blocks of those parts on, written at each start. With a bridge, bridge.properties and
bridge-jndi.properties (mode 0600, they hold the password: written at start, deleted once the broker has
read them), and lib/ (links to the jars of the bridge's `jars` directory; ActiveMQ puts <data>/lib on its
class path, before its own jars). With TLS, tls/, made once with openssl and keytool and kept by `wipe`:
ca.pem (the test CA to trust), client.pem + client.key (a client certificate of that CA, key unencrypted),
ca.key, broker.pem + broker.key, and the broker's PKCS12 key store broker.p12 and trust store
truststore.p12 (password nfmp-dev: test material only). Delete tls/ to get new ones.
`admin` keeps a compiled copy of nfmp_client's AmqAdmin.java in ~/.cache/nfmp-broker/ ($XDG_CACHE_HOME).

examples:
  {prog} start && {prog} status
  {prog} start --port 61620 --jmx-port 11120 --data /tmp/b2 --link-stealing
  {prog} start --tls-port 61614 --tls-client-auth   # then see `status` for the PEM files
  {prog} bridge-example > nfmp-bridge.ini   # edit it, then:
  {prog} start --bridge nfmp-bridge.ini      # consumers read /queue/Consumer.<app>.VirtualTopic.<topic>
  {prog} start --openwire-port 61616                                  # broker A, and broker B:
  {prog} start --data /tmp/b --port 61623 --jmx-port 11123 --network-to 127.0.0.1:61616
  {prog} admin list
  {prog} stop

exit codes: 0 ok, 1 error, 2 usage error, 3 not running (status); `admin` passes on AmqAdmin's code.
"""

HOST = "127.0.0.1"
TLS_HOST_NAME = "localhost"  # the broker certificate's other name (subjectAltName DNS)
DEFAULT_PORT = 61613
DEFAULT_JMX_PORT = 11099
DEFAULT_PENDING_LIMIT = 1000
DEFAULT_HEAP = "256m"
DEFAULT_START_TIMEOUT = 60.0
DEFAULT_STOP_TIMEOUT = 30.0
KILL_WAIT = 10.0  # after SIGKILL
LOCK_WAIT = 120.0  # longest wait for another broker command working on the same data dir
ADMIN_TIMEOUT = 120.0
PROBE_TIMEOUT = 2.0

MARKER = ".nfmp-broker"
STATE_FILE = "broker.json"
LOCK_FILE = "broker.lock"
CONSOLE_LOG = "console.log"
RUN_XML = "activemq-run.xml"  # ACTIVEMQ_XML with the blocks of the chosen optional parts on, written at start
TLS_XML = "activemq-tls.xml"  # what earlier versions wrote instead of RUN_XML (TLS only); `wipe` deletes it
TLS_DIR = "tls"
SELECTOR_CACHE = "selectorcache.data"  # the virtual topics' selector cache (ACTIVEMQ_XML's plugin writes it)
BRIDGE_PROPERTIES = "bridge.properties"  # the bridge's settings, password included (mode 0600)
BRIDGE_JNDI_PROPERTIES = "bridge-jndi.properties"  # the JNDI environment of the upstream server (mode 0600)
LIB_DIR = "lib"  # ActiveMQ's launcher puts <activemq.base>/lib (= the data dir's) first on the class path
LIB_LINKS = ".nfmp-broker-links"  # in LIB_DIR: the names of the links this script made there
# What `wipe` deletes (only inside a data dir carrying MARKER): everything the broker and this script write
# there except the marker, the lock file, TLS_DIR (clients configured with its CA keep working) and LIB_DIR.
WIPE_ENTRIES = (
    "kahadb",
    "tmp",
    CONSOLE_LOG,
    CONSOLE_LOG + ".1",
    STATE_FILE,
    RUN_XML,
    TLS_XML,
    SELECTOR_CACHE,
    BRIDGE_PROPERTIES,
    BRIDGE_JNDI_PROPERTIES,
)
JMX_FAILED = "Failed to start JMX connector"  # ActiveMQ's log line when the JMX port is taken
IDENTITY_PROP = "-Dnfmp.broker=nfmp-dev"  # marks the command line of a broker started by this script

# TLS test material in TLS_DIR. The stores' password is passed to the broker as -Dtls.store.password: it
# guards nothing (the PEM keys lie beside them, unencrypted); the stores just cannot be without one.
TLS_STORE_PASSWORD = "nfmp-dev"  # noqa: S105 -- test material, guards nothing (see above)
TLS_DAYS = 3650
TLS_KEY = "rsa:2048"
TLS_COMMAND_TIMEOUT = 60.0
# The marker lines around ACTIVEMQ_XML's optional blocks, e.g. <!--TLS-ONLY ... TLS-ONLY-->, and a piece of
# configuration each block must hold (a check that the blocks were found where they belong).
TLS_ONLY = "TLS-ONLY"
OPENWIRE_ONLY = "OPENWIRE-ONLY"
BRIDGE_ONLY = "BRIDGE-ONLY"
NETWORK_ONLY = "NETWORK-ONLY"
BLOCK_CONTENT = {
    TLS_ONLY: "<sslContext>",
    OPENWIRE_ONLY: 'name="openwire"',
    BRIDGE_ONLY: "<jmsBridgeConnectors>",
    NETWORK_ONLY: "<networkConnectors>",
}
# An OpenSSL configuration for the test CA and its two certificates (the -extensions sections). The broker's
# certificate names 127.0.0.1 and localhost; authority/subject key identifiers keep strict verifiers
# (Python 3.13's VERIFY_X509_STRICT) content.
OPENSSL_CNF = f"""\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = nfmp-dev
[ca_ext]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[broker_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:{HOST}, DNS:{TLS_HOST_NAME}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

DEFAULT_NETWORK_INACTIVITY = 30000  # ms, OpenWire's own default of wireFormat.maxInactivityDuration
MIN_NETWORK_INACTIVITY = 1000  # ms

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3


class BrokerError(Exception):
    """An expected failure: reported as `broker: <message>` on stderr, exit code `code`."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


@dataclasses.dataclass
class _Invocation:
    """How this run was started: the command's name (in messages) and its default data directory."""

    prog: str = "nfmp-broker"
    default_data: Path | None = None  # None: default_data_dir()


_INVOCATION = _Invocation()


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Return the data directory of ``nfmp-broker`` without --data: ``$XDG_STATE_HOME/nfmp-broker``.

    ``~/.local/state/nfmp-broker`` when XDG_STATE_HOME is unset (``scripts/broker`` in a clone uses
    ``<repo>/.broker`` instead).
    """
    env = os.environ if environ is None else environ
    state = env.get("XDG_STATE_HOME", "").strip()
    return Path(state or os.path.join(os.path.expanduser("~"), ".local", "state")) / "nfmp-broker"


def say(message: str = "", *, err: bool = False) -> None:
    """Print every line of `message` with the `broker: ` prefix."""
    stream = sys.stderr if err else sys.stdout
    for line in message.splitlines() or [""]:
        print(f"broker: {line}".rstrip(), file=stream, flush=True)


# ---------------------------------------------------------------------------------------------- settings


@dataclasses.dataclass(frozen=True)
class Settings:
    """Broker settings of one start; `explicit` names those given by option or environment."""

    port: int
    jmx_port: int
    tls_port: int | None  # None: no TLS connector
    tls_client_auth: bool
    link_stealing: bool
    pending_limit: int
    heap: str
    wipe: bool
    explicit: frozenset[str]
    openwire_port: int | None = None  # None: no OpenWire connector
    bridge: BridgeConfig | None = None  # None: no JMS bridge
    network_to: str | None = None  # "host:port" of another broker's OpenWire connector; None: no link
    network_inactivity: int = DEFAULT_NETWORK_INACTIVITY  # ms

    @property
    def optional_parts(self) -> tuple[str, ...]:
        """The marker names of ACTIVEMQ_XML's optional blocks this broker runs (empty: the file as it is)."""
        chosen = {
            TLS_ONLY: self.tls_port is not None,
            OPENWIRE_ONLY: self.openwire_port is not None,
            BRIDGE_ONLY: self.bridge is not None,
            NETWORK_ONLY: self.network_to is not None,
        }
        return tuple(part for part, on in chosen.items() if on)


def jmx_url(jmx_port: int) -> str:
    return f"service:jmx:rmi:///jndi/rmi://{HOST}:{jmx_port}/jmxrmi"


def _integer(text: str, noun: str, low: int, high: int | None, out_of_range: str) -> int:
    """Read `text` as an integer from `low` to `high` (None: no limit), or say what is wrong (argparse)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {noun}: {text!r}") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"{out_of_range}: {value}")
    return value


def port_number(text: str) -> int:
    return _integer(text, "a port number", 1, 65535, "port out of range 1-65535")


def positive_int(text: str) -> int:
    return _integer(text, "an integer", 1, None, "must be at least 1")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {value}")
    return value


def boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean (true/false): {text!r}")


def heap_size(text: str) -> str:
    match = re.fullmatch(r"([1-9][0-9]*)([kKmMgG]?)", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a java heap size like 256m or 1g: {text!r}")
    number, unit = int(match[1]), match[2].lower()
    if number * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[unit] < 64 << 20:
        raise argparse.ArgumentTypeError(f"at least 64m (the JVM starts with -Xms64m): {text!r}")
    return text


def network_address(text: str) -> str:
    """Return `text`, a HOST:PORT (an IPv6 address in brackets), with a valid port."""
    match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+):([0-9]+)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"not HOST:PORT: {text!r}")
    return f"{match[1]}:{port_number(match[2])}"


def inactivity_ms(text: str) -> int:
    low = MIN_NETWORK_INACTIVITY
    return _integer(text, "a number of milliseconds", low, None, f"at least {low} (milliseconds)")


def env_port(name: str) -> int | None:
    """Return the port number in environment variable `name`, None if unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        return port_number(raw)
    except argparse.ArgumentTypeError as exc:
        raise BrokerError(f"environment variable {name}={raw!r}: {exc}", 2) from None


def resolve_data(args: argparse.Namespace) -> Path:
    raw = args.data if args.data is not None else os.environ.get("NFMP_BROKER_DATA", "").strip()
    # Absolute and normalised: the path is part of the broker's command line, which identifies it.
    default = _INVOCATION.default_data or default_data_dir()
    return Path(os.path.abspath(os.path.expanduser(raw or str(default))))


def resolve_settings(args: argparse.Namespace) -> Settings:
    port = args.port if args.port is not None else env_port("NFMP_BROKER_PORT")
    jmx_port = args.jmx_port if args.jmx_port is not None else env_port("NFMP_BROKER_JMX_PORT")
    tls_port = args.tls_port if args.tls_port is not None else env_port("NFMP_BROKER_TLS_PORT")
    openwire_port = (
        args.openwire_port if args.openwire_port is not None else env_port("NFMP_BROKER_OPENWIRE_PORT")
    )
    bridge_file = None if args.bridge is None else Path(os.path.abspath(os.path.expanduser(args.bridge)))
    given = {
        "port": port,
        "jmx_port": jmx_port,
        "tls_port": tls_port,
        "tls_client_auth": args.tls_client_auth,
        "link_stealing": args.link_stealing,
        "pending_limit": args.pending_limit,
        "heap": args.heap,
        "wipe": args.wipe or None,
        "openwire_port": openwire_port,
        "bridge": bridge_file,
        "network_to": args.network_to,
        "network_inactivity": args.network_inactivity,
    }
    settings = Settings(
        port=DEFAULT_PORT if port is None else port,
        jmx_port=DEFAULT_JMX_PORT if jmx_port is None else jmx_port,
        tls_port=tls_port,
        tls_client_auth=bool(args.tls_client_auth),
        link_stealing=bool(args.link_stealing),
        pending_limit=args.pending_limit or DEFAULT_PENDING_LIMIT,
        heap=args.heap or DEFAULT_HEAP,
        wipe=bool(args.wipe),
        explicit=frozenset(name for name, value in given.items() if value is not None),
        openwire_port=openwire_port,
        bridge=None if bridge_file is None else read_bridge_file(bridge_file),
        network_to=args.network_to,
        network_inactivity=args.network_inactivity or DEFAULT_NETWORK_INACTIVITY,
    )
    if settings.port == settings.jmx_port:
        raise BrokerError(f"the STOMP and JMX ports are both {settings.port}; choose two different ports", 2)
    if settings.tls_port in (settings.port, settings.jmx_port):
        other = "STOMP" if settings.tls_port == settings.port else "JMX"
        raise BrokerError(
            f"the TLS and {other} ports are both {settings.tls_port}; choose a TLS port of its own", 2
        )
    if settings.tls_client_auth and settings.tls_port is None:
        raise BrokerError("--tls-client-auth needs a TLS port (--tls-port PORT or NFMP_BROKER_TLS_PORT)", 2)
    if settings.openwire_port is not None and settings.openwire_port in (
        settings.port,
        settings.jmx_port,
        settings.tls_port,
    ):
        other = {settings.port: "STOMP", settings.jmx_port: "JMX", settings.tls_port: "TLS"}[
            settings.openwire_port
        ]
        raise BrokerError(
            f"the OpenWire and {other} ports are both {settings.openwire_port}; choose an OpenWire port of "
            "its own",
            2,
        )
    if args.network_inactivity is not None and settings.network_to is None:
        raise BrokerError("--network-inactivity needs a link (--network-to HOST:PORT)", 2)
    if settings.network_to is not None:
        host, _, port = settings.network_to.rpartition(":")
        if host in (HOST, TLS_HOST_NAME) and int(port) in (settings.openwire_port, settings.port):
            raise BrokerError(
                f"--network-to {settings.network_to} is this broker itself; name another broker's OpenWire "
                "port",
                2,
            )
    return settings


# ------------------------------------------------------------------------------------------------ bridge

BRIDGE_SECTION = "nfmp"  # the --bridge file's section of settings
JNDI_SECTION = "jndi"  # its optional section of JNDI environment entries, taken verbatim
DEFAULT_INITIAL_CONTEXT_FACTORY = "org.wildfly.naming.client.WildFlyInitialContextFactory"
DEFAULT_JNDI_CONTEXT = "external/5620SamJMSServer"
DEFAULT_CONNECTION_FACTORY = "SAMConnectionFactory"
DEFAULT_TOPIC = "5620-SAM-topic-xml"
DEFAULT_RECONNECT_DELAY = 2.0  # seconds, a fixed delay: an exponential back-off stays away for longer
VIRTUAL_TOPIC_PREFIX = "VirtualTopic."
# The system events Nokia's basic selector always admits, and the form of an NFM-P client id (name@ID). This
# file imports nothing of nfmp_client (see the module docstring), so both are written out here; the tests
# compare default_selector() with nfmp_client.build_selector().
SYSTEM_OBJECT_TYPES = ("KeepAliveEvent", "StateChangeEvent", "TerminateClientSession")
CLIENT_ID = re.compile(r"[A-Za-z0-9_.\-:]+@[A-Za-z0-9_.\-:]+")
SUBSCRIPTION_NAME = re.compile(r"[A-Za-z0-9_.\-:@]+")
TOPIC_NAME = re.compile(r"[A-Za-z0-9_.\-:@/]+")  # a JNDI name may hold '/'
LOCAL_TOPIC_NAME = re.compile(r"[A-Za-z0-9_.\-:@]+")  # no wildcards ('*', '>')
JAVA_CLASS = re.compile(r"[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# The keys of [nfmp], in the order bridge-example shows them.
BRIDGE_KEYS = (
    "provider_url",
    "initial_context_factory",
    "context",
    "connection_factory",
    "user",
    "password_file",
    "password_env",
    "client_id",
    "subscription_name",
    "topic",
    "selector",
    "local_topic",
    "jars",
    "reconnect_delay",
)
# JNDI environment entries made from [nfmp] keys, which [jndi] may not set again.
JNDI_FROM_SETTINGS = {
    "java.naming.factory.initial": "initial_context_factory",
    "java.naming.provider.url": "provider_url",
    "java.naming.security.principal": "user",
    "java.naming.security.credentials": "password_file or password_env",
}

BRIDGE_EXAMPLE = f"""\
# A JMS bridge from NFM-P's JMS server into the nfmp-broker broker: `nfmp-broker start --bridge FILE`.
#
# The broker holds one connection to NFM-P's JMS server under NFM-P's client id (client_id) and one DURABLE
# subscription (subscription_name) with a selector on NFM-P's topic; what arrives is re-published into the
# local topic VirtualTopic.<topic>, a virtual topic: every application reads its own queue
#   /queue/Consumer.<app>.VirtualTopic.<topic>
# over STOMP (the queue exists from its first subscription on, and keeps what arrives while the
# application is away). NFM-P counts the bridge as one JMS client; the applications behind it are not seen.
# The bridge reconnects for ever, every reconnect_delay seconds.
#
# INI syntax: `key = value`, comments on lines of their own (# or ;), a long value may go on indented
# continuation lines (the selector: the lines are joined with spaces). Unknown keys are refused. Relative
# paths are relative to this file's folder.

[{BRIDGE_SECTION}]
# JNDI of NFM-P's JMS server. provider_url is required: the JNDI provider URL of NFM-P's main server, or
# of both main servers of a redundant pair, comma-separated (the JNDI client finds the active one), e.g.
#   provider_url = remote://nfmp-a.example.net:PORT,remote://nfmp-b.example.net:PORT
# with the port of your release's JNDI (see the JMS example that comes with NFM-P's server). Releases
# with the older JNP naming take host1:port,host2:port and org.jnp.interfaces.NamingContextFactory.
provider_url = remote://nfmp.example.net:PORT
# The JNDI initial context factory class (in the jars below).
#initial_context_factory = {DEFAULT_INITIAL_CONTEXT_FACTORY}
# The JNDI context of the connection factory, and its name: the factory is looked up as
# <context>/<connection_factory> (empty context: <connection_factory> alone).
#context = {DEFAULT_JNDI_CONTEXT}
#connection_factory = {DEFAULT_CONNECTION_FACTORY}

# The NFM-P user of the JMS connection and its password: from a file (its first line; keep it mode 0600)
# or from an environment variable of the `nfmp-broker start` command, one of the two. The password is never
# on a command line or in a log: nfmp-broker hands it to the broker in a file of mode 0600 in the data dir,
# deleted once the broker has read it. Without user, the connection is made without credentials.
user = oss
password_file = nfmp-password.txt
#password_env = NFMP_BRIDGE_PASSWORD

# NFM-P's client id of the bridge, name@ID (required): NFM-P's JMS client count, JmsMissedEvents and
# TerminateClientSession concern this id, which only the bridge may use (not the applications behind it).
client_id = oss1@1
# The durable subscription's name (default: the client id's name, then -bridge, e.g. oss1-bridge). A new
# name makes a new subscription; the old one keeps collecting on NFM-P until removed there.
#subscription_name = oss1-bridge
# NFM-P's topic: its JNDI name, or its name when the JNDI has none by that name.
#topic = {DEFAULT_TOPIC}
# The subscription's selector, evaluated on NFM-P's server (default: Nokia's basic selector for client_id,
# its own and broadcast events and always the system events):
#selector = ALA_clientId in ('oss1@1','') OR MTOSI_objectType in
#    ('KeepAliveEvent','StateChangeEvent','TerminateClientSession')
# The local topic the messages are re-published to (default: VirtualTopic.<topic>, the last part of the
# topic's name; only a VirtualTopic.* topic has the per-application queues).
#local_topic = VirtualTopic.{DEFAULT_TOPIC}

# A folder with the Java client jars of your NFM-P release (its JMS and JNDI client): linked into the data
# dir's lib/, which the broker puts on its class path before its own jars. NFM-P's current (WildFly) client
# needs the JMS 2.0 API, while Debian's ActiveMQ package ships the JMS 1.1 API: put a JMS 2.0 API jar
# (e.g. jakarta.jms-api 2.0.x, or the one of NFM-P's client) into this folder too, so that it comes first.
jars = nfmp-client-jars
# Seconds between reconnect attempts to NFM-P's JMS server (a fixed delay).
#reconnect_delay = {DEFAULT_RECONNECT_DELAY:g}

# Optional: more JNDI environment entries, as they are (key = value, case kept); the factory, URL, user
# and password come from the settings above. For a WildFly client, for example:
#[{JNDI_SECTION}]
#jboss.naming.client.ejb.context = true
#java.naming.factory.url.pkgs = org.jboss.ejb.client.naming
"""


@dataclasses.dataclass(frozen=True)
class BridgeConfig:
    """A JMS bridge from NFM-P's JMS server into the broker, as read from a --bridge file."""

    file: Path
    """The file it was read from."""
    provider_url: str
    initial_context_factory: str
    context: str
    """The JNDI context of the connection factory ("" for none)."""
    connection_factory: str
    user: str | None
    """None: the connection is made without credentials."""
    password: str | None = dataclasses.field(repr=False, compare=False)
    """The password, from the file's password_file or password_env (never shown)."""
    client_id: str
    subscription_name: str
    topic: str
    selector: str
    local_topic: str
    jars: Path | None
    """The folder of Java client jars to put on the broker's class path."""
    reconnect_delay: float
    """Seconds."""
    jndi: tuple[tuple[str, str], ...]
    """More JNDI environment entries, verbatim."""

    @property
    def connection_factory_name(self) -> str:
        """The connection factory's JNDI name: ``<context>/<connection_factory>``."""
        return f"{self.context}/{self.connection_factory}" if self.context else self.connection_factory

    def settings(self) -> dict[str, str]:
        """Return the entries of BRIDGE_PROPERTIES, what ACTIVEMQ_XML's bridge reads: #{nfmpBridge['key']}."""
        entries = {
            "connection_factory": self.connection_factory_name,
            "client_id": self.client_id,
            "subscription_name": self.subscription_name,
            "topic": self.topic,
            "local_topic": self.local_topic,
            "selector": self.selector,
            "reconnect_delay_ms": str(max(1, round(self.reconnect_delay * 1000))),
        }
        if self.user is not None:  # absent, not empty: a null user makes a connection without credentials
            entries["user"] = self.user
        if self.password is not None:
            entries["password"] = self.password
        return entries

    def jndi_environment(self) -> dict[str, str]:
        """Return the entries of BRIDGE_JNDI_PROPERTIES: the upstream server's JNDI environment."""
        entries = {
            "java.naming.factory.initial": self.initial_context_factory,
            "java.naming.provider.url": self.provider_url,
        }
        if self.user is not None:
            entries["java.naming.security.principal"] = self.user
        if self.password is not None:
            entries["java.naming.security.credentials"] = self.password
        entries.update(self.jndi)
        return entries


def default_selector(client_id: str) -> str:
    """Return Nokia's basic selector for `client_id`: its own and broadcast events, always the system events.

    The same text as nfmp_client's ``build_selector(client_id)``.
    """
    system = ",".join(f"'{object_type}'" for object_type in SYSTEM_OBJECT_TYPES)
    return f"ALA_clientId in ('{client_id}','') OR MTOSI_objectType in ({system})"


class _IniParser(configparser.ConfigParser):
    """An INI parser for --bridge files: keys keep their case, no interpolation, no DEFAULT section.

    JNDI keys such as connectionFactoryNames need their case; '%' in a selector's LIKE pattern is text.
    """

    def __init__(self) -> None:
        super().__init__(interpolation=None, default_section="nfmp-broker:none", strict=True)

    def optionxform(self, optionstr: str) -> str:
        return optionstr


def _bridge_error(path: Path, section: str, key: str, problem: str) -> BrokerError:
    return BrokerError(f"bridge file {path}: [{section}] {key}: {problem}", EXIT_USAGE)


def _read_ini(path: Path) -> tuple[dict[str, str], tuple[tuple[str, str], ...]]:
    """Return the [nfmp] and [jndi] entries of the INI file `path`, unknown sections and keys refused."""
    where = f"bridge file {path}"
    parser = _IniParser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BrokerError(f"{where}: no such file", EXIT_USAGE) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BrokerError(f"{where}: cannot read it: {exc}", EXIT_USAGE) from None
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        raise BrokerError(f"{where}: not a valid INI file: {exc}".rstrip(), EXIT_USAGE) from None
    sections = (BRIDGE_SECTION, JNDI_SECTION)
    unknown = [name for name in parser.sections() if name not in sections]
    if unknown:
        known = ", ".join(f"[{name}]" for name in sections)
        raise BrokerError(f"{where}: unknown section [{unknown[0]}] (sections: {known})", EXIT_USAGE)
    if not parser.has_section(BRIDGE_SECTION):
        raise BrokerError(f"{where}: no [{BRIDGE_SECTION}] section", EXIT_USAGE)
    settings = dict(parser.items(BRIDGE_SECTION))
    for key in settings:
        if key not in BRIDGE_KEYS:
            close = difflib.get_close_matches(key, BRIDGE_KEYS, n=1)
            hint = f"did you mean {close[0]}?" if close else f"keys: {', '.join(BRIDGE_KEYS)}"
            raise _bridge_error(path, BRIDGE_SECTION, key, f"unknown key ({hint})")
    jndi = tuple(parser.items(JNDI_SECTION)) if parser.has_section(JNDI_SECTION) else ()
    for key, entry in jndi:
        if key in JNDI_FROM_SETTINGS:
            problem = f"set by [{BRIDGE_SECTION}] {JNDI_FROM_SETTINGS[key]}, not here"
            raise _bridge_error(path, JNDI_SECTION, key, problem)
        if "\n" in entry:
            raise _bridge_error(path, JNDI_SECTION, key, "must be on one line")
    return settings, jndi


def _read_password(
    path: Path, user: str | None, password_file: str | None, password_env: str | None, env: Mapping[str, str]
) -> str | None:
    """Return the password the bridge file names (None: none), checked against `user`."""

    def bad(key: str, problem: str) -> BrokerError:
        return _bridge_error(path, BRIDGE_SECTION, key, problem)

    password: str | None = None
    if password_file is not None and password_env is not None:
        raise bad("password_file", "give password_file or password_env, not both")
    if password_file is not None:
        secret = path.parent / os.path.expanduser(password_file)  # an absolute path stays as it is
        try:
            lines = secret.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise bad("password_file", f"no such file: {secret}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise bad("password_file", f"cannot read {secret}: {exc}") from None
        password = lines[0] if lines else ""
        if not password:
            raise bad("password_file", f"{secret} is empty (the password is its first line)")
    elif password_env is not None:
        if not ENV_NAME.fullmatch(password_env):
            raise bad("password_env", f"{password_env!r} is not an environment variable name")
        password = env.get(password_env, "")
        if not password:
            raise bad("password_env", f"the environment variable {password_env} is not set (or is empty)")
    if user is None and password is not None:
        raise bad("user", "missing: a password is given, for which user?")
    if user is not None and password is None:
        raise bad("password_file", f"missing: user {user!r} needs password_file or password_env")
    return password


def read_bridge_file(path: Path, environ: Mapping[str, str] | None = None) -> BridgeConfig:
    """Read and check a --bridge file; the password from its password_file or from `environ` (password_env).

    Raises:
        BrokerError: Exit code 2, naming the file and the key at fault: a missing or unknown key, a bad value,
            a missing password file or variable.
    """
    raw, jndi = _read_ini(path)

    def bad(key: str, problem: str) -> BrokerError:
        return _bridge_error(path, BRIDGE_SECTION, key, problem)

    def value(key: str, default: str = "", pattern: re.Pattern[str] | None = None, what: str = "") -> str:
        if key not in raw:
            return default
        text = raw[key].strip()
        if key == "selector":  # on continuation lines, maybe
            text = " ".join(line.strip() for line in text.splitlines() if line.strip())
        elif "\n" in text:
            raise bad(key, "must be on one line")
        if not text and key != "context":  # an empty context: the factory's name alone
            raise bad(key, "is empty (leave the key out for its default)")
        if pattern is not None and not pattern.fullmatch(text):
            raise bad(key, f"{text!r} is not {what}")
        return text

    provider_url = re.sub(r"\s*,\s*", ",", value("provider_url"))
    if not provider_url:
        raise bad("provider_url", "missing (the JNDI provider URL of NFM-P's JMS server)")
    if re.search(r"\s", provider_url):
        raise bad("provider_url", f"{provider_url!r} holds white space (URLs are separated by commas alone)")
    no_space = re.compile(r"\S*")
    user = value("user") or None
    client_id = value(
        "client_id", "", CLIENT_ID, "a client id of the form name@ID (letters, digits, _ . - :)"
    )
    if not client_id:
        raise bad("client_id", "missing (NFM-P's client id of the bridge, name@ID)")
    topic = value("topic", DEFAULT_TOPIC, TOPIC_NAME, "a topic name")
    jars: Path | None = None
    if "jars" in raw:
        jars = path.parent / os.path.expanduser(value("jars"))  # an absolute path stays as it is
        if not jars.is_dir():
            raise bad("jars", f"{jars} is not a folder")
        if not any(jars.glob("*.jar")):
            raise bad("jars", f"{jars} holds no .jar files")
    delay = value("reconnect_delay", str(DEFAULT_RECONNECT_DELAY))
    try:
        reconnect_delay = float(delay)
    except ValueError:
        raise bad("reconnect_delay", f"{delay!r} is not a number of seconds") from None
    if not 0.1 <= reconnect_delay <= 3600:
        raise bad("reconnect_delay", f"{delay} is not between 0.1 and 3600 seconds")
    return BridgeConfig(
        file=path,
        provider_url=provider_url,
        initial_context_factory=value(
            "initial_context_factory", DEFAULT_INITIAL_CONTEXT_FACTORY, JAVA_CLASS, "a Java class name"
        ),
        context=value("context", DEFAULT_JNDI_CONTEXT, no_space, "a JNDI name").strip("/"),
        connection_factory=value(
            "connection_factory", DEFAULT_CONNECTION_FACTORY, re.compile(r"[^\s/]\S*"), "a JNDI name"
        ).strip("/"),
        user=user,
        password=_read_password(
            path, user, value("password_file") or None, value("password_env") or None, _environ(environ)
        ),
        client_id=client_id,
        subscription_name=value(
            "subscription_name",
            client_id.partition("@")[0] + "-bridge",
            SUBSCRIPTION_NAME,
            "a subscription name (letters, digits, _ . - : @)",
        ),
        topic=topic,
        selector=value("selector", default_selector(client_id)),
        local_topic=value(
            "local_topic",
            VIRTUAL_TOPIC_PREFIX + topic.rpartition("/")[2],
            LOCAL_TOPIC_NAME,
            "a topic name without wildcards",
        ),
        jars=jars,
        reconnect_delay=reconnect_delay,
        jndi=jndi,
    )


def java_properties(entries: Mapping[str, str], comment: str) -> str:
    """Return `entries` as a Java .properties file (ASCII, with Java's escapes), `comment` on top."""

    def escape(text: str, *, key: bool) -> str:
        out = []
        for index, char in enumerate(text):
            if char in "\\=:#!":
                out.append("\\" + char)
            elif char == " " and (key or index == 0):
                out.append("\\ ")
            elif char in "\t\n\r\f":
                out.append({"\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f"}[char])
            elif " " <= char <= "~":
                out.append(char)
            else:  # outside printable ASCII: UTF-16 code units, as Properties.load reads them
                units = char.encode("utf-16-be")
                out.extend(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2))
        return "".join(out)

    ascii_comment = comment.encode("ascii", "backslashreplace").decode("ascii")  # a path may be non-ASCII
    lines = [f"# {line}".rstrip() for line in ascii_comment.splitlines()]
    lines += [f"{escape(key, key=True)}={escape(value, key=False)}" for key, value in entries.items()]
    return "\n".join(lines) + "\n"


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by its owner only (mode 0600 from the start; atomic rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp makes it 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_bridge_files(bridge: BridgeConfig, data: Path) -> None:
    """Write BRIDGE_PROPERTIES and BRIDGE_JNDI_PROPERTIES (mode 0600: they hold the password) into `data`."""
    note = (
        f"Written by nfmp-broker from {bridge.file} for the broker of this data dir to read at start-up; "
        "deleted once it has.\nMode 0600: it holds the password."
    )
    write_private(data / BRIDGE_PROPERTIES, java_properties(bridge.settings(), note))
    write_private(data / BRIDGE_JNDI_PROPERTIES, java_properties(bridge.jndi_environment(), note))


def remove_bridge_files(data: Path) -> None:
    """Delete the bridge's properties files (the broker reads them once, at start-up)."""
    for name in (BRIDGE_PROPERTIES, BRIDGE_JNDI_PROPERTIES):
        with contextlib.suppress(FileNotFoundError):
            (data / name).unlink()


def link_jars(data: Path, jars: Path | None) -> list[Path]:
    """Make LIB_DIR hold links to the jars of `jars` (None: none) instead of those linked last time.

    Only the links this script made (listed in LIB_LINKS) are replaced: jars put into LIB_DIR by hand stay.
    Returns the links made.
    """
    lib = data / LIB_DIR
    listing = lib / LIB_LINKS
    with contextlib.suppress(FileNotFoundError):
        for name in listing.read_text().splitlines():
            link = lib / name
            if name and os.sep not in name and link.is_symlink():
                link.unlink()
        listing.unlink()
    if jars is None:
        return []
    made = []
    try:
        lib.mkdir(exist_ok=True)
        for jar in sorted(jars.glob("*.jar")):
            link = lib / jar.name
            if link.exists() or link.is_symlink():
                say(f"{link} exists (put there by hand): not linking {jar}")
                continue
            link.symlink_to(jar.resolve())
            made.append(link)
        listing.write_text("".join(f"{link.name}\n" for link in made))
    except OSError as exc:
        raise BrokerError(f"cannot link the bridge's jars into {lib}: {exc}") from None
    return made


# ---------------------------------------------------------------------------------------------- install


@dataclasses.dataclass(frozen=True)
class Installation:
    """What a broker runs with: a java, an ActiveMQ Classic installation, and the jars its lib/ lacks."""

    java: str
    """The java binary."""
    home: Path
    """The ActiveMQ Classic installation: the folder that holds bin/activemq.jar."""
    extra_jars: tuple[Path, ...]
    """Jars the broker needs that ``home/lib`` lacks (Debian's xstream and jettison), for its class path."""
    jms_api_jar: Path | None
    """The JMS API jar for AmqAdmin's class path (None: not found; AmqAdmin works without it)."""

    @property
    def run_jar(self) -> Path:
        """ActiveMQ's launcher, ``home/bin/activemq.jar``."""
        return self.home / RUN_JAR


@dataclasses.dataclass(frozen=True)
class _Survey:
    """What was found of an installation, and what is missing (one phrase each)."""

    java: str | None
    home: Path | None
    extra_jars: tuple[Path, ...]
    missing: tuple[str, ...]
    override: str | None  # "NAME=value" of the environment variable that chose the home, if one did


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def find_java(environ: Mapping[str, str] | None = None) -> str | None:
    """Return the java to use: ``$JAVA_HOME/bin/java`` when JAVA_HOME names a Java, else java on PATH."""
    java_home = _environ(environ).get("JAVA_HOME", "").strip()
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("java")


def _home_override(environ: Mapping[str, str]) -> tuple[str, Path] | None:
    for name in HOME_VARIABLES:
        value = environ.get(name, "").strip()
        if value:
            return name, Path(os.path.expanduser(value))
    return None


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.name))


def candidate_homes(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Return where an ActiveMQ installation is looked for, in order (only the override when one is set)."""
    override = _home_override(_environ(environ))
    if override is not None:
        return [override[1]]
    folder, pattern = KNOWN_HOME_GLOBS
    unpacked = sorted(folder.glob(pattern), key=_version_key, reverse=True)  # the newest first
    return [*KNOWN_HOMES, *unpacked]


def find_home(environ: Mapping[str, str] | None = None) -> Path | None:
    """Return the first ActiveMQ installation (a folder with bin/activemq.jar) of candidate_homes()."""
    return next((home for home in candidate_homes(environ) if (home / RUN_JAR).is_file()), None)


def _lib_jars(home: Path) -> list[Path]:
    """Return the jars ActiveMQ's launcher puts on the class path: those of <home>/lib and its folders."""
    lib = home / "lib"
    return sorted([*lib.glob("*.jar"), *lib.glob("*/*.jar")])


def _has_jar(jars: Sequence[Path], stem: str) -> bool:
    pattern = re.compile(rf"{re.escape(stem)}(-[0-9][^/]*)?\.jar")
    return any(pattern.fullmatch(jar.name) for jar in jars)


def find_jms_api_jar(environ: Mapping[str, str] | None = None) -> Path | None:
    """Return a JMS API jar for AmqAdmin's class path: from the installation's lib/, else Debian's."""
    home = find_home(environ)
    if home is not None:
        jars = _lib_jars(home)
        for pattern in JMS_API_JARS:
            found = [jar for jar in jars if jar.match(pattern)]
            if found:
                return found[0]
    debian = SHARE_JAVA / "geronimo-jms_1.1_spec.jar"
    return debian if debian.is_file() else None


def _survey(environ: Mapping[str, str] | None = None) -> _Survey:
    env = _environ(environ)
    java = find_java(env)
    home = find_home(env)
    override = _home_override(env)
    missing: list[str] = []
    if java is None:
        missing.append("java (a Java 11+ runtime: java on PATH, or JAVA_HOME)")
    extra: list[Path] = []
    if home is None:
        if override is not None:
            name, value = override
            missing.append(f"ActiveMQ: {name}={value} has no {RUN_JAR}")
        else:
            places = ", ".join(str(path) for path in candidate_homes(env)) or "none"
            missing.append(
                f"ActiveMQ Classic 5.x ({RUN_JAR} in none of: {places}; or set NFMP_ACTIVEMQ_HOME)"
            )
    else:
        jars = _lib_jars(home)
        for stem in ADVISORY_JARS:
            if _has_jar(jars, stem):
                continue
            shared = SHARE_JAVA / f"{stem}.jar"
            if shared.is_file():
                extra.append(shared)
            else:
                missing.append(f"the {stem} jar (neither a {stem}-*.jar under {home / 'lib'} nor {shared})")
    return _Survey(
        java=java,
        home=home,
        extra_jars=tuple(extra),
        missing=tuple(missing),
        override=None if override is None else f"{override[0]}={override[1]}",
    )


def _installation(survey: _Survey, environ: Mapping[str, str] | None = None) -> Installation:
    if survey.missing or survey.java is None or survey.home is None:
        raise BrokerError(f"missing: {'; '.join(survey.missing)}\n{_how_to_install()}")
    return Installation(
        java=survey.java,
        home=survey.home,
        extra_jars=survey.extra_jars,
        jms_api_jar=find_jms_api_jar(environ),
    )


def _how_to_install() -> str:
    prog = _INVOCATION.prog
    return (
        f"{prog} needs Java 11+ and ActiveMQ Classic 5.x. On Debian or Ubuntu, `{prog} install` installs "
        f"both (the package '{APT_PACKAGE}'). Elsewhere: install a Java runtime (java on PATH, or "
        "JAVA_HOME), unpack Apache's ActiveMQ Classic 5.x binary distribution, and set NFMP_ACTIVEMQ_HOME "
        f"to its folder (the one with {RUN_JAR}). See `{prog} --help`."
    )


def find_installation(environ: Mapping[str, str] | None = None) -> Installation:
    """Return the java and ActiveMQ installation a broker runs with.

    Raises:
        BrokerError: Something is missing; the message names each missing part and how to get it.
    """
    return _installation(_survey(environ), environ)


def ensure_installed(*, verbose: bool = False) -> Installation:
    """Return the installation; first install Debian's `activemq` (which brings java) if parts are missing.

    apt-get is used only where it exists and no NFMP_ACTIVEMQ_HOME or ACTIVEMQ_HOME chose an installation.
    """
    survey = _survey()
    if not survey.missing:
        installation = _installation(survey)
        if verbose:
            chosen = f" (from {survey.override})" if survey.override else ""
            say(f"ActiveMQ: {installation.home}{chosen}")
            say(f"java: {installation.java}")
            if installation.extra_jars:
                say("added to the broker's class path: " + ", ".join(map(str, installation.extra_jars)))
            say(f"JMS API jar for admin: {installation.jms_api_jar or 'none found (optional)'}")
        return installation
    missing = "; ".join(survey.missing)
    commands = [
        ["apt-get", "update"],
        ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", APT_PACKAGE],
    ]
    manual = "sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y " + APT_PACKAGE
    if survey.override is not None:
        raise BrokerError(f"missing: {missing}\n{_how_to_install()}")
    if shutil.which("apt-get") is None:
        raise BrokerError(f"missing: {missing}\nThis is not a Debian or Ubuntu machine: {_how_to_install()}")
    if os.geteuid() == 0:
        prefix: list[str] = []
    elif shutil.which("sudo") is not None:
        prefix = ["sudo", "-n"]
    else:
        raise BrokerError(f"missing: {missing}; install ActiveMQ as root with:\n  {manual}")
    say(f"missing: {missing}")
    say(f"installing the Debian package '{APT_PACKAGE}' (about 30 s)...")
    started = time.monotonic()
    for command in commands:
        full = prefix + command
        try:
            proc = subprocess.Popen(
                full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        except OSError as exc:
            raise BrokerError(f"cannot run {' '.join(full)}: {exc}; install by hand:\n  {manual}") from None
        for line in proc.stdout or ():
            say("  " + line.rstrip("\n"))
        if proc.wait() != 0:
            hint = " (sudo needs a password here)" if prefix else ""
            raise BrokerError(
                f"{' '.join(full)} failed with exit code {proc.returncode}{hint}; install by hand with:\n"
                f"  {manual}"
            )
    survey = _survey()
    if survey.missing:
        raise BrokerError(f"still missing after installing '{APT_PACKAGE}': {'; '.join(survey.missing)}")
    say(f"installed '{APT_PACKAGE}' in {time.monotonic() - started:.1f} s")
    return _installation(survey)


# ------------------------------------------------------------------------------------ processes and state


@dataclasses.dataclass(frozen=True)
class Running:
    """A live broker process started by this script for a given data dir, as seen on its command line."""

    pid: int
    stomp_port: int
    jmx_port: int
    tls_port: int | None
    tls_client_auth: bool
    link_stealing: bool
    pending_limit: int
    heap: str
    started_at: str | None
    openwire_port: int | None = None
    network_to: str | None = None
    network_inactivity: int = DEFAULT_NETWORK_INACTIVITY
    bridge: str | None = None  # the --bridge file

    @property
    def jmx_url(self) -> str:
        return jmx_url(self.jmx_port)


def read_cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [os.fsdecode(arg) for arg in raw.split(b"\0")[:-1]]  # empty for zombies and kernel threads


def system_properties(argv: Sequence[str]) -> dict[str, str]:
    props = {}
    for arg in argv:
        if arg.startswith("-D") and "=" in arg:
            key, _, value = arg[2:].partition("=")
            props[key] = value
    return props


def is_our_broker(argv: Sequence[str] | None, data: Path | None = None) -> bool:
    """Tell whether `argv` is a java broker started by this module (for `data`, if given)."""
    if not argv or os.path.basename(argv[0]) != "java" or IDENTITY_PROP not in argv:
        return False
    return data is None or f"-Dactivemq.data={data}" in argv


def running_from_argv(pid: int, argv: Sequence[str], started_at: str | None) -> Running:
    props = system_properties(argv)
    heap = next((arg[4:] for arg in argv if arg.startswith("-Xmx")), "?")
    return Running(
        pid=pid,
        stomp_port=int(props.get("stomp.port", "0")),
        jmx_port=int(props.get("jmx.port", "0")),
        tls_port=int(props["tls.port"]) if "tls.port" in props else None,
        tls_client_auth=props.get("tls.client.auth") == "true",
        link_stealing=props.get("link.stealing") == "true",
        pending_limit=int(props.get("pending.limit", "0")),
        heap=heap,
        started_at=started_at,
        openwire_port=int(props["openwire.port"]) if "openwire.port" in props else None,
        network_to=props.get("network.to"),
        network_inactivity=int(props.get("network.inactivity", DEFAULT_NETWORK_INACTIVITY)),
        bridge=props.get("nfmp.bridge"),
    )


def all_pids() -> Iterator[int]:
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


def read_state(data: Path) -> dict[str, object] | None:
    try:
        state = json.loads((data / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def write_state(data: Path, state: dict[str, object]) -> None:
    """Write broker.json atomically (temp file in the same dir, fsync, rename)."""
    fd, tmp = tempfile.mkstemp(prefix=".broker.json.", dir=data)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w") as f:
            json.dump(state, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, data / STATE_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def remove_state(data: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (data / STATE_FILE).unlink()


def find_running(data: Path) -> Running | None:
    """Return the live broker of `data`, None if none runs.

    The pid in broker.json if its command line is really ours, else a scan of /proc (finds a broker whose
    broker.json was lost, e.g. when `start` itself was killed).
    """
    state = read_state(data) or {}
    pid = state.get("pid")
    if isinstance(pid, int):
        argv = read_cmdline(pid)
        if argv is not None and is_our_broker(argv, data):
            started_at = state.get("started_at")
            return running_from_argv(pid, argv, started_at if isinstance(started_at, str) else None)
    for other in all_pids():
        argv = read_cmdline(other)
        if argv is not None and is_our_broker(argv, data):
            return running_from_argv(other, argv, None)
    return None


def broker_using_port(port: int) -> tuple[int, str] | None:
    """(pid, data dir) of a broker of this script that uses `port` (STOMP, STOMP over TLS, OpenWire, JMX)."""
    names = ("stomp.port", "tls.port", "jmx.port", "openwire.port")
    for pid in all_pids():
        argv = read_cmdline(pid)
        if argv is not None and is_our_broker(argv):
            props = system_properties(argv)
            if str(port) in (props.get(name) for name in names):
                return pid, props.get("activemq.data", "?")
    return None


def process_alive(pid: int) -> bool:
    """Tell whether `pid` exists and is not a zombie (an orphaned broker is one until init reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


# ---------------------------------------------------------------------------------------------- network


def stomp_answers(port: int, timeout: float = PROBE_TIMEOUT, tls: ssl.SSLContext | None = None) -> bool:
    """Tell whether a STOMP 1.2 CONNECT on 127.0.0.1:`port` is answered with CONNECTED.

    Over TLS with the context `tls` when given.
    """
    try:
        with contextlib.ExitStack() as stack:
            sock = stack.enter_context(socket.create_connection((HOST, port), timeout=timeout))
            if tls is not None:
                sock = stack.enter_context(tls.wrap_socket(sock, server_hostname=HOST))
            sock.sendall(b"CONNECT\naccept-version:1.2\nhost:localhost\n\n\x00")
            reply = b""
            while b"\x00" not in reply and len(reply) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
            if not reply.lstrip(b"\r\n").startswith(b"CONNECTED"):
                return False
            with contextlib.suppress(OSError):
                sock.sendall(b"DISCONNECT\n\n\x00")
            return True
    except OSError:
        return False


def _accepts_connections(port: int) -> bool:
    """Whether something on HOST accepts a connection to `port`.

    The probe never connects from `port` itself: a free port of the ephemeral range, picked by the kernel as
    the probe's own, would "accept" (TCP's simultaneous open) and then sit in TIME_WAIT, unusable for the
    broker for a minute.
    """
    for _ in range(5):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((HOST, 0))
            if probe.getsockname()[1] == port:
                continue  # the kernel picked the port probed: another one
            probe.settimeout(1.0)
            try:
                probe.connect((HOST, port))
            except OSError:
                return False
            return True
    return False


def port_problem(port: int, bind_host: str) -> str | None:
    """Say why the broker could not listen on `port` (None if it can).

    Something accepts connections there, or binding fails the way it will for the broker (java sets
    SO_REUSEADDR, so TIME_WAIT does not count).
    """
    if _accepts_connections(port):
        return "is already in use (it accepts connections)"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((bind_host, port))
        except OSError as exc:
            return "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound: {exc.strerror}"
    return None


def check_ports(settings: Settings, data: Path) -> None:
    checks = [
        ("STOMP", settings.port, HOST, "--port PORT or NFMP_BROKER_PORT"),
        # RMI's registry binds all interfaces: check the port the way it will be bound (nothing listens here)
        ("JMX", settings.jmx_port, "0.0.0.0", "--jmx-port PORT or NFMP_BROKER_JMX_PORT"),  # noqa: S104
    ]
    if settings.tls_port is not None:
        checks.append(("TLS", settings.tls_port, HOST, "--tls-port PORT or NFMP_BROKER_TLS_PORT"))
    if settings.openwire_port is not None:
        checks.append(
            ("OpenWire", settings.openwire_port, HOST, "--openwire-port PORT or NFMP_BROKER_OPENWIRE_PORT")
        )
    for what, port, bind_host, how in checks:
        problem = port_problem(port, bind_host)
        if problem is None:
            continue
        owner = broker_using_port(port)
        who = f"the nfmp broker pid {owner[0]} of data dir {owner[1]}" if owner else "another program"
        raise BrokerError(
            f"cannot start the broker for {data}: {what} port {port} on {HOST} {problem}, by {who}. "
            f"Pick another port with {how}, or stop what uses it."
        )


# ------------------------------------------------------------------------------------------- data dir


def check_owned(data: Path) -> None:
    """Refuse data dirs that exist but were not created by this script."""
    if data.is_dir() and not (data / MARKER).exists():
        raise BrokerError(
            f"{data} was not created by {_INVOCATION.prog} (no {MARKER} marker file); "
            "refusing to use or delete it. Choose another --data directory (a new or empty one)."
        )


def prepare_data_dir(data: Path) -> None:
    """Create `data` (with its marker) or accept it if it is ours or empty."""
    if data.exists() and not data.is_dir():
        raise BrokerError(f"--data {data} exists and is not a directory")
    if data.is_dir() and not (data / MARKER).exists() and any(data.iterdir()):
        check_owned(data)
    try:
        (data / "tmp").mkdir(parents=True, exist_ok=True)
        marker = data / MARKER
        if not marker.exists():
            marker.write_text(
                "Data directory of the nfmp_client dev/test ActiveMQ broker, created by nfmp-broker.\n"
                "`nfmp-broker wipe` (or scripts/broker wipe) deletes the broker's data only in directories "
                "holding this file.\n"
            )
    except OSError as exc:
        raise BrokerError(f"cannot create the data directory {data}: {exc}") from None


@contextlib.contextmanager
def data_lock(data: Path) -> Iterator[None]:
    """Serialise start/stop/restart/wipe/fg on one data dir (flock on broker.lock; never inherited)."""
    try:
        fd = os.open(data / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise BrokerError(f"cannot open the lock file in {data}: {exc}") from None
    try:
        deadline = time.monotonic() + LOCK_WAIT
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BrokerError(
                        f"another {_INVOCATION.prog} command still holds {data / LOCK_FILE} "
                        f"after {LOCK_WAIT:.0f} s"
                    ) from None
                if not told:
                    say(f"waiting for another {_INVOCATION.prog} command working on {data}...")
                    told = True
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)


def console_tail(data: Path, lines: int = 30) -> str:
    try:
        text = (data / CONSOLE_LOG).read_text(errors="replace")
    except OSError as exc:
        return f"(no {CONSOLE_LOG}: {exc.strerror})"
    tail = text.splitlines()[-lines:]
    return "\n".join(f"  | {line}" for line in tail) if tail else f"  ({CONSOLE_LOG} is empty)"


# ------------------------------------------------------------------------------------------------ TLS


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """The TLS test material of a data dir (TLS_DIR): PEM files for clients, PKCS12 stores for the broker."""

    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def client_cert(self) -> Path:
        return self.dir / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.dir / "client.key"

    @property
    def keystore(self) -> Path:
        return self.dir / "broker.p12"  # the name ACTIVEMQ_XML's sslContext uses

    @property
    def truststore(self) -> Path:
        return self.dir / "truststore.p12"  # likewise

    def complete(self) -> bool:
        needed = (self.ca, self.client_cert, self.client_key, self.keystore, self.truststore)
        return all(path.is_file() for path in needed)

    def client_context(self) -> ssl.SSLContext:
        """Return a client context that trusts only the test CA and shows the client certificate."""
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


def keytool_binary() -> str | None:
    """Return keytool on PATH, else the one beside the real java binary (Debian's /usr/lib/jvm/*/bin)."""
    found = shutil.which("keytool")
    java = find_java()
    if found is None and java is not None:
        beside = Path(java).resolve().parent / "keytool"
        found = str(beside) if beside.exists() else None
    return found


def run_tool(command: list[str], what: str) -> None:
    program = " ".join(command[:2])  # e.g. "/usr/bin/openssl req"
    try:
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=TLS_COMMAND_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerError(f"cannot {what}: {program}: {exc}") from None
    if result.returncode != 0:
        output = "\n".join(f"  | {line}" for line in result.stdout.splitlines()[-15:])
        raise BrokerError(f"cannot {what}: {program} exited with code {result.returncode}:\n{output}")


def make_tls_files(data: Path) -> TlsFiles:
    """Return the data dir's TLS material, made first if any part is missing.

    A test CA, a broker and a client certificate it signed, the broker's key and trust stores. Called with
    the data dir locked.
    """
    tls = TlsFiles(data / TLS_DIR)
    if tls.complete():
        return tls
    openssl, keytool = shutil.which("openssl"), keytool_binary()
    if openssl is None:
        raise BrokerError("TLS needs openssl to make its test certificates: apt-get install openssl")
    if keytool is None:
        raise BrokerError(
            "TLS needs java's keytool for the broker's trust store: apt-get install default-jre-headless"
        )
    started = time.monotonic()
    # Made in a fresh directory, then renamed into place: an interrupted run leaves no half-made TLS_DIR.
    work = Path(tempfile.mkdtemp(prefix=".tls.", dir=data))
    try:
        cnf = work / "openssl.cnf"
        cnf.write_text(OPENSSL_CNF)
        days = str(TLS_DAYS)
        run_tool(
            [
                *(openssl, "req", "-x509", "-config", str(cnf), "-extensions", "ca_ext", "-newkey", TLS_KEY),
                *("-nodes", "-keyout", str(work / "ca.key"), "-out", str(work / "ca.pem")),
                *("-days", days, "-subj", "/CN=nfmp-dev test CA"),
            ],
            "make the test CA",
        )
        for name, subject in (("broker", f"/CN={TLS_HOST_NAME}"), ("client", "/CN=nfmp-dev client")):
            key, csr, cert = (work / f"{name}.{ext}" for ext in ("key", "csr", "pem"))
            run_tool(
                [
                    *(openssl, "req", "-new", "-config", str(cnf), "-newkey", TLS_KEY, "-nodes"),
                    *("-keyout", str(key), "-out", str(csr), "-subj", subject),
                ],
                f"make the {name} key",
            )
            run_tool(
                [
                    *(openssl, "x509", "-req", "-in", str(csr), "-days", days),
                    *("-CA", str(work / "ca.pem"), "-CAkey", str(work / "ca.key")),
                    *("-set_serial", "0x" + os.urandom(16).hex(), "-out", str(cert)),
                    *("-extfile", str(cnf), "-extensions", f"{name}_ext"),
                ],
                f"sign the {name} certificate",
            )
            csr.unlink()
        password = f"pass:{TLS_STORE_PASSWORD}"
        run_tool(
            [
                *(openssl, "pkcs12", "-export", "-name", "broker", "-passout", password),
                *("-in", str(work / "broker.pem"), "-inkey", str(work / "broker.key")),
                *("-certfile", str(work / "ca.pem"), "-out", str(work / tls.keystore.name)),
            ],
            "make the broker's key store",
        )
        # A trust store must hold the CA as a trusted-certificate entry, which only keytool writes
        # (openssl pkcs12 -export makes key entries; its -jdktrust needs OpenSSL 3.2).
        run_tool(
            [
                *(keytool, "-importcert", "-noprompt", "-alias", "nfmp-dev-ca"),
                *("-file", str(work / "ca.pem"), "-keystore", str(work / tls.truststore.name)),
                *("-storetype", "PKCS12"),
                *("-storepass", TLS_STORE_PASSWORD),
            ],
            "make the broker's trust store",
        )
        cnf.unlink()
        for path in work.iterdir():
            path.chmod(0o600 if path.suffix in (".key", ".p12") else 0o644)
        work.chmod(0o755)
        if tls.dir.exists():
            say(f"replacing the incomplete {tls.dir}")
            shutil.rmtree(tls.dir)
        os.replace(work, tls.dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    say(f"made a test CA and TLS certificates in {tls.dir} in {time.monotonic() - started:.1f} s")
    return tls


def config_blocks(source: str) -> dict[str, str]:
    """Return the optional blocks of a configuration `source`: marker name -> the text inside its blocks.

    A block is the lines between ``<!--NAME-ONLY`` and ``NAME-ONLY-->``, each alone on its line.
    """
    blocks: dict[str, list[str]] = {}
    inside: str | None = None
    for number, line in enumerate(source.splitlines(keepends=True), 1):
        opening = re.fullmatch(r"<!--([A-Z]+-ONLY)", line.strip())
        closing = re.fullmatch(r"([A-Z]+-ONLY)-->", line.strip())
        if opening:
            if inside is not None:
                raise BrokerError(f"{ACTIVEMQ_XML}:{number}: <!--{opening[1]} inside a {inside} block")
            inside = opening[1]
            blocks.setdefault(inside, [])
        elif closing:
            if inside != closing[1]:
                raise BrokerError(f"{ACTIVEMQ_XML}:{number}: {closing[1]}--> closes no {closing[1]} block")
            inside = None
        elif inside is not None:
            blocks[inside].append(line)
    if inside is not None:
        raise BrokerError(f"{ACTIVEMQ_XML}: a {inside} block is never closed")
    return {name: "".join(lines) for name, lines in blocks.items()}


def render_config(parts: Sequence[str]) -> str:
    """Return ACTIVEMQ_XML less the marker lines of `parts`, which turns those optional blocks on."""
    source = ACTIVEMQ_XML.read_text()
    blocks = config_blocks(source)
    for part in parts:
        if BLOCK_CONTENT[part] not in blocks.get(part, ""):
            raise BrokerError(
                f"{ACTIVEMQ_XML} has no <!--{part} ... {part}--> block with {BLOCK_CONTENT[part]}"
            )
    markers = {f"<!--{part}" for part in parts} | {f"{part}-->" for part in parts}
    return "".join(line for line in source.splitlines(keepends=True) if line.strip() not in markers)


# ------------------------------------------------------------------------------------------------ java


def java_command(settings: Settings, data: Path, config: Path, installation: Installation) -> list[str]:
    """Return the broker's command line; `config` is ACTIVEMQ_XML, or RUN_XML with optional parts.

    It holds no password: the bridge's is in BRIDGE_PROPERTIES and BRIDGE_JNDI_PROPERTIES.
    """
    optional = []
    if settings.tls_port is not None:
        optional += [
            f"-Dtls.port={settings.tls_port}",
            f"-Dtls.client.auth={str(settings.tls_client_auth).lower()}",
            f"-Dtls.store.password={TLS_STORE_PASSWORD}",
        ]
    if settings.openwire_port is not None:
        optional.append(f"-Dopenwire.port={settings.openwire_port}")
    if settings.network_to is not None:
        optional += [
            f"-Dnetwork.to={settings.network_to}",
            f"-Dnetwork.inactivity={settings.network_inactivity}",
        ]
    if settings.bridge is not None:
        optional.append(f"-Dnfmp.bridge={settings.bridge.file}")  # for `status`; the broker reads the copies
    return [
        installation.java,
        "-Xms64m",
        f"-Xmx{settings.heap}",
        "-XX:+UseSerialGC",
        "-Djava.awt.headless=true",
        f"-Djava.io.tmpdir={data / 'tmp'}",
        "--add-reads=java.xml=java.logging",
        *("--add-opens", "java.base/java.security=ALL-UNNAMED"),
        *("--add-opens", "java.base/java.net=ALL-UNNAMED"),
        *("--add-opens", "java.base/java.lang=ALL-UNNAMED"),
        *("--add-opens", "java.base/java.util=ALL-UNNAMED"),
        *("--add-opens", "java.naming/javax.naming.spi=ALL-UNNAMED"),
        *("--add-opens", "java.rmi/sun.rmi.transport.tcp=ALL-UNNAMED"),
        *("--add-opens", "java.base/java.util.concurrent=ALL-UNNAMED"),
        *("--add-opens", "java.base/java.util.concurrent.atomic=ALL-UNNAMED"),
        f"-Dactivemq.home={installation.home}",
        f"-Dactivemq.base={data}",
        f"-Dactivemq.conf={CONF_DIR}",
        f"-Dactivemq.data={data}",
        "-Dactivemq.classpath=" + ":".join(str(p) for p in (CONF_DIR, *installation.extra_jars)),
        f"-Dlog4j.configuration=file:{LOG4J_PROPERTIES}",
        f"-Dlog4j2.configurationFile={LOG4J2_PROPERTIES}",
        f"-Djava.rmi.server.hostname={HOST}",
        f"-Dstomp.port={settings.port}",
        f"-Djmx.port={settings.jmx_port}",
        f"-Dwipe.on.start={str(settings.wipe).lower()}",
        f"-Dpending.limit={settings.pending_limit}",
        f"-Dlink.stealing={str(settings.link_stealing).lower()}",
        *optional,
        IDENTITY_PROP,
        *("-jar", str(installation.run_jar), "start", f"xbean:file:{config}"),
    ]


def prepare_config(settings: Settings, data: Path) -> Path:
    """Write what the broker of `settings` needs into `data`; return its configuration file.

    ACTIVEMQ_XML as it is, or with optional parts a fresh RUN_XML; with TLS also TLS_DIR (made once), with a
    bridge its properties files and the links to its jars. Called with the data dir locked.
    """
    parts = settings.optional_parts
    config = render_config(parts) if parts else None  # first: a broken configuration changes nothing
    remove_bridge_files(data)
    link_jars(data, settings.bridge.jars if settings.bridge is not None else None)
    if settings.wipe:  # the selectors of the queues' consumers go with the queues
        with contextlib.suppress(FileNotFoundError):
            (data / SELECTOR_CACHE).unlink()
    if settings.tls_port is not None:
        make_tls_files(data)
    if settings.bridge is not None:
        write_bridge_files(settings.bridge, data)
    target = data / RUN_XML
    if config is None:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        return ACTIVEMQ_XML
    target.write_text(config)
    return target


def tls_probe(data: Path) -> ssl.SSLContext:
    try:
        return TlsFiles(data / TLS_DIR).client_context()
    except OSError as exc:  # ssl.SSLError is one too
        raise BrokerError(f"cannot load the TLS client files of {data / TLS_DIR}: {exc}") from None


def describe(record: Mapping[str, object]) -> str:
    """Say where the broker of a `state_record` listens, in one line."""
    tls = record["tls"]
    tls_port = tls.get("port") if isinstance(tls, dict) else None
    openwire_port = record["openwire_port"]
    parts = [f"stomp://{HOST}:{record['stomp_port']}"]
    if tls_port is not None:
        parts.append(f"stomp+ssl://{HOST}:{tls_port}")
    if openwire_port is not None:
        parts.append(f"tcp://{HOST}:{openwire_port} (OpenWire)")
    return " and ".join(parts) + f" (pid {record['pid']}, jmx {record['jmx_port']}, data {record['data']})"


def state_record(
    pid: int,
    port: int,
    jmx_port: int,
    data: Path,
    *,
    tls_port: int | None,
    tls_client_auth: bool,
    openwire_port: int | None = None,
    network_to: str | None = None,
    network_inactivity: int = DEFAULT_NETWORK_INACTIVITY,
    bridge: str | None = None,
) -> dict[str, object]:
    tls = TlsFiles(data / TLS_DIR)
    return {
        "pid": pid,
        "stomp_port": port,
        "jmx_port": jmx_port,
        "jmx_url": jmx_url(jmx_port),
        "data": str(data),
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        # null without TLS; the PEM files are what a client needs (key and certificate only for client auth)
        "tls": None
        if tls_port is None
        else {
            "port": tls_port,
            "client_auth": tls_client_auth,
            "ca_file": str(tls.ca),
            "cert_file": str(tls.client_cert),
            "key_file": str(tls.client_key),
        },
        "openwire_port": openwire_port,  # null: no OpenWire connector
        # null without a link; else the other broker's host:port and the inactivity limit in ms
        "network": None if network_to is None else {"to": network_to, "inactivity_ms": network_inactivity},
        "bridge": bridge,  # the --bridge file, null without a bridge
    }


def running_record(running: Running, data: Path) -> dict[str, object]:
    """Return the broker.json record of `running`, as read from its command line."""
    return state_record(
        running.pid,
        running.stomp_port,
        running.jmx_port,
        data,
        tls_port=running.tls_port,
        tls_client_auth=running.tls_client_auth,
        openwire_port=running.openwire_port,
        network_to=running.network_to,
        network_inactivity=running.network_inactivity,
        bridge=running.bridge,
    )


def settings_record(settings: Settings, pid: int, data: Path) -> dict[str, object]:
    """Return the broker.json record of the broker `pid` started with `settings`."""
    return state_record(
        pid,
        settings.port,
        settings.jmx_port,
        data,
        tls_port=settings.tls_port,
        tls_client_auth=settings.tls_client_auth,
        openwire_port=settings.openwire_port,
        network_to=settings.network_to,
        network_inactivity=settings.network_inactivity,
        bridge=None if settings.bridge is None else str(settings.bridge.file),
    )


# ------------------------------------------------------------------------------------------- commands


def reuse_running(running: Running, settings: Settings, data: Path, timeout: float) -> None:
    """Accept the broker already running for `data` if it matches every explicitly requested setting."""
    wanted = {
        "port": ("STOMP port", settings.port, running.stomp_port),
        "jmx_port": ("JMX port", settings.jmx_port, running.jmx_port),
        "tls_port": ("TLS port", settings.tls_port or "none", running.tls_port or "none"),
        "tls_client_auth": ("TLS client auth", settings.tls_client_auth, running.tls_client_auth),
        "link_stealing": ("link stealing", settings.link_stealing, running.link_stealing),
        "pending_limit": ("pending limit", settings.pending_limit, running.pending_limit),
        "heap": ("heap", settings.heap, running.heap),
        "wipe": ("wipe", settings.wipe, False),
        "openwire_port": ("OpenWire port", settings.openwire_port or "none", running.openwire_port or "none"),
        "bridge": (
            "bridge",
            "none" if settings.bridge is None else str(settings.bridge.file),
            running.bridge or "none",
        ),
        "network_to": ("network link to", settings.network_to or "none", running.network_to or "none"),
        "network_inactivity": (
            "network inactivity (ms)",
            settings.network_inactivity,
            running.network_inactivity,
        ),
    }
    differences = [
        f"{label} {have} (requested {want})"
        for key, (label, want, have) in wanted.items()
        if key in settings.explicit and want != have
    ]
    if differences:
        raise BrokerError(
            f"the broker of {data} is already running (pid {running.pid}) with "
            + ", ".join(differences)
            + f"; use `{_INVOCATION.prog} restart` with your options to apply them"
        )
    started = time.monotonic()
    tls = tls_probe(data) if running.tls_port is not None else None
    while not (
        stomp_answers(running.stomp_port)
        and (running.tls_port is None or stomp_answers(running.tls_port, tls=tls))
    ):
        if not process_alive(running.pid) or time.monotonic() - started > timeout:
            ports = f"STOMP port {running.stomp_port}"
            if running.tls_port is not None:
                ports += f" or TLS port {running.tls_port}"
            raise BrokerError(
                f"the broker of {data} (pid {running.pid}) runs but {ports} does not answer; see "
                f"{data / CONSOLE_LOG} or run `{_INVOCATION.prog} restart`"
            )
        time.sleep(0.2)
    record = running_record(running, data)
    if (read_state(data) or {}).get("pid") != running.pid:  # broker.json lost: rebuild it
        write_state(data, record)
    say(f"reusing the running broker: {describe(record)}")


def start_locked(settings: Settings, data: Path, timeout: float, installation: Installation) -> None:
    running = find_running(data)
    if running is not None:
        reuse_running(running, settings, data, timeout)
        return
    remove_state(data)  # stale: its process is gone (or is no longer ours)
    check_ports(settings, data)
    config = prepare_config(settings, data)
    tls = tls_probe(data) if settings.tls_port is not None else None
    log_path = data / CONSOLE_LOG
    if log_path.exists():
        os.replace(log_path, data / (CONSOLE_LOG + ".1"))
    command = java_command(settings, data, config, installation)
    started = time.monotonic()
    with open(log_path, "ab") as log:
        try:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=data,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise BrokerError(f"cannot run {command[0]}: {exc}") from None
    try:
        while True:
            if proc.poll() is not None:
                raise BrokerError(
                    f"the broker (pid {proc.pid}) exited with code {proc.returncode} during start-up; "
                    f"last lines of {log_path}:\n{console_tail(data)}"
                )
            # TLS is checked with the CA and client certificate a client would use (the plain connector is
            # not a sign of the TLS one: each starts on its own)
            if stomp_answers(settings.port) and (
                settings.tls_port is None or stomp_answers(settings.tls_port, tls=tls)
            ):
                break
            if time.monotonic() - started > timeout:
                stop_process(proc.pid, data, DEFAULT_STOP_TIMEOUT, quiet=True)
                ports = f"port {settings.port}"
                if settings.tls_port is not None:
                    ports += f" and STOMP over TLS on port {settings.tls_port}"
                raise BrokerError(
                    f"the broker did not answer STOMP on {ports} within {timeout:g} s "
                    f"(stopped it again); last lines of {log_path}:\n{console_tail(data)}"
                )
            time.sleep(0.1)
    except KeyboardInterrupt:
        stop_process(proc.pid, data, DEFAULT_STOP_TIMEOUT, quiet=True)
        raise
    finally:
        # the broker read them at start-up, before STOMP opened (or it failed): the password leaves the disk
        remove_bridge_files(data)
    # ActiveMQ only logs a WARN and runs on without JMX when its port is taken (e.g. by a race with the
    # check above); `admin` would then talk to whoever has the port. The connector starts before STOMP.
    jmx_failure = [line for line in log_path.read_text(errors="replace").splitlines() if JMX_FAILED in line]
    if jmx_failure:
        stop_process(proc.pid, data, DEFAULT_STOP_TIMEOUT, quiet=True)
        raise BrokerError(
            f"the broker could not open its JMX port {settings.jmx_port} (stopped it again); pick another "
            f"port with --jmx-port PORT or NFMP_BROKER_JMX_PORT. From {log_path}:\n  | {jmx_failure[0]}"
        )
    record = settings_record(settings, proc.pid, data)
    write_state(data, record)
    say(f"ready: {describe(record)} after {time.monotonic() - started:.1f} s")


def signal_process(pid: int, pidfd: int | None, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, sig)
        else:
            os.kill(pid, sig)


def wait_gone(pid: int, pidfd: int | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        if pidfd is not None:
            select.select([pidfd], [], [], min(remaining, 0.2))  # readable once the process has exited
        else:
            time.sleep(min(remaining, 0.1))
    return True


def stop_process(pid: int, data: Path, timeout: float, *, quiet: bool = False) -> bool:
    """SIGTERM (then SIGKILL) the broker `pid` of `data`; False if it was not (or no longer) our broker.

    A pidfd pins the process before its command line is checked, so a recycled pid is never signalled.
    """
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except OSError:  # kernel without pidfd (< 5.3): fall back to kill(2) right after the check
        pidfd = None
    try:
        if not is_our_broker(read_cmdline(pid), data):
            return False
        signal_process(pid, pidfd, signal.SIGTERM)
        if wait_gone(pid, pidfd, timeout):
            return True
        if not quiet:
            say(f"pid {pid} still running {timeout:.0f} s after SIGTERM; sending SIGKILL", err=True)
        signal_process(pid, pidfd, signal.SIGKILL)
        if not wait_gone(pid, pidfd, KILL_WAIT):
            raise BrokerError(f"pid {pid} survived SIGKILL for {KILL_WAIT:.0f} s")
        return True
    finally:
        if pidfd is not None:
            os.close(pidfd)


def stop_locked(data: Path, timeout: float) -> bool:
    """Stop the broker of `data`; False if none was running."""
    remove_bridge_files(data)  # left by `fg`, which cannot delete them once java runs
    running = find_running(data)
    if running is None:
        remove_state(data)
        return False
    started = time.monotonic()
    stopped = stop_process(running.pid, data, timeout)
    remove_state(data)
    if stopped:
        say(f"broker stopped (pid {running.pid}, data {data}) after {time.monotonic() - started:.1f} s")
    return stopped


def cmd_bridge_example(args: argparse.Namespace) -> int:
    sys.stdout.write(BRIDGE_EXAMPLE)
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    ensure_installed(verbose=True)
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    data = resolve_data(args)
    settings = resolve_settings(args)
    installation = ensure_installed()
    prepare_data_dir(data)
    with data_lock(data):
        start_locked(settings, data, args.timeout, installation)
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    data = resolve_data(args)
    if not (data / MARKER).exists():
        say(f"not running (no broker data dir at {data})")
        return 0
    with data_lock(data):
        if not stop_locked(data, args.timeout):
            say(f"not running (data {data})")
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    data = resolve_data(args)
    settings = resolve_settings(args)
    installation = ensure_installed()
    prepare_data_dir(data)
    with data_lock(data):
        if not stop_locked(data, DEFAULT_STOP_TIMEOUT):
            say(f"was not running (data {data})")
        start_locked(settings, data, args.timeout, installation)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    data = resolve_data(args)
    running = find_running(data) if data.is_dir() else None
    if running is None:
        stale = read_state(data) if data.is_dir() else None
        extra = f"; stale {STATE_FILE} names pid {stale.get('pid')}" if stale else ""
        say(f"not running (data {data}{extra})")
        return EXIT_NOT_RUNNING
    where = describe(running_record(running, data))
    since = f", started {running.started_at}" if running.started_at else ""
    if not stomp_answers(running.stomp_port):
        say(f"process running but STOMP does not answer: {where}{since}; see {data / CONSOLE_LOG}")
        return EXIT_ERROR
    if running.tls_port is not None and not stomp_answers(running.tls_port, tls=tls_probe(data)):
        say(
            f"process running but STOMP over TLS (port {running.tls_port}) does not answer: {where}{since}; "
            f"see {data / CONSOLE_LOG}"
        )
        return EXIT_ERROR
    say(f"running: {where}{since}")
    say(f"jmx url: {running.jmx_url}")
    if running.tls_port is not None:
        tls = TlsFiles(data / TLS_DIR)
        auth = "required" if running.tls_client_auth else "not required"
        say(f"tls: stomp+ssl://{HOST}:{running.tls_port} (or {TLS_HOST_NAME}), client certificate {auth}")
        say(f"tls ca file: {tls.ca}")
        say(f"tls client cert file: {tls.client_cert}")
        say(f"tls client key file: {tls.client_key}")
    if running.network_to is not None:
        say(
            f"network: duplex link to tcp://{running.network_to} (OpenWire), inactivity limit "
            f"{running.network_inactivity} ms, re-dialled every second"
        )
    if running.bridge is not None:
        say(f"bridge: as {running.bridge} says (at start); see {data / CONSOLE_LOG} for its connection")
    return 0


def cmd_wipe(args: argparse.Namespace) -> int:
    data = resolve_data(args)
    if not data.exists():
        say(f"nothing to wipe: {data} does not exist")
        return 0
    if not data.is_dir():
        raise BrokerError(f"--data {data} is not a directory; refusing to wipe it")
    check_owned(data)
    with data_lock(data):
        stop_locked(data, DEFAULT_STOP_TIMEOUT)
        removed = []
        for name in WIPE_ENTRIES:
            path = data / name
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                elif path.exists() or path.is_symlink():
                    path.unlink()
                else:
                    continue
            except OSError as exc:
                raise BrokerError(f"cannot delete {path}: {exc}") from None
            removed.append(name)
    say(f"wiped {data}: removed {', '.join(removed) if removed else 'nothing (already empty)'}")
    return 0


def _load_jmxtool() -> ModuleType:
    """Load _jmxtool.py (stdlib only) from beside this file by path.

    This module must not import its package when run as a file: the package's dependencies may be missing.
    """
    spec = importlib.util.spec_from_file_location("_nfmp_jmxtool", JMX_TOOL)
    if spec is None or spec.loader is None:
        raise BrokerError(f"cannot load {JMX_TOOL}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cmd_admin(args: argparse.Namespace) -> int:
    installation = ensure_installed()
    data = resolve_data(args)
    if args.jmx_port is not None:
        port = args.jmx_port
    else:
        running = find_running(data) if data.is_dir() else None
        from_env = env_port("NFMP_BROKER_JMX_PORT")
        if running is not None:
            port = running.jmx_port
        elif from_env is not None:
            port = from_env
        else:
            raise BrokerError(
                f"no broker is running for data dir {data}; start it, or pass --data / --jmx-port", 3
            )
    admin_args = [args.admin_command, *(getattr(args, name, None) for name in ("client_id", "subname"))]
    admin_args = [arg for arg in admin_args if arg is not None]
    java = installation.java
    program: list[str] = _load_jmxtool().admin_command(
        java, jms_api_jar=installation.jms_api_jar, timeout=ADMIN_TIMEOUT
    )
    command = [
        java,
        "-XX:TieredStopAtLevel=1",  # a short-lived client: skip the optimising JIT
        "-Dsun.rmi.transport.connectionTimeout=5000",
        "-Dsun.rmi.transport.tcp.responseTimeout=30000",
        *program[1:],  # [0] is java itself
        *("--url", jmx_url(port)),
        *admin_args,
    ]
    try:
        return subprocess.run(
            command, stdin=subprocess.DEVNULL, timeout=ADMIN_TIMEOUT, check=False
        ).returncode
    except subprocess.TimeoutExpired:
        what = " ".join(admin_args)
        raise BrokerError(f"admin {what} took longer than {ADMIN_TIMEOUT:.0f} s") from None


def cmd_fg(args: argparse.Namespace) -> int:
    data = resolve_data(args)
    settings = resolve_settings(args)
    installation = ensure_installed()
    prepare_data_dir(data)
    with data_lock(data):  # released by exec (the fd is close-on-exec)
        running = find_running(data)
        if running is not None:
            raise BrokerError(f"the broker of {data} is already running (pid {running.pid}); stop it first")
        check_ports(settings, data)
        command = java_command(settings, data, prepare_config(settings, data), installation)
        # exec keeps the pid, so status/admin/stop work against the foreground broker too
        record = settings_record(settings, os.getpid(), data)
        write_state(data, record)
        say(f"running in the foreground: {describe(record)}")
        say("press Ctrl-C to stop")
        os.chdir(data)
        try:
            os.execv(command[0], command)  # noqa: S606 -- java, with an argument list
        except OSError as exc:
            remove_state(data)
            raise BrokerError(f"cannot run {command[0]}: {exc}") from None


# ------------------------------------------------------------------------------------------ arguments


def build_parser(prog: str = "nfmp-broker", default_data: Path | None = None) -> argparse.ArgumentParser:
    """Return the command line parser; its --help names `prog` and `default_data`."""
    data_default = str(default_data or default_data_dir())
    parser = argparse.ArgumentParser(
        prog=prog,
        description=HELP.format(prog=prog, data=data_default, conf=CONF_DIR),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # No per-command help= here: HELP already lists the commands.
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, help="see the commands above; COMMAND --help"
    )

    data_opts = argparse.ArgumentParser(add_help=False)
    data_opts.add_argument(
        "--data", metavar="DIR", help=f"data directory (env NFMP_BROKER_DATA, default {data_default})"
    )

    broker_opts = argparse.ArgumentParser(add_help=False)
    broker_opts.add_argument(
        "--port",
        type=port_number,
        help=f"STOMP port on {HOST} (env NFMP_BROKER_PORT, default {DEFAULT_PORT})",
    )
    broker_opts.add_argument(
        "--jmx-port",
        type=port_number,
        help=f"JMX port (env NFMP_BROKER_JMX_PORT, default {DEFAULT_JMX_PORT})",
    )
    broker_opts.add_argument(
        "--tls-port",
        type=port_number,
        help=f"also serve STOMP over TLS on this port of {HOST}, with certificates of a test CA made in "
        "<data>/tls (env NFMP_BROKER_TLS_PORT; default: no TLS)",
    )
    broker_opts.add_argument(
        "--tls-client-auth",
        nargs="?",
        const=True,
        type=boolean,
        metavar="BOOL",
        help="with --tls-port: refuse TLS clients without a certificate of the test CA, like "
        "<data>/tls/client.pem (--tls-client-auth, --tls-client-auth=true|false; default false)",
    )
    broker_opts.add_argument(
        "--link-stealing",
        nargs="?",
        const=True,
        type=boolean,
        metavar="BOOL",
        help="a second connection with a client-id already in use wins and drops the first, instead of being "
        "refused (--link-stealing, --link-stealing=true|false; default false)",
    )
    broker_opts.add_argument(
        "--pending-limit",
        type=positive_int,
        metavar="N",
        help="messages a slow non-durable topic subscriber may lag before the oldest are discarded "
        f"(default {DEFAULT_PENDING_LIMIT})",
    )
    broker_opts.add_argument(
        "--openwire-port",
        type=port_number,
        metavar="PORT",
        help=f"also serve OpenWire (ActiveMQ's JMS protocol) on this port of {HOST}: for JMS clients and "
        "another broker's --network-to (env NFMP_BROKER_OPENWIRE_PORT; default: no OpenWire)",
    )
    broker_opts.add_argument(
        "--bridge",
        metavar="FILE",
        help="run a JMS bridge from NFM-P's JMS server into the virtual topic VirtualTopic.<topic>, as the "
        f"INI file FILE says; `{prog} bridge-example` shows every key (default: none)",
    )
    broker_opts.add_argument(
        "--network-to",
        type=network_address,
        metavar="HOST:PORT",
        help="link to another broker's OpenWire connector (duplex): consumers here read its "
        "Consumer.*.VirtualTopic.> queues (default: no link)",
    )
    broker_opts.add_argument(
        "--network-inactivity",
        type=inactivity_ms,
        metavar="MS",
        help="with --network-to: OpenWire's inactivity limit on the link, in milliseconds; a silently dead "
        f"link is noticed after 2 to 3 times this, then dialled again (default {DEFAULT_NETWORK_INACTIVITY})",
    )
    broker_opts.add_argument("--heap", type=heap_size, help=f"java -Xmx (default {DEFAULT_HEAP})")
    broker_opts.add_argument(
        "--wipe", action="store_true", help="delete all stored messages and subscriptions on start-up"
    )
    start_timeout = argparse.ArgumentParser(add_help=False)
    start_timeout.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_START_TIMEOUT,
        metavar="SECONDS",
        help=f"how long to wait for STOMP to answer (default {DEFAULT_START_TIMEOUT:.0f})",
    )

    def add(
        name: str, func: object, help_text: str, parents: list[argparse.ArgumentParser]
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, description=help_text, parents=parents)
        sub.set_defaults(func=func)
        return sub

    add("install", cmd_install, "install the Debian package activemq (and java) if missing", [])
    add(
        "start",
        cmd_start,
        "start the broker in the background (or reuse the running one)",
        [data_opts, broker_opts, start_timeout],
    )
    stop = add("stop", cmd_stop, "stop the broker of the data dir", [data_opts])
    stop.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_STOP_TIMEOUT,
        metavar="SECONDS",
        help=f"SIGKILL if still running this long after SIGTERM (default {DEFAULT_STOP_TIMEOUT:.0f})",
    )
    add(
        "status",
        cmd_status,
        "show the state; exit 0 running, 3 not running, 1 running but not answering",
        [data_opts],
    )
    add(
        "restart",
        cmd_restart,
        "stop, then start with the given options",
        [data_opts, broker_opts, start_timeout],
    )
    add(
        "wipe",
        cmd_wipe,
        "stop, then delete stored messages, subscriptions and logs (kahadb, tmp, logs)",
        [data_opts],
    )
    add("fg", cmd_fg, "run the broker in the foreground, logging to the terminal", [data_opts, broker_opts])
    add(
        "bridge-example",
        cmd_bridge_example,
        "print a commented example of the --bridge file, with every key and its default",
        [],
    )

    admin = add("admin", cmd_admin, "JMX admin: list connections and durable subscriptions, close, rmsub", [])
    admin_commands = admin.add_subparsers(dest="admin_command", metavar="ADMIN_COMMAND", required=True)
    admin_opts = argparse.ArgumentParser(add_help=False, parents=[data_opts])
    admin_opts.add_argument(
        "--jmx-port", type=port_number, help="JMX port (default: the running broker's of the data dir)"
    )
    admin_commands.add_parser(
        "list", parents=[admin_opts], help="list client connections and durable subscriptions"
    )
    close = admin_commands.add_parser(
        "close", parents=[admin_opts], help="drop the broker-side connection(s) of CLIENT_ID"
    )
    close.add_argument("client_id", metavar="CLIENT_ID")
    rmsub = admin_commands.add_parser(
        "rmsub", parents=[admin_opts], help="delete the inactive durable subscription SUBNAME of CLIENT_ID"
    )
    rmsub.add_argument("client_id", metavar="CLIENT_ID")
    rmsub.add_argument("subname", metavar="SUBNAME")
    return parser


def main(
    argv: Sequence[str] | None = None, *, prog: str = "nfmp-broker", default_data: Path | None = None
) -> int:
    """Run the command line `argv` (default: sys.argv[1:]); return the exit code.

    Args:
        argv: The arguments, without the program name.
        prog: The command's name, in --help and messages (``scripts/broker`` passes its own).
        default_data: The data directory without --data or NFMP_BROKER_DATA; None: default_data_dir().
    """
    _INVOCATION.prog = prog
    _INVOCATION.default_data = default_data
    parser = build_parser(prog, default_data)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except BrokerError as exc:
        say(str(exc), err=True)
        return exc.code
    except KeyboardInterrupt:
        say("interrupted", err=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
