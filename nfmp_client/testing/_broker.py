"""nfmp-broker: run a private Apache ActiveMQ Classic broker for nfmp_client development and tests.

The ``nfmp-broker`` command (and ``scripts/broker`` in a clone of the repository, which runs this file).
Standard library only: it runs with any Python 3.10+, before a virtualenv exists and without nfmp_client's
dependencies; the ActiveMQ configuration it starts the broker with ships beside it (``activemq/``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
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
(with heart-beats) on 127.0.0.1 only, optionally STOMP over TLS too (--tls-port), JMX for `admin`, and
keeps its KahaDB store, logs and state under one data directory.
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

settings (option > environment > default):
  --port       NFMP_BROKER_PORT       STOMP port (default 61613)
  --jmx-port   NFMP_BROKER_JMX_PORT   JMX port (default 11099; its RMI registry binds all interfaces)
  --tls-port   NFMP_BROKER_TLS_PORT   STOMP over TLS port (default: none, no TLS); its certificate names
                                      IP:127.0.0.1 and DNS:localhost, signed by the data dir's test CA
  --tls-client-auth[=true|false]      with --tls-port: refuse TLS clients without a certificate signed by
                                      that CA (default false)
  --data       NFMP_BROKER_DATA       data directory (default {data})
  NFMP_ACTIVEMQ_HOME, ACTIVEMQ_HOME   the ActiveMQ installation (see above); JAVA_HOME: the java to use

files in the data directory: broker.json (pid, ports, JMX URL, TLS port and PEM paths of the running
broker), console.log (the broker's log; the previous run's is console.log.1), kahadb/ (message store),
tmp/, .nfmp-broker (marks the directory as created by this command: `wipe` refuses directories without
it), broker.lock; with TLS also activemq-tls.xml (the configuration's activemq.xml with its TLS-ONLY blocks
on, written at each start) and tls/, made once with openssl and keytool and kept by `wipe`: ca.pem (the
test CA to trust), client.pem + client.key (a client certificate of that CA, key unencrypted), ca.key,
broker.pem + broker.key, and the broker's PKCS12 key store broker.p12 and trust store truststore.p12
(password nfmp-dev: test material only). Delete tls/ to get new ones.
`admin` keeps a compiled copy of nfmp_client's AmqAdmin.java in ~/.cache/nfmp-broker/ ($XDG_CACHE_HOME).

examples:
  {prog} start && {prog} status
  {prog} start --port 61620 --jmx-port 11120 --data /tmp/b2 --link-stealing
  {prog} start --tls-port 61614 --tls-client-auth   # then see `status` for the PEM files
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
TLS_XML = "activemq-tls.xml"  # ACTIVEMQ_XML with its TLS-ONLY blocks on, written at each TLS start
TLS_DIR = "tls"
# What `wipe` deletes (only inside a data dir carrying MARKER): everything the broker and this script write
# there except the marker, the lock file and TLS_DIR (clients configured with its CA keep working).
WIPE_ENTRIES = ("kahadb", "tmp", CONSOLE_LOG, CONSOLE_LOG + ".1", STATE_FILE, TLS_XML)
JMX_FAILED = "Failed to start JMX connector"  # ActiveMQ's log line when the JMX port is taken
IDENTITY_PROP = "-Dnfmp.broker=nfmp-dev"  # marks the command line of a broker started by this script

# TLS test material in TLS_DIR. The stores' password is passed to the broker as -Dtls.store.password: it
# guards nothing (the PEM keys lie beside them, unencrypted); the stores just cannot be without one.
TLS_STORE_PASSWORD = "nfmp-dev"  # noqa: S105 -- test material, guards nothing (see above)
TLS_DAYS = 3650
TLS_KEY = "rsa:2048"
TLS_COMMAND_TIMEOUT = 60.0
TLS_ONLY = "TLS-ONLY"  # the marker lines around ACTIVEMQ_XML's TLS blocks: <!--TLS-ONLY ... TLS-ONLY-->
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

EXIT_ERROR = 1
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


def jmx_url(jmx_port: int) -> str:
    return f"service:jmx:rmi:///jndi/rmi://{HOST}:{jmx_port}/jmxrmi"


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range 1-65535: {value}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


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
    given = {
        "port": port,
        "jmx_port": jmx_port,
        "tls_port": tls_port,
        "tls_client_auth": args.tls_client_auth,
        "link_stealing": args.link_stealing,
        "pending_limit": args.pending_limit,
        "heap": args.heap,
        "wipe": args.wipe or None,
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
    return settings


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
    """(pid, data dir) of a broker of this script that uses `port` for STOMP, STOMP over TLS or JMX."""
    for pid in all_pids():
        argv = read_cmdline(pid)
        if argv is not None and is_our_broker(argv):
            props = system_properties(argv)
            if str(port) in (props.get("stomp.port"), props.get("tls.port"), props.get("jmx.port")):
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


def port_problem(port: int, bind_host: str) -> str | None:
    """Say why the broker could not listen on `port` (None if it can).

    Something accepts connections there, or binding fails the way it will for the broker (java sets
    SO_REUSEADDR, so TIME_WAIT does not count).
    """
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1.0):
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


def write_tls_config(data: Path) -> Path:
    """Write TLS_XML: ACTIVEMQ_XML less its TLS-ONLY marker lines, which turns its TLS blocks on."""
    source = ACTIVEMQ_XML.read_text()
    lines = source.splitlines(keepends=True)
    kept = [line for line in lines if line.strip() not in (f"<!--{TLS_ONLY}", f"{TLS_ONLY}-->")]
    removed = len(lines) - len(kept)
    if removed == 0 or removed % 2 or "<sslContext>" not in "".join(kept):
        raise BrokerError(
            f"{ACTIVEMQ_XML} has no (or unbalanced) <!--{TLS_ONLY} ... {TLS_ONLY}--> blocks with the TLS "
            "connector and sslContext"
        )
    target = data / TLS_XML
    target.write_text("".join(kept))
    return target


# ------------------------------------------------------------------------------------------------ java


def java_command(settings: Settings, data: Path, config: Path, installation: Installation) -> list[str]:
    """Return the broker's command line; `config` is ACTIVEMQ_XML, or TLS_XML for a broker with TLS."""
    tls = (
        [
            f"-Dtls.port={settings.tls_port}",
            f"-Dtls.client.auth={str(settings.tls_client_auth).lower()}",
            f"-Dtls.store.password={TLS_STORE_PASSWORD}",
        ]
        if settings.tls_port is not None
        else []
    )
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
        *tls,
        IDENTITY_PROP,
        *("-jar", str(installation.run_jar), "start", f"xbean:file:{config}"),
    ]


