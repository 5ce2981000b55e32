"""The JMS selector of an NFM-P subscription: own events, broadcast events, and always the system events.

Nokia requires every subscription to carry a "simple filter" with ``ALA_clientId in ('<id>', '')``: the
empty id admits broadcast events, the client's own id admits what is addressed to it. The system events the
client lives by (KeepAliveEvent; StateChangeEvent, which carries JmsMissedEvents and SystemInfoEvent;
TerminateClientSession) must pass whatever else is filtered, and whether or not they carry ``ALA_clientId``
at all: a message without the property makes ``ALA_clientId in (...)`` unknown, so false. Nokia's basic
selector (the NFM-P XML API and JMS developer guide) ORs them in unconditionally, and so does this one::

    (ALA_clientId in ('oss1@1','') AND (<application filter>)) OR MTOSI_objectType in
        ('KeepAliveEvent','StateChangeEvent','TerminateClientSession')

That clause also admits JmsMissedEvents, SystemInfoEvents and TerminateClientSession addressed to *other*
clients: the client checks the addressee of each and ignores (logs and counts) another client's.

A filter on alarm-only properties (``ALA_alarmType``, ``MTOSI_perceivedSeverity``, ...) drops every non-alarm
event on the general topics unless it also accepts ``IS NULL``; that is the application's call, documented in
:func:`build_selector`. The sources of these rules: see docs/background.rst, 'Selectors'.
"""

from __future__ import annotations

import re
from typing import Final

from ._exceptions import ConfigError

__all__ = ["SYSTEM_OBJECT_TYPES", "build_selector", "validate_client_id"]

SYSTEM_OBJECT_TYPES: Final = ("KeepAliveEvent", "StateChangeEvent", "TerminateClientSession")
"""The ``MTOSI_objectType`` values of the system events no filter may exclude."""

# name@ID (the NFM-P XML API and JMS developer guide, "JMS subscriptions"; see docs/background.rst,
# 'Client ids and subscriptions'). Printable, no quotes or whitespace: the id goes into a selector literal
# and a STOMP header.
_CLIENT_ID = re.compile(r"[A-Za-z0-9_.\-:]+@[A-Za-z0-9_.\-:]+")
_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")


def validate_client_id(client_id: str) -> str:
    """Return *client_id* if it has NFM-P's ``name@ID`` form.

    Raises:
        ConfigError: It does not (not a string, empty, no ``@``, quotes, spaces or control characters); also
            a :class:`ValueError`.
    """
    if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
        raise ConfigError(
            field="client_id",
            value=client_id,
            expected="the form name@ID (letters, digits, '_', '.', '-', ':' on each side of one '@')",
        )
    return client_id


def _check_filter(text: str) -> None:
    # A structural check, not a parser: the broker is the judge of the grammar. What is caught here is
    # what would silently change the meaning of the combined selector.
    without_strings = _STRING_LITERAL.sub("_", text)
    if "'" in without_strings:
        raise ValueError(f"the filter {text!r} has an unterminated string literal")
    depth = 0
    for char in without_strings:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            raise ValueError(f"the filter {text!r} closes a parenthesis it never opened")
    if depth:
        raise ValueError(f"the filter {text!r} leaves {depth} parenthesis open")
    if ";" in without_strings or "--" in without_strings:
        raise ValueError(f"the filter {text!r} contains ';' or '--' outside a string literal")


def build_selector(client_id: str, application_filter: str = "") -> str:
    """Build the subscription's selector for *client_id*, narrowed by *application_filter*.

    Args:
        client_id: The client id, ``name@ID``.
        application_filter: A JMS selector over the NFM-P header properties for the data events, e.g.
            ``ALA_category = 'FAULT'``. Empty for all events. A filter on alarm-only properties must accept
            ``IS NULL`` too on topics that carry non-alarm events, or those are dropped (Nokia's rule).

    Returns:
        The selector. System events (keep-alives, state changes, session termination) always pass, with or
        without ``ALA_clientId``.

    Raises:
        ValueError: The client id is malformed, or the filter is structurally broken (unbalanced parentheses
            or quotes, ``;`` or ``--`` outside literals), which would change what the selector means.
    """
    validate_client_id(client_id)
    own = f"ALA_clientId in ('{client_id}','')"
    system = "MTOSI_objectType in (" + ",".join(f"'{t}'" for t in SYSTEM_OBJECT_TYPES) + ")"
    application_filter = application_filter.strip()
    if not application_filter:
        return f"{own} OR {system}"
    _check_filter(application_filter)
    return f"({own} AND ({application_filter})) OR {system}"
