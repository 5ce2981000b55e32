"""ActiveMQAdmin: the broker-side controls a simulated NFM-P server needs, over ActiveMQ's JMX interface.

What NFM-P's administrator does to a client session ("Close Session", "Remove Session"), and what a server
restart or an activity switch does to every client, is done here to the broker's view of the client: close
its connection (the client sees its socket closed) and destroy its durable subscription (the stored events
are gone).

ActiveMQ Classic 5.17 from Debian has no web console, so the controls run ``AmqAdmin.java`` (shipped with
this package) in a JVM against the broker's JMX URL; a call takes about 0.3 s once the program is compiled
and cached.
"""

from __future__ import annotations

import logging
import re
import subprocess
from pathlib import Path
from typing import Final, final

from attrs import frozen

from .._exceptions import NfmpError
from ._broker import find_java, find_jms_api_jar
from ._jmxtool import admin_command

__all__ = ["ActiveMQAdmin", "BrokerAdminError", "BrokerConnection", "DurableSubscription"]

log = logging.getLogger("nfmp_client.testing")

_JVM_OPTIONS: Final = (
    "-XX:TieredStopAtLevel=1",  # a short-lived client: skip the optimising JIT
    "-Dsun.rmi.transport.connectionTimeout=5000",
    "-Dsun.rmi.transport.tcp.responseTimeout=30000",
)
_CONNECTION = re.compile(r"conn clientId=(?P<client>\S*) remote=(?P<remote>\S*) connector=(?P<connector>\S*)")
_DURABLE = re.compile(
    r"durable clientId=(?P<client>\S*) sub=(?P<sub>\S*) topic=(?P<topic>\S*) active=(?P<active>\S*)"
    r" pending=(?P<pending>\d+) selector=(?P<selector>.*)"
)
_COUNT = re.compile(r"(?:closed|removed) (\d+)")
_UNREACHABLE = 3


class BrokerAdminError(NfmpError):
    """The broker's admin interface could not do what was asked.

    The message says why (JMX unreachable, no such client, "Durable consumer is in use", ...).
    """

    def __init__(self, message: str, *, command: tuple[str, ...] = (), output: str = "") -> None:
        """Record *message*, the AmqAdmin arguments and what the program printed."""
        super().__init__(message)
        self.command = command
        """The AmqAdmin arguments of the failed call."""
        self.output = output
        """What the program printed (stdout and stderr)."""
        self.unreachable = False
        """True when JMX itself could not be reached (the broker is down or the URL is wrong)."""


@frozen(kw_only=True)
class BrokerConnection:
    """A client connection as the broker sees it."""

    client_id: str
    """The connection's client id."""
    remote_address: str
    """Where the client connects from, e.g. ``tcp://127.0.0.1:41066``."""
    connector: str
    """The broker's transport connector it came in on, e.g. ``stomp``."""


@frozen(kw_only=True)
class DurableSubscription:
    """A durable topic subscription as the broker sees it."""

    client_id: str
    """The client id it belongs to."""
    subscription_name: str
    """Its name."""
    topic: str
    """The topic, e.g. ``5620-SAM-topic-xml``."""
    active: bool
    """Whether a consumer is attached now."""
    pending: int
    """Messages stored for it and not yet delivered."""
    selector: str
    """Its JMS selector ("" when none)."""