def prepare_config(settings: Settings, data: Path) -> Path:
    """Return the configuration file: ACTIVEMQ_XML, or with TLS a fresh TLS_XML (and TLS_DIR made)."""
    if settings.tls_port is None:
        return ACTIVEMQ_XML
    make_tls_files(data)
    return write_tls_config(data)


def tls_probe(data: Path) -> ssl.SSLContext:
    try:
        return TlsFiles(data / TLS_DIR).client_context()
    except OSError as exc:  # ssl.SSLError is one too
        raise BrokerError(f"cannot load the TLS client files of {data / TLS_DIR}: {exc}") from None


def describe(port: int, pid: int, jmx_port: int, data: Path, tls_port: int | None = None) -> str:
    tls = f" and stomp+ssl://{HOST}:{tls_port}" if tls_port is not None else ""
    return f"stomp://{HOST}:{port}{tls} (pid {pid}, jmx {jmx_port}, data {data})"


def state_record(
    pid: int, port: int, jmx_port: int, data: Path, *, tls_port: int | None, tls_client_auth: bool
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
    }


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
    if (read_state(data) or {}).get("pid") != running.pid:  # broker.json lost: rebuild it
        record = state_record(
            running.pid,
            running.stomp_port,
            running.jmx_port,
            data,
            tls_port=running.tls_port,
            tls_client_auth=running.tls_client_auth,
        )
        write_state(data, record)
    where = describe(running.stomp_port, running.pid, running.jmx_port, data, running.tls_port)
    say(f"reusing the running broker: {where}")


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
    # ActiveMQ only logs a WARN and runs on without JMX when its port is taken (e.g. by a race with the
    # check above); `admin` would then talk to whoever has the port. The connector starts before STOMP.
    jmx_failure = [line for line in log_path.read_text(errors="replace").splitlines() if JMX_FAILED in line]
    if jmx_failure:
        stop_process(proc.pid, data, DEFAULT_STOP_TIMEOUT, quiet=True)
        raise BrokerError(
            f"the broker could not open its JMX port {settings.jmx_port} (stopped it again); pick another "
            f"port with --jmx-port PORT or NFMP_BROKER_JMX_PORT. From {log_path}:\n  | {jmx_failure[0]}"
        )
    record = state_record(
        proc.pid,
        settings.port,
        settings.jmx_port,
        data,
        tls_port=settings.tls_port,
        tls_client_auth=settings.tls_client_auth,
    )
    write_state(data, record)
    elapsed = time.monotonic() - started
    where = describe(settings.port, proc.pid, settings.jmx_port, data, settings.tls_port)
    say(f"ready: {where} after {elapsed:.1f} s")


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
    where = describe(running.stomp_port, running.pid, running.jmx_port, data, running.tls_port)
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
        record = state_record(
            os.getpid(),
            settings.port,
            settings.jmx_port,
            data,
            tls_port=settings.tls_port,
            tls_client_auth=settings.tls_client_auth,
        )
        write_state(data, record)
        where = describe(settings.port, os.getpid(), settings.jmx_port, data, settings.tls_port)
        say(f"running in the foreground: {where}")
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
