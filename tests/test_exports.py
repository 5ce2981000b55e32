"""The public surface: what nfmp_client and its public submodules export, and that each export is documented."""

from __future__ import annotations

import ast
import importlib
import inspect
import itertools
import pkgutil
import types
import typing
from pathlib import Path

import attrs
import pytest

import nfmp_client
import nfmp_client.testing

PACKAGE = Path(nfmp_client.__file__).resolve().parent

# What an application writes against: the client, its handler and configuration, the events, the resync
# request, the status values, the XML API client a resync uses, and the exceptions it catches.
TOP = {
    # the client
    "NfmpClient",
    "Handler",
    "HandlerWarning",
    # configuration and the values it takes
    "ClientConfig",
    "BrokerEndpoint",
    "TlsConfig",
    "RetryPolicy",
    "ResyncMode",
    "TerminatePolicy",
    "BrokerDialect",
    "ACTIVEMQ",
    "ARTEMIS",
    "DEFAULT_TOPIC",
    # events
    "Event",
    "SystemEvent",
    "DataEvent",
    "AttributeValue",
    "EventHeader",
    "KeepAliveEvent",
    "JmsMissedEvents",
    "SystemInfoEvent",
    "TerminateClientSession",
    "ObjectCreation",
    "ObjectDeletion",
    "AttributeValueChange",
    "AttributeChange",
    "AlarmStatusChange",
    "FileAvailableEvent",
    "EventVessel",
    "UnknownEvent",
    "is_system_event",
    # resync
    "ResyncRequest",
    "ResyncReason",
    # status
    "ConnectionLost",
    "ConnectionRestored",
    "ConnectionState",
    "LossReason",
    "Health",
    "HealthStatus",
    "ClientStatistics",
    # what a resync retrieval uses
    "XmlApiClient",
    "XmlApiCredentials",
    "FindFaultsRequest",
    "FindRequest",
    "XmlApiObject",
    # exceptions
    "NfmpError",
    "ConfigError",
    "ProtocolError",
    "MalformedMessage",
    "ClientStopped",
    "SessionTerminated",
    "ClientFailed",
    "SubscriptionRemovalFailed",
    "LifecycleError",
    "StateError",
    "StateFileCorrupt",
    "StateFileMismatch",
    "StateFileLocked",
    "XmlApiError",
    "XmlApiFault",
    "XmlApiHttpError",
    "XmlApiStandby",
    "XmlApiUnavailable",
    "XmlApiTimeout",
    "XmlApiResponseTooLarge",
    "__version__",
}

# The public submodules whose surface is pinned here, name by name.
PINNED = {
    "nfmp_client": TOP,
    "nfmp_client.codec": {
        "DEFAULT_MAX_MESSAGE_BYTES",
        "NFMP_NAMESPACE",
        "SOAP_NAMESPACE",
        "EncodedMessage",
        "EventCodec",
        "decode_message",
        "encode_event",
        "epoch_ms_to_datetime",
    },
    "nfmp_client.xmlapi": {
        "DEFAULT_MAX_RESPONSE_BYTES",
        "DEFAULT_XMLAPI_TIMEOUT",
        "XMLAPI_PATH",
        "PingRequest",
        "ReceivedRequest",
        "XmlApiRequest",
        "decode_request",
        "decode_response",
        "encode_fault",
        "encode_request",
        "encode_response",
    },
    "nfmp_client.state": {"STATE_FORMAT", "Baseline", "StateLock", "StateStore"},
    "nfmp_client.selector": {"SYSTEM_OBJECT_TYPES", "build_selector", "validate_client_id"},
    "nfmp_client.engine": {
        "AttemptFailed",
        "Clock",
        "FrameBatch",
        "FrameReceived",
        "Loop",
        "Lost",
        "MonotonicClock",
        "Opened",
        "Runner",
        "StompTransport",
        "ThreadRunner",
        "Transport",
        "TransportFactory",
        "TransportReport",
        "stomp_transport",
    },
}

# The resync machinery stays private: the application only ever sees the ResyncRequest it is handed.
PRIVATE = {"ResyncRules", "ResyncSchedule", "Due", "Trigger", "Subscription"}

