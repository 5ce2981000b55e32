"""nfmp_client: consume a Nokia NFM-P (5620 SAM) JMS event stream over STOMP without silently losing sync.

Layering (imports point down, data flows up):

* ``_events``: the model, frozen event values; knows nothing of the wire.
* ``_codec``: STOMP headers + SOAP/XML body <-> events; the only module that touches lxml.
* ``_xmlapi``: the XML API requests and responses a resync needs (SOAP over HTTP).
* ``_exceptions``: the ``NfmpError`` tree.

This module only gathers the public names. Everything not listed in ``__all__`` is private.
"""

from ._client import ClientStopped as ClientStopped, Handler as Handler, NfmpClient as NfmpClient
from ._clock import Clock as Clock, MonotonicClock as MonotonicClock
from ._codec import (
    DEFAULT_MAX_MESSAGE_BYTES as DEFAULT_MAX_MESSAGE_BYTES,
    NFMP_NAMESPACE as NFMP_NAMESPACE,
    SOAP_NAMESPACE as SOAP_NAMESPACE,
    EncodedMessage as EncodedMessage,
    EventCodec as EventCodec,
    decode_message as decode_message,
    encode_event as encode_event,
)
from ._config import (
    ACTIVEMQ as ACTIVEMQ,
    ARTEMIS as ARTEMIS,
    DEFAULT_TOPIC as DEFAULT_TOPIC,
    BrokerDialect as BrokerDialect,
    BrokerEndpoint as BrokerEndpoint,
    ClientConfig as ClientConfig,
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
    epoch_ms_to_datetime as epoch_ms_to_datetime,
    is_system_event as is_system_event,
)
from ._exceptions import (
    MalformedMessage as MalformedMessage,
    NfmpError as NfmpError,
    ProtocolError as ProtocolError,
    XmlApiError as XmlApiError,
    XmlApiFault as XmlApiFault,
    XmlApiHttpError as XmlApiHttpError,
    XmlApiResponseTooLarge as XmlApiResponseTooLarge,
    XmlApiStandby as XmlApiStandby,
    XmlApiTimeout as XmlApiTimeout,
    XmlApiUnavailable as XmlApiUnavailable,
)
from ._public import claim_public_names as _claim_public_names
from ._resync import (
    Due as Due,
    ResyncReason as ResyncReason,
    ResyncRules as ResyncRules,
    ResyncSchedule as ResyncSchedule,
    Subscription as Subscription,
    Trigger as Trigger,
)
from ._selector import (
    SYSTEM_OBJECT_TYPES as SYSTEM_OBJECT_TYPES,
    build_selector as build_selector,
    validate_client_id as validate_client_id,
)
from ._state import (
    STATE_FORMAT as STATE_FORMAT,
    Baseline as Baseline,
    StateError as StateError,
    StateFileCorrupt as StateFileCorrupt,
    StateFileMismatch as StateFileMismatch,
    StateStore as StateStore,
)
from ._status import (
    ClientStatistics as ClientStatistics,
    ConnectionLost as ConnectionLost,
    ConnectionRestored as ConnectionRestored,
    ConnectionState as ConnectionState,
    LossReason as LossReason,
)
from ._version import __version__ as __version__
from ._xmlapi import (
    FindFaultsRequest as FindFaultsRequest,
    FindRequest as FindRequest,
    PingRequest as PingRequest,
    ReceivedRequest as ReceivedRequest,
    XmlApiCredentials as XmlApiCredentials,
    XmlApiObject as XmlApiObject,
    XmlApiRequest as XmlApiRequest,
    decode_request as decode_request,
    decode_response as decode_response,
    encode_fault as encode_fault,
    encode_request as encode_request,
    encode_response as encode_response,
)
from ._xmlapi_client import (
    DEFAULT_MAX_RESPONSE_BYTES as DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_XMLAPI_TIMEOUT as DEFAULT_XMLAPI_TIMEOUT,
    XMLAPI_PATH as XMLAPI_PATH,
    XmlApiClient as XmlApiClient,
)

__all__ = [
    "ACTIVEMQ",
    "ARTEMIS",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_TOPIC",
    "DEFAULT_XMLAPI_TIMEOUT",
    "NFMP_NAMESPACE",
    "SOAP_NAMESPACE",
    "STATE_FORMAT",
    "SYSTEM_OBJECT_TYPES",
    "XMLAPI_PATH",
    "AlarmStatusChange",
    "AttributeChange",
    "AttributeValue",
    "AttributeValueChange",
    "Baseline",
    "BrokerDialect",
    "BrokerEndpoint",
    "ClientConfig",
    "ClientStatistics",
    "ClientStopped",
    "Clock",
    "ConnectionLost",
    "ConnectionRestored",
    "ConnectionState",
    "DataEvent",
    "Due",
    "EncodedMessage",
    "Event",
    "EventCodec",
    "EventHeader",
    "EventVessel",
    "FileAvailableEvent",
    "FindFaultsRequest",
    "FindRequest",
    "Handler",
    "JmsMissedEvents",
    "KeepAliveEvent",
    "LossReason",
    "MalformedMessage",
    "MonotonicClock",
    "NfmpClient",
    "NfmpError",
    "ObjectCreation",
    "ObjectDeletion",
    "PingRequest",
    "ProtocolError",
    "ReceivedRequest",
    "ResyncReason",
    "ResyncRules",
    "ResyncSchedule",
    "RetryPolicy",
    "StateError",
    "StateFileCorrupt",
    "StateFileMismatch",
    "StateStore",
    "Subscription",
    "SystemEvent",
    "SystemInfoEvent",
    "TerminateClientSession",
    "TerminatePolicy",
    "TlsConfig",
    "Trigger",
    "UnknownEvent",
    "XmlApiClient",
    "XmlApiCredentials",
    "XmlApiError",
    "XmlApiFault",
    "XmlApiHttpError",
    "XmlApiObject",
    "XmlApiRequest",
    "XmlApiResponseTooLarge",
    "XmlApiStandby",
    "XmlApiTimeout",
    "XmlApiUnavailable",
    "__version__",
    "build_selector",
    "decode_message",
    "decode_request",
    "decode_response",
    "encode_event",
    "encode_fault",
    "encode_request",
    "encode_response",
    "epoch_ms_to_datetime",
    "is_system_event",
    "validate_client_id",
]

_claim_public_names(globals(), __all__, __name__)