@final
class ActiveMQAdmin:
    """Close client connections and remove durable subscriptions of an ActiveMQ Classic broker via JMX."""

    def __init__(
        self, jmx_url: str, *, java: str | None = None, timeout: float = 60.0, cache_dir: Path | None = None
    ) -> None:
        """Address the broker at *jmx_url*.

        Args:
            jmx_url: E.g. ``service:jmx:rmi:///jndi/rmi://127.0.0.1:11099/jmxrmi``.
            java: The java binary; when None, ``$JAVA_HOME/bin/java`` if JAVA_HOME is set, else java on PATH.
            timeout: Seconds one call may take.
            cache_dir: Where the compiled program is kept; ``~/.cache/nfmp-broker`` when None.
        """
        self.jmx_url = jmx_url
        """The broker's JMX URL."""
        self._java = java
        self._timeout = timeout
        self._cache_dir = cache_dir

    def __repr__(self) -> str:
        """Show the JMX URL."""
        return f"ActiveMQAdmin({self.jmx_url!r})"

    def connections(self) -> list[BrokerConnection]:
        """Return the broker's client connections."""
        return [
            BrokerConnection(client_id=m["client"], remote_address=m["remote"], connector=m["connector"])
            for m in map(_CONNECTION.fullmatch, self._run("list").splitlines())
            if m is not None
        ]

    def durable_subscriptions(self) -> list[DurableSubscription]:
        """Return the durable topic subscriptions, attached or not."""
        return [
            DurableSubscription(
                client_id=m["client"],
                subscription_name=m["sub"],
                topic=m["topic"],
                active=m["active"] == "true",
                pending=int(m["pending"]),
                selector=_selector(m["selector"]),
            )
            for m in map(_DURABLE.fullmatch, self._run("list").splitlines())
            if m is not None
        ]

    def close_connection(self, client_id: str) -> int:
        """Close every connection with *client_id*; return how many were closed (0 if none)."""
        try:
            output = self._run("close", client_id)
        except BrokerAdminError as exc:
            if "no connection with clientId" in str(exc):
                return 0
            raise
        return int(m.group(1)) if (m := re.search(r"closed (\d+)", output)) else 0

    def close_all_connections(self, *, except_client_ids: tuple[str, ...] = ()) -> int:
        """Close every client connection but those of *except_client_ids*; return how many were closed."""
        if len(except_client_ids) > 1:
            return sum(
                self.close_connection(c.client_id)
                for c in self.connections()
                if c.client_id not in except_client_ids
            )
        return _count(self._run("closeall", except_client_ids[0] if except_client_ids else ""))

    def remove_durable_subscription(
        self, client_id: str, subscription_name: str, *, force: bool = False
    ) -> None:
        """Delete the durable subscription and what is stored for it.

        Args:
            client_id: The subscriber's client id.
            subscription_name: The subscription's name.
            force: Close the client's connections first, and again while it keeps re-attaching (for up to
                10 s), all within one call: what a server that removes a subscription at once does to a client
                that reconnects quickly.

        Raises:
            BrokerAdminError: It does not exist, or a consumer is attached ("Durable consumer is in use":
                close the client's connection first, or use *force*).
        """
        self._run("evict" if force else "rmsub", client_id, subscription_name)

    def remove_all_durable_subscriptions(self, *, except_client_ids: tuple[str, ...] = ()) -> int:
        """Delete every unattached durable subscription but those of *except_client_ids*; return the count.

        Attached ones are left alone: close their connections first.
        """
        if len(except_client_ids) > 1:
            removed = 0
            for sub in self.durable_subscriptions():
                if sub.client_id not in except_client_ids and not sub.active:
                    self.remove_durable_subscription(sub.client_id, sub.subscription_name)
                    removed += 1
            return removed
        return _count(self._run("rmsuball", except_client_ids[0] if except_client_ids else ""))

    def _run(self, *args: str) -> str:
        java = self._java or find_java()
        if java is None:
            raise BrokerAdminError(
                "no java (on PATH or in JAVA_HOME): install a Java 11+ runtime (on Debian or Ubuntu, "
                "nfmp-broker install does)",
                command=args,
            )
        program = admin_command(
            java, jms_api_jar=find_jms_api_jar(), timeout=self._timeout, cache=self._cache_dir
        )
        command = [program[0], *_JVM_OPTIONS, *program[1:], "--url", self.jmx_url, *args]
        try:
            result = subprocess.run(  # our own program, arguments as a list
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self._timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise BrokerAdminError(
                f"broker admin {' '.join(args)} took longer than {self._timeout:g} s", command=args
            ) from None
        output = result.stdout + result.stderr
        if result.returncode != 0:
            reason = result.stderr.strip().removeprefix("AmqAdmin: ") or f"exit code {result.returncode}"
            error = BrokerAdminError(f"broker admin {' '.join(args)}: {reason}", command=args, output=output)
            error.unreachable = result.returncode == _UNREACHABLE
            raise error
        log.debug("broker admin %s: %s", " ".join(args), result.stdout.strip())
        return result.stdout


def _selector(text: str) -> str:
    # JMX shows a missing selector as "null", and STOMP selectors with a marker prefix.
    return "" if text == "null" else text.removeprefix("convert_string_expressions:")


def _count(output: str) -> int:
    match = _COUNT.search(output)
    return int(match.group(1)) if match else 0