# Public submodules that are imported with the package (the others load on demand: testing, metrics, aio).
EAGER = {"codec", "engine", "selector", "state", "xmlapi"}


def _public_module_names() -> list[str]:
    """nfmp_client and every public module below it (a name without a leading underscore at each level)."""
    names = ["nfmp_client"]
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="nfmp_client.", onerror=lambda _name: None):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.append(info.name)
    return sorted(names)


PUBLIC_MODULES = _public_module_names()

# The public modules that only gather names from private ones (the others, metrics and aio, hold code).
FACADES = {*PINNED, "nfmp_client.testing"}


def _import(name: str) -> types.ModuleType | None:
    """Import *name*; None when it needs an optional extra that is not installed (metrics: prometheus_client)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        if exc.name != name and (exc.name or "").startswith("nfmp_client"):
            raise
        return None


def _load(name: str) -> types.ModuleType:
    module = _import(name)
    if module is None:
        pytest.skip(f"{name} needs an optional extra")
    return module


def _exports(name: str) -> list[tuple[str, str]]:
    module = _import(name)
    return [] if module is None else [(name, e) for e in module.__all__ if not e.startswith("__")]


def _attribute_docstrings(path: Path) -> dict[str, str]:
    """The docstrings that follow module-level assignments in *path* (how constants and aliases are documented)."""
    docs: dict[str, str] = {}
    body = ast.parse(path.read_text()).body
    for node, following in itertools.pairwise(body):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        elif isinstance(node, ast.AnnAssign):
            target = node.target
        else:
            continue
        if (
            isinstance(target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[target.id] = following.value.value
    return docs


def _defining_file(module: types.ModuleType, name: str) -> Path:
    """The file *module* imports *name* from (a private module of the package), or its own file."""
    source = Path(inspect.getfile(module))
    for node in ast.parse(source.read_text()).body:
        if (
            isinstance(node, ast.ImportFrom)
            and node.level == 1
            and node.module
            and any((alias.asname or alias.name) == name for alias in node.names)
        ):
            base = source.parent.joinpath(*node.module.split("."))
            return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    return source


# ------------------------------------------------------------------------------------------ the surface


@pytest.mark.parametrize("name", sorted(PINNED))
def test_all_is_pinned(name: str) -> None:
    """Each pinned module exports exactly the names agreed on: a new public name is a decision, made here."""
    exported = importlib.import_module(name).__all__

    assert len(exported) == len(set(exported)), f"{name}.__all__ lists a name twice"
    assert set(exported) == PINNED[name]


def test_top_level_is_small() -> None:
    """The top level holds what an application writes against, not the internals (98 names before)."""
    assert len(nfmp_client.__all__) == 66
    assert not PRIVATE & set(vars(nfmp_client))


@pytest.mark.parametrize("name", sorted(FACADES))
def test_all_is_complete(name: str) -> None:
    """A module that only gathers names lists each once in __all__, and shows nothing public it does not list."""
    module = _load(name)
    exported = set(module.__all__)
    submodules = {
        attribute
        for attribute, value in vars(module).items()
        if isinstance(value, types.ModuleType) and value.__name__ == f"{name}.{attribute}"
    }
    visible = {
        attribute
        for attribute in vars(module)
        if not attribute.startswith("_") and attribute not in submodules
    }

    assert len(exported) == len(module.__all__)
    assert visible == exported - {"__version__"}


def test_eager_submodules() -> None:
    """``import nfmp_client`` brings the light public submodules (so their names claim their module at once)."""
    assert {
        attribute
        for attribute, value in vars(nfmp_client).items()
        if isinstance(value, types.ModuleType) and not attribute.startswith("_")
    } >= EAGER


def test_each_name_has_one_public_home() -> None:
    """No name is exported by two public modules: each class and function claims exactly one."""
    homes: dict[str, list[str]] = {}
    for name in PUBLIC_MODULES:
        module = _import(name)
        if module is None:
            continue
        for export in module.__all__:
            if not export.startswith("__"):
                homes.setdefault(export, []).append(name)

    assert {export: modules for export, modules in homes.items() if len(modules) > 1} == {}


@pytest.mark.parametrize(("module_name", "name"), [pair for m in PUBLIC_MODULES for pair in _exports(m)])
def test_documented_and_public_module(module_name: str, name: str) -> None:
    """Every exported name has a docstring; each class and function claims its public module in tracebacks.

    Constants and type aliases cannot carry a docstring at run time: theirs is the string that follows the
    assignment in the module that defines them (Sphinx renders it).
    """
    module = importlib.import_module(module_name)
    obj = getattr(module, name)
    alias = isinstance(obj, types.GenericAlias)  # on Python 3.10 a Callable[...] alias passes for a class
    if not alias and (inspect.isclass(obj) or inspect.isfunction(obj)):
        own = vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__
        assert (own or "").strip(), f"{module_name}.{name} has no docstring of its own"
        assert obj.__module__ == module_name
    else:
        path = _defining_file(module, name)
        assert _attribute_docstrings(path).get(name, "").strip(), (
            f"{name} has no docstring after it in {path}"
        )


@pytest.mark.parametrize(
    ("module_name", "name"),
    [("nfmp_client", n) for n in ("AttributeValue", "DataEvent", "Event", "SystemEvent")]
    + [("nfmp_client.xmlapi", "XmlApiRequest")],
)
def test_aliases_are_unions(module_name: str, name: str) -> None:
    """The public type aliases are Unions (closed sets a type checker can check ``match`` statements over)."""
    assert typing.get_origin(getattr(importlib.import_module(module_name), name)) is typing.Union


@pytest.mark.parametrize(
    ("module_name", "name"),
    [
        pair
        for m in ("nfmp_client", "nfmp_client.codec", "nfmp_client.xmlapi", "nfmp_client.state")
        for pair in _exports(m)
        if inspect.isclass(getattr(importlib.import_module(m), pair[1]))
        and attrs.has(getattr(importlib.import_module(m), pair[1]))
    ],
)
def test_value_classes_are_frozen_and_keyword_only(module_name: str, name: str) -> None:
    """Public attrs classes are frozen values with keyword-only fields."""
    cls = getattr(importlib.import_module(module_name), name)

    assert all(field.kw_only for field in attrs.fields(cls))
    assert cls.__setattr__ is not object.__setattr__


@pytest.mark.parametrize("name", sorted(nfmp_client.testing.__all__))
def test_testing_value_classes_are_keyword_only(name: str) -> None:
    """The test kit's attrs classes take keyword arguments only."""
    obj = getattr(nfmp_client.testing, name)
    if inspect.isclass(obj) and attrs.has(obj):
        assert all(field.kw_only for field in attrs.fields(obj))


