"""nfmp_client: consume a Nokia NFM-P (5620 SAM) JMS event stream over STOMP without silently losing sync.

Layering (imports point down, data flows up):

* ``_events``: the model, frozen event values; knows nothing of the wire.
* ``_codec``: STOMP headers + SOAP/XML body <-> events; the only module that touches lxml.
* ``_xmlapi``: the XML API requests and responses a resync needs (SOAP over HTTP).
* ``_exceptions``: the ``NfmpError`` tree.

This module only gathers the public names: what an application writes against (the client, its handler and
configuration, the events, the resync request, the status values, the XML API client a resync uses, the
exceptions to catch). Tools and tests find the rest in public submodules of their own, each documented:
``codec`` (the JMS message format), ``xmlapi`` (the XML API's wire format), ``state`` (the persisted
baseline), ``selector`` (the subscription's selector), ``engine`` (the client's seams: clock, transport,
runner), ``testing`` (the simulated server) and ``metrics`` (Prometheus). Everything not listed in an
``__all__`` is private.
"""

from . import (
    codec as codec,
    engine as engine,
    selector as selector,
    state as state,
    xmlapi as xmlapi,
)
from ._client import Handler as Handler, HandlerWarning as HandlerWarning, NfmpClient as NfmpClient
from ._config import (
    ACTIVEMQ as ACTIVEMQ,
    ARTEMIS as ARTEMIS,
    DEFAULT_TOPIC as DEFAULT_TOPIC,
    BrokerDialect as BrokerDialect,
    BrokerEndpoint as BrokerEndpoint,
    ClientConfig as ClientConfig,
    ResyncMode as ResyncMode,
    RetryPolicy as RetryPolicy,
    TerminatePolicy as TerminatePolicy,
    TlsConfig as TlsConfig,
)
from ._events import (
    AlarmStatusChange as AlarmStatusChange,
    AttributeChange as AttributeChange,
    AttributeValue as AttributeValue,
    AttributeValueChange as AttributeValueChange,
    DataEvent as DataEvent,
    Event as Event,
    EventHeader as EventHeader,
    EventVessel as EventVessel,
    FileAvailableEvent as FileAvailableEvent,
    JmsMissedEvents as JmsMissedEvents,
    KeepAliveEvent as KeepAliveEvent,
    ObjectCreation as ObjectCreation,
    ObjectDeletion as ObjectDeletion,
    SystemEvent as SystemEvent,
    SystemInfoEvent as SystemInfoEvent,
    TerminateClientSession as TerminateClientSession,
    UnknownEvent as UnknownEvent,
    is_system_event as is_system_event,
)
from ._exceptions import (
    ClientFailed as ClientFailed,
    ClientStopped as ClientStopped,
    ConfigError as ConfigError,
    LifecycleError as LifecycleError,
    MalformedMessage as MalformedMessage,
    NfmpError as NfmpError,
    ProtocolError as ProtocolError,
    SessionTerminated as SessionTerminated,
    SubscriptionRemovalFailed as SubscriptionRemovalFailed,
    XmlApiError as XmlApiError,
    XmlApiFault as XmlApiFault,
    XmlApiHttpError as XmlApiHttpError,
    XmlApiResponseTooLarge as XmlApiResponseTooLarge,
    XmlApiStandby as XmlApiStandby,
    XmlApiTimeout as XmlApiTimeout,
    XmlApiUnavailable as XmlApiUnavailable,
)
from ._public import claim_public_names as _claim_public_names
from ._resync import ResyncReason as ResyncReason, ResyncRequest as ResyncRequest
from ._state import (
    StateError as StateError,
    StateFileCorrupt as StateFileCorrupt,
    StateFileLocked as StateFileLocked,
    StateFileMismatch as StateFileMismatch,
)
from ._status import (
    ClientStatistics as ClientStatistics,
    ConnectionLost as ConnectionLost,
    ConnectionRestored as ConnectionRestored,
    ConnectionState as ConnectionState,
    Health as Health,
    HealthStatus as HealthStatus,
    LossReason as LossReason,
)
from ._version import __version__ as __version__
from ._xmlapi import (
    FindFaultsRequest as FindFaultsRequest,
    FindRequest as FindRequest,
    XmlApiCredentials as XmlApiCredentials,
    XmlApiObject as XmlApiObject,
)
from ._xmlapi_client import XmlApiClient as XmlApiClient

__all__ = [
    "ACTIVEMQ",
    "ARTEMIS",
    "DEFAULT_TOPIC",
    "AlarmStatusChange",
    "AttributeChange",
    "AttributeValue",
    "AttributeValueChange",
    "BrokerDialect",
    "BrokerEndpoint",
    "ClientConfig",
    "ClientFailed",
    "ClientStatistics",
    "ClientStopped",
    "ConfigError",
    "ConnectionLost",
    "ConnectionRestored",
    "ConnectionState",
    "DataEvent",
    "Event",
    "EventHeader",
    "EventVessel",
    "FileAvailableEvent",
    "FindFaultsRequest",
    "FindRequest",
    "Handler",
    "HandlerWarning",
    "Health",
    "HealthStatus",
    "JmsMissedEvents",
    "KeepAliveEvent",
    "LifecycleError",
    "LossReason",
    "MalformedMessage",
    "NfmpClient",
    "NfmpError",
    "ObjectCreation",
    "ObjectDeletion",
    "ProtocolError",
    "ResyncMode",
    "ResyncReason",
    "ResyncRequest",
    "RetryPolicy",
    "SessionTerminated",
    "StateError",
    "StateFileCorrupt",
    "StateFileLocked",
    "StateFileMismatch",
    "SubscriptionRemovalFailed",
    "SystemEvent",
    "SystemInfoEvent",
    "TerminateClientSession",
    "TerminatePolicy",
    "TlsConfig",
    "UnknownEvent",
    "XmlApiClient",
    "XmlApiCredentials",
    "XmlApiError",
    "XmlApiFault",
    "XmlApiHttpError",
    "XmlApiObject",
    "XmlApiResponseTooLarge",
    "XmlApiStandby",
    "XmlApiTimeout",
    "XmlApiUnavailable",
    "__version__",
    "is_system_event",
]

_claim_public_names(globals(), __all__, __name__)