def test_moved_names_still_work_from_their_new_home() -> None:
    """What left the top level is one import away, in the module that documents it."""
    from nfmp_client.codec import encode_event
    from nfmp_client.engine import Clock, MonotonicClock
    from nfmp_client.selector import build_selector
    from nfmp_client.state import StateStore
    from nfmp_client.xmlapi import XMLAPI_PATH

    assert callable(encode_event)
    assert callable(build_selector)
    assert MonotonicClock.__module__ == Clock.__module__ == "nfmp_client.engine"
    assert StateStore.__module__ == "nfmp_client.state"
    assert XMLAPI_PATH == "/xmlapi/invoke"


def test_is_system_event_is_a_type_guard() -> None:
    """is_system_event narrows its argument to SystemEvent for a type checker (no cast or ignore after it)."""
    hints = typing.get_type_hints(nfmp_client.is_system_event)

    assert hints["return"] == typing.TypeGuard[nfmp_client.SystemEvent]


def test_version() -> None:
    """The package has a version string."""
    assert isinstance(nfmp_client.__version__, str)
    assert nfmp_client.__version__


def test_claiming_names_leaves_type_aliases_alone() -> None:
    """A ``Callable[...]`` alias among the public names (nfmp_client.aio.ResyncCallable): on Python 3.10 it
    passes for a class but refuses a new ``__module__``, which broke ``import nfmp_client.aio`` there."""
    import collections.abc

    from nfmp_client._public import claim_public_names

    alias = collections.abc.Callable[[int], None]
    before = alias.__module__
    claim_public_names({"Alias": alias}, ["Alias"], "nfmp_client.somewhere")

    assert alias.__module__ == before
